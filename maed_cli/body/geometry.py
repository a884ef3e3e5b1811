"""Rotation representations used by MAED. Pure tensor math, batched over any leading dims.

Conventions: rotation matrices act on column vectors; quaternions are (w, x, y, z);
axis-angle vectors are axis * angle with the angle in [0, pi].
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..errors import InputError


def rot6d_to_rotmat(x: torch.Tensor) -> torch.Tensor:
    """MAED's 6D representation -> rotation matrices: (..., 6k) -> (..., k, 3, 3).

    Each 6-vector is read as a row-major (3, 2) matrix, so its columns are (x0, x2, x4) and
    (x1, x3, x5); Gram-Schmidt (normalise eps 1e-6) gives b1, b2 and b3 = b1 x b2 as columns.
    """
    lead = x.shape[:-1]
    m = x.reshape(*lead, -1, 3, 2)
    a1, a2 = m[..., 0], m[..., 1]
    b1 = F.normalize(a1, dim=-1, eps=1e-6)
    b2 = F.normalize(a2 - (b1 * a2).sum(-1, keepdim=True) * b1, dim=-1, eps=1e-6)
    b3 = torch.linalg.cross(b1, b2, dim=-1)
    return torch.stack([b1, b2, b3], dim=-1)


def rotmat_to_quaternion(rotmat: torch.Tensor) -> torch.Tensor:
    """(..., 3, 3) -> unit quaternions (..., 4) as (w, x, y, z) with w >= 0.

    Shepperd's method: of the four algebraically equal formulas, each element uses the one
    whose divisor is largest, so the result is accurate for every angle, 0 and pi included.
    """
    r = rotmat
    r00, r01, r02 = r[..., 0, 0], r[..., 0, 1], r[..., 0, 2]
    r10, r11, r12 = r[..., 1, 0], r[..., 1, 1], r[..., 1, 2]
    r20, r21, r22 = r[..., 2, 0], r[..., 2, 1], r[..., 2, 2]
    # 4*q_i^2 for i = w, x, y, z
    squares = torch.stack([1 + r00 + r11 + r22, 1 + r00 - r11 - r22,
                           1 - r00 + r11 - r22, 1 - r00 - r11 + r22], dim=-1)
    # Row i holds 4*q_i*(w, x, y, z); dividing by 2*sqrt(4 q_i^2) = 4|q_i| gives q.
    candidates = torch.stack([
        torch.stack([squares[..., 0], r21 - r12, r02 - r20, r10 - r01], dim=-1),
        torch.stack([r21 - r12, squares[..., 1], r10 + r01, r02 + r20], dim=-1),
        torch.stack([r02 - r20, r10 + r01, squares[..., 2], r21 + r12], dim=-1),
        torch.stack([r10 - r01, r20 + r02, r21 + r12, squares[..., 3]], dim=-1),
    ], dim=-2)
    best = squares.argmax(dim=-1)
    chosen = torch.gather(candidates, -2, best[..., None, None].expand(*best.shape, 1, 4))[..., 0, :]
    denom = 2.0 * torch.sqrt(torch.gather(squares, -1, best[..., None]).clamp_min(1e-12))
    q = chosen / denom
    q = torch.where(q[..., :1] < 0, -q, q)
    return F.normalize(q, dim=-1)


def quaternion_to_axis_angle(q: torch.Tensor) -> torch.Tensor:
    """(w, x, y, z) (..., 4) -> axis-angle (..., 3); angle in [0, pi], exact near 0."""
    q = torch.where(q[..., :1] < 0, -q, q)
    w, v = q[..., 0], q[..., 1:]
    sin_half = v.norm(dim=-1)
    angle = 2.0 * torch.atan2(sin_half, w)
    # angle / sin(angle/2) -> 2 / w as the angle -> 0
    small = sin_half < 1e-6
    factor = torch.where(small, 2.0 / w.clamp_min(1e-12),
                         angle / torch.where(small, torch.ones_like(sin_half), sin_half))
    return v * factor[..., None]


def rotmat_to_axis_angle(rotmat: torch.Tensor) -> torch.Tensor:
    """(..., 3, 3) -> (..., 3). Never NaN; at exactly pi the axis sign is arbitrary."""
    return quaternion_to_axis_angle(rotmat_to_quaternion(rotmat))


def axis_angle_to_rotmat(aa: torch.Tensor) -> torch.Tensor:
    """Rodrigues' formula, (..., 3) -> (..., 3, 3); Taylor-expanded near 0 (no NaN, exact grads)."""
    angle2 = (aa * aa).sum(-1, keepdim=True)[..., None]  # (..., 1, 1)
    angle = torch.sqrt(angle2.clamp_min(1e-24))
    small = angle2 < 1e-8
    safe_angle = torch.where(small, torch.ones_like(angle), angle)
    # sin(t)/t and (1 - cos t)/t^2 with their series near 0
    a = torch.where(small, 1.0 - angle2 / 6.0, torch.sin(safe_angle) / safe_angle)
    b = torch.where(small, 0.5 - angle2 / 24.0,
                    (1.0 - torch.cos(safe_angle)) / (safe_angle * safe_angle))
    x, y, z = aa[..., 0], aa[..., 1], aa[..., 2]
    zero = torch.zeros_like(x)
    k = torch.stack([zero, -z, y, z, zero, -x, -y, x, zero], dim=-1).reshape(*aa.shape[:-1], 3, 3)
    eye = torch.eye(3, dtype=aa.dtype, device=aa.device).expand_as(k)
    return eye + a * k + b * (k @ k)


def quaternion_to_rotmat(q: torch.Tensor) -> torch.Tensor:
    """(w, x, y, z) (..., 4) -> (..., 3, 3); q need not be normalised."""
    q = F.normalize(q, dim=-1)
    w, x, y, z = q.unbind(-1)
    return torch.stack([
        1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
        2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
        2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
    ], dim=-1).reshape(*q.shape[:-1], 3, 3)


def quaternion_slerp(q0: torch.Tensor, q1: torch.Tensor, t: torch.Tensor | float) -> torch.Tensor:
    """Spherical interpolation along the shorter arc; (..., 4), t broadcastable to (...)."""
    t = torch.as_tensor(t, dtype=q0.dtype, device=q0.device)
    dot = (q0 * q1).sum(-1)
    q1 = torch.where(dot[..., None] < 0, -q1, q1)
    dot = dot.abs().clamp(max=1.0)
    theta = torch.acos(dot)
    sin_theta = torch.sin(theta)
    near = sin_theta < 1e-6
    safe = torch.where(near, torch.ones_like(sin_theta), sin_theta)
    w0 = torch.where(near, 1.0 - t, torch.sin((1.0 - t) * theta) / safe)
    w1 = torch.where(near, t, torch.sin(t * theta) / safe)
    return F.normalize(w0[..., None] * q0 + w1[..., None] * q1, dim=-1)


# --- Cameras ------------------------------------------------------------------------------
# MAED predicts a weak-perspective camera (s, tx, ty) for the 224² crop. Training projected
# with a perspective camera of focal length 5000 px placed at depth 2*5000/(224*s).

TRAINING_FOCAL = 5000.0
CROP_SIZE = 224


def project_to_crop(points: torch.Tensor, cam: torch.Tensor, focal: float = TRAINING_FOCAL,
                    crop_size: int = CROP_SIZE) -> torch.Tensor:
    """Training-time projection: (..., J, 3) metres, cam (..., 3) -> (..., J, 2) in [-1, 1]."""
    s, tx, ty = cam[..., 0], cam[..., 1], cam[..., 2]
    tz = 2.0 * focal / (crop_size * s + 1e-9)
    t = torch.stack([tx, ty, tz], dim=-1)[..., None, :]
    p = points + t
    return focal * p[..., :2] / p[..., 2:3] / (crop_size / 2.0)


def crop_cam_to_full(cam: torch.Tensor, bbox: torch.Tensor, img_w: float, img_h: float
                     ) -> torch.Tensor:
    """Weak-perspective crop camera -> orthographic camera of the full image.

    cam (..., 3) = (s, tx, ty); bbox (..., 4) = (cx, cy, w, h) of the crop region in pixels,
    continuous image coordinates (pixel i covers [i, i+1), the image [0, W]), as the demo
    cuts it (`video.crop`, coords="continuous": the centre on crop pixel 112, u = 0); the
    result then draws a point exactly where the crop showed it. Returns (..., 4) = (sx, sy, tx', ty') such that a point projects to normalised image
    coordinates (sx (X + tx'), sy (Y + ty')) in [-1, 1]^2 (see `project_full_orthographic`).
    """
    s, tx, ty = cam[..., 0], cam[..., 1], cam[..., 2]
    cx, cy, w, h = bbox[..., 0], bbox[..., 1], bbox[..., 2], bbox[..., 3]
    sx = s * w / img_w
    sy = s * h / img_h
    return torch.stack([sx, sy, (cx - img_w / 2.0) / (img_w / 2.0) / sx + tx,
                        (cy - img_h / 2.0) / (img_h / 2.0) / sy + ty], dim=-1)


def project_full_orthographic(points: torch.Tensor, orig_cam: torch.Tensor, img_w: float,
                              img_h: float) -> torch.Tensor:
    """(..., J, 3) with an orthographic full-image camera (..., 4) -> pixels (..., J, 2)."""
    sx, sy, tx, ty = (orig_cam[..., i, None] for i in range(4))
    u = (sx * (points[..., 0] + tx) + 1.0) * img_w / 2.0
    v = (sy * (points[..., 1] + ty) + 1.0) * img_h / 2.0
    return torch.stack([u, v], dim=-1)


def default_focal(img_w: float, img_h: float) -> float:
    """A focal length for an unknown camera: the image diagonal in pixels (~53° diagonal FOV)."""
    return float((img_w ** 2 + img_h ** 2) ** 0.5)


def check_focal(focal: float | None) -> None:
    """A user-given --focal: a positive number of pixels, or None for `default_focal`."""
    if focal is not None and not 0 < focal < float("inf"):
        raise InputError(f"--focal {focal}: must be a positive number of pixels "
                         f"(or leave it out: the image diagonal)")


def crop_cam_to_translation(cam: torch.Tensor, bbox: torch.Tensor, img_w: float,
                            img_h: float, focal: float | None = None) -> torch.Tensor:
    """Full-perspective camera translation (X, Y, Z) in metres, (..., 3).

    With a pinhole camera of focal `focal` px (default `default_focal`) at the image centre,
    the body placed at this translation projects like the weak-perspective crop camera:
    T = (tx + 2(cx - W/2)/(s b), ty + 2(cy - H/2)/(s b), 2 f/(s b)), b = crop side in pixels;
    the region in continuous image coordinates, as for `crop_cam_to_full`.
    """
    focal = default_focal(img_w, img_h) if focal is None else focal
    s, tx, ty = cam[..., 0], cam[..., 1], cam[..., 2]
    cx, cy, b = bbox[..., 0], bbox[..., 1], bbox[..., 2]
    sb = s * b + 1e-9
    return torch.stack([tx + 2.0 * (cx - img_w / 2.0) / sb, ty + 2.0 * (cy - img_h / 2.0) / sb,
                        2.0 * focal / sb], dim=-1)


def project_perspective(points: torch.Tensor, translation: torch.Tensor, focal: float,
                        img_w: float, img_h: float) -> torch.Tensor:
    """Pinhole projection at the image centre: (..., J, 3) + (..., 3) -> pixels (..., J, 2)."""
    p = points + translation[..., None, :]
    centre = torch.tensor([img_w / 2.0, img_h / 2.0], dtype=p.dtype, device=p.device)
    return focal * p[..., :2] / p[..., 2:3] + centre


def orig_cam_to_translation(orig_cam: torch.Tensor, img_w: float, img_h: float,
                            focal: float | None = None) -> torch.Tensor:
    """Orthographic full-image camera (..., 4) -> full-perspective translation (..., 3), metres.

    The same body as `crop_cam_to_translation`, from the full-image camera alone: at depth
    Z = f / (sx W / 2) a pinhole of focal f (default `default_focal`) has the orthographic
    camera's scale (sx W / 2 px per metre), and (X, Y) = (tx', ty') centres it the same way.
    """
    focal = default_focal(img_w, img_h) if focal is None else focal
    sx, tx, ty = orig_cam[..., 0], orig_cam[..., 2], orig_cam[..., 3]
    return torch.stack([tx, ty, 2.0 * focal / (sx * img_w + 1e-9)], dim=-1)
