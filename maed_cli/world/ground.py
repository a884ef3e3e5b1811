"""Gravity and the floor, from the people: where their still feet touch, and how they stand.

Everything here is in the FIRST camera's frame (OpenCV: y down): a person's per-frame points
are first turned into it with the camera motion (x_0 = R_f^T x_f), so a panning camera sees
one floor. Cues, combined:
  - the lowest foot points of slow feet over time, across all people: a RANSAC plane, then a
    least-squares refit of its inliers (the lower envelope: a heel that lifts is an outlier);
  - the mean body up axis over all tracks (people stand roughly upright on average): a prior
    on the plane's normal, which also fixes the roll a single straight walk leaves open;
  - the camera's tilt when known (`camera_up`, e.g. from a gravity sensor): a second prior;
  - a level horizon: most footage keeps the camera's x axis horizontal (a tripod's pan/tilt
    head, a held phone on average). Each frame's camera x axis (in the first camera's frame,
    from the camera motion) is then perpendicular to up: a still camera gives the roll, a
    pan sweeps the x axis through a plane whose normal IS up (pitch too). It is a prior with
    its own check: where the people's floor disagrees with it (a rolled or tumbling camera),
    it is dropped and the summary says so.
The floor is (n, d) with n . x + d = 0, n = up (towards the heads), unit.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .vanishing import LineDirections

# 49-joint indices of the feet: (ankle, big toe, small toe, heel), left then right
FOOT_JOINTS49 = ((14, 19, 20, 21), (11, 22, 23, 24))
FOOT_RADIUS_M = 0.12  # vertices this close to a foot's joints belong to that foot


@dataclass
class Floor:
    up: np.ndarray  # (3,) unit, first camera's frame, towards the heads
    d: float  # n . x + d = 0
    source: str  # "people" | "camera" | "both"
    inliers: int
    candidates: int
    height_rmse_m: float
    body_up_angle_deg: float  # between the floor normal and the people's mean up axis
    level: str = "off"  # what became of the level-horizon prior (used / dropped / off)
    lines: str = "off"  # what became of the background's vanishing directions (vanishing.py)

    @property
    def plane(self) -> np.ndarray:
        return np.append(self.up, self.d)

    def height(self, points: np.ndarray) -> np.ndarray:
        """Signed height above the floor (..., 3) -> (...), metres."""
        return points @ self.up + self.d


def foot_vertex_ids(verts0: np.ndarray | None, joints0: np.ndarray
                    ) -> tuple[np.ndarray, np.ndarray] | None:
    """Vertex ids of the left and right foot: the vertices within FOOT_RADIUS_M of a foot's
    joints and nearer to them than to the other foot's (from one frame; topology is fixed).
    None without vertices."""
    if verts0 is None:
        return None
    verts0 = np.asarray(verts0, np.float64)
    dist = []
    for joints in FOOT_JOINTS49:
        pts = np.asarray(joints0, np.float64)[list(joints)]
        dist.append(np.linalg.norm(verts0[:, None] - pts[None], axis=2).min(1))
    left = np.flatnonzero((dist[0] < FOOT_RADIUS_M) & (dist[0] < dist[1]))
    right = np.flatnonzero((dist[1] < FOOT_RADIUS_M) & (dist[1] <= dist[0]))
    if len(left) == 0 or len(right) == 0:
        return None
    return left, right


def sole_points(verts, joints3d: np.ndarray, feet: tuple[np.ndarray, np.ndarray] | None,
                up_body: np.ndarray, chunk: int = 512) -> np.ndarray:
    """(n, 2, 3) the lowest point of each foot (left, right) along `up_body` (n, 3), the up
    direction in each row's body/camera frame; body frame (no translation). Lowest foot
    vertex when vertices are known, else the lowest of the foot joints."""
    n = len(joints3d)
    out = np.empty((n, 2, 3))
    for start in range(0, n, chunk):
        rows = slice(start, min(n, start + chunk))
        up = np.asarray(up_body[rows], np.float64)
        for side in (0, 1):
            if feet is not None:
                pts = np.asarray(verts[rows], np.float64)[:, feet[side]]
            else:
                pts = np.asarray(joints3d[rows], np.float64)[:, list(FOOT_JOINTS49[side])]
            low = np.argmin(np.einsum("kpc,kc->kp", pts, up), axis=1)
            out[rows, side] = pts[np.arange(len(pts)), low]
    return out


def body_up_axis(rotmat_root_cam0: np.ndarray) -> np.ndarray:
    """Mean up axis (3,) of a body over a track: SMPL's +y through the root orientation
    (n, 3, 3) in the first camera's frame; a robust (median-direction) mean."""
    ups = rotmat_root_cam0[:, :, 1]
    mean = ups.mean(0)
    mean /= np.linalg.norm(mean)
    for _ in range(3):  # drop the frames that lean most (falls, bends)
        cos = ups @ mean
        keep = cos >= np.quantile(cos, 0.2)
        mean = ups[keep].mean(0)
        mean /= np.linalg.norm(mean)
    return mean


def _tangent_basis(n: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    helper = np.array([1.0, 0.0, 0.0]) if abs(n[0]) < 0.9 else np.array([0.0, 0.0, 1.0])
    e1 = np.cross(n, helper)
    e1 /= np.linalg.norm(e1)
    return e1, np.cross(n, e1)


def angle_deg(a: np.ndarray, b: np.ndarray) -> float:
    cos = float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))
    return float(np.degrees(np.arccos(np.clip(cos, -1.0, 1.0))))


def horizon_axes(rotations: np.ndarray | None) -> np.ndarray:
    """(k, 3) each frame's camera x axis in the first camera's frame, for rotations
    (n, 3, 3) camera-f-from-camera-0 (None: a still camera, the first x axis only)."""
    if rotations is None or len(rotations) == 0:
        return np.array([[1.0, 0.0, 0.0]])
    return np.asarray(rotations, np.float64)[:, 0, :]


@dataclass(frozen=True)
class LevelHorizon:
    """The level-horizon prior: n . x_k = 0 for the camera x axes x_k, as a quadratic
    penalty |root n|^2 = n^T M n / sigma^2. M is the axes' scatter with its dominant
    direction (what all x axes share: the roll) counted as at most ROLL_OBSERVATIONS frames,
    since a camera rolled once stays rolled, and the swing of a pan (what fixes the pitch)
    counted as up to `frames` independent ones (the rotations are chained, so neighbouring
    frames are correlated)."""

    root: np.ndarray  # (3, 3) the penalty's square root: its rows are least-squares rows
    spread_deg: float  # how far the x axis swings (0 for a still camera: the roll only)
    mean_outer: np.ndarray  # (3, 3) the axes' plain mean outer product (the check, up)

    @classmethod
    def from_axes(cls, axes: np.ndarray, sigma_deg: float = 0.5, frames: int = 60
                  ) -> "LevelHorizon":
        axes = np.asarray(axes, np.float64)
        axes = axes / np.linalg.norm(axes, axis=1, keepdims=True)
        mean_outer = axes.T @ axes / len(axes)
        values, vectors = np.linalg.eigh(mean_outer)
        values = values * min(frames, len(axes))
        values[-1] = min(values[-1], ROLL_OBSERVATIONS)  # a roll is one error, seen again
        root = (vectors * np.sqrt(np.maximum(values, 0.0))).T / np.radians(sigma_deg)
        spread = float(np.degrees(np.arccos(np.clip(np.min(axes @ axes[0]), -1.0, 1.0))))
        return cls(root=root, spread_deg=spread, mean_outer=mean_outer)

    def up(self, towards: np.ndarray) -> np.ndarray | None:
        """Up on its own (the axes' plane normal) when the x axis swings enough to fix it."""
        if self.spread_deg < 5.0:
            return None
        n = np.linalg.eigh(self.mean_outer)[1][:, 0]
        return n if n @ towards >= 0 else -n

    def residual_deg(self, n: np.ndarray) -> float:
        """RMS angle (deg) between the camera x axes and the plane with normal n."""
        return float(np.degrees(np.arcsin(min(1.0, np.sqrt(max(0.0, n @ self.mean_outer @ n))))))

    def rows(self, n: np.ndarray, e1: np.ndarray, e2: np.ndarray
             ) -> tuple[np.ndarray, np.ndarray]:
        """Least-squares rows (3, 2) on the tangent step (e1, e2) and their residuals (3,)."""
        return np.stack([self.root @ e1, self.root @ e2], 1), self.root @ n


ROLL_OBSERVATIONS = 10.0  # a pan's shared roll counts as this many frames, at most
EFFECTIVE_POINTS = 6  # independent foot heights per person (a few steps' worth)


def fit_floor_normal(points: np.ndarray, weights: np.ndarray, groups: np.ndarray,
                     prior: np.ndarray, prior_sigma_rad: float, height_sigma_m: float,
                     start: np.ndarray, iterations: int = 4,
                     priors: tuple = ()) -> tuple[np.ndarray, np.ndarray]:
    """The floor normal shared by all people and one offset per person (group): weighted
    least squares of n . x_i + d_g(i), the normal pulled towards `prior` (unit) with a
    standard deviation `prior_sigma_rad` (Gauss-Newton on a small rotation of the normal),
    and by `priors` (objects with `rows(n, e1, e2)`: LevelHorizon, LineDirections).

    One offset per person, because a person's depth error (MAED's scale) moves all of their
    feet along the camera rays: their floor looks higher or lower, not tilted. A common
    offset would let the normal tilt to absorb those errors. Returns (normal, d per group)."""
    n = start / np.linalg.norm(start)
    labels, index = np.unique(groups, return_inverse=True)
    # a person's foot heights share slowly drifting errors (their orientation error times the
    # foot's lever arm, their range error): count each person as at most EFFECTIVE_POINTS
    # independent heights, so that the fit's confidence is honest beside the priors
    totals = np.bincount(index, weights=weights)
    counts = np.bincount(index)
    share = np.minimum(counts, EFFECTIVE_POINTS) / np.maximum(totals, 1e-12)
    sw = np.sqrt(weights * share[index]) / height_sigma_m
    one_hot = np.zeros((len(points), len(labels)))
    one_hot[np.arange(len(points)), index] = 1.0
    d = np.zeros(len(labels))
    for _ in range(iterations):
        e1, e2 = _tangent_basis(n)
        height = points @ n
        d = -np.array([np.average(height[index == g], weights=weights[index == g])
                       for g in range(len(labels))])
        jac = np.hstack([np.stack([points @ e1, points @ e2], 1), one_hot]) * sw[:, None]
        res = (height + d[index]) * sw
        prior_rows = np.zeros((2, jac.shape[1]))
        prior_rows[0, 0] = prior_rows[1, 1] = 1.0 / prior_sigma_rad
        prior_res = -np.array([prior @ e1, prior @ e2]) / prior_sigma_rad
        for extra_prior in priors:  # a LevelHorizon, LineDirections: rows on (e1, e2)
            rows, extra_res = extra_prior.rows(n, e1, e2)
            extra = np.zeros((len(rows), jac.shape[1]))
            extra[:, :2] = rows
            prior_rows = np.vstack([prior_rows, extra])
            prior_res = np.concatenate([prior_res, extra_res])
        step, *_ = np.linalg.lstsq(np.vstack([jac, prior_rows]),
                                   -np.concatenate([res, prior_res]), rcond=None)
        n = n + step[0] * e1 + step[1] * e2
        n /= np.linalg.norm(n)
    height = points @ n
    d = -np.array([np.average(height[index == g], weights=weights[index == g])
                   for g in range(len(labels))])
    return n, d


def ransac_plane(points: np.ndarray, prior: np.ndarray, threshold: float, rng,
                 max_tilt_deg: float = 25.0, iterations: int = 300) -> np.ndarray:
    """Inlier mask (m,) of the plane with the most points within `threshold` of it, among
    planes from 3 random points whose normal is within `max_tilt_deg` of `prior`; ties go to
    the lower plane (the floor is under the feet, a lifted heel is above it)."""
    m = len(points)
    best, best_key = np.zeros(m, bool), (-1, 0.0)
    cos_max = np.cos(np.radians(max_tilt_deg))
    for _ in range(iterations):
        a, b, c = points[rng.choice(m, 3, replace=False)]
        n = np.cross(b - a, c - a)
        norm = np.linalg.norm(n)
        if norm < 1e-6:
            continue
        n /= norm
        if n @ prior < 0:
            n = -n
        if n @ prior < cos_max:
            continue
        dist = points @ n - a @ n
        inliers = np.abs(dist) < threshold
        key = (int(inliers.sum()), -float(np.median(dist[inliers] + a @ n)) if inliers.any()
               else 0.0)
        if key[0] > best_key[0] or (key[0] == best_key[0] and key[1] > best_key[1]):
            best, best_key = inliers, key
    return best


LEVEL_TOLERANCE_DEG = 2.5  # the people's floor this far off a level horizon: not level
LINES_TOLERANCE_DEG = 2.5  # the lines' floor this far off the people's: not the same floor


def estimate_floor(points: np.ndarray, weights: np.ndarray, groups: np.ndarray,
                   body_up: np.ndarray, camera_up: np.ndarray | None = None, *,
                   level: LevelHorizon | None = None, lines=None, threshold_m: float = 0.05,
                   body_up_sigma_deg: float = 3.0, camera_up_sigma_deg: float = 1.0,
                   min_points: int = 12, seed: int = 0) -> Floor | str:
    """The floor from contact-candidate foot points (m, 3) in the first camera's frame.

    weights (m,): confidence of each candidate (slower feet count more); groups (m,): whose
    foot (track id); body_up (3,): the people's mean up axis; camera_up: the up direction
    from the camera's tilt, when known; level: the level-horizon prior (checked against the
    people's own floor first, dropped when they disagree); lines: the background's
    vanishing directions (vanishing.py), those the people's floor calls horizontal or
    vertical joining as a prior, all dropped when the floor they give is over
    LINES_TOLERANCE_DEG off the people's. The floor's height is the
    people's consensus (their inlier-weighted mean offset): a person whose feet sit above or
    below it is misplaced in depth, which placement then corrects. Returns a Floor, or a
    string saying why there is no floor cue."""
    rng = np.random.default_rng(seed)
    groups = np.asarray(groups)
    prior, prior_sigma = body_up / np.linalg.norm(body_up), np.radians(body_up_sigma_deg)
    source = "people"
    if camera_up is not None:
        cam = np.asarray(camera_up, np.float64) / np.linalg.norm(camera_up)
        wb, wc = 1 / prior_sigma ** 2, 1 / np.radians(camera_up_sigma_deg) ** 2
        prior = (wb * prior + wc * cam) / (wb + wc)
        prior /= np.linalg.norm(prior)
        prior_sigma = 1 / np.sqrt(wb + wc)
        source = "both"
    if len(points) < min_points:
        return (f"no floor cue: {len(points)} still foot positions (need {min_points}; "
                f"the feet never rest)")
    inliers = ransac_plane(points, prior, 2 * threshold_m, rng)
    if inliers.sum() < min_points or inliers.mean() < 0.35:
        return (f"no floor cue: the still feet do not share one plane ({int(inliers.sum())} "
                f"of {len(points)} near one)")
    fit = _refine_floor(points, weights, groups, inliers, prior, prior_sigma, threshold_m,
                        min_points, ())
    if isinstance(fit, str):
        return fit
    people_up, priors = fit[0], ()
    level_note = "off"
    if level is not None:
        off = level.residual_deg(fit[0])
        kind = (f"pan {level.spread_deg:.0f} deg" if level.up(prior) is not None
                else "roll only")
        if off <= LEVEL_TOLERANCE_DEG:
            levelled = _refine_floor(points, weights, groups, fit[2], prior, prior_sigma,
                                     threshold_m, min_points, (level,), start=fit[0])
            if not isinstance(levelled, str):
                fit, priors = levelled, (level,)
                level_note = f"used ({kind}; the people's floor was {off:.1f} deg off it)"
        else:
            level_note = (f"dropped: the people's floor is {off:.1f} deg off a level camera "
                          f"(over {LEVEL_TOLERANCE_DEG} deg: rolled or tumbling camera?)")
    lines_note = "off"
    if lines is not None:
        fit, lines_note = _with_lines(points, weights, groups, fit, people_up, priors, lines,
                                      prior, prior_sigma, threshold_m, min_points)
    n, d, inliers, dist = fit
    if inliers.mean() < 0.35:
        return (f"no floor cue: the still feet do not share one plane ({int(inliers.sum())} "
                f"of {len(points)} on it)")
    rmse = float(np.sqrt(np.average(dist[inliers] ** 2, weights=weights[inliers])))
    tilt = angle_deg(n, body_up)
    if tilt > 20.0:
        return (f"no floor cue: the feet's plane is {tilt:.0f} deg from the people's up "
                f"direction")
    return Floor(up=n, d=d, source=source, inliers=int(inliers.sum()),
                 candidates=len(points), height_rmse_m=rmse, body_up_angle_deg=tilt,
                 level=level_note, lines=lines_note)


def _with_lines(points, weights, groups, fit, people_up, priors, directions, prior,
                prior_sigma, threshold_m, min_points):
    """The fit with the background's vanishing directions (those the floor so far calls
    horizontal or vertical; while the joint fit leaves one over KEEP_SIGMAS off, the worst
    is dropped and it is done again), and the note for the summary."""
    if not len(directions):
        return fit, "none: no straight lines in the background"
    chosen = LineDirections.classify(directions, fit[0])
    if not len(chosen):
        return fit, (f"none used: {len(directions)} vanishing direction(s), neither "
                     f"horizontal nor vertical")
    while True:  # the joint fit, without the worst direction while one is over KEEP_SIGMAS
        lined = _refine_floor(points, weights, groups, fit[2], prior, prior_sigma,
                              threshold_m, min_points, priors + (chosen,), start=fit[0])
        if isinstance(lined, str):
            return fit, f"dropped: {lined}"
        kept = chosen.without_worst(lined[0])
        if len(kept) == len(chosen):
            break
        chosen = kept
        if not len(chosen):
            return fit, "dropped: the lines disagree with each other"
    off = angle_deg(lined[0], people_up)
    if off > LINES_TOLERANCE_DEG:
        return fit, (f"dropped: the lines' floor is {off:.1f} deg off the people's (over "
                     f"{LINES_TOLERANCE_DEG} deg)")
    return lined, (f"used ({chosen.describe()}; the people's floor was {off:.2f} deg off "
                   f"it)")


def _refine_floor(points, weights, groups, inliers, prior, prior_sigma, threshold_m,
                  min_points, priors, start=None):
    """Alternate the shared-normal fit and its inliers, tightening the threshold; returns
    (normal, consensus d, inliers, signed distances) or a string saying why not."""
    n = prior if start is None else start
    for threshold in (2 * threshold_m, threshold_m, threshold_m):
        n, offsets = fit_floor_normal(points[inliers], weights[inliers], groups[inliers],
                                      prior, prior_sigma, threshold_m / 2, n, priors=priors)
        labels = np.unique(groups[inliers])
        own = dict(zip(labels.tolist(), offsets))
        d_of = np.array([own.get(g, np.nan) for g in groups.tolist()])
        dist = points @ n + d_of
        inliers = np.abs(np.nan_to_num(dist, nan=np.inf)) < threshold
        if inliers.sum() < min_points:
            return "no floor cue: the still feet do not share one plane"
    counts = np.array([np.sum(inliers & (groups == g)) for g in labels])
    d = float(np.sum(counts * offsets) / counts.sum())
    return n, d, inliers, dist
