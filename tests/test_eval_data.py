import os
import pickle
import shutil

import joblib
import numpy as np
import pytest
from eval_fixtures import gt_joints_fn, make_3dpw
from scipy.spatial.transform import Rotation

from maed_cli.body.joints import H36M_TO_J14
from maed_cli.data.evaluation_sets.db import read_db
from maed_cli.data.evaluation_sets.evalset import EvalSet
from maed_cli.safe_pickle import UnsafePickleError, load_joblib, load_pickle
from maed_cli.data.evaluation_sets.threedpw import (boxes_from_keypoints, build_from_sequences,
                                    camera_frame_pose, keypoint_box_params, load_or_build,
                                    read_sequence_file)
from maed_cli.errors import InputError


@pytest.fixture(scope="module")
def dataset(tmp_path_factory, synthetic_body):
    root = tmp_path_factory.mktemp("3dpw")
    truth = make_3dpw(root, synthetic_body)
    return root, truth


@pytest.fixture(scope="module")
def gt_fn(synthetic_body):
    return gt_joints_fn(synthetic_body)


@pytest.fixture(scope="module")
def evalset(dataset, gt_fn):
    return build_from_sequences(dataset[0], "test", gt_fn)


@pytest.fixture
def small(tmp_path, synthetic_body):
    """A one-sequence, 24-frame dataset for tests that break it."""
    make_3dpw(tmp_path, synthetic_body, sequences=1, frames=24, people=1)
    return tmp_path


# -- rows -----------------------------------------------------------------------------------
def test_rows_follow_the_selection_rules(dataset, evalset):
    _, truth = dataset
    tracks = {name: (a, b) for name, a, b in evalset.tracks()}
    assert sorted(tracks) == sorted(f"{s}_{p}" for s in truth.sequences for p in range(2))
    for name, (a, b) in tracks.items():
        frames = evalset.frame_id[a:b]
        assert np.all(np.diff(frames) > 0)
        expected = set(range(truth.frames[name.rsplit("_", 1)[0]]))
        expected -= set(range(truth.late_start.get(name, 0)))
        expected -= set(truth.few_visible.get(name, [])) | set(truth.invisible.get(name, []))
        assert set(frames.tolist()) == expected
    # invalid camera poses are kept and flagged
    a, b = tracks["synth_test_00_0"]
    flagged = evalset.frame_id[a:b][~evalset.valid[a:b]]
    assert flagged.tolist() == truth.campose_invalid["synth_test_00_0"]
    assert evalset.img_name[a].endswith(os.path.join("imageFiles", "synth_test_00",
                                                     "image_00000.jpg"))
    assert evalset.joint_set == "lsp14" and evalset.joints3d.shape == (len(evalset), 14, 3)


def test_ground_truth_is_in_the_camera_frame(dataset, evalset, gt_fn):
    root, _ = dataset
    seq = read_sequence_file(root / "sequenceFiles" / "test" / "synth_test_01.pkl")
    a, b = [(s, e) for n, s, e in evalset.tracks() if n == "synth_test_01_1"][0]
    frames = evalset.frame_id[a:b]
    world = gt_fn(seq.poses[1][frames], np.repeat(seq.betas[1][None], len(frames), 0),
                         seq.trans[1][frames])
    rot = seq.cam_poses[frames, :3, :3]
    # Rotating the root by R_cam rotates the whole body about the root: hip-centred joints
    # of the ground truth are the camera rotation of the hip-centred world joints.
    def centred(j):
        return j - j[:, [2, 3]].mean(1, keepdims=True)
    expected = np.einsum("fij,fkj->fki", rot, centred(world))
    np.testing.assert_allclose(centred(evalset.joints3d[a:b]), expected, atol=2e-5)
    np.testing.assert_allclose(evalset.shape[a:b], np.repeat(seq.betas[1][None], b - a, 0))


def test_camera_frame_pose_composes_rotations():
    rng = np.random.default_rng(0)
    pose = rng.normal(scale=0.5, size=(4, 72))
    cams = np.tile(np.eye(4), (4, 1, 1))
    cams[:, :3, :3] = Rotation.random(4, random_state=1).as_matrix()
    out = camera_frame_pose(pose, cams)
    expected = cams[:, :3, :3] @ Rotation.from_rotvec(pose[:, :3]).as_matrix()
    np.testing.assert_allclose(Rotation.from_rotvec(out[:, :3]).as_matrix(), expected,
                               atol=1e-9)
    np.testing.assert_array_equal(out[:, 3:], pose[:, 3:])


# -- boxes ------------------------------------------------------------------------------------
def _moving_keypoints(frames, first_visible=0, speed=4.0):
    """A rigid keypoint set moving right at `speed` px/frame; 100 x 200 px extent."""
    base = np.stack(np.meshgrid([0.0, 100.0], [0.0, 100.0, 200.0]), -1).reshape(-1, 2)
    base = np.concatenate([base, np.zeros((12, 2)) + [50, 100]])  # 18 points
    kp = np.zeros((frames, 18, 3))
    kp[:, :, :2] = base + np.arange(frames)[:, None, None] * np.array([speed, 0.0])
    kp[:, :, 2] = 1.0
    kp[:first_visible, :, 2] = 0.0
    return kp


def test_boxes_belong_to_their_own_frames_for_a_late_track():
    kp = _moving_keypoints(150, first_visible=9)
    boxes, start, end = boxes_from_keypoints(kp)
    assert (start, end) == (9, 150) and len(boxes) == 141
    # Linear motion survives both filters away from the ends: the box centre is the
    # keypoint-extent midpoint of the same frame (the official script is off by 9 frames).
    frames = np.arange(start, end)
    mid = slice(60, 80)  # beyond the Gaussian filter's reach (4 sigma) of both ends
    np.testing.assert_allclose(boxes[mid, 0], 50 + 4.0 * frames[mid], atol=1e-6)
    np.testing.assert_allclose(boxes[mid, 1], 100, atol=1e-9)
    np.testing.assert_allclose(boxes[mid, 2:], 1.1 * np.hypot(100, 200), rtol=1e-9)


def test_missing_box_is_interpolated():
    kp = _moving_keypoints(12)
    kp[5, :, 2] = 0.0  # nothing visible
    params, start, end = keypoint_box_params(kp)
    assert (start, end) == (0, 12)
    np.testing.assert_allclose(params[5], (params[4] + params[6]) / 2)
    kp[:, :, 2] = 0.0
    assert keypoint_box_params(kp) is None


# -- cache ----------------------------------------------------------------------------------
def test_cache_is_written_once_and_reused(dataset, evalset, gt_fn, tmp_path):
    root, _ = dataset
    cache = tmp_path / "cache"
    first, how, commit = load_or_build(root, "test", gt_fn, "body-a", cache)
    assert how == "built" and not cache.exists()  # written only when the caller commits
    commit()
    assert len(list(cache.glob("*.npz"))) == 1
    second, how, _ = load_or_build(root, "test", gt_fn, "body-a", cache)
    assert how == "cache"
    for name in ("vid_name", "frame_id", "img_name", "bbox", "joints3d", "valid", "pose"):
        np.testing.assert_array_equal(getattr(first, name), getattr(second, name))
    np.testing.assert_allclose(second.joints3d, evalset.joints3d)
    _, how, commit = load_or_build(root, "test", gt_fn, "body-b", cache)  # another body
    commit()
    assert how == "built" and len(list(cache.glob("*.npz"))) == 2


# -- bad input --------------------------------------------------------------------------------
def _build_and_expect(root, cache, match):
    with pytest.raises(InputError, match=match):
        load_or_build(root, "test", lambda *a: pytest.fail("no GT for a broken set"), "b",
                      cache)
    assert not cache.exists() or not any(cache.iterdir())  # nothing cached


def test_missing_data_dir(tmp_path):
    _build_and_expect(tmp_path / "nowhere", tmp_path / "cache", "sequence folder not found")


def test_empty_sequence_folder(tmp_path):
    (tmp_path / "sequenceFiles" / "test").mkdir(parents=True)
    _build_and_expect(tmp_path, tmp_path / "cache", "holds no sequence files")


def test_sequence_file_of_another_version(small, tmp_path):
    path = small / "sequenceFiles" / "test" / "synth_test_00.pkl"
    data = load_pickle(path)
    del data["campose_valid"]
    path.write_bytes(pickle.dumps(data, protocol=2))
    _build_and_expect(small, tmp_path / "cache", r"synth_test_00\.pkl: lacks campose_valid")


def test_sequence_file_with_wrong_shapes(small, tmp_path):
    path = small / "sequenceFiles" / "test" / "synth_test_00.pkl"
    data = load_pickle(path)
    data["poses2d"] = [kp.transpose(0, 2, 1) for kp in data["poses2d"]]  # (F, 18, 3)
    path.write_bytes(pickle.dumps(data, protocol=2))
    _build_and_expect(small, tmp_path / "cache", r"synth_test_00\.pkl: person 0: 'poses2d'")


def test_truncated_and_unsafe_sequence_files(small, tmp_path):
    path = small / "sequenceFiles" / "test" / "synth_test_00.pkl"
    original = path.read_bytes()
    path.write_bytes(original[: len(original) // 2])
    _build_and_expect(small, tmp_path / "cache", r"synth_test_00\.pkl: not a readable")
    path.write_bytes(pickle.dumps({"poses": os.system}))
    _build_and_expect(small, tmp_path / "cache", r"synth_test_00\.pkl: .*refused")


def test_missing_frames_are_named(small, tmp_path):
    (small / "imageFiles" / "synth_test_00" / "image_00014.jpg").unlink()
    (small / "imageFiles" / "synth_test_00" / "image_00015.jpg").unlink()
    _build_and_expect(small, tmp_path / "cache",
                      r"image missing: .*image_00014\.jpg \(and 1 more\)")
    shutil.rmtree(small / "imageFiles")
    _build_and_expect(small, tmp_path / "cache", r"image_00000\.jpg .*does not exist")


def test_safe_loaders_refuse_code(tmp_path):
    path = tmp_path / "evil.pt"
    joblib.dump({"a": np.array([os.system], dtype=object)}, path)
    with pytest.raises(UnsafePickleError):
        load_joblib(path)
    path.write_bytes(pickle.dumps({"a": os.system}))
    with pytest.raises(UnsafePickleError):
        load_pickle(path)


# -- db files -------------------------------------------------------------------------------
def _as_db(evalset: EvalSet, prefix: str) -> dict:
    """The evaluation set written as a VIBE/MAED `3dpw_test_db.pt` dict."""
    n = len(evalset)
    joints = np.zeros((n, 49, 4))
    joints[:, 25:39, :3] = evalset.joints3d
    joints[:, 25:39, 3] = 1.0
    rel = [os.path.join(prefix, *p.split(os.sep)[-3:]) for p in evalset.img_name]
    return {"vid_name": evalset.vid_name.astype(object), "frame_id": evalset.frame_id,
            "img_name": np.array(rel), "joints3D": joints, "joints2D": np.zeros((n, 49, 3)),
            "pose": evalset.pose.astype(np.float32), "shape": evalset.shape.astype(np.float32),
            "bbox": evalset.bbox, "valid": evalset.valid.astype(np.float32)}


@pytest.mark.parametrize("compress", [0, 3])
def test_db_file_reads_like_the_release(dataset, evalset, tmp_path, compress):
    root, _ = dataset
    path = tmp_path / "3dpw_test_db.pt"
    joblib.dump(_as_db(evalset, "/mnt/lustre/someone/data/3dpw"), path, compress=compress)
    db = read_db(path, "3dpw", "test", data_dir=root)
    assert db.img_name.tolist() == evalset.img_name.tolist()  # foreign prefix mapped
    np.testing.assert_array_equal(db.vid_name, evalset.vid_name)
    np.testing.assert_allclose(db.joints3d, evalset.joints3d)
    np.testing.assert_allclose(db.pose, evalset.pose, atol=1e-6)
    assert db.tracks() == evalset.tracks()


def test_db_file_errors(dataset, evalset, tmp_path):
    root, _ = dataset
    path = tmp_path / "3dpw_test_db.pt"
    db = _as_db(evalset, "x")
    del db["pose"]
    joblib.dump(db, path)
    with pytest.raises(InputError, match=r"3dpw_test_db\.pt: lacks pose"):
        read_db(path, "3dpw", "test", data_dir=root)
    db = _as_db(evalset, "elsewhere")
    db["img_name"] = np.array(["/nope/a/b.jpg"] * len(evalset))
    joblib.dump(db, path)
    with pytest.raises(InputError, match="cannot find its images"):
        read_db(path, "3dpw", "test", data_dir=root)
    joblib.dump({"vid_name": np.array([os.system], dtype=object)}, path)
    with pytest.raises(InputError, match="refused"):
        read_db(path, "3dpw", "test", data_dir=root)


def test_mpii3d_db_layout(dataset, evalset, tmp_path):
    root, _ = dataset
    db = _as_db(evalset, "x")
    db["joints3D"][:, [39, 41, 43], :3] = 0.5
    db["joints3D"][:, [39, 41, 43], 3] = 1.0
    db["valid_i"] = np.ones(len(evalset))
    db["valid_i"][:3] = 0
    del db["pose"], db["shape"]
    joblib.dump(db, tmp_path / "mpii3d_test_db.pt")
    mpii = read_db(tmp_path / "mpii3d_test_db.pt", "mpii3d", "test", data_dir=root)
    assert mpii.joint_set == "mpii3d17" and mpii.joints3d.shape == (len(evalset), 17, 3)
    assert not mpii.has_mesh and (~mpii.valid).sum() == 3 and mpii.notes
