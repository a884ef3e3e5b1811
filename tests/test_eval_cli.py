"""`maed eval` end to end on a synthetic 3DPW (2 sequences x 2 people x 150 frames)."""
import json
import os
import pickle

import numpy as np
import pytest
from eval_fixtures import gt_joints_fn, install_synthetic_smpl, make_3dpw
from scipy.spatial.transform import Rotation

from maed_cli.cli import main
from maed_cli.safe_pickle import load_pickle
from maed_cli.data.evaluation_sets.threedpw import build_from_sequences
from maed_cli.evaluate import metrics


@pytest.fixture(scope="module")
def dataset(tmp_path_factory, synthetic_body):
    root = tmp_path_factory.mktemp("3dpw")
    truth = make_3dpw(root, synthetic_body, sequences=2, frames=150, people=2)
    return root, truth


@pytest.fixture(scope="module")
def evalset(dataset, synthetic_body):
    return build_from_sequences(dataset[0], "test", gt_joints_fn(synthetic_body))


@pytest.fixture
def home(_isolated_asset_home, synthetic_assets):
    install_synthetic_smpl(synthetic_assets, _isolated_asset_home)
    return _isolated_asset_home


def ground_truth_predictions(root, path, turn_degrees=0.0):
    """Every frame of every person, straight from the sequence files (independently of the
    reader): the global orientation rotated into the camera frame, optionally turned further
    about the camera's vertical axis."""
    names, frames, poses, betas = [], [], [], []
    for seq_file in sorted((root / "sequenceFiles" / "test").glob("*.pkl")):
        data = load_pickle(seq_file)
        turn = Rotation.from_euler("y", turn_degrees, degrees=True)
        for p, pose in enumerate(data["poses"]):
            cam = Rotation.from_matrix(data["cam_poses"][:, :3, :3])
            pose = pose.copy()
            pose[:, :3] = (turn * cam * Rotation.from_rotvec(pose[:, :3])).as_rotvec()
            names += [f"{seq_file.stem}_{p}"] * len(pose)
            frames += list(range(len(pose)))
            poses.append(pose)
            betas.append(np.repeat(data["betas"][p][None, :10], len(pose), 0))
    np.savez(path, vid_name=np.array(names), frame_id=np.array(frames),
             pose=np.concatenate(poses), betas=np.concatenate(betas))
    return path


def run(*args):
    return main(["eval", "--dataset", "3dpw", "--quiet", *map(str, args)])


def test_ground_truth_predictions_score_zero(dataset, evalset, home, tmp_path, capsys):
    root, truth = dataset
    preds = ground_truth_predictions(root, tmp_path / "gt.npz")
    out = tmp_path / "report.json"
    saved = tmp_path / "saved.npz"
    assert run("--data-dir", root, "--predictions", preds, "--output", out,
               "--save-predictions", saved) == 0
    table = capsys.readouterr().out
    assert "PA-MPJPE" in table and "45.7" in table and "accel error" in table
    report = json.loads(out.read_text())
    m = report["metrics"]
    for value in (m["mpjpe"], m["pa_mpjpe"], m["pve"], m["accel_error"]["concatenated"],
                  m["accel_error"]["per_sequence"]):
        assert value == pytest.approx(0, abs=1e-3)
    assert m["accel"]["concatenated"] > 1  # the motion's own acceleration
    expected_frames = sum(truth.frames.values()) * 2 - sum(truth.late_start.values()) - sum(
        len(v) for v in truth.few_visible.values()) - sum(len(v) for v in truth.invisible.values())
    assert report["counts"]["frames"] == expected_frames == len(evalset)
    assert report["counts"]["sequences"] == 4
    # the official code's order: os.listdir of the sequence folder, people by index
    listed = [f[:-4] for f in os.listdir(root / "sequenceFiles" / "test")]
    assert [s["name"] for s in report["per_sequence"]] == [
        f"{seq}_{p}" for seq in listed for p in range(2)]
    assert report["protocol"]["sequence_order"]["mode"] == "listdir"
    assert report["paper"]["pa_mpjpe"] == 45.7
    assert "concatenated" in report["definitions"]["style_concatenated"]
    with np.load(saved) as data:
        assert len(data["pose"]) == len(evalset)
        np.testing.assert_allclose(data["mpjpe"], 0, atol=1e-3)
    assert len(list((home / "cache").glob("3dpw_test_*.npz"))) == 1
    # a second run reads the cached set
    assert run("--data-dir", root, "--predictions", preds, "--json") == 0
    again = json.loads(capsys.readouterr().out)
    assert again["source"].endswith("(cached set)") and again["metrics"] == report["metrics"]


def test_a_known_turn_gives_the_predicted_errors(dataset, evalset, home, tmp_path, capsys):
    root, _ = dataset
    preds = ground_truth_predictions(root, tmp_path / "turned.npz", turn_degrees=15.0)
    # the set built here is in sorted order: the concatenated accel error runs through it so
    assert run("--data-dir", root, "--predictions", preds, "--json", "--sequence-order",
               "sorted") == 0
    report = json.loads(capsys.readouterr().out)
    gt = metrics.center_on_hips(evalset.joints3d)
    turned = gt @ Rotation.from_euler("y", 15, degrees=True).as_matrix().T
    m = report["metrics"]
    assert m["pa_mpjpe"] == pytest.approx(0, abs=1e-3)
    assert m["mpjpe"] == pytest.approx(metrics.mpjpe(turned, gt).mean(), rel=1e-4)
    assert m["accel_error"]["concatenated"] == pytest.approx(
        metrics.accel_error(turned, gt).mean(), rel=1e-3)
    assert m["mpjpe"] > 15
    # in os.listdir order only the concatenated accelerations change (when that order differs)
    assert run("--data-dir", root, "--predictions", preds, "--json") == 0
    listed = json.loads(capsys.readouterr().out)
    same = ["mpjpe", "pa_mpjpe", "pve"]
    assert [listed["metrics"][k] for k in same] == pytest.approx([m[k] for k in same])
    assert listed["metrics"]["accel_error"]["per_sequence"] == pytest.approx(
        m["accel_error"]["per_sequence"])
    by_name = {t["name"]: t for t in report["per_sequence"]}
    assert all(t == pytest.approx(by_name[t["name"]]) for t in listed["per_sequence"])
    order = listed["protocol"]["sequence_order"]["sequences"]
    if order != sorted(order):
        assert listed["metrics"]["accel_error"]["concatenated"] != pytest.approx(
            m["accel_error"]["concatenated"], rel=1e-6)


def test_limit_and_db_file(dataset, evalset, home, tmp_path, capsys):
    import joblib
    root, _ = dataset
    n = len(evalset)
    joints = np.zeros((n, 49, 4))
    joints[:, 25:39, :3] = evalset.joints3d
    joints[:, 25:39, 3] = 1
    joblib.dump({"vid_name": evalset.vid_name, "frame_id": evalset.frame_id,
                 "img_name": evalset.img_name, "joints3D": joints, "pose": evalset.pose,
                 "shape": evalset.shape, "bbox": evalset.bbox, "valid": evalset.valid},
                tmp_path / "3dpw_test_db.pt")
    preds = ground_truth_predictions(root, tmp_path / "gt.npz")
    assert run("--data-dir", tmp_path, "--predictions", preds, "--limit", 200, "--json") == 0
    report = json.loads(capsys.readouterr().out)
    assert report["counts"]["frames"] == 200 and report["counts"]["frames_in_set"] == n
    assert report["source"].startswith("db file")
    assert report["metrics"]["mpjpe"] == pytest.approx(0, abs=1e-3)


# -- bad input: one red line naming the problem, nothing written ------------------------------
def _fails(capsys, *args, match):
    assert run(*args) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "error:" in err
    assert match in " ".join(err.split()), err
    return err


def _nothing_written(home, tmp_path):
    assert not (tmp_path / "out.json").exists()
    assert not (home / "cache").exists() or not any((home / "cache").iterdir())


def test_missing_data_dir(home, tmp_path, capsys):
    _fails(capsys, "--data-dir", tmp_path / "nowhere", "--predictions", tmp_path / "p.npz",
           match=f"data folder not found: {tmp_path / 'nowhere'}")


def test_partial_data_dir(home, tmp_path, capsys, synthetic_body):
    make_3dpw(tmp_path / "d", synthetic_body, sequences=1, frames=20, people=1)
    preds = ground_truth_predictions(tmp_path / "d", tmp_path / "p.npz")
    empty = tmp_path / "empty"
    empty.mkdir()
    _fails(capsys, "--data-dir", empty, "--predictions", preds,
           match="neither sequenceFiles/ (the official 3DPW release) nor 3dpw_test_db.pt")
    _fails(capsys, "--data-dir", tmp_path / "d", "--split", "val", "--predictions", preds,
           match="sequenceFiles/validation")
    import shutil
    shutil.rmtree(tmp_path / "d" / "imageFiles")
    _fails(capsys, "--data-dir", tmp_path / "d", "--predictions", preds, "--output",
           tmp_path / "out.json", match="image_00000.jpg")
    _nothing_written(home, tmp_path)


def test_wrong_version_sequence_file(home, tmp_path, capsys, synthetic_body):
    make_3dpw(tmp_path / "d", synthetic_body, sequences=1, frames=20, people=1)
    preds = ground_truth_predictions(tmp_path / "d", tmp_path / "p.npz")
    path = tmp_path / "d" / "sequenceFiles" / "test" / "synth_test_00.pkl"
    data = load_pickle(path)
    del data["campose_valid"], data["img_frame_ids"]
    path.write_bytes(pickle.dumps(data, protocol=2))
    _fails(capsys, "--data-dir", tmp_path / "d", "--predictions", preds, "--output",
           tmp_path / "out.json", match="synth_test_00.pkl: lacks campose_valid, img_frame_ids")
    _nothing_written(home, tmp_path)


def test_missing_frames_on_disk(home, tmp_path, capsys, synthetic_body):
    make_3dpw(tmp_path / "d", synthetic_body, sequences=1, frames=20, people=1)
    preds = ground_truth_predictions(tmp_path / "d", tmp_path / "p.npz")
    (tmp_path / "d" / "imageFiles" / "synth_test_00" / "image_00003.jpg").unlink()
    _fails(capsys, "--data-dir", tmp_path / "d", "--predictions", preds, "--output",
           tmp_path / "out.json", match="image_00003.jpg")
    _nothing_written(home, tmp_path)


def test_a_run_failing_late_caches_nothing(home, tmp_path, capsys, synthetic_body):
    make_3dpw(tmp_path / "d", synthetic_body, sequences=1, frames=20, people=1)
    preds = ground_truth_predictions(tmp_path / "d", tmp_path / "p.npz")
    with np.load(preds) as data:
        np.savez(tmp_path / "partial.npz", **{k: v[:-3] for k, v in data.items()})
    _fails(capsys, "--data-dir", tmp_path / "d", "--predictions", tmp_path / "partial.npz",
           "--output", tmp_path / "out.json", match="no prediction for 3 of the")
    _nothing_written(home, tmp_path)


def test_output_locations_are_checked_before_any_work(home, tmp_path, capsys):
    a_file = tmp_path / "text.mp4"
    a_file.write_text("not a dataset")
    _fails(capsys, "--data-dir", a_file, "--predictions", a_file,
           match="--data-dir " + str(a_file) + ": is a file; give the dataset folder")
    for option, value, message in (("--output", tmp_path, "is a folder; give a file name"),
                                   ("--save-predictions", a_file / "p.npz",
                                    f"{a_file} is a file, not a folder"),
                                   ("--cache-dir", "/proc/x/y", "cannot write in /proc")):
        _fails(capsys, "--data-dir", tmp_path, "--predictions", a_file, option, value,
               match=f"{option} {value}: {message}")


def test_unreadable_predictions_file_is_named(dataset, home, tmp_path, capsys):
    text = tmp_path / "text.npz"
    text.write_text("not an archive")
    _fails(capsys, "--data-dir", dataset[0], "--predictions", text,
           match=f"{text}: not an .npz file (numpy's archive of arrays")
    _fails(capsys, "--data-dir", dataset[0], "--predictions", tmp_path,
           match="is a folder; give the .npz file")


def test_report_and_predictions_are_written_both_or_neither(dataset, home, tmp_path, capsys,
                                                            monkeypatch):
    import types

    from maed_cli.evaluate import protocol, runner

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    preds = ground_truth_predictions(dataset[0], tmp_path / "gt.npz")
    for module, name, failing in ((protocol, "save_predictions", disk_full),
                                  (runner, "json", types.SimpleNamespace(dumps=disk_full))):
        with monkeypatch.context() as patch:
            patch.setattr(module, name, failing)
            assert run("--data-dir", dataset[0], "--predictions", preds, "--output",
                       tmp_path / "out.json", "--save-predictions", tmp_path / "saved.npz") == 1
        assert "No space left on device" in capsys.readouterr().err
        assert not list(tmp_path.glob("*out*")) and not list(tmp_path.glob("*saved*")), name


def test_bad_options(home, tmp_path, capsys):
    _fails(capsys, "--data-dir", tmp_path, "--interp", 3, match="--interp 3")
    _fails(capsys, "--data-dir", tmp_path, "--split", "train", match="--split 'train'")
    _fails(capsys, "--data-dir", tmp_path, match="no MAED checkpoint found")


@pytest.mark.slow  # ~15-30 s on 2 CPU cores: one 16-frame clip through a 1-block MAED
def test_network_end_to_end(dataset, home, tmp_path, capsys):
    """A 1-block MAED checkpoint through `maed eval` (one frame: a single 16-frame clip)."""
    import torch

    from maed_cli.model import MAED, save_checkpoint

    root, _ = dataset
    torch.manual_seed(0)
    ckpt = save_checkpoint(tmp_path / "tiny.pt", MAED(num_blocks=1))
    out = tmp_path / "report.json"
    saved = tmp_path / "pred.npz"
    assert run("--data-dir", root, "--checkpoint", ckpt, "--limit", 1, "--workers", 0,
               "--output", out, "--save-predictions", saved) == 0
    assert "PA-MPJPE" in capsys.readouterr().out
    report = json.loads(out.read_text())
    assert report["checkpoint"]["config"]["num_blocks"] == 1
    assert report["predictions"] == "network" and report["counts"]["frames"] == 1
    m = report["metrics"]
    assert all(np.isfinite(m[k]) and m[k] > 0 for k in ("mpjpe", "pa_mpjpe", "pve"))
    assert m["accel"]["concatenated"] is None  # one frame has no acceleration
    with np.load(saved) as data:
        assert data["pose"].shape == (1, 72) and data["cam"].shape == (1, 3)
    # the saved predictions score the same through --predictions
    assert run("--data-dir", root, "--predictions", saved, "--limit", 1, "--json") == 0
    again = json.loads(capsys.readouterr().out)["metrics"]
    assert again["mpjpe"] == pytest.approx(m["mpjpe"], abs=1e-2)
    assert again["pve"] == pytest.approx(m["pve"], abs=1e-2)


@pytest.mark.parametrize("name", ["mpii3d", "h36m"])
def test_other_datasets_from_db_files(name, dataset, evalset, home, tmp_path, capsys,
                                      synthetic_body):
    """MPI-INF-3DHP / Human3.6M db layouts (17 joints at 25..38 + 39, 41, 43) scored from the
    49-joint set (3DHP) or J_regressor_h36m (H36M); GT predictions give 0."""
    import joblib
    import torch

    from maed_cli.body.joints import H36M_TO_J17, J49_TO_MPII3D

    root, _ = dataset
    with torch.no_grad():
        out = synthetic_body(pose=torch.as_tensor(evalset.pose, dtype=torch.float32),
                             betas=torch.as_tensor(evalset.shape, dtype=torch.float32))
    gt17 = (out.joints49[:, list(J49_TO_MPII3D)] if name == "mpii3d"
            else out.joints_h36m17[:, list(H36M_TO_J17)]).numpy()
    joints = np.zeros((len(evalset), 49, 4))
    joints[:, list(range(25, 39)) + [39, 41, 43], :3] = gt17 + 0.3  # root offset: no matter
    joints[:, list(range(25, 39)) + [39, 41, 43], 3] = 1
    (tmp_path / "database").mkdir()
    joblib.dump({"vid_name": evalset.vid_name, "frame_id": evalset.frame_id,
                 "img_name": evalset.img_name, "joints3D": joints, "bbox": evalset.bbox,
                 "valid_i": np.ones(len(evalset))},
                tmp_path / "database" / f"{name}_test_db.pt")
    preds = ground_truth_predictions(root, tmp_path / "gt.npz")
    assert main(["eval", "--dataset", name, "--data-dir", tmp_path, "--predictions", preds,
                 "--json", "--quiet"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["protocol"]["joint_set"] == ("mpii3d17" if name == "mpii3d" else "h36m17")
    assert report["metrics"]["mpjpe"] == pytest.approx(0, abs=1e-3)
    assert report["metrics"]["pve"] is None and report["paper"] is None
