import math

import pytest
import torch

from maed_cli.body.geometry import (axis_angle_to_rotmat, quaternion_slerp,
                                    quaternion_to_rotmat, rot6d_to_rotmat,
                                    rotmat_to_axis_angle, rotmat_to_quaternion)


def random_rotations(n: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(n, 4, generator=g, dtype=torch.float64)
    return quaternion_to_rotmat(q)


def test_rot6d_reads_row_major_3x2_and_orthonormalises():
    x = torch.tensor([1.0, 0.0, 0.0, 1.0, 0.0, 0.0])  # columns (1,0,0) and (0,1,0)
    torch.testing.assert_close(rot6d_to_rotmat(x)[0], torch.eye(3))
    x = torch.tensor([0.0, 2.0, 3.0, 0.0, 0.0, 0.5])  # col0 = (0,3,0), col1 = (2,0,0.5)
    r = rot6d_to_rotmat(x)[0]
    torch.testing.assert_close(r[:, 0], torch.tensor([0.0, 1.0, 0.0]))
    torch.testing.assert_close(r[:, 1], torch.tensor([2.0, 0.0, 0.5]) / math.hypot(2, 0.5))
    torch.testing.assert_close(r[:, 2], torch.linalg.cross(r[:, 0], r[:, 1]))


def test_rot6d_batched_shapes():
    assert rot6d_to_rotmat(torch.randn(2, 5, 144)).shape == (2, 5, 24, 3, 3)


def test_axis_angle_round_trip():
    r = random_rotations(2000)
    torch.testing.assert_close(axis_angle_to_rotmat(rotmat_to_axis_angle(r)), r,
                               atol=1e-10, rtol=0)


@pytest.mark.parametrize("angle", [0.0, 1e-12, 1e-7, 1e-4, 1.0, math.pi - 1e-6, math.pi])
def test_axis_angle_stable_at_zero_and_pi(angle):
    axis = torch.tensor([0.3, -0.5, 0.8], dtype=torch.float64)
    axis = axis / axis.norm()
    aa = axis * angle
    r = axis_angle_to_rotmat(aa)
    back = rotmat_to_axis_angle(r)
    assert torch.isfinite(back).all()
    assert back.norm().item() == pytest.approx(angle, abs=1e-6)
    torch.testing.assert_close(axis_angle_to_rotmat(back), r, atol=1e-9, rtol=0)


def test_float32_identity_and_half_turns_have_no_nan():
    eye = torch.eye(3).expand(4, 3, 3).clone()
    assert torch.equal(rotmat_to_axis_angle(eye), torch.zeros(4, 3))
    half = torch.diag(torch.tensor([1.0, -1.0, -1.0]))  # pi about x
    aa = rotmat_to_axis_angle(half)
    assert torch.isfinite(aa).all()
    assert aa.abs()[0].item() == pytest.approx(math.pi, abs=1e-5)


def test_rodrigues_gradient_finite_at_zero():
    aa = torch.zeros(3, requires_grad=True)
    axis_angle_to_rotmat(aa).sum().backward()
    assert torch.isfinite(aa.grad).all()


def test_quaternion_round_trip_and_positive_w():
    r = random_rotations(500, seed=1)
    q = rotmat_to_quaternion(r)
    assert (q[:, 0] >= 0).all()
    torch.testing.assert_close(quaternion_to_rotmat(q), r, atol=1e-10, rtol=0)


def test_slerp_midpoint_is_half_angle():
    q0 = torch.tensor([1.0, 0.0, 0.0, 0.0], dtype=torch.float64)
    q1 = rotmat_to_quaternion(axis_angle_to_rotmat(torch.tensor([0.0, 0.0, 1.0],
                                                                dtype=torch.float64)))
    mid = quaternion_slerp(q0, q1, 0.5)
    aa = rotmat_to_axis_angle(quaternion_to_rotmat(mid))
    torch.testing.assert_close(aa, torch.tensor([0.0, 0.0, 0.5], dtype=torch.float64))
    torch.testing.assert_close(quaternion_slerp(q0, q1, 0.0), q0)
    torch.testing.assert_close(quaternion_slerp(q0, -q1, 1.0).abs(), q1.abs())
