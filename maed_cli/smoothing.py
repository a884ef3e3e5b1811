"""Optional temporal smoothing of results: the One-Euro filter (Casiez et al., CHI 2012).

The filter is a first-order low-pass whose cutoff rises with speed: slow motion is smoothed
hard (no jitter), fast motion little (no lag). With t in seconds:

    cutoff_i = min_cutoff + beta * |dx_hat_i|       dx_hat: the derivative, itself low-passed
    alpha(c) = 1 / (1 + 1 / (2 pi c dt))            at d_cutoff
    x_hat_i  = alpha(cutoff_i) x_i + (1 - alpha(cutoff_i)) x_hat_{i-1}

Rotations are filtered in the continuous 6D representation (the first two columns of each
rotation matrix — no wrap-around, unlike Euler angles or axis-angle) and mapped back to
rotations by Gram-Schmidt; translations and cameras are filtered as they are. Smoothing is
off unless asked for (`--smooth`), so MAED's raw output always stays available.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .results import ResultSet, TrackResult


@dataclass(frozen=True)
class OneEuroParams:
    """min_cutoff (Hz): smoothing at rest, lower = smoother; beta (1/unit): how fast the
    cutoff rises with speed, higher = less lag; d_cutoff (Hz): the derivative's cutoff."""

    min_cutoff: float = 2.0
    beta: float = 1.0
    d_cutoff: float = 1.0


def _alpha(cutoff: np.ndarray | float, dt: float) -> np.ndarray | float:
    return 1.0 / (1.0 + 1.0 / (2.0 * np.pi * cutoff * dt))


def one_euro(x: np.ndarray, t: np.ndarray, params: OneEuroParams = OneEuroParams()
             ) -> np.ndarray:
    """Filter x (n, ...) sampled at times t (n,) seconds, each component independently."""
    x = np.asarray(x, dtype=np.float64)
    out = np.empty_like(x)
    if len(x) == 0:
        return out
    out[0] = x[0]
    dx_hat = np.zeros_like(x[0])
    for i in range(1, len(x)):
        dt = max(float(t[i] - t[i - 1]), 1e-6)
        dx = (x[i] - out[i - 1]) / dt
        dx_hat = _alpha(params.d_cutoff, dt) * dx + (1 - _alpha(params.d_cutoff, dt)) * dx_hat
        a = _alpha(params.min_cutoff + params.beta * np.abs(dx_hat), dt)
        out[i] = a * x[i] + (1.0 - a) * out[i - 1]
    return out


def smooth_rotations(rotmat: np.ndarray, t: np.ndarray,
                     params: OneEuroParams = OneEuroParams()) -> np.ndarray:
    """(n, J, 3, 3) -> (n, J, 3, 3), filtered in the 6D representation."""
    import torch

    from .body.geometry import rot6d_to_rotmat
    n, j = rotmat.shape[:2]
    six = np.asarray(rotmat, dtype=np.float64)[..., :, :2].reshape(n, j * 6)
    smooth = one_euro(six, t, params)
    return rot6d_to_rotmat(torch.as_tensor(smooth)).numpy().reshape(n, j, 3, 3)


def smooth_track(track: TrackResult, fps: float, params: OneEuroParams = OneEuroParams(),
                 body=None, image_size: tuple[int, int] | None = None) -> TrackResult:
    """A smoothed copy of `track`: rotations, pose, cameras and translation; vertices and
    joints recomputed with `body` (a BodyModel) when given, 2D joints re-projected with the
    smoothed orthographic camera when `image_size` (W, H) is given."""
    import torch

    from .body.geometry import project_full_orthographic, rotmat_to_axis_angle
    t = track.frame_ids.astype(np.float64) / fps
    new: dict[str, np.ndarray] = {}
    if track.rotmat is not None:
        rot = smooth_rotations(track.rotmat, t, params)
        new["rotmat"] = rot.astype(np.float32)
        new["pose"] = rotmat_to_axis_angle(torch.as_tensor(rot)).numpy().reshape(
            len(rot), 72).astype(np.float32)
    for key in ("cam_t", "orig_cam", "pred_cam"):
        value = getattr(track, key)
        if value is not None:
            new[key] = one_euro(value, t, params).astype(np.float32)
    if body is not None and "rotmat" in new and track.betas is not None:
        from .body.smpl import LazyVertices

        betas = torch.as_tensor(track.betas, dtype=torch.float32)
        # joints now, a chunk at a time; vertices when a renderer/exporter reads them
        new["joints3d"] = np.concatenate([j for _, j in body.chunks(new["rotmat"], betas)])
        new["verts"] = LazyVertices(body, new["rotmat"], betas)
        if image_size is not None and "orig_cam" in new:
            new["joints2d_img_coord"] = project_full_orthographic(
                torch.as_tensor(new["joints3d"]), torch.as_tensor(new["orig_cam"]),
                *image_size).numpy().astype(np.float32)
    return track.with_arrays(**new)


def smooth_results(results: ResultSet, params: OneEuroParams = OneEuroParams(), body=None
                   ) -> ResultSet:
    """Every track smoothed (see `smooth_track`); the input is left untouched."""
    from dataclasses import replace
    size = (results.width, results.height) if results.width and results.height else None
    return replace(results, tracks={tid: smooth_track(track, results.fps, params, body, size)
                                    for tid, track in results.tracks.items()})
