import numpy as np
import pytest
import torch

from maed_cli.body.geometry import axis_angle_to_rotmat
from maed_cli.smoothing import OneEuroParams, one_euro, smooth_rotations, smooth_track
from maed_cli.results import TrackResult


def test_constant_signal_is_unchanged():
    x = np.tile([[1.0, -2.0, 3.0]], (20, 1))
    np.testing.assert_allclose(one_euro(x, np.arange(20) / 30.0), x)


def accel_error(x, truth):
    accel = lambda v: v[2:] - 2 * v[1:-1] + v[:-2]
    return np.linalg.norm((accel(x) - accel(truth)).reshape(len(x) - 2, -1), axis=1).mean()


def test_one_euro_reduces_jitter_and_follows_fast_motion():
    rng = np.random.default_rng(0)
    t = np.arange(120) / 30.0
    truth = np.sin(2 * np.pi * 0.3 * t)[:, None]
    noisy = truth + rng.normal(scale=0.05, size=truth.shape)
    smooth = one_euro(noisy, t)
    # jitter (the acceleration error, as in the evaluations) drops a lot, lag stays small
    assert accel_error(smooth, truth) < 0.5 * accel_error(noisy, truth)
    assert np.abs(smooth - truth)[10:].mean() < 2.0 * np.abs(noisy - truth)[10:].mean()
    # a step: a larger beta follows it sooner
    step = np.r_[np.zeros(30), np.ones(30)][:, None]
    slow = one_euro(step, t[:60], OneEuroParams(min_cutoff=0.5, beta=0.0))
    fast = one_euro(step, t[:60], OneEuroParams(min_cutoff=0.5, beta=5.0))
    assert fast[33, 0] > slow[33, 0] + 0.1


def test_rotations_stay_rotations_and_get_closer_to_truth():
    rng = np.random.default_rng(1)
    n = 90
    t = np.arange(n) / 30.0
    axis_angle = np.stack([0.8 * np.sin(t), 0.5 * np.cos(1.3 * t), 0.3 * t], 1)[:, None]
    truth = axis_angle_to_rotmat(torch.as_tensor(axis_angle)).numpy()  # (n, 1, 3, 3)
    noisy = axis_angle_to_rotmat(torch.as_tensor(
        axis_angle + rng.normal(scale=0.05, size=axis_angle.shape))).numpy()
    smooth = smooth_rotations(noisy, t)
    eye = np.einsum("...ji,...jk->...ik", smooth, smooth)
    np.testing.assert_allclose(eye, np.broadcast_to(np.eye(3), eye.shape), atol=1e-6)
    np.testing.assert_allclose(np.linalg.det(smooth), 1.0, atol=1e-6)
    assert accel_error(smooth, truth) < 0.5 * accel_error(noisy, truth)
    err = lambda r: np.linalg.norm(r - truth, axis=(-2, -1))[10:].mean()
    assert err(smooth) < 2.0 * err(noisy)


def test_smooth_track_recomputes_the_body(synthetic_body):
    rng = np.random.default_rng(2)
    n = 12
    pose = rng.normal(scale=0.2, size=(n, 72)).astype(np.float32)
    rotmat = axis_angle_to_rotmat(torch.as_tensor(pose).reshape(n, 24, 3)).numpy()
    track = TrackResult(track_id=1, frame_ids=np.arange(n), pose=pose, rotmat=rotmat,
                        betas=np.zeros((n, 10), np.float32),
                        cam_t=rng.normal(size=(n, 3)).astype(np.float32),
                        orig_cam=np.tile([0.5, 0.6, 0.0, 0.0], (n, 1)).astype(np.float32))
    out = smooth_track(track, 30.0, body=synthetic_body, image_size=(160, 120))
    assert out.verts.shape == (n, 6890, 3) and out.joints2d_img_coord.shape == (n, 49, 2)
    ref = synthetic_body(rotmat=torch.as_tensor(out.rotmat), betas=torch.zeros(n, 10))
    np.testing.assert_allclose(out.verts, ref.vertices.numpy(), atol=1e-5)
    assert not np.allclose(out.rotmat, track.rotmat)  # it did smooth
    np.testing.assert_array_equal(track.rotmat, rotmat)  # the input is untouched
