"""MAED's clip sampling and the way back to frame order; shared by demo, eval and train.

MAED never sees 16 consecutive frames (§3.2 of the reference). A track is cut into pools of
128 frames; each pool gives 8 interleaved clips `pool[i::8]`, i = 0..7, i.e. 16 frames 8 apart
(~4 s at 30 fps). Every frame is predicted exactly once, by the clip that holds it, and
neighbouring frames come from different forward passes.

Padding. A track whose length is not a multiple of 128 is padded by reflection (numpy's
'reflect': ..., L-2, L-1, L-2, ..., 0, 1, ...) so the clips of its last pool keep the
8-frame spacing and the motion stays continuous. A track shorter than ~64 frames reflects
more than once (a ping-pong over its frames); that is still plausible motion for the
temporal attention, unlike freezing the last frame. Padded slots only serve as context: the
prediction for real frame k is always the one made at slot k itself (its first occurrence),
predictions made at padded slots are dropped, so no frame is ever counted twice — the
official eval's "valid" mask does the same, but fails for tracks under 64 frames, where it
keeps reflected copies. Clips made only of padding are not planned at all (a track of 3
frames needs 3 clips, not 8).

Interpolation (`interp = K` > 1, the official EVAL.INTERPOLATION): only every K-th frame is
run — plus the last frame, so every skipped frame lies between two predictions — and the
pools and clips are built from that subsampled track with pool 128/K and clip stride 8/K:
clips still span frames 8 apart in the original video, as in training, and K must divide 8.
`interpolate_theta` then fills the skipped frames: slerp on the rotations (the official code
interpolates rotation matrices linearly, leaving SO(3)), linear for camera and shape.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

CLIP_LEN = 16
CLIP_STRIDE = 8
POOL = CLIP_LEN * CLIP_STRIDE  # 128


@dataclass(frozen=True)
class ClipPlan:
    """Which frames of a track go into which clip, and how outputs come back.

    length: L, frames in the track; sample (M,): the track positions that are predicted
    (arange(L) without interpolation), increasing; clips (C, clip_len): track positions
    (0..L-1) to feed, clip by clip — `crops[plan.clips]` is the network input (C, T, ...);
    source (M,): for each sampled frame, the flat index t·clip_len + j of the clip output that
    predicts it; pool_of_clip (C,): the pool each clip was cut from.
    """

    length: int
    clip_len: int
    stride: int
    pool: int
    interp: int
    sample: np.ndarray
    clips: np.ndarray
    source: np.ndarray
    pool_of_clip: np.ndarray

    @property
    def num_clips(self) -> int:
        return len(self.clips)

    @property
    def clip_first(self) -> np.ndarray:
        """(C,) the earliest track position each clip reads: crops before the minimum over
        the clips still to run can be freed."""
        return self.clips.min(axis=1)

    @property
    def clip_last(self) -> np.ndarray:
        """(C,) the latest track position each clip reads: a clip can run as soon as the
        track's crops up to it exist (crops arrive in frame order while decoding)."""
        return self.clips.max(axis=1)

    def merge(self, outputs):
        """Per-clip outputs (C, clip_len, ...) -> per sampled frame (M, ...), frame order.

        Works for numpy arrays and torch tensors. Each sampled frame takes exactly one output.
        """
        c, t = outputs.shape[:2]
        if (c, t) != (self.num_clips, self.clip_len):
            raise ValueError(f"expected outputs of shape ({self.num_clips}, {self.clip_len}, "
                             f"...), got {tuple(outputs.shape)}")
        flat = outputs.reshape(c * t, *outputs.shape[2:])
        if isinstance(outputs, np.ndarray):
            return flat[self.source]
        import torch

        return flat[torch.as_tensor(self.source, device=outputs.device)]


def plan_clips(length: int, clip_len: int = CLIP_LEN, stride: int = CLIP_STRIDE,
               pool: int | None = None, interp: int = 1) -> ClipPlan:
    """Plan MAED clips for a track of `length` frames (see the module docstring).

    clip_len: frames per clip (≤ 16, MAED's temporal embedding); stride: spacing of a clip's
    frames in the original track (8); pool: frames per pool (clip_len·stride = 128; other
    values are not supported); interp: predict only every interp-th frame (must divide stride).
    """
    if length < 1:
        raise ValueError(f"a track needs at least one frame, got {length}")
    if pool is None:
        pool = clip_len * stride
    if pool != clip_len * stride:
        raise ValueError(f"pool ({pool}) must equal clip_len × stride ({clip_len}×{stride}) "
                         f"for the interleaved clips to cover it")
    if interp < 1 or stride % interp:
        divisors = [k for k in range(1, stride + 1) if stride % k == 0]
        raise ValueError(f"interp {interp}: must divide the clip stride {stride} "
                         f"(one of {divisors}) so clips keep their {stride}-frame spacing")

    sample = np.arange(0, length, interp, dtype=np.int64)
    if sample[-1] != length - 1:
        sample = np.append(sample, length - 1)
    m = len(sample)
    s_stride, s_pool = stride // interp, pool // interp      # in sampled units
    n_pools = -(-m // s_pool)
    padded = n_pools * s_pool
    # slot -> sampled position; numpy's reflect repeats the reflection for short inputs
    slot = (np.pad(np.arange(m), (0, padded - m), mode="reflect") if m > 1
            else np.zeros(padded, np.int64))

    # clip (p, i) holds slots p·s_pool + i + s_stride·j, j = 0..clip_len-1
    p = np.arange(n_pools)[:, None, None]
    i = np.arange(s_stride)[None, :, None]
    j = np.arange(clip_len)[None, None, :]
    slots = (p * s_pool + i + s_stride * j).reshape(-1, clip_len)
    pool_of_clip = np.repeat(np.arange(n_pools), s_stride)
    keep = (slots < m).any(axis=1)        # a clip of padding only predicts nothing
    slots, pool_of_clip = slots[keep], pool_of_clip[keep]

    # sampled frame k is predicted at its own slot k (never at a reflected copy)
    clip_number = np.cumsum(keep) - 1     # index among the kept clips
    k = np.arange(m)
    kp, kr = k // s_pool, k % s_pool
    full_clip = kp * s_stride + kr % s_stride
    source = clip_number[full_clip] * clip_len + kr // s_stride

    return ClipPlan(length=length, clip_len=clip_len, stride=stride, pool=pool, interp=interp,
                    sample=sample, clips=sample[slot[slots]], source=source.astype(np.int64),
                    pool_of_clip=pool_of_clip)


# --------------------------------------------------------------------------------------------
# filling the frames skipped by `interp`

def _as_torch(x):
    import torch

    if isinstance(x, torch.Tensor):
        return x, (lambda y: y)
    arr = np.asarray(x)
    return torch.from_numpy(np.ascontiguousarray(arr)), (lambda y: y.cpu().numpy())


def _brackets(sample: np.ndarray, length: int):
    """For every frame 0..length-1: left sample index a, right b = a + 1, weight t in [0, 1]."""
    sample = np.asarray(sample, np.int64)
    frames = np.arange(length)
    if len(sample) == 1:
        z = np.zeros(length, np.int64)
        return z, z, np.zeros(length)
    a = np.clip(np.searchsorted(sample, frames, side="right") - 1, 0, len(sample) - 2)
    b = a + 1
    t = (frames - sample[a]) / (sample[b] - sample[a])
    return a, b, np.clip(t, 0.0, 1.0)


def interpolate_linear(sample: np.ndarray, values, length: int):
    """(M, ...) values at frames `sample` -> (length, ...), linear in between (numpy/torch)."""
    x, back = _as_torch(values)
    a, b, t = _brackets(sample, length)
    tt = x.new_tensor(t).reshape(-1, *([1] * (x.dim() - 1)))
    out = x[a] * (1 - tt) + x[b] * tt
    out[np.asarray(sample)] = x  # sampled frames exactly as predicted
    return back(out)


def interpolate_rotmat(sample: np.ndarray, rotmat, length: int):
    """(M, ..., 3, 3) rotations at frames `sample` -> (length, ..., 3, 3) by quaternion slerp
    (shorter arc): a rotation turning at constant angular velocity is reproduced exactly."""
    from .body.geometry import quaternion_slerp, quaternion_to_rotmat, rotmat_to_quaternion

    r, back = _as_torch(rotmat)
    q = rotmat_to_quaternion(r)
    a, b, t = _brackets(sample, length)
    tt = q.new_tensor(t).reshape(-1, *([1] * (q.dim() - 2)))
    out = quaternion_to_rotmat(quaternion_slerp(q[a], q[b], tt))
    out[np.asarray(sample)] = r
    return back(out)


def interpolate_axis_angle(sample: np.ndarray, aa, length: int):
    """(M, ..., 3) axis-angle -> (length, ..., 3), slerp on the rotations."""
    from .body.geometry import axis_angle_to_rotmat, rotmat_to_axis_angle

    x, back = _as_torch(aa)
    out = rotmat_to_axis_angle(interpolate_rotmat(sample, axis_angle_to_rotmat(x), length))
    out[np.asarray(sample)] = x
    return back(out)


def interpolate_theta(sample: np.ndarray, theta, length: int):
    """MAED theta (M, 85) = [cam (s, tx, ty) | pose (72, axis-angle) | betas (10)] at frames
    `sample` -> (length, 85): slerp for the 24 joint rotations, linear for camera and betas."""
    x, back = _as_torch(theta)
    if x.shape[-1] != 85:
        raise ValueError(f"theta must be (M, 85), got {tuple(x.shape)}")
    import torch

    cam = interpolate_linear(sample, x[:, :3], length)
    pose = interpolate_axis_angle(sample, x[:, 3:75].reshape(-1, 24, 3), length)
    betas = interpolate_linear(sample, x[:, 75:], length)
    return back(torch.cat([cam, pose.reshape(length, 72), betas], dim=1))


def interpolate_outputs(sample: np.ndarray, outputs: dict, length: int) -> dict:
    """Fill skipped frames of a dict of per-frame network outputs, each (M, ...).

    'rotmat' (…, 3, 3) is slerped; 'pose' (72 axis-angle) and 'theta' (85) are slerped on
    their rotations; 'pose6d' (144) is rebuilt from the slerped rotations when 'rotmat' is
    there; everything else (cam, betas, features, ...) is linear.
    """
    out = {}
    for key, value in outputs.items():
        if key == "rotmat":
            out[key] = interpolate_rotmat(sample, value, length)
        elif key == "theta":
            out[key] = interpolate_theta(sample, value, length)
        elif key == "pose" and value.shape[-1] == 72:
            x, back = _as_torch(value)
            out[key] = back(interpolate_axis_angle(sample, x.reshape(len(x), 24, 3), length)
                            .reshape(length, 72))
        elif key == "pose6d" and "rotmat" in outputs:
            continue
        else:
            out[key] = interpolate_linear(sample, value, length)
    if "pose6d" in outputs and "rotmat" in outputs:
        r, back = _as_torch(out["rotmat"])
        # MAED's 6D is the row-major (3, 2) matrix of the first two columns
        six = r[..., :, :2].reshape(*r.shape[:-3], -1)
        six[np.asarray(sample)] = _as_torch(outputs["pose6d"])[0].to(six.dtype)
        out["pose6d"] = back(six)
    return out
