"""The world layer's ground, placement and contacts on synthetic scenes with known truth
(tests/world_scene.py), given the true camera rotations (independent of camera.py)."""
import dataclasses
import json

import numpy as np
import pytest
import torch

from maed_cli.results import TrackResult, load_track, save_track
from maed_cli.world import build_world, load_world, save_world, world_joints, world_vertices
from maed_cli.world.frames import world_root
from world_scene import DepthNoise, evaluate_world, make_scene


@pytest.fixture(scope="module")
def static_scene(synthetic_body):
    return make_scene(synthetic_body, camera="static", people=3, seed=0)


@pytest.fixture(scope="module")
def static_build(static_scene):
    s = static_scene
    return build_world(s.tracks, s.camera_motion(), s.focal, s.image_size, fps=s.fps)


@pytest.fixture(scope="module")
def pan_scene(synthetic_body):
    return make_scene(synthetic_body, camera="pan", people=3, seed=0)


def test_static_scene_meets_the_targets(static_scene, static_build):
    assert static_build.fell_back_reason is None
    m = evaluate_world(static_scene, static_build)
    assert m["up_deg"] <= 2.0
    assert m["floor_cm"] <= 3.0
    assert m["rte_pct"] <= 5.0  # every person, after aligning their first frame
    # a still camera gives the roll only: the floor's pitch comes from the people, and the
    # 5 % pair target is met on about half the seeds (benchmarks/world_ground_accuracy.py)
    assert m["pair_pct"] <= 10.0
    assert m["penetration_max_cm"] <= 2.0
    assert m["skating_after"] <= 0.5 * m["skating_before"]
    assert m["penetration_cm"] <= 2.0
    summary = static_build.summary
    assert summary["frame"] == "world" and summary["reason"] is None
    assert summary["floor"]["source"] == "people" and summary["floor"]["inliers"] > 50
    json.dumps(summary)  # plain numbers and strings: it goes into summary.json as it is


def test_depth_is_stabilised_against_maed_raw_depth(static_scene, static_build):
    """The raw ranges carry the injected 5-10 % noise; the world roots are much closer."""
    for track, clean in zip(static_scene.tracks, static_scene.clean_tracks):
        built = next(t for t in static_build.tracks if t.track_id == track.track_id)
        true_range = np.linalg.norm(clean.cam_t + clean.joints3d[:, 8], axis=1)
        raw = np.linalg.norm(track.cam_t + track.joints3d[:, 8], axis=1)
        frame = static_build.frame
        centre = frame.camera_t[0]
        est = np.linalg.norm(world_root(built) - centre, axis=1)
        raw_err = np.abs(raw / true_range - 1).mean()
        est_err = np.abs(est / true_range - 1).mean()
        assert raw_err > 0.03
        assert est_err < 0.5 * raw_err


def test_contact_labels_follow_the_planted_feet(static_scene, static_build):
    for track in static_build.tracks:
        person = static_scene.person(track.track_id)
        rows = np.searchsorted(static_scene.frame_ids, track.frame_ids)
        truth = person.stance[rows]
        labels = track.contacts.astype(bool)
        assert track.contacts.dtype == np.uint8 and labels.shape == truth.shape
        precision = (labels & truth).sum() / max(labels.sum(), 1)
        assert precision >= 0.9  # a labelled contact is a planted foot
        assert labels.sum() >= 0.5 * truth.sum()


def test_panning_camera_one_floor_for_everyone(pan_scene):
    s = pan_scene
    build = build_world(s.tracks, s.camera_motion(), s.focal, s.image_size, fps=s.fps)
    assert build.fell_back_reason is None
    m = evaluate_world(s, build)
    assert m["up_deg"] <= 2.0
    assert m["floor_cm"] <= 3.0
    assert m["rte_pct"] <= 5.0  # every person, the ones seen in short bursts too
    assert m["pair_pct"] <= 5.0
    assert m["skating_after"] <= 0.5 * m["skating_before"]
    assert m["penetration_max_cm"] <= 2.0
    # the pan swept the camera's x axis through the horizontal plane: up from the camera
    assert build.summary["floor"]["level_horizon"].startswith("used (pan")
    # ... which is what fixed the pitch the people leave open
    free = build_world(s.tracks, s.camera_motion(), s.focal, s.image_size, fps=s.fps,
                       level_horizon=False)
    assert free.summary["floor"]["level_horizon"] == "off"
    assert evaluate_world(s, free)["up_deg"] > m["up_deg"]
    # without the camera rotations the pan looks like people walking on a tilting floor
    still = build_world(s.tracks, None, s.focal, s.image_size, fps=s.fps)
    if still.fell_back_reason is None:
        assert evaluate_world(s, still)["rte_pct"] > m["rte_pct"]


def test_world_arrays_follow_smpl_transl_convention(synthetic_body, static_build):
    """SMPL posed with world_orient and the body pose, plus world_t, is world_vertices."""
    track = static_build.tracks[1]
    rows = np.array([0, 17, len(track) - 1])
    rotmat = torch.as_tensor(track.rotmat[rows]).clone()
    rotmat[:, 0] = torch.as_tensor(track.world_orient[rows])
    out = synthetic_body(rotmat=rotmat, betas=torch.as_tensor(track.betas[rows]),
                         transl=torch.as_tensor(track.world_t[rows]))
    np.testing.assert_allclose(world_vertices(track, rows), out.vertices.numpy(), atol=2e-4)
    np.testing.assert_allclose(world_joints(track, rows), out.joints49.numpy(), atol=2e-4)
    assert world_vertices(track, 5).shape == (6890, 3)
    # the floor is y = 0 under a planted foot
    feet = world_vertices(track, np.flatnonzero(track.contacts.any(1)))
    assert abs(np.median(feet[..., 1].min(1))) < 0.02


def test_world_file_and_track_round_trip(tmp_path, static_build, static_scene):
    world = static_build.frame
    assert load_world(tmp_path) is None
    save_world(tmp_path, world)
    again = load_world(tmp_path)
    for field in dataclasses.fields(world):
        np.testing.assert_allclose(np.asarray(getattr(again, field.name)),
                                   np.asarray(getattr(world, field.name)))
    np.testing.assert_allclose(world.camera_R[0] @ world.up, [0, 1, 0], atol=1e-9)
    # the floor y = 0 in the world is the floor plane of the first camera's frame
    point = -world.floor[3] * world.up  # on the plane
    np.testing.assert_allclose((world.camera_R[0] @ point + world.camera_t[0])[1], 0, atol=1e-9)
    track = static_build.tracks[0]
    loaded = load_track(save_track(tmp_path, track))
    for key in ("world_orient", "world_t", "contacts"):
        np.testing.assert_allclose(getattr(loaded, key), getattr(track, key), atol=1e-6)
    # without world arrays, the world frame's camera poses place a track's cam_t
    plain = static_scene.tracks[0]
    expected = ((plain.verts[3].astype(np.float64) + plain.cam_t[3]) @ world.camera_R[3].T
                + world.camera_t[3])
    np.testing.assert_allclose(world_vertices(plain, 3, world), expected, atol=1e-4)


def test_frame_ids_with_a_step_and_an_offset(synthetic_body):
    """Source frame ids 100, 102, ... (every other frame of a 30 fps video, as after --fps 15):
    times come from the source frame ids, so speeds and smoothing stay in seconds."""
    s = make_scene(synthetic_body, camera="static", people=2, frames=50, fps=30.0,
                   first_frame=100, frame_step=2, seed=1)
    build = build_world(s.tracks, s.camera_motion(), s.focal, s.image_size, fps=s.fps)
    assert build.fell_back_reason is None
    assert build.frame.frame_ids[0] == 100
    m = evaluate_world(s, build)
    assert m["up_deg"] <= 2.0 and m["rte_pct"] <= 5.0


def test_no_floor_cue_falls_back_to_the_camera_frame(static_scene):
    """People floating upwards (feet never still) and a lone short track: a reason, the
    camera-frame results unchanged, never an exception."""
    s = static_scene
    floating = []
    for k, track in enumerate(s.tracks):
        t = (track.frame_ids - track.frame_ids[0]) / s.fps
        cam_t = track.cam_t.copy()
        cam_t[:, 1] -= (0.8 + 0.3 * k) * t  # rising (camera y is down)
        floating.append(track.with_arrays(cam_t=cam_t))
    build = build_world(floating, s.camera_motion(), s.focal, s.image_size, fps=s.fps)
    assert build.frame is None and build.fell_back_reason.startswith("no floor cue")
    assert build.summary["frame"] == "camera"
    assert build.summary["reason"] == build.fell_back_reason
    assert all(t.world_t is None for t in build.tracks)

    short = s.tracks[0]
    rows = slice(0, 5)
    short = TrackResult(track_id=1, frame_ids=short.frame_ids[rows], cam_t=short.cam_t[rows],
                        rotmat=short.rotmat[rows], joints3d=short.joints3d[rows],
                        verts=short.verts[rows])
    build = build_world([short], None, s.focal, s.image_size, fps=s.fps)
    assert "too short" in build.fell_back_reason

    for bad in ([], [TrackResult(track_id=3, frame_ids=np.arange(4))]):
        assert build_world(bad, None, s.focal, s.image_size).fell_back_reason

    nan = s.tracks[0].with_arrays(cam_t=np.full_like(s.tracks[0].cam_t, np.nan))
    build = build_world([nan], None, s.focal, s.image_size, fps=s.fps)
    assert build.fell_back_reason  # unusable numbers: a reason, not a crash


def test_noise_free_scene_is_nearly_exact(synthetic_body):
    s = make_scene(synthetic_body, camera="static", people=2, frames=60, noise=False)
    build = build_world(s.tracks, s.camera_motion(), s.focal, s.image_size, fps=s.fps)
    m = evaluate_world(s, build)
    assert m["up_deg"] < 0.5 and m["floor_cm"] < 1.0 and m["rte_pct"] < 1.5
    assert m["pair_pct"] < 1.5


def test_depth_noise_is_where_maed_has_it(synthetic_body):
    """The scene's noise is on the crop scale s: cam_t moves along the ray, the image
    position of the body (X/Z, Y/Z) stays."""
    s = make_scene(synthetic_body, camera="static", people=1, frames=30, seed=3,
                   depth_noise=DepthNoise(bias=2.0, wander=0.05, rho=0.5, frame=0.05))
    noisy, clean = s.tracks[0], s.clean_tracks[0]
    depth = noisy.cam_t[:, 2] / clean.cam_t[:, 2] - 1
    assert 0.04 < np.abs(depth).mean() < 0.25
    lateral = noisy.cam_t[:, :2] / noisy.cam_t[:, 2:] - clean.cam_t[:, :2] / clean.cam_t[:, 2:]
    assert np.abs(lateral).max() < 0.01


def test_one_and_two_frame_tracks_beside_a_long_one_are_placed(static_scene):
    s = static_scene
    keys = ("cam_t", "pose", "betas", "rotmat", "verts", "joints3d")

    def cut(track, rows):
        return track.with_arrays(frame_ids=track.frame_ids[rows],
                                 **{k: getattr(track, k)[rows] for k in keys})

    tracks = [s.tracks[0], cut(s.tracks[1], slice(0, 1)), cut(s.tracks[2], slice(5, 7))]
    build = build_world(tracks, s.camera_motion(), s.focal, s.image_size, fps=s.fps)
    assert build.fell_back_reason is None and build.summary["skipped_tracks"] == 0
    for track in build.tracks[1:]:
        assert track.world_t.shape == (len(track), 3)
        lowest = world_vertices(track, np.arange(len(track)))[..., 1].min(1)
        assert np.all(np.abs(lowest) < 0.05)  # standing on the floor, roughly


def test_origin_is_on_the_floor_under_the_first_person(static_build):
    first = min(static_build.tracks, key=lambda t: t.track_id)
    root = world_root(first, 0)[0]
    np.testing.assert_allclose(root[[0, 2]], 0.0, atol=1e-5)
    assert 0.7 < root[1] < 1.1  # the pelvis height of a standing person
