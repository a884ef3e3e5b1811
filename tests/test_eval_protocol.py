import numpy as np
import pytest
import torch
from eval_fixtures import gt_joints_fn, make_3dpw
from scipy.spatial.transform import Rotation

from maed_cli.data.evaluation_sets.threedpw import build_from_sequences
from maed_cli.evaluate import metrics
from maed_cli.evaluate.protocol import (Predictions, load_predictions, save_predictions, score)
from maed_cli.errors import InputError


@pytest.fixture(scope="module")
def evalset(tmp_path_factory, synthetic_body):
    root = tmp_path_factory.mktemp("3dpw")
    make_3dpw(root, synthetic_body, sequences=2, frames=60)
    return build_from_sequences(root, "test", gt_joints_fn(synthetic_body))


def test_ground_truth_as_prediction_scores_zero(synthetic_body, evalset):
    result = score(evalset, Predictions(pose=evalset.pose, betas=evalset.shape),
                   synthetic_body)
    summary = result.summary()
    for key in ("mpjpe", "pa_mpjpe", "pve"):
        assert summary[key] == pytest.approx(0, abs=1e-3), key
    for key in ("accel_error",):
        for style in ("concatenated", "per_sequence"):
            assert summary[key][style] == pytest.approx(0, abs=1e-3)
    # accel is the prediction's own acceleration: the ground truth's, not 0
    expected = metrics.accel(metrics.center_on_hips(evalset.joints3d))
    np.testing.assert_allclose(result.accel_concat, expected, atol=1e-3)
    assert len(result.accel_concat) == len(evalset) - 2
    assert len(result.accel_seq) == len(evalset) - 2 * len(evalset.tracks())
    assert [t["name"] for t in result.tracks] == [n for n, _, _ in evalset.tracks()]


def test_known_rotation_gives_the_predicted_errors(synthetic_body, evalset):
    """Turning every predicted body by 20 degrees about its root (vertical axis): PA-MPJPE
    stays 0 and MPJPE, PVE and accel error equal what the rotation does to the ground
    truth."""
    rot = Rotation.from_euler("y", 20, degrees=True)
    pose = evalset.pose.copy()
    pose[:, :3] = (rot * Rotation.from_rotvec(pose[:, :3])).as_rotvec()
    result = score(evalset, Predictions(pose=pose, betas=evalset.shape), synthetic_body)
    r = rot.as_matrix()
    gt = metrics.center_on_hips(evalset.joints3d)
    turned = gt @ r.T
    np.testing.assert_allclose(result.pa_mpjpe, 0, atol=1e-3)
    np.testing.assert_allclose(result.mpjpe, np.linalg.norm(turned - gt, axis=-1).mean(-1) * 1000,
                               rtol=1e-4, atol=1e-3)
    assert result.mpjpe.mean() > 20
    # vertices turn about the root joint
    body = synthetic_body
    with torch.no_grad():
        out = body(pose=torch.as_tensor(evalset.pose, dtype=torch.float32),
                   betas=torch.as_tensor(evalset.shape, dtype=torch.float32))
    verts = out.vertices.double().numpy()
    root = out.smpl24[:, :1].double().numpy()
    expected_pve = np.linalg.norm((verts - root) @ r.T - (verts - root), axis=-1).mean(-1) * 1000
    np.testing.assert_allclose(result.pve, expected_pve, rtol=1e-4, atol=1e-3)
    ids = np.concatenate([[i] * (b - a) for i, (_, a, b) in enumerate(evalset.tracks())])
    np.testing.assert_allclose(result.accel_error_seq,
                               metrics.accel_error(turned, gt, ids), rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(result.accel_error_concat, metrics.accel_error(turned, gt),
                               rtol=1e-4, atol=1e-3)


def test_rotmat_and_axis_angle_predictions_agree(synthetic_body, evalset):
    part = evalset.take(slice(0, 40))
    rotmat = Rotation.from_rotvec(part.pose.reshape(-1, 3)).as_matrix().reshape(-1, 24, 3, 3)
    rng = np.random.default_rng(0)
    betas = part.shape + rng.normal(scale=0.3, size=part.shape.shape)
    a = score(part, Predictions(pose=part.pose, betas=betas), synthetic_body)
    b = score(part, Predictions(rotmat=rotmat, betas=betas), synthetic_body)
    np.testing.assert_allclose(a.pve, b.pve, atol=1e-3)
    assert a.pve.mean() > 1.0  # other betas, another mesh


def test_prediction_files_round_trip_and_match_rows(synthetic_body, evalset, tmp_path):
    preds = Predictions(pose=evalset.pose, betas=evalset.shape,
                        cam=np.ones((len(evalset), 3)))
    path = save_predictions(tmp_path / "p.npz", evalset, preds)
    # shuffled and with an extra row: matched by (vid_name, frame_id)
    with np.load(path) as data:
        arrays = {k: data[k] for k in data.files}
    order = np.random.default_rng(1).permutation(len(evalset))
    shuffled = {k: v[order] for k, v in arrays.items()}
    shuffled["vid_name"] = np.concatenate([shuffled["vid_name"], ["other_0"]])
    shuffled["frame_id"] = np.concatenate([shuffled["frame_id"], [0]])
    shuffled["pose"] = np.concatenate([shuffled["pose"], np.zeros((1, 72))])
    shuffled["betas"] = np.concatenate([shuffled["betas"], np.zeros((1, 10))])
    del shuffled["cam"]
    np.savez(tmp_path / "s.npz", **shuffled)
    loaded = load_predictions(tmp_path / "s.npz", evalset)
    np.testing.assert_allclose(loaded.pose, evalset.pose, atol=1e-6)
    partial = {k: v[:-5] for k, v in arrays.items()}
    np.savez(tmp_path / "partial.npz", **partial)
    with pytest.raises(InputError, match=r"no prediction for 5 of the"):
        load_predictions(tmp_path / "partial.npz", evalset)
