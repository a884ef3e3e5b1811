"""Vanishing directions from the straight lines of the background: the image's own gravity cue.

A still camera gives the people's feet as the only cue for the floor's pitch, and their depth
errors (MAED's crop scale wanders for seconds) tilt it by tenths of a degree, which moves a
far person's place on the floor by several percent. Rooms, streets, courts and buildings are
full of straight edges that are horizontal (floor-wall edges, kerbs, court lines) or vertical
(corners, door frames, poles). Parallel 3D lines meet in the image at a vanishing point; its
direction in the camera frame (K^-1 v) is the lines' 3D direction. A horizontal direction d
says up . d = 0 (one line of sight to the horizon: for lines running away from the camera it
fixes the pitch), a vertical one says up = d.

Segments (OpenCV's LSD, on a still camera's background: the temporal median of a few frames,
so that people walking through are gone) -> each segment's interpretation plane, the plane
through the camera centre and the segment, unit normal m = (K^-1 p1) x (K^-1 p2). Every
segment of a direction d has m . d = 0: RANSAC over segment pairs (d = m1 x m2), inliers by
the image distance of a segment's end points from the line joining its midpoint to the
vanishing point, then a weighted least-squares direction with its covariance. Which of the
directions are horizontal or vertical is not decided here: that needs an up direction
(ground.py checks them against the people's floor).

Knows nothing of video files: it gets grey images and the camera's focal length.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

MIN_LENGTH_FRACTION = 0.03  # segments shorter than this fraction of the image diagonal: noise
END_POINT_PX = 1.0  # RANSAC: a segment's end points this close to the line towards the VP
MIN_SEGMENTS = 3  # a direction needs this many distinct lines...
MIN_SPREAD_DEG = 3.0  # ...whose interpretation planes differ by this much...
LONG_LINE_FRACTION = 0.08  # ...two of them at least this fraction of the diagonal long
MERGE_DEG = 1.5  # pieces of one image line: interpretation planes this close...
MERGE_PX = 2.5  # ...and end points this close to the longest piece's line
JUNCTION_PX = 10.0  # a VP this close past a segment's end (or this fraction of its
JUNCTION_FRACTION = 0.2  # length) is a corner it ends at, not where it vanishes
SEGMENT_SIGMA_PX = 0.5  # end-point noise of a detected segment (LSD, refined)
MAX_DIRECTIONS = 4
RANSAC_ITERATIONS = 400


@dataclass(frozen=True)
class VanishingDirection:
    """A family of parallel 3D lines: direction (3,) unit in the camera frame (sign free);
    covariance (3, 3) of that direction (rank 2, tangent to the unit sphere), radians^2;
    segments: how many segments support it; length_px: their total length."""

    direction: np.ndarray
    covariance: np.ndarray
    segments: int
    length_px: float

    def sigma_deg(self, along: np.ndarray | None = None) -> float:
        """Standard deviation (deg) of the direction: along a unit vector, or the worst."""
        if along is not None:
            return float(np.degrees(np.sqrt(max(along @ self.covariance @ along, 0.0))))
        return float(np.degrees(np.sqrt(max(np.linalg.eigvalsh(self.covariance)[-1], 0.0))))

    def to_array(self) -> np.ndarray:
        """(14,) direction, covariance, segments, length (the tracks cache keeps this)."""
        return np.concatenate([self.direction, self.covariance.reshape(-1),
                               [self.segments, self.length_px]])

    @classmethod
    def from_array(cls, row: np.ndarray) -> "VanishingDirection":
        row = np.asarray(row, np.float64)
        return cls(row[:3].copy(), row[3:12].reshape(3, 3).copy(), int(row[12]), float(row[13]))


def detect_segments(grey: np.ndarray, min_length_px: float | None = None) -> np.ndarray:
    """(m, 4) line segments x1, y1, x2, y2 (pixels) of a grey image (H, W) uint8, at least
    `min_length_px` long (default: MIN_LENGTH_FRACTION of the image diagonal)."""
    if min_length_px is None:
        min_length_px = MIN_LENGTH_FRACTION * float(np.hypot(*grey.shape[:2]))
    detector = cv2.createLineSegmentDetector(cv2.LSD_REFINE_STD)
    found = detector.detect(np.ascontiguousarray(grey))[0]
    if found is None:
        return np.zeros((0, 4))
    segments = found.reshape(-1, 4).astype(np.float64)
    length = np.hypot(segments[:, 2] - segments[:, 0], segments[:, 3] - segments[:, 1])
    return segments[length >= min_length_px]


LINE_WIDTH = 1280  # frames for the lines are downscaled to at most this width
LINE_FRAMES = 12  # a still background is the median of 12-24 frames spread over the clip


class StillBackground:
    """Grey frames spread evenly over a clip of unknown length (every k-th; k doubles when
    2 x LINE_FRAMES are kept) and where people were; `directions` gives the vanishing
    directions of the median frame (what stays of a still camera's view: the background)."""

    def __init__(self, image_size: tuple[int, int], width: int = LINE_WIDTH):
        self.scale = min(1.0, width / float(image_size[0]))
        self.size = (max(1, round(image_size[0] * self.scale)),
                     max(1, round(image_size[1] * self.scale)))
        self.frames: list[np.ndarray] = []
        self.people: list[np.ndarray] = []
        self.stride, self.seen = 1, 0

    def add(self, frame_rgb: np.ndarray, boxes=None) -> None:
        """A decoded frame (H, W, 3) RGB or (H, W) grey and its person boxes (k, 4) xyxy."""
        self.seen += 1
        if (self.seen - 1) % self.stride:
            return
        grey = cv2.cvtColor(frame_rgb, cv2.COLOR_RGB2GRAY) if frame_rgb.ndim == 3 else frame_rgb
        if grey.shape[1] != self.size[0] or grey.shape[0] != self.size[1]:
            grey = cv2.resize(grey, self.size, interpolation=cv2.INTER_AREA)
        people = np.zeros(grey.shape, bool)
        for box in np.asarray(boxes if boxes is not None else [], np.float64).reshape(-1, 4):
            if np.all(np.isfinite(box)):
                x1, y1, x2, y2 = np.round(box * self.scale).astype(int)
                people[max(0, y1):max(0, y2 + 1), max(0, x1):max(0, x2 + 1)] = True
        self.frames.append(grey)
        self.people.append(people)
        if len(self.frames) >= 2 * LINE_FRAMES:
            self.frames, self.people = self.frames[::2], self.people[::2]
            self.stride *= 2

    def directions(self, focal: float, seed: int = 0) -> list[VanishingDirection]:
        """Vanishing directions of the median frame; segments mostly on a place where people
        stayed (covered in half the frames: the median still shows them) are left out."""
        if not self.frames:
            return []
        background = np.median(np.stack(self.frames), axis=0).astype(np.uint8)
        stayed = np.mean(np.stack(self.people), axis=0) >= 0.5
        segments = detect_segments(background)
        if stayed.any() and len(segments):
            mid = np.round(0.5 * (segments[:, :2] + segments[:, 2:])).astype(int)
            mid[:, 0] = np.clip(mid[:, 0], 0, self.size[0] - 1)
            mid[:, 1] = np.clip(mid[:, 1], 0, self.size[1] - 1)
            segments = segments[~stayed[mid[:, 1], mid[:, 0]]]
        return vanishing_directions(segments, focal * self.scale, self.size, seed=seed)


def _homogeneous(points: np.ndarray, k_inv: np.ndarray) -> np.ndarray:
    return np.c_[points, np.ones(len(points))] @ k_inv.T


def _image_line(normal: np.ndarray, k_inv: np.ndarray) -> np.ndarray:
    """The image line (a, b, c) of an interpretation plane's normal, scaled so that
    a x + b y + c is a distance in pixels."""
    line = k_inv.T @ normal
    return line / np.hypot(line[0], line[1])


def _end_point_distances(segments: np.ndarray, vp: np.ndarray) -> np.ndarray:
    """(m,) the larger distance (px) of each segment's end points from the line through its
    midpoint and the vanishing point vp (3,) homogeneous pixels (vp[2] = 0: at infinity);
    infinite where the VP is on the segment or just past one of its ends (edges that meet
    at a corner all point at it: a junction is not a vanishing point)."""
    mid = 0.5 * (segments[:, :2] + segments[:, 2:])
    toward = vp[None, :2] - mid * vp[2]  # the direction towards the VP (any scale, any sign)
    reach = np.linalg.norm(toward, axis=1) / max(abs(vp[2]), 1e-12)  # midpoint -> VP, px
    toward /= np.maximum(np.linalg.norm(toward, axis=1, keepdims=True), 1e-12)
    half = 0.5 * (segments[:, 2:] - segments[:, :2])
    distance = np.abs(half[:, 0] * toward[:, 1] - half[:, 1] * toward[:, 0])
    half_length = np.linalg.norm(half, axis=1)
    gap = np.maximum(JUNCTION_PX, JUNCTION_FRACTION * 2 * half_length)
    return np.where(reach < half_length + gap, np.inf, distance)


def _fit_direction(normals: np.ndarray, weights: np.ndarray
                   ) -> tuple[np.ndarray, np.ndarray] | None:
    """Weighted least-squares direction orthogonal to the planes' normals and its covariance
    (residuals m . d in units of each plane's own standard deviation, weights = 1/var)."""
    scatter = (normals * weights[:, None]).T @ normals
    values, vectors = np.linalg.eigh(scatter)
    d = vectors[:, 0]
    tangent = vectors[:, 1:]  # (3, 2)
    info = tangent.T @ scatter @ tangent  # (2, 2): the fit's information on a tangent step
    dof = max(len(normals) - 2, 1)
    scale = max(float(np.sum(weights * (normals @ d) ** 2)) / dof, 1.0)  # under-dispersion: 1
    if np.linalg.cond(info) > 1e12:
        return None
    covariance = tangent @ np.linalg.inv(info) @ tangent.T * scale
    return d, covariance


def vanishing_directions(segments: np.ndarray, focal: float, image_size: tuple[int, int], *,
                         seed: int = 0, max_directions: int = MAX_DIRECTIONS
                         ) -> list[VanishingDirection]:
    """The dominant vanishing directions (camera frame) of line segments (m, 4) pixels,
    strongest first; a direction needs MIN_SEGMENTS segments spread over MIN_SPREAD_DEG of
    interpretation planes (pieces of one edge fix no direction)."""
    segments = np.asarray(segments, np.float64).reshape(-1, 4)
    w, h = image_size
    k = np.array([[focal, 0, w / 2], [0, focal, h / 2], [0, 0, 1.0]])
    k_inv = np.linalg.inv(k)
    length = np.hypot(segments[:, 2] - segments[:, 0], segments[:, 3] - segments[:, 1])
    normals = np.cross(_homogeneous(segments[:, :2], k_inv), _homogeneous(segments[:, 2:], k_inv))
    norm = np.linalg.norm(normals, axis=1)
    keep = norm > 1e-12
    segments, length, normals = segments[keep], length[keep], normals[keep] / norm[keep, None]
    if len(segments) < MIN_SEGMENTS:
        return []
    segments, normals, length = _merge_collinear(segments, normals, length, k_inv)
    # a plane normal's angular noise: sqrt(2) x the end points' noise over the length (rad)
    weights = (length / (np.sqrt(2.0) * SEGMENT_SIGMA_PX)) ** 2  # rad^-2
    long_line = LONG_LINE_FRACTION * float(np.hypot(w, h))
    rng = np.random.default_rng(seed)
    free = np.ones(len(segments), bool)
    found: list[VanishingDirection] = []
    while len(found) < max_directions and free.sum() >= MIN_SEGMENTS:
        pool = np.flatnonzero(free)
        p = length[pool] / length[pool].sum()
        best, best_score = None, 0.0
        for _ in range(RANSAC_ITERATIONS):
            i, j = rng.choice(pool, 2, replace=False, p=p)
            d = np.cross(normals[i], normals[j])
            if np.linalg.norm(d) < 1e-9:
                continue
            inliers = pool[_end_point_distances(segments[pool], k @ d) < END_POINT_PX]
            score = float(length[inliers].sum())
            if score > best_score:
                best, best_score = inliers, score
        if best is None or len(best) < MIN_SEGMENTS:
            break
        result = _refine(segments, normals, weights, free, best, k)
        if result is None:
            free[best] = False
            continue
        direction, covariance, inliers = result
        free[inliers] = False
        spread = _spread_deg(normals[inliers])
        if (len(inliers) >= MIN_SEGMENTS and spread >= MIN_SPREAD_DEG
                and np.sum(length[inliers] >= long_line) >= 2):
            found.append(VanishingDirection(direction, covariance, len(inliers),
                                            float(length[inliers].sum())))
    return found


def _refine(segments, normals, weights, free, inliers, k):
    """Least squares on the inliers, then the inliers again (twice)."""
    pool = np.flatnonzero(free)
    fit = None
    for _ in range(3):
        fit = _fit_direction(normals[inliers], weights[inliers])
        if fit is None:
            return None
        inliers = pool[_end_point_distances(segments[pool], k @ fit[0]) < END_POINT_PX]
        if len(inliers) < MIN_SEGMENTS:
            return None
    return fit[0], fit[1], inliers


def _merge_collinear(segments, normals, length, k_inv):
    """Segments on one image line (interpretation planes within MERGE_DEG, end points within
    MERGE_PX of the line fitted through the pieces so far, longest piece first) -> one
    segment from end to end: pieces of one edge are one constraint on a direction, not
    several."""
    order = np.argsort(-length)
    label = np.full(len(segments), -1)
    cos = np.cos(np.radians(MERGE_DEG))
    for i in order:
        if label[i] >= 0:
            continue
        line = _image_line(normals[i], k_inv)
        for _ in range(3):  # grow: the line through all members' ends, then who is near it
            ends = np.abs(np.stack([segments[:, :2] @ line[:2], segments[:, 2:] @ line[:2]], 1)
                          + line[2]).max(1)
            near = ((label < 0) | (label == i)) & (np.abs(normals @ normals[i]) > cos) \
                & (ends < MERGE_PX)
            near[i] = True
            label[near] = i
            points = segments[label == i].reshape(-1, 2)
            centre = points.mean(0)
            normal = np.linalg.svd(points - centre)[2][-1]  # total least squares
            line = np.r_[normal, -normal @ centre]
    out_seg, out_norm, out_len = [], [], []
    for i in np.unique(label):
        members = np.flatnonzero(label == i)
        if len(members) == 1:
            out_seg.append(segments[i])
            out_norm.append(normals[i])
            out_len.append(float(length[i]))
            continue
        signs = np.sign(normals[members] @ normals[i])
        m = (normals[members] * (signs * length[members])[:, None]).sum(0)
        m = m / max(np.linalg.norm(m), 1e-12)
        # the merged line's ends: the members' extreme ends, put on the merged line (the two
        # sides of a thin line are two pieces a few pixels apart)
        line = _image_line(m, k_inv)
        ends = segments[members].reshape(-1, 2)
        ends = ends - np.outer(ends @ line[:2] + line[2], line[:2])
        t = ends @ np.array([-line[1], line[0]])
        out_seg.append(np.r_[ends[np.argmin(t)], ends[np.argmax(t)]])
        out_norm.append(m)
        out_len.append(float(length[members].sum()))
    return np.asarray(out_seg), np.asarray(out_norm), np.asarray(out_len)


def _spread_deg(normals: np.ndarray) -> float:
    """The largest angle between the interpretation planes of a family (deg)."""
    cos = np.abs(normals @ normals.T)
    return float(np.degrees(np.arccos(np.clip(cos.min(), -1.0, 1.0))))


# --- what they say of up (ground.py) ---------------------------------------------------------

CLASSIFY_DEG = 5.0  # a direction this close to the people's floor (or its normal) counts
LINE_MODEL_SIGMA_DEG = 0.1  # how level a "horizontal" edge is in the world (a floor laid
# within 3 mm over 3 m is 0.06 deg off; kerbs, court lines and buildings about as much)
KEEP_SIGMAS = 3.0  # after the joint fit, a direction this many sigmas off is dropped


@dataclass(frozen=True)
class LineDirections:
    """The vanishing directions that agree with an up direction, as a prior on it: each
    horizontal one says n . d = 0, each vertical one n = d (towards `up`), both with the
    direction's own uncertainty (plus LINE_MODEL_SIGMA_DEG for the world's edges)."""

    horizontal: tuple[VanishingDirection, ...]
    vertical: tuple[VanishingDirection, ...]

    @classmethod
    def classify(cls, directions, up: np.ndarray,
                 within_deg: float = CLASSIFY_DEG) -> "LineDirections":
        """The directions within `within_deg` of the plane normal to `up` or of `up` itself;
        vertical ones are turned towards `up` (slanted lines, stairs and roofs, are left out)."""
        horizontal, vertical = [], []
        limit = np.sin(np.radians(within_deg))
        for v in directions:
            along = float(v.direction @ up)
            if abs(along) < limit:
                horizontal.append(v)
            elif abs(along) > np.cos(np.radians(within_deg)):
                vertical.append(v if along > 0 else VanishingDirection(
                    -v.direction, v.covariance, v.segments, v.length_px))
        return cls(tuple(horizontal), tuple(vertical))

    def __len__(self) -> int:
        return len(self.horizontal) + len(self.vertical)

    def off_sigmas(self, n: np.ndarray) -> list[float]:
        """How far each direction (horizontal ones, then vertical) is from agreeing with the
        normal n, in its own standard deviations."""
        out = []
        for v in self.horizontal:
            out.append(abs(float(n @ v.direction)) / self._sigma(v, n))
        for v in self.vertical:
            angle = np.arccos(np.clip(n @ v.direction, -1.0, 1.0))
            out.append(angle / self._sigma(v, n - v.direction))
        return out

    def without_worst(self, n: np.ndarray, sigmas: float = KEEP_SIGMAS) -> "LineDirections":
        """Itself without the direction furthest off the normal n, when that one is over
        `sigmas` off (one at a time: a far-off direction pulls the fit that judges the rest)."""
        off = self.off_sigmas(n)
        if not off or max(off) <= sigmas:
            return self
        worst = int(np.argmax(off))
        k = len(self.horizontal)
        return LineDirections(tuple(v for i, v in enumerate(self.horizontal) if i != worst),
                              tuple(v for i, v in enumerate(self.vertical) if i + k != worst))

    @staticmethod
    def _sigma(v: VanishingDirection, along: np.ndarray) -> float:
        """Standard deviation (rad) of the direction along `along` (any length), with the
        world's own LINE_MODEL_SIGMA_DEG."""
        norm2 = float(along @ along)
        variance = max(float(along @ v.covariance @ along) / norm2, 0.0) if norm2 > 1e-24 else 0.0
        return float(np.sqrt(variance + np.radians(LINE_MODEL_SIGMA_DEG) ** 2))

    def rows(self, n: np.ndarray, e1: np.ndarray, e2: np.ndarray
             ) -> tuple[np.ndarray, np.ndarray]:
        """Least-squares rows (k, 2) on the tangent step (e1, e2) and their residuals (k,)."""
        rows, res = [], []
        for v in self.horizontal:
            s = self._sigma(v, n)
            rows.append([v.direction @ e1 / s, v.direction @ e2 / s])
            res.append(n @ v.direction / s)
        for v in self.vertical:
            for axis in (e1, e2):  # n - d, seen along the tangent axes
                s = self._sigma(v, axis)
                rows.append([axis @ e1 / s, axis @ e2 / s])
                res.append((n - v.direction) @ axis / s)
        if not rows:
            return np.zeros((0, 2)), np.zeros(0)
        return np.asarray(rows), np.asarray(res)

    def describe(self) -> str:
        return f"{len(self.horizontal)} horizontal, {len(self.vertical)} vertical"


ORTHOGONAL_TOLERANCE_DEG = 1.0  # a vertical and a horizontal family this far off 90 deg
FINITE_VP_Z = 0.05  # a vanishing point within ~20 focal lengths of the image centre


def focal_from_lines(lines: LineDirections, focal: float) -> float | None:
    """The focal length (px) that would make the strongest vertical and horizontal families
    orthogonal (the strongest horizontal one whose vanishing point is not at infinity),
    when the run's `focal` leaves them over ORTHOGONAL_TOLERANCE_DEG off it (the classic
    calibration from two orthogonal vanishing points: f^2 = -(v1 - c) . (v2 - c)); None
    when they agree, when one is missing or its vanishing point is at infinity."""
    finite = [v.direction for v in lines.horizontal if abs(v.direction[2]) > FINITE_VP_Z]
    if not lines.vertical or not finite or abs(lines.vertical[0].direction[2]) < FINITE_VP_Z:
        return None
    a, b = lines.vertical[0].direction, finite[0]
    if abs(90.0 - np.degrees(np.arccos(np.clip(abs(a @ b), 0.0, 1.0)))) <= ORTHOGONAL_TOLERANCE_DEG:
        return None
    f2 = -float((focal * a[:2] / a[2]) @ (focal * b[:2] / b[2]))
    return float(np.sqrt(f2)) if f2 > 0 else None
