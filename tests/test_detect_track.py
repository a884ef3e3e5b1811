"""Detection (YOLO, boxes files), weights lookup and tracking (maed_cli.video.detect/track)."""
from __future__ import annotations

import json
import socket

import numpy as np
import pytest

from maed_cli.errors import AssetMissingError, CheckpointError, InputError
from maed_cli.video.detect import (BOXES_FORMAT_HELP, BoxesFile, Detections, PersonDetector,
                                   resolve_detector_weights)
from maed_cli.video.track import (PersonTracker, TrackerConfig, build_tracklets,
                                  smooth_series, track_detections, tracklets_from_boxes)


@pytest.fixture
def no_network(monkeypatch):
    """Any connection, DNS lookup or ultralytics download fails the test loudly."""
    attempts = []

    def refuse(*args, **kwargs):
        attempts.append(args)
        raise OSError("network access in a test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    import ultralytics.utils.downloads as downloads

    monkeypatch.setattr(downloads, "safe_download", refuse)
    return attempts


# --------------------------------------------------------------------------------------------
# YOLO

@pytest.fixture(scope="module")
def yaml_model():
    """yolo11n built from its yaml (random weights, nothing downloaded), with the class head
    biased so that every anchor says 'person' (class 0) and nothing else."""
    import torch

    from maed_cli.video.detect import import_ultralytics

    import_ultralytics()
    from ultralytics import YOLO

    model = YOLO("yolo11n.yaml")
    head = model.model.model[-1]
    with torch.no_grad():
        for branch in head.cv3:
            branch[-1].bias.fill_(-20.0)
            branch[-1].bias[0] = 20.0
    return model


def test_yolo_from_yaml_detects_without_downloading(yaml_model, no_network, tmp_path,
                                                    monkeypatch):
    monkeypatch.chdir(tmp_path)
    detector = PersonDetector(model=yaml_model, imgsz=160, batch_size=2, device="cpu",
                              min_size=0)
    frames = [np.full((120, 160, 3), v, np.uint8) for v in (0, 80, 160)]
    dets = detector(frames)
    assert len(dets) == 3
    for d in dets:
        assert len(d) > 0 and d.xyxy.shape[1] == 4
        assert (d.scores >= detector.low_conf).all()
        assert (d.xyxy[:, 2] > d.xyxy[:, 0]).all() and (d.xyxy[:, 3] > d.xyxy[:, 1]).all()
    # streaming keeps frame indices and order across batches
    streamed = list(detector.stream((10 + i, f) for i, f in enumerate(frames)))
    assert [i for i, _, _ in streamed] == [10, 11, 12]
    assert np.allclose(streamed[2][2].xyxy, dets[2].xyxy)
    # the minimum size drops boxes whose longer side is smaller
    big = PersonDetector(model=yaml_model, imgsz=160, device="cpu", min_size=10_000)
    assert all(len(d) == 0 for d in big(frames[:1]))
    assert no_network == [] and not list(tmp_path.iterdir())  # nothing fetched or written


def test_detector_rejects_non_person_models(yaml_model):
    class Classifier:
        task = "classify"
        names = {0: "tench"}

    with pytest.raises(CheckpointError, match="not a detector"):
        PersonDetector(model=Classifier(), device="cpu")

    class Cars:
        task = "detect"
        names = {0: "car"}

    with pytest.raises(CheckpointError, match="person"):
        PersonDetector(model=Cars(), device="cpu")
    with pytest.raises(InputError, match="--device"):
        PersonDetector(model=yaml_model, device="gpu7")
    for size in (100, 650, 4096):
        with pytest.raises(InputError, match="multiple of 32"):
            PersonDetector(model=yaml_model, imgsz=size, device="cpu")


def test_detector_input_size_is_part_of_the_tracks_cache_key():
    from maed_cli.demo_options import DemoOptions
    assert (DemoOptions(detect_size=480).tracking_key("v")
            != DemoOptions().tracking_key("v") == DemoOptions(compile=True).tracking_key("v"))


def test_offline_missing_weights_is_one_clear_line(no_network, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("YOLO_OFFLINE", "1")
    with pytest.raises(AssetMissingError) as info:
        resolve_detector_weights()
    message = str(info.value)
    assert "\n" not in message
    assert "yolo11n.pt" in message and "weights" in message and "offline" in message
    with pytest.raises(AssetMissingError):
        PersonDetector(device="cpu")
    with pytest.raises(AssetMissingError, match="does not exist"):
        resolve_detector_weights(tmp_path / "sub" / "mine.pt")
    assert no_network == []


def test_weights_lookup_order(tmp_path, monkeypatch, _isolated_asset_home):
    monkeypatch.chdir(tmp_path)
    home_file = _isolated_asset_home / "yolo11n.pt"
    home_file.write_bytes(b"x")
    assert resolve_detector_weights() == home_file            # $MAED_HOME
    (tmp_path / "weights").mkdir()
    (tmp_path / "weights" / "yolo11s.pt").write_bytes(b"x")
    assert resolve_detector_weights("yolo11s.pt") == tmp_path / "weights" / "yolo11s.pt"
    explicit = tmp_path / "elsewhere.pt"
    explicit.write_bytes(b"x")
    assert resolve_detector_weights(explicit) == explicit     # an explicit path wins


@pytest.mark.parametrize("name", ["broken.pt", "renamed.mp4"])  # ultralytics opens .mp4 late
def test_corrupt_weights_file(tmp_path, name):
    bad = tmp_path / name
    bad.write_bytes(b"definitely not a torch file")
    with pytest.raises(CheckpointError) as info:
        PersonDetector(bad, device="cpu")
    assert name in str(info.value) and "\n" not in str(info.value)


# --------------------------------------------------------------------------------------------
# tracking with injected detections

def _walkers(n_frames=80, occlude=(30, 36)):
    """Two people walking towards each other on separate rows, a third one appearing at
    frame 12; person B is not detected during `occlude`; a one-frame false positive."""
    per_frame = []
    for f in range(n_frames):
        boxes, scores = [], []
        boxes.append([100 + 3 * f, 100, 160 + 3 * f, 260]); scores.append(0.9)
        if not occlude[0] <= f < occlude[1]:
            boxes.append([600 - 3 * f, 300, 660 - 3 * f, 480]); scores.append(0.8)
        if f >= 12:
            boxes.append([300, 520, 340, 620]); scores.append(0.85)
        if f == 50:
            boxes.append([50, 600, 90, 700]); scores.append(0.95)
        per_frame.append((f, Detections(np.array(boxes, float), np.array(scores))))
    return per_frame


@pytest.mark.parametrize("method", ["bytetrack", "botsort"])
def test_ids_stable_through_occlusion(method):
    tracks = track_detections(_walkers(), fps=30.0, config=TrackerConfig(method=method),
                              min_track=10)
    assert len(tracks) == 3                                   # the blip is dropped
    by_start = {int(t.frames[0]): t for t in tracks.values()}
    a_or_b = [t for t in tracks.values() if t.frames[0] == 0]
    assert len(a_or_b) == 2 and all(len(t) == 80 for t in a_or_b)
    b = max(a_or_b, key=lambda t: t.boxes[0, 0])
    # the occluded frames are filled and flagged, on the straight line
    assert np.array_equal(np.flatnonzero(~b.detected), np.arange(30, 36))
    assert b.boxes[33, 0] == pytest.approx(630 - 3 * 33, abs=0.5)
    c = by_start[12]                                          # starts where the person does
    assert len(c) == 68 and c.detected.all()
    assert np.allclose(c.boxes[:, :2], [320, 570]) and np.allclose(c.boxes[:, 2:], 100)


def test_botsort_with_frames_uses_motion_compensation():
    """With frames, BoT-SORT estimates camera motion (sparse optical flow) on them."""
    rng = np.random.default_rng(0)
    texture = rng.integers(0, 256, (720, 760, 3), dtype=np.uint8)
    tracker = PersonTracker(TrackerConfig(method="botsort"), fps=30.0)
    calls = []
    gmc_apply = tracker._tracker.gmc.apply
    tracker._tracker.gmc.apply = lambda *a, **k: calls.append(1) or gmc_apply(*a, **k)
    for f, dets in _walkers():
        tracker.update(f, dets, texture)
    assert len(calls) == 80
    assert len(tracker.tracklets(min_track=10)) == 3


def test_min_track_and_gap_split():
    frames = np.arange(100)
    obs = {5: (np.r_[np.arange(0, 30), np.arange(70, 100)],
               np.tile([[0, 0, 10, 20]], (60, 1)).astype(float)),
           9: (np.arange(40, 45), np.tile([[0, 0, 10, 10]], (5, 1)).astype(float))}
    tracks = build_tracklets(obs, frames, min_track=10, max_gap=20, smooth_sigma=0)
    assert sorted(tracks) == [5, 10]                 # 9 is too short; 5 split at its 40-gap
    assert tracks[5].frames.tolist() == list(range(30))
    assert tracks[10].frames.tolist() == list(range(70, 100)) and tracks[10].source_id == 5
    assert np.allclose(tracks[5].boxes[0], [5, 10, 20, 20])  # square: side = max(w, h)
    with pytest.raises(InputError):
        build_tracklets(obs, frames, min_track=0)


def test_gaps_are_measured_on_the_stream():
    # with --fps subsampling the stream holds every 3rd frame: 0, 3, 6, ...
    stream = np.arange(0, 90, 3)
    obs = {1: (np.r_[stream[:10], stream[12:]], np.tile([[0, 0, 10, 10]], (28, 1)).astype(float))}
    tracks = build_tracklets(obs, stream, min_track=1, max_gap=2, smooth_sigma=0)
    assert list(tracks) == [1] and tracks[1].frames.tolist() == stream.tolist()
    assert (~tracks[1].detected).sum() == 2


def test_smoothing_keeps_linear_motion_and_removes_outliers():
    t = np.arange(40, dtype=float)
    line = np.stack([10 + 2.5 * t, 50 - t, np.full_like(t, 80)], axis=1)
    assert np.allclose(smooth_series(line, sigma=3.0), line, atol=1e-9)   # ends included
    spiky = line.copy()
    spiky[20, 0] += 60
    # the +60 px one-frame outlier is gone (what is left is the median's one-step error)
    assert np.abs(smooth_series(spiky, sigma=3.0) - line).max() < 2.5
    noisy = line + np.random.default_rng(0).normal(0, 2, line.shape)
    assert np.abs(smooth_series(noisy, 3.0) - line).std() < 0.6 * np.abs(noisy - line).std()
    assert np.allclose(smooth_series(line[:2], 3.0), line[:2])            # short tracks


def test_tracker_requires_increasing_frames():
    tracker = PersonTracker(fps=30)
    tracker.update(5, Detections())
    with pytest.raises(ValueError):
        tracker.update(5, Detections())


# --------------------------------------------------------------------------------------------
# boxes files

def test_boxes_csv_with_ids_become_tracks_directly(tmp_path):
    rows = ["frame,x1,y1,x2,y2,track_id,score"]
    for f in range(40):
        rows.append(f"{f},{10 + f},20,{50 + f},120,7,0.9")
        if f < 30:  # a second person; id 3
            rows.append(f"{f},200,20,240,100,3,0.2")   # low score: ids are trusted anyway
    path = tmp_path / "boxes.csv"
    path.write_text("\n".join(rows) + "\n")
    boxes = BoxesFile.load(path)
    assert boxes.has_tracks and len(boxes) == 70
    tracks = tracklets_from_boxes(boxes, range(5, 35), fps=30, min_track=5, smooth_seconds=0)
    assert sorted(tracks) == [3, 7]
    assert tracks[7].frames.tolist() == list(range(5, 35))
    assert tracks[3].frames.tolist() == list(range(5, 30))
    assert np.allclose(tracks[7].boxes[0], [30 + 5, 70, 100, 100])


def test_boxes_json_without_ids_go_through_the_tracker(tmp_path):
    records = [{"frame": f, "cx": 100 + 2 * f, "cy": 200, "w": 60, "h": 150, "score": 0.9}
               for f in range(30)]
    records += [{"frame": f, "cx": 400, "cy": 200, "w": 50, "h": 140} for f in range(30)]
    path = tmp_path / "boxes.json"
    path.write_text(json.dumps({"boxes": records}))
    boxes = BoxesFile.load(path)
    assert not boxes.has_tracks and len(boxes.detections()) == 30
    tracks = tracklets_from_boxes(boxes, None, fps=30, min_track=10)
    assert len(tracks) == 2 and all(len(t) == 30 for t in tracks.values())
    xs = sorted(float(t.boxes[0, 0]) for t in tracks.values())
    assert xs == pytest.approx([100, 400], abs=1.0)


def test_boxes_mot_format(tmp_path):
    path = tmp_path / "det.txt"
    path.write_text("1,-1,10,20,30,60,0.9,-1,-1,-1\n2,-1,12,20,30,60,0.8,-1,-1,-1\n")
    boxes = BoxesFile.load(path)
    assert boxes.frames.tolist() == [0, 1] and not boxes.has_tracks
    assert np.allclose(boxes.xyxy[1], [12, 20, 42, 80]) and boxes.scores[1] == pytest.approx(0.8)
    gt = tmp_path / "gt.txt"
    gt.write_text("1,4,10,20,30,60,1\n")
    assert BoxesFile.load(gt).track_ids.tolist() == [4]


@pytest.mark.parametrize("name,text,match", [
    ("a.csv", "x1,y1,x2,y2\n1,2,3,4\n", "header"),
    ("b.csv", "frame,x1,y1,x2,y2\n0,1,2,abc,4\n", "line 2.*x2"),
    ("c.csv", "frame,x1,y1,x2,y2\n0,10,10,5,20\n", "empty box"),
    ("d.csv", "frame,x1,y1,x2,y2,id\n0,1,1,5,5,1\n1,1,1,5,5,\n", "track id"),
    ("e.csv", "frame,a,b\n0,1,2\n", "x1,y1,x2,y2"),
    ("f.json", "{not json", "invalid JSON"),
    ("g.json", '{"boxes": 3}', "list"),
    ("h.csv", "frame,x1,y1,x2,y2\n", "no boxes"),
    ("i.xml", "<boxes/>", "unknown format"),
    ("j.csv", "frame,x1,y1,x2,y2,track_id\n0,1,1,5,5,2\n0,2,2,6,6,2\n", "twice"),
    ("k.csv", "frame,x1,y1,x2,y2\n-1,1,1,5,5\n", "non-negative"),
])
def test_bad_boxes_files(tmp_path, name, text, match):
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(InputError, match=match) as info:
        BoxesFile.load(path)
    assert "\n" not in str(info.value)


def test_boxes_outside_the_stream(tmp_path):
    path = tmp_path / "late.csv"
    path.write_text("frame,x,y,w,h\n500,1,1,40,80\n")
    with pytest.raises(InputError, match="processed"):
        tracklets_from_boxes(BoxesFile.load(path), range(100), fps=30)


def test_format_help_names_every_format():
    for word in ("CSV", "JSON", "MOTChallenge", "track_id", "x1,y1,x2,y2", "cx,cy,w,h"):
        assert word in BOXES_FORMAT_HELP


def test_missing_boxes_file(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        BoxesFile.load(tmp_path / "none.csv")
