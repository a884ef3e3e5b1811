"""Training augmentation for MAED (reference §4.4), one parameter set per clip.

Everything takes an explicit `numpy.random.Generator`, so a sample's augmentation is a pure
function of (seed, pass, index): resuming a run reproduces it exactly, whatever the worker.

Differences from the official code, on purpose (reference §4.4 / §8.9):
- random erase erases *columns* from the left or right edge (the official code indexed rows,
  so its "left"/"right" erased the top/bottom);
- the SMPL pose flip swaps and mirrors all 24 joints (the official loop stopped at 22, so the
  right hand, joint 23, was never flipped).

Coordinates: db boxes and keypoints are read as the official code reads them, as pixel
indices (pixel i's centre at i); the crop is the official warp (`maed_cli.video.crop`, region
centre on crop pixel 112) and crop keypoints are normalised as the official code does,
`crop index / 112 − 1` in [-1, 1], so a keypoint and the pixel the crop shows it on agree
exactly. A horizontal flip is `x → −x` on the keypoints and a mirror of the crop's columns
(under pixel indices the mirrored pair differ by one crop pixel, 2/224; the reference does not
say how the official flip treats it).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...body.joints import JOINT49_NAMES, SMPL_JOINT_NAMES

CROP_SIZE = 224


def _mirror_name(name: str) -> str:
    swaps = (("Right", "Left"), ("Left", "Right"), ("OP R", "OP L"), ("OP L", "OP R"),
             ("right_", "left_"), ("left_", "right_"))
    for a, b in swaps:
        if name.startswith(a):
            return b + name[len(a):]
    return name


def _permutation(names: tuple[str, ...]) -> np.ndarray:
    index = {n: i for i, n in enumerate(names)}
    return np.array([index[_mirror_name(n)] for n in names], np.int64)


FLIP_PERM_49 = _permutation(JOINT49_NAMES)
FLIP_PERM_SMPL = _permutation(SMPL_JOINT_NAMES)


@dataclass(frozen=True)
class CropParams:
    """Crop region relative to the db box: side = scale·box, centre shifted by shift·box."""

    scale: float = 1.3
    shift_x: float = 0.0
    shift_y: float = 0.0


def sample_crop(rng: np.random.Generator, scale: float = 1.3, random_p: float = 0.0,
                scale_range: tuple[float, float] = (0.7, 1.3)) -> CropParams:
    """With probability `random_p` a random scale in `scale_range` and a centre shift of up
    to ±|scale_base − scale|/2 of the box (the official RANDOM_CROP), else the plain crop."""
    if random_p > 0 and rng.random() < random_p:
        s = float(rng.uniform(*scale_range))
        reach = abs(scale - s) / 2
        return CropParams(s, float(rng.uniform(-reach, reach)), float(rng.uniform(-reach, reach)))
    return CropParams(scale)


def crop_region(bbox: np.ndarray, params: CropParams) -> np.ndarray:
    """db box (cx, cy, w, h) -> square crop region (cx, cy, side) in pixels."""
    cx, cy, w, h = (float(v) for v in bbox)
    side = max(w, h)
    return np.array([cx + params.shift_x * side, cy + params.shift_y * side,
                     params.scale * side])


def crop_affine(region: np.ndarray, size: int = CROP_SIZE) -> np.ndarray:
    """(2, 3) map from image pixel indices to crop pixel indices: a·(p − centre) + 112,
    a = size / side: the one `maed_cli.video.crop.crop_matrix` warps the image with (in
    float64, without the official float32 rounding of the points)."""
    cx, cy, side = (float(v) for v in region)
    if not side > 0:
        raise ValueError(f"empty crop region {region}")
    a = size / side
    return np.array([[a, 0.0, -a * (cx - side / 2)], [0.0, a, -a * (cy - side / 2)]])


def warp_crop(image: np.ndarray, region: np.ndarray, size: int = CROP_SIZE) -> np.ndarray:
    """RGB uint8 (H, W, 3) -> (size, size, 3) crop of region (cx, cy, side), bilinear, black
    outside the image: the official warp, as eval (`maed_cli.video.crop`, pixel indices)."""
    from ...video.crop import crop_images

    cx, cy, side = (float(v) for v in region)
    return crop_images(image, np.array([[cx, cy, side, side]]), size)[0]


def keypoints_to_crop(kp: np.ndarray, region: np.ndarray, size: int = CROP_SIZE) -> np.ndarray:
    """(..., J, 3) image keypoints (x, y, conf) -> (..., J, 3) normalised crop coordinates."""
    m = crop_affine(region, size)
    out = np.array(kp, np.float32, copy=True)
    xy = kp[..., :2] @ m[:, :2].T + m[:, 2]
    out[..., :2] = 2.0 * xy / size - 1.0
    return out


def color_jitter(frames: np.ndarray, rng: np.random.Generator,
                 strength: tuple[float, float, float, float]) -> np.ndarray:
    """Brightness, contrast, saturation ~ U(1−s, 1+s), hue ~ U(−s, s) turns, applied in a random
    order with the same values on every frame of the clip. frames (T, H, W, 3) uint8."""
    import torch
    from torchvision.transforms import functional as F

    b, c, s, h = strength
    ops = []
    if b > 0:
        f = float(rng.uniform(max(0.0, 1 - b), 1 + b))
        ops.append(lambda x, f=f: F.adjust_brightness(x, f))
    if c > 0:
        f = float(rng.uniform(max(0.0, 1 - c), 1 + c))
        ops.append(lambda x, f=f: F.adjust_contrast(x, f))
    if s > 0:
        f = float(rng.uniform(max(0.0, 1 - s), 1 + s))
        ops.append(lambda x, f=f: F.adjust_saturation(x, f))
    if h > 0:
        f = float(rng.uniform(-min(h, 0.5), min(h, 0.5)))
        ops.append(lambda x, f=f: F.adjust_hue(x, f))
    order = rng.permutation(len(ops))
    x = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2)
    for i in order:
        x = ops[i](x)
    return x.permute(0, 2, 3, 1).contiguous().numpy()


def random_erase(frames: np.ndarray, rng: np.random.Generator, p: float = 0.3,
                 max_ratio: float = 0.7) -> np.ndarray:
    """One side (left or right) per clip; each frame independently with probability p gets a
    U(0, max_ratio) fraction of its width blacked out from that side. (T, H, W, 3) uint8."""
    out = np.array(frames, copy=True)
    width = out.shape[2]
    from_left = rng.random() < 0.5
    for t in range(out.shape[0]):
        if rng.random() < p:
            cols = int(round(rng.uniform(0, max_ratio) * width))
            if cols:
                if from_left:
                    out[t, :, :cols] = 0
                else:
                    out[t, :, width - cols:] = 0
    return out


def flip_pose(pose: np.ndarray) -> np.ndarray:
    """(..., 72) SMPL axis-angle -> its mirror image: swap left/right joints (all 24) and
    negate the y and z components."""
    aa = np.asarray(pose, np.float32).reshape(*pose.shape[:-1], 24, 3)[..., FLIP_PERM_SMPL, :]
    aa = aa * np.array([1.0, -1.0, -1.0], np.float32)
    return aa.reshape(pose.shape)


def flip_keypoints(kp: np.ndarray) -> np.ndarray:
    """(..., 49, C) normalised 2D (C=3) or root-relative 3D (C=4) joints: x → −x, swap L/R.

    3D joints mirror about the LSP mid-hip in the official code; the losses centre both sides
    on that mid-hip, so mirroring about x = 0 is the same after centring."""
    out = np.array(kp, np.float32, copy=True)[..., FLIP_PERM_49, :]
    out[..., 0] = -out[..., 0]
    return out
