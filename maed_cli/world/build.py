"""One world for every tracked person: `build_world` assembles the world layer.

    camera motion  -> every person's per-frame points in the first camera's frame
    ranges         -> each pelvis keeps its ray, its range smoothed over time (placement.py)
    floor, up      -> RANSAC plane of the still feet of all people + their mean up axis
                      + a level horizon (the camera's x axes, checked against the people)
                      + a still background's horizontal/vertical lines (vanishing.py)
                      (+ the camera's tilt when known) (ground.py)
    ranges again   -> with the feet on that floor
    world frame    -> y up, floor y = 0, x/z on the floor, origin under the first person
    contacts, lock -> per-foot contact labels, the pelvis trajectory refined so that a foot in
                      contact stays where it is (contacts.py)

It never raises on bad data: a run too short, without a floor cue or otherwise degenerate
keeps its camera-frame results and says why in `WorldBuild.fell_back_reason` (and in the
summary block, `summary["reason"]`).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..results import TrackResult
from .contacts import ContactThresholds, foot_speeds, label_contacts, lock_feet, skating
from ..body.joints import PELVIS49
from .frames import WorldFrame, level_axes, make_world_frame
from .ground import (FOOT_JOINTS49, Floor, LevelHorizon, angle_deg, body_up_axis,
                     estimate_floor, foot_vertex_ids, horizon_axes, sole_points)
from .placement import RangeTerms, smooth_orientations, solve_ranges
from .vanishing import LineDirections, focal_from_lines

MIN_ROWS = 8  # the longest track must have this many frames for a world frame
CANDIDATE_SPEED = 0.75  # m/s, 3D: a foot this slow may rest on the floor
# MAED's range errors are biased per person and correlated over time, so next to the floor
# its own range counts as a weak cue (relative standard deviation per frame)
FLOORED_RANGE_SIGMA = 0.2
PENETRATION_STRIDE = 20  # every 20th vertex (plus the feet) for the lowest-vertex check


@dataclass
class WorldBuild:
    """tracks: copies with world_orient/world_t/contacts (unchanged on fallback); frame: the
    run's WorldFrame (None on fallback); summary: the summary.json["world"] block."""

    tracks: list[TrackResult]
    frame: WorldFrame | None
    summary: dict
    fell_back_reason: str | None


@dataclass
class _Person:
    """One track's quantities; body-frame arrays are in the camera-f axes, no translation."""

    track: TrackResult
    t: np.ndarray  # (n,) seconds
    to_cam0: np.ndarray  # (n, 3, 3) camera-0-from-camera-f (R_f^T)
    body_to_cam0: np.ndarray  # (n, 3, 3) the same with the smoothing of the orientation
    root0: np.ndarray  # (n, 3, 3) smoothed global orientation in the first camera's frame
    pelvis: np.ndarray  # (n, 3) body frame (joints3d[:, 8])
    raw_range: np.ndarray  # (n,)
    ray0: np.ndarray  # (n, 3) unit, first camera's frame
    feet: tuple[np.ndarray, np.ndarray] | None
    foot_ref: np.ndarray  # (n, 2, 3) body frame, centroid of each foot's joints
    up_axis: np.ndarray  # (3,) mean body up, first camera's frame
    sole: np.ndarray | None = None  # (n, 2, 3) body frame, lowest foot points
    ranges: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.t)

    def cam0(self, body_points: np.ndarray, ranges: np.ndarray) -> np.ndarray:
        """Body-frame points (n, ..., 3) of each row -> first camera's frame."""
        rel = body_points - self.pelvis.reshape((len(self),) + (1,) * (body_points.ndim - 2)
                                                + (3,))
        turned = np.einsum("nij,n...j->n...i", self.body_to_cam0, rel)
        centre = (ranges[:, None] * self.ray0).reshape(turned.shape[:1] + (1,) * (
            turned.ndim - 2) + (3,))
        return turned + centre


def _moving_rotations(camera) -> np.ndarray | None:
    """(F, 3, 3) camera-f-from-camera-0 of a camera that turns, None for a still one."""
    if camera is None or getattr(camera, "static", True) or camera.rotations is None:
        return None
    return np.asarray(camera.rotations, np.float64)


def _camera_rows(camera, frame_ids: np.ndarray) -> np.ndarray:
    """(n, 3, 3) camera-f-from-camera-0 for source frames (nearest decoded frame)."""
    rotations = _moving_rotations(camera)
    if rotations is None:
        return np.tile(np.eye(3), (len(frame_ids), 1, 1))
    ids = np.asarray(camera.frame_ids, np.int64)
    right = np.clip(np.searchsorted(ids, frame_ids), 0, len(ids) - 1)
    left = np.clip(right - 1, 0, len(ids) - 1)
    pick = np.where(np.abs(ids[left] - frame_ids) < np.abs(ids[right] - frame_ids), left, right)
    return rotations[pick]


def _camera_summary(camera) -> dict:
    if camera is None:
        return {"mode": "static", "requested": "static", "median_motion_px": 0.0,
                "inlier_ratio": 0.0, "max_rotation_deg": 0.0, "translating_warning": None}
    if hasattr(camera, "summary"):
        return dict(camera.summary())
    return {"mode": "static" if camera.static else "moving"}


def _person(track: TrackResult, camera, fps: float) -> _Person | None:
    if track.cam_t is None or track.rotmat is None or track.joints3d is None or len(track) < 1:
        return None
    cam_t = np.asarray(track.cam_t, np.float64)
    joints = np.asarray(track.joints3d, np.float64)
    if not (np.isfinite(cam_t).all() and np.isfinite(joints).all()) or (cam_t[:, 2] <= 0).any():
        return None
    order = np.argsort(track.frame_ids, kind="stable")
    if (order != np.arange(len(order))).any() or (np.diff(track.frame_ids) <= 0).any():
        return None  # frame ids must increase (the demo writes them so)
    to_cam0 = np.swapaxes(_camera_rows(camera, np.asarray(track.frame_ids)), 1, 2)
    pelvis = joints[:, PELVIS49]
    centre = pelvis + cam_t
    raw = np.linalg.norm(centre, axis=1)
    ray0 = np.einsum("nij,nj->ni", to_cam0, centre / raw[:, None])
    t = np.asarray(track.frame_ids, np.float64) / fps
    raw_root0 = to_cam0 @ np.asarray(track.rotmat[:, 0], np.float64)
    root0 = smooth_orientations(raw_root0, t)
    body_to_cam0 = root0 @ np.swapaxes(raw_root0, 1, 2) @ to_cam0
    feet = foot_vertex_ids(track.verts[0] if track.verts is not None else None, joints[0])
    foot_ref = np.stack([joints[:, list(j)].mean(1) for j in FOOT_JOINTS49], 1)
    return _Person(track=track, t=t, to_cam0=to_cam0, body_to_cam0=body_to_cam0,
                   root0=root0, pelvis=pelvis, raw_range=raw, ray0=ray0, feet=feet,
                   foot_ref=foot_ref, up_axis=body_up_axis(root0))


def _fallback(tracks, reason: str, camera_summary: dict) -> WorldBuild:
    return WorldBuild(tracks=list(tracks), frame=None, fell_back_reason=reason, summary={
        "frame": "camera", "reason": reason, "camera": camera_summary, "floor": None,
        "skating": None, "penetration_m": None})


def build_world(tracks: list[TrackResult], camera, focal: float, image_size, body=None, *,
                fps: float = 30.0, camera_up: np.ndarray | None = None,
                level_horizon: bool = True, lines: bool = True,
                thresholds: ContactThresholds = ContactThresholds()) -> WorldBuild:
    """World arrays for every track and the run's WorldFrame (see the module docstring).

    camera: a CameraMotion (maed_cli/world/camera_motion.py), None for a static camera; focal,
    image_size (W, H): the run's; fps: the SOURCE video's frame rate (frame ids are source
    indices); camera_up: the up direction in the first camera's frame when known otherwise
    (it joins the people's cues); level_horizon: assume the camera's x axis stays level
    (a prior on up that the people's floor must confirm; see ground.py); lines: use the
    background's vanishing directions that the camera motion found (a still camera's; also
    checked against the people). `body` is accepted
    for callers that have one; the vertices in the tracks are what is used."""
    camera_summary = _camera_summary(camera)
    try:
        return _build(list(tracks), camera, float(focal), image_size, float(fps), camera_up,
                      level_horizon, lines, thresholds, camera_summary)
    except Exception as exc:  # noqa: BLE001 - bad data must not end the run: camera frame
        return _fallback(tracks, f"world layer failed on this input ({type(exc).__name__}: "
                                 f"{exc})", camera_summary)


def _build(tracks, camera, focal, image_size, fps, camera_up, level_horizon, use_lines,
           thresholds, camera_summary) -> WorldBuild:
    people = [p for p in (_person(t, camera, fps) for t in tracks) if p is not None]
    longest = max((len(p) for p in people), default=0)
    if longest < MIN_ROWS:
        return _fallback(tracks, f"too short for a world frame: the longest usable track has "
                                 f"{longest} frames (need {MIN_ROWS})", camera_summary)
    weights = np.array([len(p) for p in people], np.float64)
    body_up = (np.stack([p.up_axis for p in people]) * weights[:, None]).sum(0)
    body_up /= np.linalg.norm(body_up)

    # 1. ranges smoothed without a floor; the still feet of everyone -> the floor
    points, point_weights, groups = [], [], []
    candidates = []
    for p in people:
        p.ranges = solve_ranges(p.t, p.raw_range)
        up_body = np.einsum("nji,j->ni", p.body_to_cam0, body_up)  # up in the body frame
        p.sole = sole_points(p.track.verts, p.track.joints3d, p.feet, up_body)
        sole0 = p.cam0(p.sole, p.ranges)
        # speed of a fixed foot point: the lowest vertex of a flat foot jumps heel <-> toe
        speed = foot_speeds(p.cam0(p.foot_ref, p.ranges), p.t, horizontal=False)
        lower = np.argmin(sole0 @ body_up, axis=1)
        rows = np.arange(len(p))
        slow = speed[rows, lower] < CANDIDATE_SPEED
        candidates.append((rows[slow], lower[slow]))
        points.append(sole0[rows[slow], lower[slow]])
        point_weights.append(1.0 / (1.0 + speed[rows[slow], lower[slow]] / 0.2))
        groups.append(np.full(int(slow.sum()), p.track.track_id))
    level = (LevelHorizon.from_axes(horizon_axes(_moving_rotations(camera)))
             if level_horizon else None)
    lines = (camera.vanishing_directions() if use_lines
             and hasattr(camera, "vanishing_directions") else None)
    floor = estimate_floor(np.concatenate(points), np.concatenate(point_weights),
                           np.concatenate(groups), body_up, camera_up, level=level, lines=lines)
    if isinstance(floor, str):
        return _fallback(tracks, floor, camera_summary)
    if lines is not None and not lines and _moving_rotations(camera) is not None:
        floor.lines = "none: the camera turns (the lines are read from a still background)"

    # 2. the feet on the floor: ranges again, with the still lower feet as contacts
    for p, (rows, feet) in zip(people, candidates):
        up_body = np.einsum("nji,j->ni", p.body_to_cam0, floor.up)
        p.sole = sole_points(p.track.verts, p.track.joints3d, p.feet, up_body)
        p.ranges = solve_ranges(p.t, p.raw_range, _floor_terms(p, floor, rows, feet),
                                rel_sigma=FLOORED_RANGE_SIGMA)

    # 3. contacts from the placed feet, then the ranges once more with exactly those
    labels = []
    for p in people:
        contact = _contacts(p, floor, p.ranges, thresholds)
        rows, feet = np.nonzero(contact)
        if len(rows):
            p.ranges = solve_ranges(p.t, p.raw_range, _floor_terms(p, floor, rows, feet),
                                rel_sigma=FLOORED_RANGE_SIGMA)
        labels.append(_contacts(p, floor, p.ranges, thresholds))

    # 4. the world frame: origin under the first person's first pelvis
    first = min(people, key=lambda p: p.track.track_id)
    origin = first.ranges[0] * first.ray0[0]
    frame_ids = (np.asarray(camera.frame_ids, np.int64) if camera is not None
                 and len(getattr(camera, "frame_ids", ())) else
                 np.unique(np.concatenate([p.track.frame_ids for p in people])))
    world = make_world_frame(floor.up, floor.d, origin, frame_ids,
                             _camera_rows(camera, frame_ids), focal, image_size)
    axes = level_axes(floor.up)
    origin = origin - (floor.up @ origin + floor.d) * floor.up

    # 5. the foot lock in the world, and what it changed
    out_tracks = {id(t): t for t in tracks}
    skate_before, skate_after, steps, penetration, placed = [], [], [], [], []
    for p, contact in zip(people, labels):
        to_world = axes[None] @ p.body_to_cam0  # world-from-body-frame, (n, 3, 3)
        root = (p.ranges[:, None] * p.ray0 - origin) @ axes.T
        raw_root = (p.raw_range[:, None] * p.ray0 - origin) @ axes.T
        foot = np.einsum("nij,nkj->nki", to_world, p.foot_ref - p.pelvis[:, None])
        lowest = np.einsum("nij,nkj->nki", to_world, p.sole - p.pelvis[:, None])
        if len(p) >= 3:
            locked = lock_feet(p.t, root, p.ray0 @ axes.T, foot, lowest, contact)
        else:
            locked = root
        before, n_steps = skating(raw_root[:, None] + foot, contact, p.t)
        after, _ = skating(locked[:, None] + foot, contact, p.t)
        if n_steps:
            skate_before.append(before * n_steps)
            skate_after.append(after * n_steps)
            steps.append(n_steps)
        penetration.append(_penetration(p, to_world, locked))
        placed.append((p, locked, contact))
    # the lock moved the first pelvis a little: the origin goes back under it
    shift = next(locked for q, locked, _ in placed if q is first)[0] * np.array([1.0, 0.0, 1.0])
    world.camera_t = world.camera_t - shift
    for p, locked, contact in placed:
        world_orient = axes[None] @ p.root0
        out_tracks[id(p.track)] = p.track.with_arrays(
            world_orient=world_orient.astype(np.float32),
            world_t=(locked - shift - p.pelvis).astype(np.float32),
            contacts=contact.astype(np.uint8))
    total = max(sum(steps), 1)
    pen = np.concatenate(penetration)
    summary = {
        "frame": "world", "reason": None, "camera": camera_summary,
        "floor": {"source": floor.source, "inliers": floor.inliers,
                  "candidates": floor.candidates, "height_rmse_m": floor.height_rmse_m,
                  "body_up_angle_deg": floor.body_up_angle_deg,
                  "level_horizon": floor.level, "lines": floor.lines},
        "skating": {"before_m_s": sum(skate_before) / total,
                    "after_m_s": sum(skate_after) / total, "contact_steps": sum(steps)},
        "penetration_m": float(pen.mean()) if len(pen) else 0.0,
        "penetration_max_m": float(pen.max()) if len(pen) else 0.0,
        "up": floor.up.tolist(),
        "people": len(people), "skipped_tracks": len(tracks) - len(people),
    }
    if lines:
        hint = focal_from_lines(LineDirections.classify(lines, floor.up), focal)
        summary["floor"]["focal_from_lines_px"] = None if hint is None else round(hint, 1)
    if camera_up is not None:
        summary["floor"]["camera_up_angle_deg"] = angle_deg(floor.up, np.asarray(camera_up))
    return WorldBuild(tracks=[out_tracks[id(t)] for t in tracks], frame=world, summary=summary,
                      fell_back_reason=None)


def _floor_terms(p: _Person, floor: Floor, rows: np.ndarray, feet: np.ndarray) -> RangeTerms:
    """Heights a + b r of the lowest points of the given (row, foot)s, affine in the range."""
    rel = p.sole[rows, feet] - p.pelvis[rows]
    a = np.einsum("nij,nj->ni", p.body_to_cam0[rows], rel) @ floor.up + floor.d
    return RangeTerms(rows=np.asarray(rows, np.int64), a=a, b=p.ray0[rows] @ floor.up)


def _contacts(p: _Person, floor: Floor, ranges: np.ndarray, thresholds) -> np.ndarray:
    """Contact labels with heights above the person's OWN floor (the median height of their
    lower, slow foot): a person still misplaced in depth stands above or below the common
    floor, and their contacts are what pulls them onto it."""
    sole0 = p.cam0(p.sole, ranges)
    ref0 = p.cam0(p.foot_ref, ranges)
    axes = level_axes(floor.up)
    heights = floor.height(sole0)
    speeds = foot_speeds(ref0 @ axes.T, p.t)
    lower = heights.min(1)
    slow = speeds[np.arange(len(p)), heights.argmin(1)] < thresholds.speed_on
    own = float(np.median(lower[slow])) if slow.sum() >= 3 else 0.0
    return label_contacts(heights - own, speeds, p.t, thresholds)


def _penetration(p: _Person, to_world: np.ndarray, root: np.ndarray) -> np.ndarray:
    """(n,) how far the lowest vertex (feet + a vertex subsample) is below the floor, metres."""
    if p.track.verts is None:
        low = np.einsum("nij,nkj->nki", to_world, p.sole - p.pelvis[:, None])[..., 1].min(1)
        return np.maximum(0.0, -(low + root[:, 1]))
    n_verts = np.asarray(p.track.verts[0]).shape[0]
    ids = np.arange(0, n_verts, PENETRATION_STRIDE)
    if p.feet is not None:
        ids = np.unique(np.concatenate([ids, p.feet[0], p.feet[1]]))
    out = np.empty(len(p))
    for start in range(0, len(p), 512):
        rows = slice(start, min(len(p), start + 512))
        pts = np.asarray(p.track.verts[rows], np.float64)[:, ids] - p.pelvis[rows, None]
        heights = np.einsum("nj,npj->np", to_world[rows, 1], pts) + root[rows, 1:2]
        out[rows] = np.maximum(0.0, -heights.min(1))
    return out
