"""`maed demo` end to end on CPU: synthetic video, given boxes, a small random network."""
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from maed_cli.cli import main
from maed_cli.model import MAED, save_checkpoint
from maed_cli.results import load_results

from synthetic_video import make_walkers_video, write_boxes

TINY = dict(num_blocks=1, num_heads=2, hidden_dim=64, embed_dim=96, backbone_layers=(1, 1, 1))


@pytest.fixture(scope="module")
def demo_setup(tmp_path_factory, synthetic_body, synthetic_assets):
    root = tmp_path_factory.mktemp("demo")
    torch.manual_seed(0)
    ckpt = save_checkpoint(root / "tiny.pt", MAED(**TINY))
    video = root / "walkers.mp4"
    info = make_walkers_video(video, synthetic_body, num_frames=20)
    boxes = write_boxes(root / "boxes.json", info["boxes"])
    return {"root": root, "ckpt": ckpt, "video": video, "boxes": boxes, "info": info,
            "smpl": synthetic_assets["npz"], "extra": synthetic_assets["extra"]}


def run(capsys, *args):
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


@pytest.fixture
def installed_regressor(demo_setup, _isolated_asset_home):
    import shutil
    shutil.copy(demo_setup["extra"], _isolated_asset_home / "J_regressor_extra.npy")


def test_demo_with_boxes_writes_every_frame_of_every_track(capsys, demo_setup,
                                                           installed_regressor):
    out = demo_setup["root"] / "out"
    code, text = run(capsys, "demo", demo_setup["video"], "--boxes", demo_setup["boxes"],
                     "--checkpoint", demo_setup["ckpt"], "--smpl", demo_setup["smpl"],
                     "--output", out, "--min-track", 5, "--batch-size", 4, "--quiet")
    assert code == 0, text
    tracks, summary = load_results(out)
    assert [t.track_id for t in tracks] == [1, 2]
    n = demo_setup["info"]["num_frames"]
    for t in tracks:
        assert list(t.frame_ids) == list(range(n))
        shapes = {"pred_cam": (n, 3), "orig_cam": (n, 4), "cam_t": (n, 3), "pose": (n, 72),
                  "betas": (n, 10), "rotmat": (n, 24, 3, 3), "verts": (n, 6890, 3),
                  "joints3d": (n, 49, 3), "joints2d_img_coord": (n, 49, 2), "bboxes": (n, 4),
                  "crop_boxes": (n, 4)}
        for key, shape in shapes.items():
            value = getattr(t, key)
            assert value.shape == shape, key
            assert np.isfinite(value).all(), key
        # the crop region is the smoothed box scaled by the crop factor, centred on it
        np.testing.assert_allclose(t.crop_boxes[:, 2], 1.35 * t.bboxes[:, 2], rtol=1e-5)
    assert summary["input"]["width"] == 320 and summary["tracks_cache"]["reused"] is False
    assert summary["precision"] == {"dtype": "float32", "fp32_reruns": 0}
    assert summary["checkpoint"]["config"]["embed_dim"] == 96
    assert set(summary["timings_s"]) >= {"decode", "track", "crop", "network", "body", "total"}
    # Again in the fast mode: the cached tracks are reused, every frame is still there and
    # the interpolated rotations stay rotations.
    code, text = run(capsys, "demo", demo_setup["video"], "--boxes", demo_setup["boxes"],
                     "--checkpoint", demo_setup["ckpt"], "--smpl", demo_setup["smpl"],
                     "--output", out, "--min-track", 5, "--interp", 8, "--quiet")
    assert code == 0, text
    again, summary2 = load_results(out)
    assert summary2["tracks_cache"]["reused"] is True
    assert summary2["settings"]["interp"] == 8
    assert [len(t) for t in again] == [n, n]
    rot = again[0].rotmat
    eye = np.broadcast_to(np.eye(3), rot.shape)
    np.testing.assert_allclose(rot @ np.swapaxes(rot, -1, -2), eye, atol=1e-4)
    # the sampled frames (every 8th and the last) are predicted by the network itself
    assert not np.allclose(again[0].pose, tracks[0].pose, atol=1e-6)


@pytest.mark.parametrize("case", ["missing", "text", "empty", "no_person"])
def test_bad_input_one_line_no_output(capsys, demo_setup, installed_regressor, tmp_path, case):
    out = tmp_path / "out"
    video = demo_setup["video"]
    boxes = demo_setup["boxes"]
    if case == "missing":
        video = tmp_path / "nope.mp4"
    elif case == "text":
        video = tmp_path / "notes.mp4"
        video.write_text("this is not a video\n" * 10)
    elif case == "empty":
        video = tmp_path / "empty.mp4"
        video.write_bytes(b"")
    elif case == "no_person":
        boxes = tmp_path / "none.json"
        boxes.write_text(json.dumps([{"frame": 0, "x1": 1, "y1": 1, "x2": 50, "y2": 90,
                                      "track_id": 1}]))
    code, text = run(capsys, "demo", video, "--boxes", boxes, "--checkpoint",
                     demo_setup["ckpt"], "--smpl", demo_setup["smpl"], "--output", out,
                     "--quiet")
    assert code == 2, text
    assert "Traceback" not in text and text.strip().startswith("error:"), text
    assert len(text.strip().splitlines()) == 1
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out")]


def test_missing_assets_named_in_one_message(capsys, demo_setup, tmp_path, monkeypatch):
    monkeypatch.setenv("YOLO_OFFLINE", "1")
    monkeypatch.chdir(tmp_path)
    import maed_cli.video.detect as detect
    monkeypatch.setattr(detect, "_is_offline", lambda: True)
    code, text = run(capsys, "demo", demo_setup["video"], "--output", tmp_path / "o", "--quiet")
    assert code == 2
    assert "model_best.pth.tar" in text and "yolo11n.pt" in text
    assert "maed setup weights" in text


@pytest.mark.parametrize("option, value, message", [
    ("--crop-scale", "0", "--crop-scale 0.0: must be a positive number"),
    ("--focal", "-5", "--focal -5.0: must be a positive number of pixels"),
    ("--focal", "0", "--focal 0.0: must be a positive number of pixels"),
    ("--boxes", "missing.json", "missing.json: no such file"),
    ("--boxes", ".", ": is a folder"),
    ("--tracker", "foo", "--tracker 'foo': expected one of bytetrack, botsort"),
])
def test_bad_option_values_are_refused_before_any_work(capsys, demo_setup, tmp_path, option,
                                                       value, message):
    # no checkpoint and no detector weights: the values are checked before those are looked for
    code, text = run(capsys, "demo", demo_setup["video"], "--output", tmp_path / "out",
                     option, value, "--quiet")
    assert code == 2 and message in text and "Traceback" not in text, text
    assert not (tmp_path / "out").exists()


def test_unwritable_output(capsys, demo_setup, installed_regressor, tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    code, text = run(capsys, "demo", demo_setup["video"], "--boxes", demo_setup["boxes"],
                     "--checkpoint", demo_setup["ckpt"], "--output", blocker / "out",
                     "--quiet")
    assert code == 2 and "a_file is a file, not a folder" in text, text


def test_demo_through_the_yolo_code_path(demo_setup, synthetic_body, tmp_path, monkeypatch):
    """A YOLO built from its yaml (random weights, nothing downloaded) runs for real on every
    frame; its results are replaced by the known boxes before the tracker sees them."""
    from maed_cli.demo_options import DemoOptions
    from maed_cli.pipeline import run_demo
    from maed_cli.video.detect import PersonDetector, import_ultralytics

    monkeypatch.chdir(tmp_path)
    import_ultralytics()
    from ultralytics import YOLO

    yolo = YOLO("yolo11n.yaml")
    boxes_by_frame: dict[int, list] = {}
    for b in demo_setup["info"]["boxes"]:
        if b["track_id"] == 1:
            boxes_by_frame.setdefault(b["frame"], []).append(
                [b["x1"], b["y1"], b["x2"], b["y2"], 0.9, 0.0])
    real_predict = yolo.predict
    seen = []

    def predict_then_inject(images, **kwargs):
        results = real_predict(images, **kwargs)
        for res in results:
            frame = len(seen)
            seen.append(frame)
            res.update(boxes=torch.tensor(boxes_by_frame[frame]))
        return results

    monkeypatch.setattr(yolo, "predict", predict_then_inject)
    detector = PersonDetector(model=yolo, imgsz=160, batch_size=4, device="cpu")
    torch.manual_seed(0)
    report = run_demo(demo_setup["video"], tmp_path / "out",
                      DemoOptions(min_track=5, interp=8, batch_size=2),
                      MAED(**TINY).eval(), synthetic_body, detector=detector)
    n = demo_setup["info"]["num_frames"]
    assert seen == list(range(n))  # the detector ran on every frame, in order
    assert len(report.tracks) == 1
    track = report.tracks[0]
    assert list(track.frame_ids) == list(range(n))
    first = boxes_by_frame[0][0]
    assert abs(track.bboxes[0, 0] - (first[0] + first[2]) / 2) < 3.0  # box centre kept
    assert track.verts.shape == (n, 6890, 3)
    # The vertices were streamed into the track file in chunks and are read back mapped
    # from it, equal to the body layer on the predicted parameters.
    assert isinstance(track.verts.base, np.memmap)
    assert Path(track.verts.base.filename).name == track.file_name()  # (then moved in place)
    assert (report.output / "tracks" / track.file_name()).is_file()
    with torch.no_grad():
        body = synthetic_body(rotmat=torch.from_numpy(track.rotmat),
                              betas=torch.from_numpy(track.betas))
    np.testing.assert_allclose(track.verts, body.vertices.numpy(), atol=1e-5)
    np.testing.assert_allclose(track.joints3d, body.joints49.numpy(), atol=1e-5)


@pytest.mark.slow
def test_compiled_demo_gives_the_same_results(capsys, demo_setup, installed_regressor):
    """--compile (padded batches, one compile) changes the speed, not the results."""
    common = ["demo", demo_setup["video"], "--boxes", demo_setup["boxes"], "--checkpoint",
              demo_setup["ckpt"], "--smpl", demo_setup["smpl"], "--min-track", 5,
              "--batch-size", 3, "--quiet", "--device", "cpu"]
    plain_out, compiled_out = demo_setup["root"] / "plain", demo_setup["root"] / "compiled"
    assert run(capsys, *common, "--output", plain_out)[0] == 0
    code, text = run(capsys, *common, "--output", compiled_out, "--compile")
    assert code == 0, text
    plain, _ = load_results(plain_out)
    compiled, summary = load_results(compiled_out)
    assert summary["settings"]["compile"] is True
    for a, b in zip(plain, compiled):
        np.testing.assert_allclose(b.rotmat, a.rotmat, atol=1e-4)
        np.testing.assert_allclose(b.verts, a.verts, atol=1e-4)
