"""Pose and mesh error metrics: pure functions on numpy arrays.

Inputs are in metres, outputs are in millimetres, one value per frame (or per frame triple for
the acceleration metrics), so callers choose how to average. Leading dimensions are free:
joints are `(..., J, 3)`, a sequence for the acceleration metrics is `(F, J, 3)`.

Computation is in float64 whatever the input precision: the PA-MPJPE of identical poses must
come out as 0, not as float32 round-off.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

MM = 1000.0

#: Hip indices (right, left) in the 14-joint LSP order the 3DPW protocol uses.
LSP14_HIPS = (2, 3)


def _pair(pred: np.ndarray, gt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pred = np.asarray(pred, dtype=np.float64)
    gt = np.asarray(gt, dtype=np.float64)
    if pred.shape != gt.shape:
        raise ValueError(f"prediction {pred.shape} and ground truth {gt.shape} differ in shape")
    if pred.ndim < 2 or pred.shape[-1] != 3:
        raise ValueError(f"expected points (..., J, 3), got {pred.shape}")
    return pred, gt


def center_on_hips(joints: np.ndarray, hips: Sequence[int] = LSP14_HIPS) -> np.ndarray:
    """(..., J, 3) -> the same joints minus the midpoint of the two hip joints of each frame.

    The 3DPW/MPI-INF-3DHP/H36M protocols of MAED and VIBE align prediction and ground truth
    this way (the mean of the LSP right and left hip, not a pelvis joint).
    """
    joints = np.asarray(joints, dtype=np.float64)
    return joints - joints[..., list(hips), :].mean(axis=-2, keepdims=True)


def mpjpe(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """Mean per-joint position error: (..., J, 3) m -> (...) mm, no alignment applied here."""
    pred, gt = _pair(pred, gt)
    return np.linalg.norm(pred - gt, axis=-1).mean(axis=-1) * MM


def similarity_align(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """Per frame, the similarity transform (scale, rotation, translation) of `pred` closest to
    `gt` in least squares (Umeyama 1991), applied to `pred`: (..., J, 3) -> (..., J, 3).

    Shapes are explicit (points are rows), so a batch of 1, 2 or 3 frames is never confused
    with a transposed (3, J) input. Reflections are excluded (det(R) = +1).
    """
    pred, gt = _pair(pred, gt)
    lead = pred.shape[:-2]
    x = pred.reshape(-1, *pred.shape[-2:])  # (B, J, 3)
    y = gt.reshape(-1, *gt.shape[-2:])
    mu_x = x.mean(axis=1, keepdims=True)  # (B, 1, 3)
    mu_y = y.mean(axis=1, keepdims=True)
    x0, y0 = x - mu_x, y - mu_y
    var_x = (x0 ** 2).sum(axis=(1, 2))  # (B,)
    # Cross-covariance K = X0^T Y0 (B, 3, 3); the best rotation in the row convention
    # y ~ s x R is R = U D V^T where K = U S V^T and D fixes a reflection.
    k = np.einsum("bji,bjk->bik", x0, y0)
    u, s, vt = np.linalg.svd(k)
    d = np.ones((x.shape[0], 3))
    d[:, 2] = np.sign(np.linalg.det(u @ vt))
    d[d[:, 2] == 0, 2] = 1.0
    r = u @ (d[:, :, None] * vt)  # (B, 3, 3)
    scale = (s * d).sum(axis=1) / np.where(var_x > 0, var_x, 1.0)  # (B,)
    aligned = scale[:, None, None] * (x0 @ r) + mu_y
    return aligned.reshape(*lead, *pred.shape[-2:])


def pa_mpjpe(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """MPJPE after per-frame Procrustes (similarity) alignment: (..., J, 3) m -> (...) mm."""
    return mpjpe(similarity_align(pred, gt), gt)


def pve(pred_verts: np.ndarray, gt_verts: np.ndarray) -> np.ndarray:
    """Per-vertex error, no alignment (both meshes in the SMPL origin frame):
    (..., V, 3) m -> (...) mm."""
    return mpjpe(pred_verts, gt_verts)


def _second_difference(x: np.ndarray) -> np.ndarray:
    if x.ndim != 3 or x.shape[-1] != 3:
        raise ValueError(f"expected a sequence (F, J, 3), got {x.shape}")
    return x[:-2] - 2.0 * x[1:-1] + x[2:]


def _same_sequence(sequence_ids: np.ndarray | None, frames: int) -> np.ndarray | slice:
    """Which frame triples (t-1, t, t+1) lie inside one sequence; all of them without ids."""
    if sequence_ids is None:
        return slice(None)
    ids = np.asarray(sequence_ids)
    if ids.shape != (frames,):
        raise ValueError(f"sequence_ids must have shape ({frames},), got {ids.shape}")
    return (ids[:-2] == ids[1:-1]) & (ids[1:-1] == ids[2:])


def accel(pred: np.ndarray, sequence_ids: np.ndarray | None = None) -> np.ndarray:
    """The sequence's own acceleration magnitude (what VIBE and MAED print as ACCEL):
    (F, J, 3) m -> (F-2,) mm/frame², the mean over joints of |x[t-1] - 2x[t] + x[t+1]|.

    Without `sequence_ids` the frames are one sequence, as VIBE and MAED compute it over all
    evaluated frames concatenated. With `sequence_ids` (F,) (each sequence one contiguous run)
    only triples inside one sequence are kept (the TCMR convention), so fewer values return.
    Fewer than 3 frames give an empty array.
    """
    pred = np.asarray(pred, dtype=np.float64)
    values = np.linalg.norm(_second_difference(pred), axis=-1).mean(axis=-1) * MM
    return values[_same_sequence(sequence_ids, pred.shape[0])] if len(values) else values


def accel_error(pred: np.ndarray, gt: np.ndarray,
                sequence_ids: np.ndarray | None = None) -> np.ndarray:
    """Acceleration error: (F, J, 3) m -> (F-2,) mm/frame², the mean over joints of the
    distance between the predicted and ground-truth second differences. `sequence_ids` as in
    `accel`."""
    pred, gt = _pair(pred, gt)
    diff = _second_difference(pred) - _second_difference(gt)
    values = np.linalg.norm(diff, axis=-1).mean(axis=-1) * MM
    return values[_same_sequence(sequence_ids, pred.shape[0])] if len(values) else values
