"""Units of the world layer: contact labels, the foot lock, range smoothing, the floor fit."""
import numpy as np

from maed_cli.world.contacts import (ContactThresholds, foot_speeds, label_contacts, lock_feet,
                                     skating)
from maed_cli.world.ground import LevelHorizon, estimate_floor, horizon_axes
from maed_cli.world.placement import RangeTerms, solve_ranges, smooth_orientations
from world_scene import exp_so3, rot_x, rot_y


def test_labels_hysteresis_min_duration_and_gaps():
    t = np.arange(20) / 30.0
    heights = np.full((20, 1), 0.02)
    speeds = np.full((20, 1), 0.1)
    speeds[8] = 0.65  # between speed_on and speed_off: stays in contact
    speeds[12:14] = 0.3
    heights[12:14] = 0.2  # lifted
    heights[14:] = 0.06  # above height_on: once lifted, it does not enter again
    labels = label_contacts(heights, speeds, t)[:, 0]
    assert labels[:12].all() and not labels[12:].any()
    # a contact shorter than min_s is dropped; a time gap ends a contact
    short = label_contacts(np.full((2, 1), 0.0), np.zeros((2, 1)), np.array([0, 1 / 30]),
                           ContactThresholds(min_s=0.1))
    assert not short.any()
    gap_t = np.concatenate([np.arange(6), 30 + np.arange(6)]) / 30.0
    both = label_contacts(np.zeros((12, 1)), np.zeros((12, 1)), gap_t)
    assert both.all()


def test_foot_speed_is_horizontal_and_respects_gaps():
    t = np.arange(10) / 10.0
    pts = np.zeros((10, 1, 3))
    pts[:, 0, 0] = 0.5 * t  # 0.5 m/s along x
    pts[:, 0, 1] = 3.0 * t  # vertical motion is not horizontal speed
    np.testing.assert_allclose(foot_speeds(pts, t)[:, 0], 0.5, atol=1e-9)
    assert foot_speeds(pts, t, horizontal=False)[3, 0] > 3.0


def test_lock_keeps_a_contact_foot_where_it_is_and_on_the_floor():
    rng = np.random.default_rng(0)
    n = 40
    t = np.arange(n) / 30.0
    true_root = np.stack([1.2 * t, np.full(n, 0.9), np.zeros(n)], 1)
    foot = np.zeros((n, 2, 3))
    foot[:, 0] = np.stack([-1.2 * t + 0.3, np.full(n, -0.9), np.zeros(n)], 1)  # planted
    foot[:, 1] = np.stack([np.zeros(n), np.full(n, -0.8), np.zeros(n)], 1)
    contacts = np.zeros((n, 2), bool)
    contacts[:, 0] = True
    noisy = true_root + rng.normal(0, 0.03, (n, 3))
    ray = np.tile([0.0, 0.0, -1.0], (n, 1))
    locked = lock_feet(t, noisy, ray, foot, foot, contacts)
    before, _ = skating(noisy[:, None] + foot, contacts, t)
    after, _ = skating(locked[:, None] + foot, contacts, t)
    assert after < 0.1 * before
    np.testing.assert_allclose((locked[:, None] + foot)[:, 0, 1], 0.0, atol=0.005)


def test_range_smoothing_and_floor_terms():
    rng = np.random.default_rng(1)
    t = np.arange(60) / 30.0
    truth = 6.0 + 1.0 * t
    raw = truth * (1 + rng.normal(0, 0.07, 60)) * 1.05  # biased by 5 %
    smooth = solve_ranges(t, raw)
    assert np.abs(smooth - truth * 1.05).mean() < 0.5 * np.abs(raw - truth * 1.05).mean()
    # a foot whose height is 0.1 * (range - truth): the floor terms remove the bias
    rows = np.arange(0, 60, 2)
    terms = RangeTerms(rows=rows, a=-0.1 * truth[rows], b=np.full(len(rows), 0.1))
    floored = solve_ranges(t, raw, terms, rel_sigma=0.2)
    assert np.abs(floored / truth - 1).mean() < 0.02 < np.abs(smooth / truth - 1).mean()


def test_orientation_smoothing_removes_jitter_not_the_turn():
    rng = np.random.default_rng(2)
    t = np.arange(60) / 30.0
    turn = exp_so3(np.stack([np.zeros(60), 0.5 * t, np.zeros(60)], 1))
    noisy = exp_so3(rng.normal(0, np.radians(2), (60, 3))) @ turn
    smooth = smooth_orientations(noisy, t)

    def err(r):
        cos = (np.trace(np.swapaxes(r, 1, 2) @ turn, axis1=1, axis2=2) - 1) / 2
        return np.degrees(np.arccos(np.clip(cos, -1, 1))).mean()
    assert err(smooth) < 0.5 * err(noisy)
    np.testing.assert_allclose(np.linalg.det(smooth), 1.0, atol=1e-9)


def _floor_points(up, rng, tilt_noise=0.0, offsets=(0.0, 0.04, -0.03)):
    """Still-foot points of three people on the floor with normal `up`, 2 m below the camera,
    each person's heights tilted by a random `tilt_noise` (rad): their orientation error."""
    e1 = np.cross(up, [1.0, 0, 0])
    e1 /= np.linalg.norm(e1)
    e2 = np.cross(up, e1)
    pts, groups = [], []
    for g, offset in enumerate(offsets):
        uv = rng.uniform(-3, 3, (60, 2))
        slope = rng.normal(0, tilt_noise, 2) if tilt_noise else np.zeros(2)
        pts.append(uv[:, :1] * e1 + uv[:, 1:] * e2 + (-2.0 + offset + uv @ slope)[:, None] * up
                   + rng.normal(0, 0.01, (60, 3)))
        groups.append(np.full(60, g))
    return np.concatenate(pts), np.concatenate(groups)


def test_floor_fit_per_person_offsets_and_camera_prior():
    rng = np.random.default_rng(3)
    up = np.array([0.0, -0.97, -0.2])
    up /= np.linalg.norm(up)
    pts, groups = _floor_points(up, rng)  # each person's depth error: an offset
    tilted = np.array([0.05, -0.97, -0.2])
    floor = estimate_floor(pts, np.ones(len(pts)), groups, tilted / np.linalg.norm(tilted))
    assert np.degrees(np.arccos(floor.up @ up)) < 0.5
    assert abs(floor.d - (2.0 - 0.01 / 3)) < 0.02  # the people's mean offset
    assert floor.source == "people"
    with_camera = estimate_floor(pts, np.ones(len(pts)), groups, up, camera_up=up)
    assert with_camera.source == "both"
    assert isinstance(estimate_floor(pts[:5], np.ones(5), groups[:5], up), str)
    scattered = pts + rng.uniform(-1, 1, (len(pts), 1)) * up
    assert isinstance(estimate_floor(scattered, np.ones(len(pts)), groups, up), str)


def test_level_horizon_of_a_pan_gives_up():
    """A tripod pan (about gravity) with a tilt of its own: the camera x axes span the
    horizontal plane, so up follows from the camera alone; the people's tilted heights
    (orientation errors) are outweighed by it."""
    pitch0 = np.radians(-12.0)
    # a level world with y down; camera f = pan about gravity, then its own tilt
    yaw = np.radians(30.0) * np.sin(np.linspace(0, 2 * np.pi, 90))
    tilt = np.radians(8.0) * np.sin(np.linspace(0, np.pi, 90))
    world_from_cam = [rot_y(a) @ rot_x(pitch0 + b) for a, b in zip(yaw, tilt)]
    rotations = np.stack([r.T @ world_from_cam[0] for r in world_from_cam])  # f-from-0
    up0 = world_from_cam[0].T @ np.array([0.0, -1.0, 0.0])
    level = LevelHorizon.from_axes(horizon_axes(rotations))
    assert level.spread_deg > 25
    assert np.degrees(np.arccos(np.clip(level.up(up0) @ up0, -1, 1))) < 0.01
    errors = {}
    for name, prior in (("people", None), ("level", level)):
        errs = []
        for trial in range(6):
            pts, groups = _floor_points(up0, np.random.default_rng(trial), tilt_noise=0.01)
            floor = estimate_floor(pts, np.ones(len(pts)), groups, up0, level=prior)
            errs.append(np.degrees(np.arccos(np.clip(floor.up @ up0, -1, 1))))
            if prior is not None:
                assert floor.level.startswith("used (pan")
        errors[name] = np.median(errs)
    assert errors["level"] < 0.5 * errors["people"]
    assert errors["level"] < 0.3
    # the same pan with the camera rolled 3.5 deg on its tripod: the x axes leave the
    # horizontal plane, the people's floor disagrees, and the prior is dropped
    roll = np.radians(3.5)
    rz = np.array([[np.cos(roll), -np.sin(roll), 0], [np.sin(roll), np.cos(roll), 0], [0, 0, 1]])
    rolled_cams = [r @ rz for r in world_from_cam]
    rolled_rot = np.stack([r.T @ rolled_cams[0] for r in rolled_cams])
    up_rolled = rolled_cams[0].T @ np.array([0.0, -1.0, 0.0])
    pts, groups = _floor_points(up_rolled, np.random.default_rng(0), tilt_noise=0.01)
    floor = estimate_floor(pts, np.ones(len(pts)), groups, up_rolled,
                           level=LevelHorizon.from_axes(horizon_axes(rolled_rot)))
    assert floor.level.startswith("dropped")
    assert np.degrees(np.arccos(np.clip(floor.up @ up_rolled, -1, 1))) < 1.0


def test_level_horizon_roll_only_and_dropped_for_a_rolled_camera():
    up = np.array([0.0, -0.97, -0.2])
    up /= np.linalg.norm(up)
    rng = np.random.default_rng(1)
    pts, groups = _floor_points(up, rng)
    still = LevelHorizon.from_axes(horizon_axes(None))  # x axis (1, 0, 0), perpendicular to up
    assert still.up(up) is None  # a still camera fixes the roll, not the pitch
    floor = estimate_floor(pts, np.ones(len(pts)), groups, up, level=still)
    assert floor.level.startswith("used (roll only")
    # a camera rolled by 6 deg: its x axis is 6 deg off the people's floor: the prior goes
    c, s = np.cos(np.radians(6)), np.sin(np.radians(6))
    rolled_axis = np.array([c, 0.0, 0.0]) + s * up
    rolled = LevelHorizon.from_axes(rolled_axis[None])
    floor = estimate_floor(pts, np.ones(len(pts)), groups, up, level=rolled)
    assert floor.level.startswith("dropped") and "6.0 deg" in floor.level
    assert np.degrees(np.arccos(np.clip(floor.up @ up, -1, 1))) < 0.3
