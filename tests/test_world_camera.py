"""Camera rotation from the video (maed_cli.world.camera) on rendered rooms with known paths."""
from __future__ import annotations

import numpy as np
import pytest

from maed_cli.world.camera import CameraMotionEstimator
from maed_cli.world.camera_motion import CameraMotion
from maed_cli.world.rotation_fit import fit_rotation, kabsch
from world_render import (DEFAULT_WALKERS, RoomRenderer, camera_path, rotation_errors_deg,
                          static_path, steady_pan, textureless_frames, yaw_pitch)

FRAMES = 40


@pytest.fixture(scope="module")
def renderer():
    return RoomRenderer(320, 240)


def estimate(frames, boxes, focal, mode="auto", size=(320, 240)):
    est = CameraMotionEstimator(focal, size, mode=mode)
    for i, frame in enumerate(frames):
        est.add(i, frame, None if boxes is None else boxes[i])
    return est.finish()


@pytest.fixture(scope="module")
def panning(renderer):
    path = camera_path(FRAMES, yaw_amp=30.0, pitch_amp=10.0)
    frames, boxes = renderer.render_path(path)
    return path, frames, boxes


def test_panning_camera_rotations_within_half_a_degree(renderer, panning):
    path, frames, boxes = panning
    in_view = [np.isfinite(b[:, 0]).sum() for b in boxes]
    assert sum(k == len(DEFAULT_WALKERS) for k in in_view) > FRAMES // 3  # people in view
    motion = estimate(frames, boxes, renderer.focal)
    assert not motion.static and motion.mode == "moving"
    assert motion.translating_warning is None and motion.reason_unusable is None
    err = rotation_errors_deg(motion.rotations, path.rotations)
    assert np.median(err) <= 0.5 and err.max() <= 2.0, err
    truth_max = rotation_errors_deg(path.rotations, np.eye(3)[None].repeat(FRAMES, 0)).max()
    assert abs(motion.max_rotation_deg - truth_max) < 1.0 and truth_max > 55
    assert motion.keyframes > 1  # the pan leaves the first view: re-anchored on keyframes
    np.testing.assert_allclose(motion.rotations[0], np.eye(3))
    assert list(motion.frame_ids) == list(range(FRAMES))



@pytest.mark.parametrize("size", [(320, 180), (960, 540)])
def test_fast_pan_from_the_first_frame_is_followed(size):
    """7 deg per frame from the first frame on (about 45 px per frame at 320x180, 67 px at
    the 480-wide working size of 960x540): more than the LK pyramid follows from a standing
    start. Every frame's motion must still count: a frame whose rotation is held instead
    leaves its 7 deg out of all later frames."""
    renderer = RoomRenderer(*size)
    path = steady_pan(10, 7.0)
    frames, boxes = renderer.render_path(path)
    motion = estimate(frames, boxes, renderer.focal, size=size)
    err = rotation_errors_deg(motion.rotations, path.rotations)
    assert not motion.static and motion.reason_unusable is None
    assert np.median(err) <= 0.5 and err.max() <= 2.0, err


def test_people_boxes_are_masked_out(renderer):
    """A still camera, people walking across the view (their texture moves with them): no
    corner is taken inside a person's box, and the camera comes out still."""
    from world_render import Walker
    walkers = tuple(Walker((x, 1.6), (0.02, 0.0), seed=21 + i)
                    for i, x in enumerate((-0.55, 0.0, 0.55)))
    frames, boxes = renderer.render_path(static_path(24), walkers)

    def corners_in_boxes(given):
        est = CameraMotionEstimator(renderer.focal, (320, 240))
        est.add(0, frames[0], given)
        x, y = est._key.points.T
        return sum(int(((x > x1) & (x < x2) & (y > y1) & (y < y2)).sum())
                   for x1, y1, x2, y2 in boxes[0]), len(x)

    inside, total = corners_in_boxes(None)
    assert inside >= 10 and total > 100  # without the boxes the people have corners too
    assert corners_in_boxes(boxes[0])[0] == 0
    motion = estimate(frames, boxes, renderer.focal)
    assert motion.static and motion.median_motion_px < 0.5
    np.testing.assert_array_equal(motion.rotations, np.broadcast_to(np.eye(3), (24, 3, 3)))


def test_static_camera_is_detected_static_and_exactly_identity(renderer):
    frames, boxes = renderer.render_path(static_path(20))
    rng = np.random.default_rng(1)
    frames = [np.clip(f + rng.normal(0, 2.0, f.shape), 0, 255).astype(np.uint8) for f in frames]
    motion = estimate(frames, boxes, renderer.focal)
    assert motion.static and motion.detected_static and motion.mode == "static"
    assert motion.median_motion_px < 0.5
    assert np.array_equal(motion.rotations, np.broadcast_to(np.eye(3), (20, 3, 3)))
    # --camera moving keeps the (tiny) estimate instead
    moving = motion.with_mode("moving")
    assert not moving.static and moving.requested == "moving"
    assert rotation_errors_deg(moving.rotations, motion.rotations).max() < 0.1


def test_modes_force_static_or_moving(renderer, panning):
    path, frames, boxes = panning
    forced = estimate(frames[:10], boxes[:10], renderer.focal, mode="static")
    assert forced.static and forced.requested == "static" and not forced.detected_static
    assert np.array_equal(forced.rotations, np.broadcast_to(np.eye(3), (10, 3, 3)))
    back = forced.with_mode("auto")
    assert not back.static
    assert rotation_errors_deg(back.rotations, path.rotations[:10]).max() < 1.0
    with pytest.raises(ValueError):
        CameraMotionEstimator(400.0, (320, 240), mode="wobbly")


def test_textureless_video_is_unusable_without_crashing():
    motion = estimate(textureless_frames(12), None, 400.0)
    assert motion.reason_unusable and "texture" in motion.reason_unusable
    assert "\n" not in motion.reason_unusable
    assert motion.static and np.array_equal(motion.rotations,
                                            np.broadcast_to(np.eye(3), (12, 3, 3)))
    flat = [np.full((240, 320, 3), 128, np.uint8)] * 5
    assert estimate(flat, [np.zeros((0, 4))] * 5, 400.0).reason_unusable
    empty = CameraMotionEstimator(400.0, (320, 240)).finish()
    assert len(empty) == 0 and empty.reason_unusable


def test_translating_camera_gets_a_warning(renderer):
    path = camera_path(FRAMES, yaw_amp=5.0, pitch_amp=2.0, shift_m=0.8)
    frames, boxes = renderer.render_path(path)
    motion = estimate(frames, boxes, renderer.focal)
    assert motion.translating_warning and "moves" in motion.translating_warning
    assert motion.reason_unusable is None and not motion.static


def test_full_resolution_frames_are_worked_on_downscaled():
    """A 960x720 frame is tracked at 480 wide; the rotation comes out in the full frame's
    terms (focal and pixels of the full resolution)."""
    renderer = RoomRenderer(960, 720, supersample=1)
    path = camera_path(8, yaw_amp=4.0, pitch_amp=2.0)
    frames, boxes = renderer.render_path(path)
    est = CameraMotionEstimator(renderer.focal, (960, 720))
    assert est.work_size == (480, 360)
    for i, (frame, b) in enumerate(zip(frames, boxes)):
        est.add(i, frame, b)
    motion = est.finish()
    assert rotation_errors_deg(motion.rotations, path.rotations).max() < 0.5


def test_arrays_round_trip_and_lookup(renderer, panning):
    path, frames, boxes = panning
    motion = estimate(frames[:8], boxes[:8], renderer.focal).with_mode("moving")
    motion.frame_ids = motion.frame_ids * 2 + 10  # source indices of a subsampled stream
    back = CameraMotion.from_arrays(motion.to_arrays())
    for name in ("frame_ids", "rotations", "estimated"):
        np.testing.assert_array_equal(getattr(back, name), getattr(motion, name))
    assert back.summary() == motion.summary() and back.requested == "moving"
    np.testing.assert_array_equal(back.rotations_for([14, 10]), motion.rotations[[2, 0]])
    np.testing.assert_allclose(back.camera_to_first([12])[0] @ motion.rotations[1], np.eye(3),
                               atol=1e-12)
    with pytest.raises(KeyError):
        back.rotations_for([11])
    still = CameraMotion.static_for([3, 4, 5], 500.0, (640, 480))
    assert still.static and still.rotations_for([4]).shape == (1, 3, 3)


def test_rotation_fit_is_robust_to_outliers():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(200, 3)) * [0.4, 0.3, 0.0] + [0, 0, 1]
    a /= np.linalg.norm(a, axis=1, keepdims=True)
    truth = yaw_pitch(12.0, -5.0)
    b = a @ truth.T
    b[:60] = rng.normal(size=(60, 3)) + [0, 0, 3]  # 30 % junk
    b /= np.linalg.norm(b, axis=1, keepdims=True)
    rot, inliers, _ = fit_rotation(a, b, 1e-3, rng)
    assert inliers[60:].all() and not inliers[:60].any()
    np.testing.assert_allclose(rot, truth, atol=1e-9)
    np.testing.assert_allclose(kabsch(a[60:], b[60:]), truth, atol=1e-9)


# --- in the demo's first pass ----------------------------------------------------------------

@pytest.fixture(scope="module")
def panning_folder(renderer, tmp_path_factory):
    """The panning room as an image folder and a --boxes CSV of the people (with ids)."""
    import cv2
    frames_n = 24
    path = camera_path(frames_n, yaw_amp=15.0, pitch_amp=5.0)
    frames, boxes = renderer.render_path(path)
    root = tmp_path_factory.mktemp("camera_pass")
    folder = root / "frames"
    folder.mkdir()
    rows = ["frame,x1,y1,x2,y2,track_id"]
    for f, (frame, b) in enumerate(zip(frames, boxes)):
        cv2.imwrite(str(folder / f"{f:04d}.png"), frame[..., ::-1])
        for tid, (x1, y1, x2, y2) in enumerate(b, start=1):
            if np.isfinite(x1):
                x1, x2 = np.clip([x1, x2], 0, renderer.width - 1)
                y1, y2 = np.clip([y1, y2], 0, renderer.height - 1)
                rows.append(f"{f},{x1:.2f},{y1:.2f},{x2:.2f},{y2:.2f},{tid}")
    csv = root / "boxes.csv"
    csv.write_text("\n".join(rows) + "\n")
    return {"folder": folder, "boxes": csv, "path": path, "per_frame": boxes, "root": root}


def _no_progress(*_):
    pass


def test_first_pass_estimates_the_camera_with_boxes_and_with_a_detector(renderer,
                                                                         panning_folder):
    from maed_cli.demo_options import DemoOptions
    from maed_cli.pipeline import find_tracklets
    from maed_cli.stages import StageClock
    from maed_cli.video.detect import Detections
    from maed_cli.video.io import open_frames

    truth = panning_folder["path"].rotations
    clock = StageClock()
    options = DemoOptions(boxes=str(panning_folder["boxes"]), min_track=5)
    tracklets, motion = find_tracklets(open_frames(panning_folder["folder"]), options, None,
                                       _no_progress, clock)
    assert tracklets and list(motion.frame_ids) == list(range(len(truth)))
    assert motion.focal == pytest.approx(renderer.focal)  # the run's default focal
    assert rotation_errors_deg(motion.rotations, truth).max() < 0.5
    assert clock.seconds["camera"] > 0

    class StubDetector:  # the detector's stream protocol, giving the known boxes
        def stream(self, frames):
            for index, frame in frames:
                b = panning_folder["per_frame"][index]
                b = b[np.isfinite(b[:, 0])]
                yield index, frame, Detections(b, np.full(len(b), 0.9))

    tracklets, motion = find_tracklets(open_frames(panning_folder["folder"]),
                                       DemoOptions(min_track=5), StubDetector(), _no_progress)
    assert tracklets and rotation_errors_deg(motion.rotations, truth).max() < 0.5


def test_tracks_cache_keeps_the_camera_motion(renderer, panning_folder, tmp_path):
    from maed_cli import pipeline
    from maed_cli.demo_options import DemoOptions
    from maed_cli.pipeline import prepare_demo
    from maed_cli.tracks_cache import load_cached_tracks, save_cached_tracks

    options = DemoOptions(boxes=str(panning_folder["boxes"]), min_track=5)
    first = prepare_demo(panning_folder["folder"], tmp_path / "out", options)
    assert not first.cache_hit and first.camera_motion is not None
    assert first.camera_motion.requested == "auto" and not first.camera_motion.static
    save_cached_tracks(first.cache_file, first.tracklets, first.camera_motion)
    tracklets, camera = load_cached_tracks(first.cache_file)
    assert sorted(tracklets) == sorted(first.tracklets)
    np.testing.assert_array_equal(camera.rotations, first.camera_motion.rotations)
    assert camera.summary() == first.camera_motion.summary()

    # a cached re-run has the camera motion without decoding for it
    def no_second_pass(*args, **kwargs):
        raise AssertionError("the camera motion was estimated again")

    real = pipeline.camera_from_tracklets
    pipeline.camera_from_tracklets = no_second_pass
    try:
        again = prepare_demo(panning_folder["folder"], tmp_path / "out", options)
        options.camera = "static"  # --camera static applies to the cached estimate
        forced = prepare_demo(panning_folder["folder"], tmp_path / "out", options)
    finally:
        pipeline.camera_from_tracklets = real
    assert again.cache_hit
    np.testing.assert_array_equal(again.camera_motion.rotations,
                                  first.camera_motion.rotations)
    assert forced.cache_hit and forced.camera_motion.static
    assert forced.camera_motion.requested == "static"

    # a cache written without the camera motion (or for another focal): estimated from the
    # cached boxes in a decode-only pass
    save_cached_tracks(first.cache_file, first.tracklets)
    options.camera = "auto"
    old = prepare_demo(panning_folder["folder"], tmp_path / "out", options)
    assert old.cache_hit
    truth = panning_folder["path"].rotations
    assert rotation_errors_deg(old.camera_motion.rotations, truth).max() < 0.5
    options.focal = renderer.focal * 1.1
    refocused = prepare_demo(panning_folder["folder"], tmp_path / "out", options)
    assert refocused.cache_hit and refocused.camera_motion.focal == pytest.approx(options.focal)


@pytest.mark.slow
def test_world_scene_rendered_with_its_bodies(synthetic_body):
    """The world layer's scene (tests/world_scene.py): SMPL walkers as moving occluders."""
    from world_render import render_world_scene
    from world_scene import make_scene

    for kind in ("static", "pan"):
        scene = make_scene(synthetic_body, camera=kind, people=2, frames=40,
                           image_size=(320, 180))
        frames, boxes = render_world_scene(scene)
        est = CameraMotionEstimator(scene.focal, scene.image_size)
        for fid, frame, b in zip(scene.frame_ids, frames, boxes):
            est.add(int(fid), frame, b)
        motion = est.finish()
        err = rotation_errors_deg(motion.rotations, scene.rotations)
        assert motion.static == (kind == "static")
        assert np.median(err) <= 0.5 and err.max() <= 2.0, (kind, err)
