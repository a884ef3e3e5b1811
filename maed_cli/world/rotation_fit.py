"""Rotation-only fits on bearing vectors: Kabsch and a RANSAC around it (camera.py's model,
x_f = R x_k for unit bearings K^-1 [u, v, 1] of a static background)."""
from __future__ import annotations

import numpy as np

RANSAC_ITERATIONS = 64


def kabsch(a: np.ndarray, b: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """Rotations R minimising sum |b - R a|^2: a, b (..., n, 3) -> (..., 3, 3)."""
    if weights is not None:
        a = a * weights[..., None]
    m = np.einsum("...ni,...nj->...ij", b, a)
    u, _, vt = np.linalg.svd(m)
    d = np.sign(np.linalg.det(u @ vt))
    d = np.where(d == 0, 1.0, d)
    u = u.copy()
    u[..., :, 2] *= d[..., None]
    return u @ vt


def fit_rotation(a: np.ndarray, b: np.ndarray, threshold: float, rng: np.random.Generator,
                 iterations: int = RANSAC_ITERATIONS) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Robust R with b ~ R a for unit bearings a, b (n, 3).

    Returns (R (3, 3), inlier mask (n,), residuals (n,) as chord lengths |b - R a|, which are
    angles in radians for small errors). `threshold` is in the same unit.
    """
    n = len(a)
    samples = np.argsort(rng.random((iterations, n)), axis=1)[:, :3]
    hyps = kabsch(a[samples], b[samples])                               # (it, 3, 3)
    diff = b.T[None] - hyps @ a.T                                        # (it, 3, n)
    err = np.sqrt(np.einsum("kin,kin->kn", diff, diff))
    best = int(np.argmax((err < threshold).sum(axis=1)))
    inliers = err[best] < threshold
    rot = hyps[best]
    for _ in range(3):
        if inliers.sum() < 3:
            break
        rot = kabsch(a[inliers], b[inliers])
        residuals = np.linalg.norm(b - a @ rot.T, axis=1)
        new = residuals < threshold
        if np.array_equal(new, inliers):
            break
        inliers = new
    residuals = np.linalg.norm(b - a @ rot.T, axis=1)
    return rot, residuals < threshold, residuals


def rotation_angle_deg(rot: np.ndarray) -> np.ndarray:
    """Angle of rotation matrices (..., 3, 3) in degrees."""
    cos = (np.trace(rot, axis1=-2, axis2=-1) - 1.0) / 2.0
    return np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))
