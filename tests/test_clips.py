"""MAED clip planning and merging (maed_cli.clips)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from maed_cli.body.geometry import axis_angle_to_rotmat, rotmat_to_axis_angle
from maed_cli.clips import (interpolate_linear, interpolate_outputs, interpolate_rotmat,
                            interpolate_theta, plan_clips)

LENGTHS = [1, 2, 3, 15, 16, 63, 127, 128, 129, 300]


def _slot_outputs(plan):
    """Fake network outputs that say which clip slot (clip, position) produced them."""
    c, t = plan.clips.shape
    return np.arange(c * t).reshape(c, t)


@pytest.mark.parametrize("interp", [1, 2, 4, 8])
@pytest.mark.parametrize("length", LENGTHS)
def test_every_frame_predicted_exactly_once(length, interp):
    plan = plan_clips(length, interp=interp)
    assert plan.clips.shape[1] == 16
    assert plan.clips.min() >= 0 and plan.clips.max() < length
    # the sampled frames: every interp-th frame and the last one, increasing
    expected_sample = sorted(set(range(0, length, interp)) | {length - 1})
    assert plan.sample.tolist() == expected_sample
    # each sampled frame takes exactly one output slot, and no slot serves two frames
    assert len(np.unique(plan.source)) == len(plan.source) == len(plan.sample)
    # ... and that slot was fed with that very frame
    assert np.array_equal(plan.clips.reshape(-1)[plan.source], plan.sample)
    merged = plan.merge(plan.clips)              # "predict" each frame's own index
    assert np.array_equal(merged, plan.sample)


@pytest.mark.parametrize("length", LENGTHS)
def test_frame_predicted_at_its_own_slot_not_a_reflection(length):
    plan = plan_clips(length)
    slots = plan.merge(_slot_outputs(plan))      # which slot predicted frame k
    clip, pos = np.divmod(slots, 16)
    # slot of frame k within its pool is k % 128 = i + 8·j with i the clip in the pool
    pool_start = plan.pool_of_clip[clip] * 128
    i = np.array([np.flatnonzero(plan.pool_of_clip == p).tolist().index(c)
                  for p, c in zip(plan.pool_of_clip[clip], clip)])
    assert np.array_equal(pool_start + i + 8 * pos, np.arange(length))


def test_interleaving_matches_the_reference():
    plan = plan_clips(256)
    assert plan.num_clips == 16
    for p in range(2):
        for i in range(8):
            clip = plan.clips[p * 8 + i]
            assert clip.tolist() == [p * 128 + i + 8 * j for j in range(16)]
            assert plan.pool_of_clip[p * 8 + i] == p


def test_padding_is_reflection_and_padding_only_clips_are_dropped():
    plan = plan_clips(129)                     # second pool: frame 128 then reflections
    assert plan.num_clips == 9                 # 8 + one clip holding frame 128
    assert plan.clips[8].tolist() == [128 - 8 * j for j in range(16)]
    assert plan_clips(3).num_clips == 3
    assert plan_clips(1).clips.tolist() == [[0] * 16]
    short = plan_clips(15)
    assert short.num_clips == 8
    # ping-pong reflection over 0..14: slot 15 -> 13, slot 29 -> 1
    assert short.clips[7, 1] == 13 and short.clips[5, 3] == 1


def test_interp_keeps_the_8_frame_spacing():
    plan = plan_clips(253, interp=4)           # samples 0, 4, ..., 252: 64 of them
    assert plan.num_clips == 4                 # 2 pools of 32 sampled frames, 2 clips each
    assert plan.clips[0].tolist() == [8 * j for j in range(16)]
    assert plan.clips[1].tolist() == [4 + 8 * j for j in range(16)]
    assert plan.clips[2].tolist()[:2] == [128, 136]
    # the last frame is always predicted, so no frame has to be extrapolated
    longer = plan_clips(256, interp=4)
    assert longer.sample[-2:].tolist() == [252, 255]
    assert longer.num_clips == 5 and longer.clips[4, 0] == 255


def test_bad_plans():
    with pytest.raises(ValueError):
        plan_clips(0)
    with pytest.raises(ValueError, match="divide"):
        plan_clips(100, interp=3)
    with pytest.raises(ValueError, match="pool"):
        plan_clips(100, pool=64)
    plan = plan_clips(40)
    with pytest.raises(ValueError, match="shape"):
        plan.merge(np.zeros((plan.num_clips, 8)))


def test_merge_torch_keeps_trailing_dims():
    plan = plan_clips(200)
    out = torch.randn(plan.num_clips, 16, 24, 3, 3)
    merged = plan.merge(out)
    assert merged.shape == (200, 24, 3, 3)
    flat = out.reshape(-1, 24, 3, 3)
    assert torch.equal(merged[37], flat[plan.source[37]])


def _uniform_rotation(length, axis, speed):
    """R(f) = exp(f·speed·axis): constant angular velocity, (length, 3, 3), float64."""
    axis = torch.as_tensor(axis, dtype=torch.float64)
    axis = axis / axis.norm()
    f = torch.arange(length, dtype=torch.float64)[:, None]
    return axis_angle_to_rotmat(f * speed * axis)


@pytest.mark.parametrize("interp", [2, 4, 8])
def test_slerp_reconstructs_constant_angular_velocity(interp):
    length = 61
    truth = torch.stack([_uniform_rotation(length, [1, 2, 3], 0.1),
                         _uniform_rotation(length, [0, -1, 0.2], 0.35)], dim=1)  # (L, 2, 3, 3)
    plan = plan_clips(length, interp=interp)
    filled = interpolate_rotmat(plan.sample, truth[plan.sample], length)
    assert filled.shape == truth.shape
    assert torch.allclose(filled, truth, atol=1e-9)
    # linear interpolation of the matrices would not be a rotation: slerp's is
    eye = torch.eye(3, dtype=torch.float64)
    assert torch.allclose(filled @ filled.transpose(-1, -2), eye.expand_as(filled), atol=1e-9)


def test_theta_interpolation():
    length, interp = 50, 4
    plan = plan_clips(length, interp=interp)
    f = torch.arange(length, dtype=torch.float64)[:, None]
    cam = torch.cat([0.9 + 0.001 * f, 0.01 * f, -0.02 * f], dim=1)
    axes = torch.randn(24, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    axes = axes / axes.norm(dim=1, keepdim=True)
    pose = rotmat_to_axis_angle(axis_angle_to_rotmat(f[:, :, None] * 0.05 * axes[None]))
    betas = torch.linspace(-1, 1, 10, dtype=torch.float64)[None].repeat(length, 1) + 0.01 * f
    theta = torch.cat([cam, pose.reshape(length, 72), betas], dim=1)
    filled = interpolate_theta(plan.sample, theta[plan.sample], length)
    assert filled.shape == (length, 85)
    assert torch.allclose(filled, theta, atol=1e-8)
    # numpy in, numpy out
    filled_np = interpolate_theta(plan.sample, theta[plan.sample].numpy(), length)
    assert isinstance(filled_np, np.ndarray) and np.allclose(filled_np, theta.numpy(), atol=1e-8)


def test_interpolate_linear_and_outputs_dict():
    sample = np.array([0, 4, 8, 9])
    values = np.array([[0.0], [4.0], [8.0], [20.0]])
    out = interpolate_linear(sample, values, 10)
    assert out[:, 0].tolist() == [0, 1, 2, 3, 4, 5, 6, 7, 8, 20]
    rot = _uniform_rotation(10, [0, 0, 1], 0.2)
    outputs = {"cam": torch.arange(4, dtype=torch.float64)[:, None].repeat(1, 3),
               "rotmat": rot[sample][:, None], "pose6d": rot[sample][:, None, :, :2].reshape(4, 6)}
    filled = interpolate_outputs(sample, outputs, 10)
    assert torch.allclose(filled["rotmat"][:, 0], rot, atol=1e-9)
    assert torch.allclose(filled["pose6d"], rot[:, :, :2].reshape(10, 6), atol=1e-9)
    assert filled["cam"][2, 0].item() == pytest.approx(0.5)
    # a single prediction fills everything
    assert np.array_equal(interpolate_linear(np.array([0]), np.ones((1, 2)), 5), np.ones((5, 2)))
