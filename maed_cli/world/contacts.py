"""Foot contact labels and the foot lock, in the world (y up, floor y = 0, metres, seconds).

Labels: a foot is in contact when its lowest point is near the floor and it hardly moves
(hysteresis: it enters under the `on` thresholds and leaves above the `off` ones; contacts
shorter than `min_s` are dropped). Speeds are measured over a few frames: per-frame pose
jitter would otherwise look like motion.

Lock: one sparse least-squares problem per track over its pelvis trajectory r (n, 3):
    data        r_i - r0_i, across the camera ray (well measured) and along it (weak)
    smoothness  the acceleration of r
    contact     a foot in contact keeps one horizontal position over its whole contact (an
                anchor, solved for) and its lowest point on the floor
    floor       no foot below the floor (added where a first solution puts one there)
Foot skating is the mean horizontal speed of a foot labelled in contact (ideal: 0).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import sparse
from scipy.sparse.linalg import spsolve

from .placement import MAX_GAP_S, SMOOTH_GAP_S, second_difference, segments


PENETRATION_TOLERANCE_M = 0.005  # a foot this far below the floor is pushed back up


@dataclass(frozen=True)
class ContactThresholds:
    """on/off: height of the lowest foot point above the floor (m) and horizontal speed
    (m/s) to enter / leave a contact; min_s: shortest contact kept."""

    height_on: float = 0.05
    height_off: float = 0.08
    speed_on: float = 0.5
    speed_off: float = 0.8
    min_s: float = 0.1


def foot_speeds(points: np.ndarray, t: np.ndarray, half_window: int = 2,
                horizontal: bool = True) -> np.ndarray:
    """Horizontal (x/z; else 3D) speed (n, k) m/s of world points (n, k, 3): the displacement
    over +-half_window rows (within a segment) over the time between them."""
    n = len(t)
    seg = segments(t)
    idx = np.arange(n)
    lo, hi = np.maximum(idx - half_window, 0), np.minimum(idx + half_window, n - 1)
    # stay within the row's own segment
    for _ in range(half_window):
        lo = np.where(seg[lo] != seg, lo + 1, lo)
        hi = np.where(seg[hi] != seg, hi - 1, hi)
    dt = t[hi] - t[lo]
    step = points[hi] - points[lo]
    disp = np.linalg.norm(step[..., [0, 2]] if horizontal else step, axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        speed = disp / dt[:, None]
    return np.where(dt[:, None] > 0, speed, 0.0)


def label_contacts(heights: np.ndarray, speeds: np.ndarray, t: np.ndarray,
                   thresholds: ContactThresholds = ContactThresholds()) -> np.ndarray:
    """(n, 2) bool contact labels from foot heights and speeds (n, 2) at times t (n,)."""
    n, k = heights.shape
    labels = np.zeros((n, k), bool)
    seg = segments(t)
    for foot in range(k):
        state = False
        for i in range(n):
            if i and seg[i] != seg[i - 1]:
                state = False
            h, v = heights[i, foot], speeds[i, foot]
            if state:
                state = h < thresholds.height_off and v < thresholds.speed_off
            else:
                state = h < thresholds.height_on and v < thresholds.speed_on
            labels[i, foot] = state
        for start, stop in runs(labels[:, foot], seg):
            if t[stop - 1] - t[start] < thresholds.min_s - 1e-9:
                labels[start:stop, foot] = False
    return labels


def runs(mask: np.ndarray, seg: np.ndarray) -> list[tuple[int, int]]:
    """[start, stop) row ranges where mask is True, split at segment changes."""
    out, start = [], None
    for i, value in enumerate(mask):
        if start is not None and (not value or seg[i] != seg[start]):
            out.append((start, i))
            start = None
        if value and start is None:
            start = i
    if start is not None:
        out.append((start, len(mask)))
    return out


def skating(points: np.ndarray, contacts: np.ndarray, t: np.ndarray,
            max_step_s: float = 0.2) -> tuple[float, int]:
    """Mean horizontal speed (m/s) of feet (n, 2, 3) between consecutive rows where the
    foot is in contact at both, and how many such steps there are."""
    dt = np.diff(t)
    both = contacts[1:] & contacts[:-1] & (dt[:, None] <= max_step_s) & (dt[:, None] > 0)
    if not both.any():
        return 0.0, 0
    speed = np.linalg.norm(np.diff(points, axis=0)[..., [0, 2]], axis=-1) / np.maximum(
        dt[:, None], 1e-9)
    return float(speed[both].mean()), int(both.sum())


def _perpendiculars(ray: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    helper = np.where(np.abs(ray[:, 1:2]) < 0.9, [[0.0, 1.0, 0.0]], [[1.0, 0.0, 0.0]])
    e1 = np.cross(ray, helper)
    e1 /= np.linalg.norm(e1, axis=1, keepdims=True)
    return e1, np.cross(ray, e1)


def lock_feet(t: np.ndarray, root: np.ndarray, ray: np.ndarray, foot: np.ndarray,
              lowest: np.ndarray, contacts: np.ndarray, *, lateral_sigma: float = 0.02,
              ray_sigma: float = 0.15, acc_sigma: float = 2.0, contact_sigma: float = 0.005,
              floor_sigma: float = 0.005, rounds: int = 5) -> np.ndarray:
    """The refined world pelvis trajectory (n, 3).

    t (n,) seconds; root (n, 3) the placed pelvis; ray (n, 3) unit camera-to-pelvis
    directions; foot (n, 2, 3) each foot's reference point (its joints' centroid) and lowest
    (n, 2, 3) its lowest point, both relative to the pelvis (world axes); contacts (n, 2)."""
    n = len(t)
    e1, e2 = _perpendiculars(ray)
    row_ids = np.arange(n)

    def per_axis(vectors: np.ndarray, sigma: float) -> sparse.csr_matrix:
        cols = 3 * row_ids[:, None] + np.arange(3)
        return sparse.csr_matrix(((vectors / sigma).reshape(-1),
                                  (np.repeat(row_ids, 3), cols.reshape(-1))), shape=(n, 3 * n))

    blocks = [per_axis(e1, lateral_sigma), per_axis(e2, lateral_sigma), per_axis(ray, ray_sigma)]
    rhs = [np.einsum("ij,ij->i", e1, root) / lateral_sigma,
           np.einsum("ij,ij->i", e2, root) / lateral_sigma,
           np.einsum("ij,ij->i", ray, root) / ray_sigma]
    acc = sparse.kron(second_difference(t, SMOOTH_GAP_S), sparse.identity(3)) / acc_sigma
    blocks.append(acc)
    rhs.append(np.zeros(acc.shape[0]))
    seg = segments(t, MAX_GAP_S)
    contact_runs = [(k, s, e) for k in range(contacts.shape[1])
                    for s, e in runs(contacts[:, k], seg)]
    cols = 3 * n + 2 * len(contact_runs)
    rows_r, cols_r, vals_r, rhs_c = [], [], [], []
    r = 0
    for j, (k, start, stop) in enumerate(contact_runs):
        for i in range(start, stop):
            for axis, anchor in ((0, 3 * n + 2 * j), (2, 3 * n + 2 * j + 1)):
                rows_r += [r, r]
                cols_r += [3 * i + axis, anchor]
                vals_r += [1 / contact_sigma, -1 / contact_sigma]
                rhs_c.append(-foot[i, k, axis] / contact_sigma)
                r += 1
    # (row, foot) -> stiffness of its floor term: contacts start at 1, a foot still below
    # the floor after a round gets a new or a stiffer term (an inequality, solved by rounds)
    floor_rows = {(i, k): 1.0 for k, s, e in contact_runs for i in range(s, e)}
    contact_block = sparse.csr_matrix((vals_r, (rows_r, cols_r)), shape=(r, cols))
    blocks = [sparse.hstack([b, sparse.csr_matrix((b.shape[0], cols - 3 * n))]) for b in blocks]
    blocks.append(contact_block)
    rhs.append(np.asarray(rhs_c))
    solution = root
    for _ in range(rounds):
        if floor_rows:
            keys = np.array(list(floor_rows), np.int64).reshape(-1, 2)
            fi, fk = keys[:, 0], keys[:, 1]
            stiff = np.array(list(floor_rows.values())) / floor_sigma
            floor_block = sparse.csr_matrix((stiff, (np.arange(len(fi)), 3 * fi + 1)),
                                            shape=(len(fi), cols))
            floor_rhs = -lowest[fi, fk, 1] * stiff
        else:
            floor_block, floor_rhs = sparse.csr_matrix((0, cols)), np.zeros(0)
        a = sparse.vstack(blocks + [floor_block]).tocsr()
        b = np.concatenate(rhs + [floor_rhs])
        x = spsolve((a.T @ a).tocsc(), a.T @ b)
        solution = x[:3 * n].reshape(n, 3)
        below = (solution[:, None, 1] + lowest[:, :, 1]) < -PENETRATION_TOLERANCE_M
        if not below.any():
            break
        for i, k in zip(*np.nonzero(below)):
            key = (int(i), int(k))
            floor_rows[key] = 4.0 * floor_rows[key] if key in floor_rows else 1.0
    return solution
