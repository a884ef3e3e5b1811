import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from maed_cli.evaluate.metrics import (accel, accel_error, center_on_hips, mpjpe, pa_mpjpe, pve,
                                       similarity_align)


def _joints(rng, frames, joints=14):
    return rng.normal(scale=0.3, size=(frames, joints, 3))


def test_mpjpe_hand_computed():
    gt = np.zeros((1, 2, 3))
    pred = np.array([[[0.003, 0.004, 0.0], [0.0, 0.0, 0.010]]])  # 5 mm and 10 mm
    np.testing.assert_allclose(mpjpe(pred, gt), [7.5])
    np.testing.assert_allclose(pve(pred, gt), [7.5])


def test_pa_mpjpe_is_zero_for_a_similarity_transform():
    rng = np.random.default_rng(0)
    gt = _joints(rng, 5)
    rot = Rotation.from_euler("xyz", [30, -70, 140], degrees=True).as_matrix()
    pred = 2.5 * gt @ rot.T + np.array([1.0, -2.0, 3.0])
    assert mpjpe(pred, gt).min() > 100  # far apart before alignment
    np.testing.assert_allclose(pa_mpjpe(pred, gt), 0, atol=1e-9)
    np.testing.assert_allclose(similarity_align(pred, gt), gt, atol=1e-12)


def test_pa_mpjpe_hand_computed_residual():
    # A square (any size) fitted to a 2 x 1 rectangle: by symmetry no rotation, and the
    gt = np.array([[[-1, -0.5, 0], [1, -0.5, 0], [1, 0.5, 0], [-1, 0.5, 0]]], float)
    pred = np.array([[[-1, -1, 0], [1, -1, 0], [1, 1, 0], [-1, 1, 0]]], float) * 7.0
    # least-squares half side is (1 + 0.5) / 2 = 0.75: every corner is off by 0.25 in x and
    # in y, i.e. 0.25 * sqrt(2) m.
    np.testing.assert_allclose(pa_mpjpe(pred, gt), [0.25 * np.sqrt(2) * 1000], rtol=1e-12)


def test_pa_mpjpe_never_uses_a_reflection():
    rng = np.random.default_rng(1)
    gt = _joints(rng, 4)
    mirrored = gt * np.array([-1.0, 1.0, 1.0])
    aligned = similarity_align(mirrored, gt)
    assert pa_mpjpe(mirrored, gt).min() > 1.0
    for frame in range(4):  # recover R from the aligned points: a proper rotation
        x0 = mirrored[frame] - mirrored[frame].mean(0)
        y0 = aligned[frame] - aligned[frame].mean(0)
        r, *_ = np.linalg.lstsq(x0, y0, rcond=None)
        assert np.linalg.det(r) > 0


@pytest.mark.parametrize("batch", [1, 2, 3, 1000])
def test_batched_metrics_match_per_frame(batch):
    rng = np.random.default_rng(batch)
    gt = _joints(rng, batch)
    pred = gt + rng.normal(scale=0.05, size=gt.shape)
    batched = pa_mpjpe(pred, gt)
    assert batched.shape == (batch,)
    single = np.array([pa_mpjpe(pred[i:i + 1], gt[i:i + 1])[0] for i in range(batch)])
    unbatched = np.array([pa_mpjpe(pred[i], gt[i]) for i in range(batch)])  # (J, 3) inputs
    np.testing.assert_allclose(batched, single, rtol=1e-10)
    np.testing.assert_allclose(batched, unbatched, rtol=1e-10)
    np.testing.assert_allclose(mpjpe(pred, gt),
                               [mpjpe(pred[i], gt[i]) for i in range(batch)], rtol=1e-12)
    # Procrustes minimises the squared error, so that (not the mean distance) can only drop.
    sq_aligned = ((similarity_align(pred, gt) - gt) ** 2).sum(axis=(1, 2))
    assert np.all(sq_aligned <= ((pred - gt) ** 2).sum(axis=(1, 2)) + 1e-12)


def test_three_joints_three_frames_not_confused_with_transpose():
    # (3, 3, 3): the shape the VIBE batched Procrustes mis-handled.
    rng = np.random.default_rng(3)
    gt = _joints(rng, 3, joints=3)
    rot = Rotation.from_euler("z", 40, degrees=True).as_matrix()
    pred = 0.5 * gt @ rot.T + 0.2
    np.testing.assert_allclose(pa_mpjpe(pred, gt), 0, atol=1e-9)


def test_accel_of_constant_velocity_is_zero():
    t = np.arange(50, dtype=float)[:, None, None]
    start = np.random.default_rng(4).normal(size=(1, 14, 3))
    sequence = start + t * np.array([0.01, -0.02, 0.005])
    values = accel(sequence)
    assert values.shape == (48,)
    np.testing.assert_allclose(values, 0, atol=1e-9)


def test_accel_hand_computed():
    # One joint at rest, then a 2 mm step at frame 2: second differences 2, -2 mm.
    x = np.zeros((4, 1, 3))
    x[2:, 0, 0] = 0.002
    np.testing.assert_allclose(accel(x), [2.0, 2.0])
    np.testing.assert_allclose(accel_error(x, np.zeros_like(x)), [2.0, 2.0])


def test_accel_error_zero_for_ground_truth_and_known_for_offsets():
    rng = np.random.default_rng(5)
    gt = _joints(rng, 30)
    np.testing.assert_allclose(accel_error(gt, gt), 0, atol=1e-12)
    # A constant offset and a constant-velocity drift leave the acceleration unchanged.
    drift = np.arange(30)[:, None, None] * np.array([0.003, 0.0, 0.0])
    np.testing.assert_allclose(accel_error(gt + 0.1 + drift, gt), 0, atol=1e-9)
    # A parabola adds exactly its (constant) second difference: 2a per frame².
    parabola = (np.arange(30) ** 2)[:, None, None] * np.array([0.0, 0.0005, 0.0])
    np.testing.assert_allclose(accel_error(gt + parabola, gt), 1.0, rtol=1e-9)


def test_accel_per_sequence_drops_boundary_triples():
    a = np.zeros((5, 2, 3))
    b = np.ones((4, 2, 3))  # jumps by 1 m at the boundary
    both = np.concatenate([a, b])
    ids = np.array([0] * 5 + [1] * 4)
    concatenated = accel(both)
    assert concatenated.shape == (7,) and concatenated.max() > 100
    per_sequence = accel(both, ids)
    assert per_sequence.shape == (3 + 2,)
    np.testing.assert_allclose(per_sequence, 0)
    np.testing.assert_allclose(accel_error(both, np.zeros_like(both), ids), 0)


def test_accel_of_short_sequences_is_empty():
    assert accel(np.zeros((2, 14, 3))).shape == (0,)
    assert accel_error(np.zeros((1, 14, 3)), np.zeros((1, 14, 3)), np.zeros(1)).shape == (0,)


def test_center_on_hips():
    joints = np.random.default_rng(6).normal(size=(7, 14, 3))
    centred = center_on_hips(joints)
    np.testing.assert_allclose(centred[:, [2, 3]].mean(1), 0, atol=1e-12)
    np.testing.assert_allclose(centred - joints, np.broadcast_to(
        -joints[:, [2, 3]].mean(1, keepdims=True), joints.shape))


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError):
        mpjpe(np.zeros((2, 14, 3)), np.zeros((2, 17, 3)))
