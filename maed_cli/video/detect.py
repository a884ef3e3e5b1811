"""Person boxes per frame: an ultralytics YOLO detector, or boxes read from a file.

Boxes are (x1, y1, x2, y2) in pixels of the full frame, continuous coordinates (the image
spans [0, W] x [0, H]), with a confidence score. Only COCO class 0 (person) is kept.

Detector weights are looked up like every asset (maed_cli.assets): --detector-weights, then
$MAED_HOME, ./weights/, the user data folder. When they are nowhere and the machine is online,
ultralytics' official file is downloaded into the user data folder; offline, one
AssetMissingError says which file to put where. Nothing else is ever fetched.
"""
from __future__ import annotations

import csv
import json
import math
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..assets import describe_search, find_asset, user_data_dir
from ..errors import AssetMissingError, CheckpointError, InputError

DEFAULT_DETECTOR_WEIGHTS = "yolo11n.pt"
PERSON_CLASS = 0
DEFAULT_CONF = 0.5        # a person box starts (or, alone, continues) a track above this
DEFAULT_LOW_CONF = 0.1    # kept for ByteTrack's second association, never starts a track
DEFAULT_MIN_SIZE = 40.0   # px, on the longer box side: smaller people make useless 224² crops


@dataclass
class Detections:
    """Person boxes of one frame: xyxy (k, 4) float32 pixels, scores (k,) float32."""

    xyxy: np.ndarray = field(default_factory=lambda: np.zeros((0, 4), np.float32))
    scores: np.ndarray = field(default_factory=lambda: np.zeros((0,), np.float32))

    def __post_init__(self) -> None:
        self.xyxy = np.asarray(self.xyxy, np.float32).reshape(-1, 4)
        self.scores = np.asarray(self.scores, np.float32).reshape(-1)
        if len(self.scores) != len(self.xyxy):
            raise ValueError(f"{len(self.xyxy)} boxes but {len(self.scores)} scores")

    def __len__(self) -> int:
        return len(self.xyxy)

    @property
    def sizes(self) -> np.ndarray:
        """(k,) the longer side of each box, pixels."""
        wh = self.xyxy[:, 2:] - self.xyxy[:, :2]
        return wh.max(axis=1) if len(wh) else np.zeros((0,), np.float32)

    def select(self, mask: np.ndarray) -> Detections:
        return Detections(self.xyxy[mask], self.scores[mask])

    def filter(self, min_score: float = 0.0, min_size: float = 0.0) -> Detections:
        """Keep boxes with score >= min_score and longer side >= min_size (pixels)."""
        wh = self.xyxy[:, 2:] - self.xyxy[:, :2]
        keep = (self.scores >= min_score) & (self.sizes >= min_size) & (wh > 0).all(axis=1)
        return self.select(keep)


# --------------------------------------------------------------------------------------------
# ultralytics

def import_ultralytics():
    """Import ultralytics quietly (its banner and settings notes would clutter our output)."""
    os.environ.setdefault("YOLO_VERBOSE", "False")
    import ultralytics

    return ultralytics


def _is_offline() -> bool:
    import_ultralytics()
    from ultralytics.utils import is_online

    return not is_online()


def resolve_detector_weights(explicit: str | os.PathLike | None = None) -> Path:
    """The detector weights file to load, downloading ultralytics' official file when needed.

    explicit: --detector-weights, a path or a file name (searched in the asset folders).
    Raises AssetMissingError when the file is absent and cannot be downloaded (offline, or
    not an official ultralytics file name).
    """
    name = Path(explicit).name if explicit is not None else DEFAULT_DETECTOR_WEIGHTS
    found = find_asset(name, explicit)
    if found is not None:
        return found
    if explicit is not None and Path(explicit).expanduser().parent != Path("."):
        raise AssetMissingError(f"detector weights not found: {explicit} does not exist")
    how = (f"place {name} in ./weights/ (or $MAED_HOME, or {user_data_dir()}) or pass "
           f"--detector-weights PATH")
    import_ultralytics()
    from ultralytics.utils.downloads import GITHUB_ASSETS_NAMES, attempt_download_asset

    if name not in GITHUB_ASSETS_NAMES:
        raise AssetMissingError(f"detector weights '{name}' not found (looked in "
                                f"{describe_search(name)}); {how}")
    if _is_offline():
        raise AssetMissingError(f"detector weights '{name}' not found (looked in "
                                f"{describe_search(name)}) and this machine is offline, so "
                                f"ultralytics cannot download them; {how}")
    target = user_data_dir() / name
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        attempt_download_asset(str(target))
    except Exception as exc:  # any network or HTTP failure: one line, not a traceback
        raise AssetMissingError(f"detector weights '{name}' could not be downloaded "
                                f"({type(exc).__name__}: {exc}); {how}") from None
    if not target.is_file():
        raise AssetMissingError(f"detector weights '{name}' could not be downloaded; {how}")
    return target


def ultralytics_device(device: str) -> str:
    """Our device names (auto | cpu | cuda | cuda:N | mps) -> ultralytics' ('cpu', '0', ...)."""
    device = (device or "auto").strip().lower()
    if device == "auto":
        import torch

        return "0" if torch.cuda.is_available() else "cpu"
    if device == "cuda":
        return "0"
    if device.startswith("cuda:"):
        return device.split(":", 1)[1]
    if device in ("cpu", "mps") or device.isdigit():
        return device
    raise InputError(f"--device {device!r}: expected auto, cpu, cuda, cuda:N or mps")


def check_detector_settings(conf: float, min_size: float, imgsz: int) -> None:
    """The user-given detector values (--conf, --min-size, --detect-size), checked."""
    if not 0.0 < conf <= 1.0:
        raise InputError(f"detector confidence {conf}: must be in (0, 1]")
    if not min_size >= 0:
        raise InputError(f"minimum box size {min_size}: must not be negative")
    if imgsz % 32 or not 128 <= imgsz <= 2048:
        raise InputError(f"detector input size {imgsz}: must be a multiple of 32 from 128 "
                         f"to 2048 (e.g. 640, 480, 320)")


class PersonDetector:
    """Batched YOLO person detection on RGB frames.

    weights: path or name of ultralytics detection weights (default yolo11n.pt, looked up as
    an asset); model: an already built `ultralytics.YOLO` (e.g. from a yaml, for tests) used
    instead of loading weights. conf: the person confidence (used by the tracker to start
    tracks); boxes down to low_conf are returned too, for ByteTrack's second association.
    min_size: boxes whose longer side is under this many pixels are dropped. imgsz: the
    detector's input size; batch_size: frames per forward pass.
    """

    def __init__(self, weights: str | os.PathLike | None = None, *, model=None,
                 conf: float = DEFAULT_CONF, low_conf: float = DEFAULT_LOW_CONF,
                 min_size: float = DEFAULT_MIN_SIZE, imgsz: int = 640, batch_size: int = 8,
                 device: str = "auto", iou: float = 0.6) -> None:
        check_detector_settings(conf, min_size, imgsz)
        if batch_size < 1:
            raise InputError(f"detector batch size {batch_size}: must be at least 1")
        self.conf = float(conf)
        self.low_conf = float(min(low_conf, conf))
        self.min_size = float(min_size)
        self.imgsz = int(imgsz)
        self.batch_size = int(batch_size)
        self.iou = float(iou)
        self.device = ultralytics_device(device)
        self.half = self.device not in ("cpu", "mps")
        if model is None:
            path = resolve_detector_weights(weights)
            model = self._load(path)
            self.weights = path
        else:
            self.weights = None
        if getattr(model, "task", "detect") not in ("detect", "segment", "pose"):
            raise CheckpointError(f"detector weights {self.weights}: a '{model.task}' model, "
                                  f"not a detector")
        names = getattr(model, "names", None) or {}
        label = str(names.get(PERSON_CLASS, "person")).lower()
        if label != "person" and not label.isdigit():  # yaml-built models are unnamed: "0"
            raise CheckpointError(f"detector weights {self.weights}: class {PERSON_CLASS} is "
                                  f"'{names[PERSON_CLASS]}', not 'person' (COCO-trained weights "
                                  f"are needed)")
        self.model = model

    @staticmethod
    def _load(path: Path):
        import_ultralytics()
        from ultralytics import YOLO

        try:
            model = YOLO(str(path))
            model.names  # weights other than .pt are opened only now: fail here, not later
            return model
        except Exception as exc:
            reason = " ".join(str(exc).split())  # ultralytics' messages span many lines
            if len(reason) > 160:
                reason = reason[:157] + "..."
            raise CheckpointError(f"detector weights {path} cannot be loaded: not an "
                                  f"ultralytics YOLO file? ({type(exc).__name__}: {reason})"
                                  ) from None

    def __call__(self, frames: Sequence[np.ndarray]) -> list[Detections]:
        """Detect people in RGB uint8 (H, W, 3) frames; one Detections per frame."""
        out: list[Detections] = []
        for i in range(0, len(frames), self.batch_size):
            batch = frames[i:i + self.batch_size]
            # ultralytics reads numpy images as BGR (OpenCV order)
            bgr = [np.ascontiguousarray(f[..., ::-1]) for f in batch]
            results = self.model.predict(bgr, classes=[PERSON_CLASS], conf=self.low_conf,
                                         iou=self.iou, imgsz=self.imgsz, device=self.device,
                                         half=self.half, verbose=False, max_det=300)
            for res in results:
                boxes = res.boxes
                cls = boxes.cls.cpu().numpy()
                det = Detections(boxes.xyxy.cpu().numpy()[cls == PERSON_CLASS],
                                 boxes.conf.cpu().numpy()[cls == PERSON_CLASS])
                out.append(det.filter(self.low_conf, self.min_size))
        return out

    def stream(self, frames: Iterable[tuple[int, np.ndarray]]
               ) -> Iterator[tuple[int, np.ndarray, Detections]]:
        """Detect over a frame stream in batches; yields (frame_index, frame, detections).

        Only one batch of frames is held at a time; the frame is passed through so a tracker
        (BoT-SORT's camera-motion compensation) or a progress display can use it.
        """
        batch: list[tuple[int, np.ndarray]] = []
        for item in frames:
            batch.append(item)
            if len(batch) == self.batch_size:
                yield from self._flush(batch)
                batch = []
        if batch:
            yield from self._flush(batch)

    def _flush(self, batch: list[tuple[int, np.ndarray]]):
        dets = self([f for _, f in batch])
        for (index, frame), d in zip(batch, dets):
            yield index, frame, d


# --------------------------------------------------------------------------------------------
# boxes files

BOXES_FORMAT_HELP = """\
--boxes FILE gives person boxes instead of running the detector. Frames are 0-based indices
into the input (for image folders: the position in name order), except in MOT files.

CSV (.csv), with a header row; one row per box:
    frame,x1,y1,x2,y2[,track_id][,score]       corners, pixels
    frame,x,y,w,h[,track_id][,score]           top-left corner and size
    frame,cx,cy,w,h[,track_id][,score]         centre and size
  ('id' or 'track' may name the track column, 'conf' the score column.)
JSON (.json): a list of objects with the same keys, or {"boxes": [...]}, e.g.
    [{"frame": 0, "x1": 10, "y1": 20, "x2": 110, "y2": 320, "track_id": 1}, ...]
MOTChallenge (.txt), no header: frame,id,left,top,width,height,conf[,...] with 1-based
  frames; id -1 means no identity.
With track ids on every box, they are used as the tracks (no tracker runs); without ids the
tracker links the boxes. Missing scores count as 1.
"""

_ID_KEYS = ("track_id", "id", "track")
_SCORE_KEYS = ("score", "conf", "confidence")


def _number(value, what: str, where: str) -> float:
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise InputError(f"{where}: {what} {value!r} is not a number") from None
    if not math.isfinite(x):
        raise InputError(f"{where}: {what} {value!r} is not finite")
    return x


def _record_box(rec: dict, where: str) -> tuple[float, float, float, float]:
    keys = set(rec)
    if {"x1", "y1", "x2", "y2"} <= keys:
        x1, y1, x2, y2 = (_number(rec[k], k, where) for k in ("x1", "y1", "x2", "y2"))
    elif {"cx", "cy", "w", "h"} <= keys:
        cx, cy, w, h = (_number(rec[k], k, where) for k in ("cx", "cy", "w", "h"))
        x1, y1, x2, y2 = cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2
    elif {"x", "y", "w", "h"} <= keys:
        x, y, w, h = (_number(rec[k], k, where) for k in ("x", "y", "w", "h"))
        x1, y1, x2, y2 = x, y, x + w, y + h
    else:
        raise InputError(f"{where}: a box needs x1,y1,x2,y2 or x,y,w,h or cx,cy,w,h "
                         f"(found: {', '.join(sorted(keys)) or 'nothing'})")
    if not (x2 > x1 and y2 > y1):
        raise InputError(f"{where}: empty box (x1={x1:g}, y1={y1:g}, x2={x2:g}, y2={y2:g})")
    return x1, y1, x2, y2


@dataclass
class BoxesFile:
    """Boxes read from a file (see BOXES_FORMAT_HELP): one row per box.

    frames (N,) int64 source frame indices; xyxy (N, 4) float32 pixels; scores (N,) float32;
    track_ids (N,) int64, or None when the file has no identities.
    """

    path: Path
    frames: np.ndarray
    xyxy: np.ndarray
    scores: np.ndarray
    track_ids: np.ndarray | None

    @property
    def has_tracks(self) -> bool:
        return self.track_ids is not None

    def __len__(self) -> int:
        return len(self.frames)

    def detections(self) -> dict[int, Detections]:
        """{frame_index: Detections} for every frame that has boxes."""
        out: dict[int, Detections] = {}
        order = np.argsort(self.frames, kind="stable")
        frames = self.frames[order]
        starts = np.flatnonzero(np.r_[True, frames[1:] != frames[:-1]])
        ends = np.r_[starts[1:], len(frames)]
        for s, e in zip(starts, ends):
            idx = order[s:e]
            out[int(frames[s])] = Detections(self.xyxy[idx], self.scores[idx])
        return out

    @classmethod
    def load(cls, path: str | os.PathLike) -> BoxesFile:
        path = Path(path).expanduser()
        if not path.is_file():
            raise InputError(f"--boxes {path}: no such file")
        suffix = path.suffix.lower()
        try:
            text = path.read_text(encoding="utf-8-sig")
        except (OSError, UnicodeDecodeError) as exc:
            raise InputError(f"--boxes {path}: cannot read it as text ({exc})") from None
        if suffix == ".json":
            records = cls._json_records(path, text)
        elif suffix == ".csv":
            records = cls._csv_records(path, text)
        elif suffix == ".txt":
            records = cls._mot_records(path, text)
        else:
            raise InputError(f"--boxes {path}: unknown format '{suffix}' (use .csv, .json or "
                             f"MOTChallenge .txt)")
        if not records:
            raise InputError(f"--boxes {path}: contains no boxes")
        return cls._from_records(path, records)

    @staticmethod
    def _json_records(path: Path, text: str) -> list[tuple[str, dict]]:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InputError(f"--boxes {path}: invalid JSON ({exc})") from None
        if isinstance(data, dict):
            data = data.get("boxes")
        if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
            raise InputError(f"--boxes {path}: expected a list of box objects or "
                             f'{{"boxes": [...]}}')
        return [(f"--boxes {path}: box {i}", r) for i, r in enumerate(data)]

    @staticmethod
    def _csv_records(path: Path, text: str) -> list[tuple[str, dict]]:
        reader = csv.DictReader(line for line in text.splitlines()
                                if line.strip() and not line.lstrip().startswith("#"))
        if reader.fieldnames is None:
            return []
        reader.fieldnames = [f.strip().lower() for f in reader.fieldnames]
        if "frame" not in reader.fieldnames:
            raise InputError(f"--boxes {path}: the first line must be a header naming the "
                             f"columns (frame,x1,y1,x2,y2[,track_id][,score]); got "
                             f"{','.join(reader.fieldnames)}")
        records = []
        for i, row in enumerate(reader, start=2):
            row = {k: v.strip() for k, v in row.items() if k is not None and v not in (None, "")}
            records.append((f"--boxes {path}: line {i}", row))
        return records

    @staticmethod
    def _mot_records(path: Path, text: str) -> list[tuple[str, dict]]:
        records = []
        for i, line in enumerate(text.splitlines(), start=1):
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            parts = [p.strip() for p in line.replace(" ", ",").split(",") if p.strip()]
            where = f"--boxes {path}: line {i}"
            if len(parts) < 6:
                raise InputError(f"{where}: a MOTChallenge row needs at least frame,id,left,"
                                 f"top,width,height")
            frame = _number(parts[0], "frame", where)
            rec = {"frame": frame - 1, "x": parts[2], "y": parts[3], "w": parts[4],
                   "h": parts[5]}
            if _number(parts[1], "id", where) >= 0:
                rec["track_id"] = parts[1]
            if len(parts) > 6:
                rec["score"] = parts[6]
            records.append((where, rec))
        return records

    @classmethod
    def _from_records(cls, path: Path, records: list[tuple[str, dict]]) -> BoxesFile:
        n = len(records)
        frames = np.zeros(n, np.int64)
        xyxy = np.zeros((n, 4), np.float32)
        scores = np.ones(n, np.float32)
        ids = np.zeros(n, np.int64)
        has_id = np.zeros(n, bool)
        for i, (where, rec) in enumerate(records):
            rec = {str(k).strip().lower(): v for k, v in rec.items()}
            if "frame" not in rec:
                raise InputError(f"{where}: no 'frame'")
            f = _number(rec["frame"], "frame", where)
            if f < 0 or not float(f).is_integer():
                raise InputError(f"{where}: frame {rec['frame']!r} must be a non-negative "
                                 f"integer")
            frames[i] = int(f)
            xyxy[i] = _record_box(rec, where)
            key = next((k for k in _ID_KEYS if rec.get(k) not in (None, "")), None)
            if key is not None:
                t = _number(rec[key], "track id", where)
                if not float(t).is_integer():
                    raise InputError(f"{where}: track id {rec[key]!r} must be an integer")
                ids[i], has_id[i] = int(t), True
            key = next((k for k in _SCORE_KEYS if rec.get(k) not in (None, "")), None)
            if key is not None:
                scores[i] = _number(rec[key], "score", where)
        if has_id.any() and not has_id.all():
            first = records[int(np.flatnonzero(~has_id)[0])][0]
            raise InputError(f"{first}: some boxes have a track id and some do not; give ids "
                             f"for all boxes or for none")
        track_ids = ids if has_id.all() else None
        if track_ids is not None:
            pairs = np.stack([frames, track_ids], 1)
            if len(np.unique(pairs, axis=0)) != n:
                raise InputError(f"--boxes {path}: a track id appears twice in one frame")
        return cls(path, frames, xyxy, scores, track_ids)
