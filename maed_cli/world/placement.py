"""Metric, stable placement of a person: keep the ray, smooth the range, feet on the floor.

MAED's `cam_t` comes from the weak-perspective crop camera: Z = 2 f / (s S). The direction of
the ray through the person (X/Z, Y/Z: where the body is in the image) is well determined; the
range along it (through the crop scale s) is the noisiest quantity of the whole output. So
each track's pelvis keeps its per-frame ray and gets a new range from one sparse least-squares
problem over the track:

    data        (r_i - r_raw_i) / (rel_sigma r_raw_i)          MAED's own range, weak
    smoothness  acceleration of r / acc_sigma                   divided differences, no link
                                                                across gaps over `max_gap_s`
    floor       height(contact foot_i)(r_i) / height_sigma      slide along the ray until
                                                                the contact foot touches it

A foot point's height is affine in the range (a + b r_i, b = up . ray direction), so the whole
problem is linear; contacts found wrong (a jump) are down-weighted by a few reweighting rounds.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import sparse
from scipy.sparse.linalg import spsolve

MAX_GAP_S = 0.5  # a longer gap ends a contact and a speed estimate
SMOOTH_GAP_S = 2.0  # a longer gap ends the smoothness prior (the person may have stopped)


@dataclass
class RangeTerms:
    """Floor terms of one track: for rows[k], a foot at height a[k] + b[k] * range."""

    rows: np.ndarray
    a: np.ndarray
    b: np.ndarray

    @classmethod
    def empty(cls) -> "RangeTerms":
        z = np.zeros(0)
        return cls(np.zeros(0, np.int64), z, z)


def segments(t: np.ndarray, max_gap_s: float = MAX_GAP_S) -> np.ndarray:
    """(n,) segment index of each row: a new segment after a gap longer than max_gap_s."""
    return np.concatenate([[0], np.cumsum(np.diff(t) > max_gap_s)]).astype(np.int64)


def second_difference(t: np.ndarray, max_gap_s: float = MAX_GAP_S) -> sparse.csr_matrix:
    """(m, n) rows giving the acceleration (divided second difference) at each interior row
    of a segment, for samples at times t (n,) seconds."""
    seg = segments(t, max_gap_s)
    k = np.flatnonzero((seg[1:-1] == seg[:-2]) & (seg[1:-1] == seg[2:])) + 1
    if len(k) == 0:
        return sparse.csr_matrix((0, len(t)))
    dt1 = np.maximum(t[k] - t[k - 1], 1e-6)
    dt2 = np.maximum(t[k + 1] - t[k], 1e-6)
    scale = 2.0 / (dt1 + dt2)
    rows = np.repeat(np.arange(len(k)), 3)
    cols = np.stack([k - 1, k, k + 1], 1).reshape(-1)
    vals = np.stack([scale / dt1, -scale * (1 / dt1 + 1 / dt2), scale / dt2], 1).reshape(-1)
    return sparse.csr_matrix((vals, (rows, cols)), shape=(len(k), len(t)))


def solve_ranges(t: np.ndarray, raw: np.ndarray, floor_terms: RangeTerms | None = None, *,
                 rel_sigma: float = 0.07, acc_sigma: float = 1.0, height_sigma: float = 0.03,
                 rounds: int = 3) -> np.ndarray:
    """Stabilised ranges (n,) metres along each row's ray for raw ranges (n,) at times t."""
    n = len(raw)
    raw = np.asarray(raw, np.float64)
    blocks = [sparse.diags(1.0 / (rel_sigma * raw)),
              second_difference(t, SMOOTH_GAP_S) / acc_sigma]
    rhs = [np.ones(n) / rel_sigma, np.zeros(blocks[1].shape[0])]
    terms = floor_terms if floor_terms is not None else RangeTerms.empty()
    weights = np.ones(len(terms.rows))
    ranges = raw
    for _ in range(rounds if len(terms.rows) else 1):
        extra_blocks, extra_rhs = [], []
        if len(terms.rows):
            w = np.sqrt(weights) / height_sigma
            extra_blocks.append(sparse.csr_matrix((terms.b * w, (np.arange(len(terms.rows)),
                                                                 terms.rows)),
                                                  shape=(len(terms.rows), n)))
            extra_rhs.append(-terms.a * w)
        a = sparse.vstack(blocks + extra_blocks).tocsr()
        b = np.concatenate(rhs + extra_rhs)
        ranges = spsolve((a.T @ a).tocsc(), a.T @ b)
        if len(terms.rows):  # Huber-like: a foot far off the floor is not in contact
            res = np.abs(terms.a + terms.b * ranges[terms.rows]) / height_sigma
            weights = np.where(res < 2.0, 1.0, 2.0 / np.maximum(res, 1e-9))
    return np.maximum(ranges, 0.1)


def smooth_orientations(rotations: np.ndarray, t: np.ndarray, sigma_s: float = 0.1,
                        max_gap_s: float = MAX_GAP_S) -> np.ndarray:
    """Zero-lag smoothing of rotations (n, 3, 3) at times t: a Gaussian-weighted mean of
    the neighbours (within the row's segment) projected back onto rotations (SVD). Removes
    per-frame jitter of the global orientation, which would otherwise shake the feet."""
    rotations = np.asarray(rotations, np.float64)
    seg = segments(t, max_gap_s)
    out = np.empty_like(rotations)
    half = max(1, int(np.ceil(3 * sigma_s / max(np.median(np.diff(t)) if len(t) > 1 else 1.0,
                                                 1e-6))))
    for i in range(len(t)):
        lo, hi = max(0, i - half), min(len(t), i + half + 1)
        near = np.arange(lo, hi)
        near = near[seg[near] == seg[i]]
        w = np.exp(-0.5 * ((t[near] - t[i]) / sigma_s) ** 2)
        mean = np.einsum("k,kij->ij", w, rotations[near])
        u, _, vt = np.linalg.svd(mean)
        fix = np.diag([1.0, 1.0, np.sign(np.linalg.det(u @ vt))])
        out[i] = u @ fix @ vt
    return out
