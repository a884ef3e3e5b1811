"""MAED's evaluation protocol: score per-frame SMPL predictions against an EvalSet.

Scoring (maed_reference.md §5.1):
- predicted joints come from the predicted mesh (no translation): J_regressor_h36m ->
  H36M_TO_J14 for 3DPW, H36M_TO_J17 for Human3.6M, the 49-joint set's J49_TO_MPII3D for
  MPI-INF-3DHP; prediction and ground truth are both centred on their hip midpoint;
- MPJPE, PA-MPJPE (per-frame similarity Procrustes), PVE (3DPW: predicted vertices against the
  neutral-SMPL ground-truth mesh, both without translation, no alignment);
- accel (the prediction's own acceleration, VIBE's printed ACCEL) and accel error, each two
  ways: over all evaluated frames concatenated in set order, across track boundaries, as the
  VIBE/MAED code computes them; and inside each track only (TCMR style).
"""
from __future__ import annotations

import hashlib
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..atomic import atomic_path
from ..body.joints import H36M_TO_J14, H36M_TO_J17, J49_TO_MPII3D
from ..body.smpl import BodyModel
from ..data.evaluation_sets.evalset import EvalSet
from ..errors import InputError
from . import metrics

#: The MAED README's numbers for the official (w/ 3DPW) checkpoint on the 3DPW test set. The
#: README's "ACCEL" column may be either accel or accel error (see maed_reference.md §5.1).
PAPER_3DPW_TEST = {"pa_mpjpe": 45.7, "mpjpe": 79.1, "pve": 92.6, "accel_readme": 17.6}

ACCEL_STYLES = {
    "concatenated": "over all evaluated frames concatenated in set order, across track "
                    "boundaries (the VIBE/MAED code)",
    "per_sequence": "inside each track only, no frame triple spans two tracks (TCMR style)",
}


@dataclass
class Predictions:
    """Per-row SMPL predictions of an EvalSet, in its row order.

    rotmat (N, 24, 3, 3) or pose (N, 72) axis-angle; betas (N, 10); cam (N, 3) optional.
    """

    betas: np.ndarray
    rotmat: np.ndarray | None = None
    pose: np.ndarray | None = None
    cam: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.rotmat is None and self.pose is None:
            raise ValueError("Predictions need rotmat or pose")

    def __len__(self) -> int:
        return len(self.betas)

    def axis_angle(self) -> np.ndarray:
        if self.pose is not None:
            return np.asarray(self.pose)
        from ..body.geometry import rotmat_to_axis_angle
        return rotmat_to_axis_angle(torch.as_tensor(self.rotmat)).reshape(len(self), 72).numpy()


@dataclass
class EvalResult:
    """Per-frame errors (mm) and their summaries. Acceleration arrays hold one value per
    frame triple: `accel*_concat` (N-2,) and `accel*_seq` (fewer, inside tracks)."""

    mpjpe: np.ndarray
    pa_mpjpe: np.ndarray
    pve: np.ndarray | None
    accel_concat: np.ndarray
    accel_error_concat: np.ndarray
    accel_seq: np.ndarray
    accel_error_seq: np.ndarray
    tracks: list[dict] = field(default_factory=list)

    def summary(self) -> dict:
        def mean(x: np.ndarray | None) -> float | None:
            return float(np.mean(x)) if x is not None and len(x) else None
        return {
            "mpjpe": mean(self.mpjpe), "pa_mpjpe": mean(self.pa_mpjpe), "pve": mean(self.pve),
            "accel": {"concatenated": mean(self.accel_concat),
                      "per_sequence": mean(self.accel_seq)},
            "accel_error": {"concatenated": mean(self.accel_error_concat),
                            "per_sequence": mean(self.accel_error_seq)},
        }


def predicted_joints(out, joint_set: str) -> torch.Tensor:
    """The body output's joints in an EvalSet's ground-truth layout."""
    if joint_set in ("lsp14", "h36m17"):
        if out.joints_h36m17 is None:
            raise InputError("this evaluation needs J_regressor_h36m.npy: run `maed setup "
                             "regressors DIR` with the folder that holds it")
        index = H36M_TO_J14 if joint_set == "lsp14" else H36M_TO_J17
        return out.joints_h36m17[:, list(index)]
    if joint_set == "mpii3d17":
        return out.joints49[:, list(J49_TO_MPII3D)]
    raise ValueError(f"unknown joint set {joint_set}")


def body_fingerprint(body: BodyModel) -> str:
    """Identifies the body model's geometry (for caches of ground truth built with it)."""
    digest = hashlib.sha256()
    for name in ("v_template", "shapedirs", "posedirs", "J_regressor", "lbs_weights",
                 "J_regressor_h36m"):
        value = getattr(body, name, None)
        if value is not None:
            digest.update(value.detach().cpu().numpy().tobytes())
    return digest.hexdigest()[:16]


def gt_joints_function(body: BodyModel, device: torch.device | str = "cpu"
                       ) -> Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]:
    """3DPW ground truth: neutral SMPL(pose, betas, trans) -> J_regressor_h36m -> J14."""
    def run(pose: np.ndarray, betas: np.ndarray, trans: np.ndarray) -> np.ndarray:
        f32 = torch.float32
        with torch.no_grad():
            out = body(pose=torch.as_tensor(pose, dtype=f32, device=device),
                       betas=torch.as_tensor(betas, dtype=f32, device=device),
                       transl=torch.as_tensor(trans, dtype=f32, device=device))
        return predicted_joints(out, "lsp14").double().cpu().numpy()
    return run


def score(evalset: EvalSet, predictions: Predictions, body: BodyModel,
          device: torch.device | str = "cpu", chunk: int = 256,
          progress: Callable[[int], None] | None = None) -> EvalResult:
    """Every metric of the protocol for predictions aligned row by row with `evalset`."""
    if len(predictions) != len(evalset):
        raise ValueError(f"{len(predictions)} predictions for {len(evalset)} rows")
    f32 = torch.float32
    hips = evalset.hips
    n = len(evalset)
    pred_joints = np.zeros((n, evalset.joints3d.shape[1], 3))
    pve = np.zeros(n) if evalset.has_mesh else None
    for start in range(0, n, chunk):
        rows = slice(start, min(start + chunk, n))
        betas = torch.as_tensor(predictions.betas[rows], dtype=f32, device=device)
        with torch.no_grad():
            if predictions.rotmat is not None:
                out = body(rotmat=torch.as_tensor(predictions.rotmat[rows], dtype=f32,
                                                  device=device), betas=betas)
            else:
                out = body(pose=torch.as_tensor(predictions.pose[rows], dtype=f32,
                                                device=device), betas=betas)
            pred_joints[rows] = predicted_joints(out, evalset.joint_set).double().cpu().numpy()
            if pve is not None:
                gt = body(pose=torch.as_tensor(evalset.pose[rows], dtype=f32, device=device),
                          betas=torch.as_tensor(evalset.shape[rows], dtype=f32, device=device))
                pve[rows] = metrics.pve(out.vertices.double().cpu().numpy(),
                                        gt.vertices.double().cpu().numpy())
        if progress:
            progress(rows.stop - rows.start)
    pred_c = metrics.center_on_hips(pred_joints, hips)
    gt_c = metrics.center_on_hips(evalset.joints3d, hips)
    tracks = evalset.tracks()
    track_id = np.zeros(n, dtype=np.int64)
    for i, (_, a, b) in enumerate(tracks):
        track_id[a:b] = i
    result = EvalResult(
        mpjpe=metrics.mpjpe(pred_c, gt_c), pa_mpjpe=metrics.pa_mpjpe(pred_c, gt_c), pve=pve,
        accel_concat=metrics.accel(pred_c), accel_error_concat=metrics.accel_error(pred_c, gt_c),
        accel_seq=metrics.accel(pred_c, track_id),
        accel_error_seq=metrics.accel_error(pred_c, gt_c, track_id))
    for name, a, b in tracks:
        acc = metrics.accel(pred_c[a:b])
        acc_err = metrics.accel_error(pred_c[a:b], gt_c[a:b])
        result.tracks.append({
            "name": name, "frames": b - a,
            "mpjpe": float(result.mpjpe[a:b].mean()),
            "pa_mpjpe": float(result.pa_mpjpe[a:b].mean()),
            "pve": float(pve[a:b].mean()) if pve is not None else None,
            "accel": float(acc.mean()) if len(acc) else None,
            "accel_error": float(acc_err.mean()) if len(acc_err) else None,
        })
    return result


# -- prediction files ---------------------------------------------------------------------------
def save_predictions(path: str | Path, evalset: EvalSet, predictions: Predictions,
                     result: EvalResult | None = None) -> Path:
    """An .npz (no pickle) with one row per evaluated frame: vid_name, frame_id, img_name,
    bbox (db box, cx cy w h), pose (72 axis-angle), betas (10), cam (3) and, with a result,
    the per-frame mpjpe, pa_mpjpe, pve in mm."""
    arrays = {"vid_name": evalset.vid_name.astype(str), "frame_id": evalset.frame_id,
              "img_name": evalset.img_name.astype(str), "bbox": evalset.bbox,
              "pose": predictions.axis_angle().astype(np.float32),
              "betas": np.asarray(predictions.betas, dtype=np.float32)}
    if predictions.cam is not None:
        arrays["cam"] = np.asarray(predictions.cam, dtype=np.float32)
    if result is not None:
        arrays.update(mpjpe=result.mpjpe, pa_mpjpe=result.pa_mpjpe)
        if result.pve is not None:
            arrays["pve"] = result.pve
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as handle:
            np.savez(handle, **arrays)
    return Path(path)


def load_predictions(path: str | Path, evalset: EvalSet) -> Predictions:
    """Predictions from an .npz with vid_name, frame_id, pose (N, 72) or rotmat (N, 24, 3, 3),
    betas (N, 10) [, cam], matched to the set's rows by (vid_name, frame_id); extra rows are
    ignored, missing ones are an error."""
    path = Path(path)
    if path.is_dir():
        raise InputError(f"--predictions {path}: is a folder; give the .npz file")
    if not path.is_file():
        raise InputError(f"predictions file not found: {path}")
    if not zipfile.is_zipfile(path):  # else numpy takes it for a pickle and says so at length
        raise InputError(f"{path}: not an .npz file (numpy's archive of arrays, as "
                         f"`maed eval --save-predictions` writes)")
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except Exception as exc:
        raise InputError(f"{path}: not a readable .npz predictions file "
                         f"({type(exc).__name__}: {str(exc)[:100]})") from None
    need = ["vid_name", "frame_id", "betas"]
    missing = [k for k in need if k not in arrays]
    if "pose" not in arrays and "rotmat" not in arrays:
        missing.append("pose or rotmat")
    if missing:
        raise InputError(f"{path}: lacks {', '.join(missing)}")
    index = {(str(v), int(f)): i for i, (v, f) in
             enumerate(zip(arrays["vid_name"], arrays["frame_id"]))}
    rows = np.array([index.get((str(v), int(f)), -1)
                     for v, f in zip(evalset.vid_name, evalset.frame_id)])
    if (rows < 0).any():
        first = int(np.flatnonzero(rows < 0)[0])
        raise InputError(f"{path}: no prediction for {int((rows < 0).sum())} of the "
                         f"{len(evalset)} evaluated frames (first: {evalset.vid_name[first]} "
                         f"frame {evalset.frame_id[first]})")
    betas = np.asarray(arrays["betas"], dtype=np.float64)[rows]
    if betas.shape[1:] != (10,):
        raise InputError(f"{path}: betas has shape {arrays['betas'].shape}, expected (N, 10)")
    if "rotmat" in arrays:
        rotmat = np.asarray(arrays["rotmat"], dtype=np.float64)[rows]
        if rotmat.shape[1:] != (24, 3, 3):
            raise InputError(f"{path}: rotmat has shape {arrays['rotmat'].shape}, "
                             f"expected (N, 24, 3, 3)")
        return Predictions(betas=betas, rotmat=rotmat,
                           cam=arrays["cam"][rows] if "cam" in arrays else None)
    pose = np.asarray(arrays["pose"], dtype=np.float64)[rows]
    if pose.shape[1:] != (72,):
        raise InputError(f"{path}: pose has shape {arrays['pose'].shape}, expected (N, 72)")
    return Predictions(betas=betas, pose=pose,
                       cam=arrays["cam"][rows] if "cam" in arrays else None)
