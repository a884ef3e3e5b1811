"""The results folder of `maed demo`: what is written, and the one reader everything uses.

    DIR/summary.json              input metadata, settings, versions, timings, track list
    DIR/tracks/track_0001.npz     one file per tracked person (plain arrays, no pickle)

Per-track arrays (n = frames in which the person is tracked; VIBE-compatible names first):
    frame_ids (n,)            frame indices in the input (after --start/--fps selection)
    bboxes (n, 4)             smoothed detector box (cx, cy, w, h), square, pixels
    crop_boxes (n, 4)         the crop region fed to MAED (cx, cy, S, S) = box x crop scale
    pred_cam (n, 3)           weak-perspective camera in the crop (s, tx, ty)
    orig_cam (n, 4)           the same camera for the full image (sx, sy, tx, ty), orthographic
    cam_t (n, 3)              full-perspective translation (X, Y, Z) in metres for `focal`
    pose (n, 72)              SMPL axis-angle, global orientation first
    betas (n, 10)             SMPL shape
    rotmat (n, 24, 3, 3)      SMPL joint rotations
    verts (n, 6890, 3)        SMPL vertices, metres, body frame (no translation)
    joints3d (n, 49, 3)       the 49 SPIN joints, metres, body frame
    joints2d_img_coord (n, 49, 2)  those joints projected into the image, pixels
    track_id ()               the tracker's id;  focal ()  focal length in pixels used for cam_t
"""
from __future__ import annotations

import json
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np

from .atomic import atomic_path
from .errors import InputError

SUMMARY = "summary.json"
TRACKS_DIR = "tracks"
ARRAY_KEYS = ("frame_ids", "bboxes", "crop_boxes", "pred_cam", "orig_cam", "cam_t", "pose",
              "betas", "rotmat", "verts", "joints3d", "joints2d_img_coord")


@dataclass
class TrackResult:
    track_id: int
    frame_ids: np.ndarray
    bboxes: np.ndarray
    crop_boxes: np.ndarray
    pred_cam: np.ndarray
    orig_cam: np.ndarray
    cam_t: np.ndarray
    pose: np.ndarray
    betas: np.ndarray
    rotmat: np.ndarray
    verts: np.ndarray
    joints3d: np.ndarray
    joints2d_img_coord: np.ndarray
    focal: float

    def __len__(self) -> int:
        return len(self.frame_ids)

    def file_name(self) -> str:
        return f"track_{self.track_id:04d}.npz"


def save_track(folder: str | Path, track: TrackResult) -> Path:
    path = Path(folder) / TRACKS_DIR / track.file_name()
    arrays = {k: np.asarray(getattr(track, k)) for k in ARRAY_KEYS}
    arrays["frame_ids"] = arrays["frame_ids"].astype(np.int64)
    for key in ARRAY_KEYS[1:]:
        arrays[key] = arrays[key].astype(np.float32)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as handle:
            np.savez(handle, track_id=np.int64(track.track_id), focal=np.float64(track.focal),
                     **arrays)
    return path


def save_summary(folder: str | Path, summary: dict[str, Any]) -> Path:
    path = Path(folder) / SUMMARY
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(summary, indent=2, default=_json_default) + "\n")
    return path


def _json_default(value: Any) -> Any:
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def load_track(path: str | Path) -> TrackResult:
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as data:
            values = {k: data[k] for k in ARRAY_KEYS}
            return TrackResult(track_id=int(data["track_id"]), focal=float(data["focal"]),
                               **values)
    except (KeyError, ValueError, OSError) as exc:
        raise InputError(f"{path}: not a maed track result ({exc})") from None


def load_results(folder: str | Path) -> tuple[list[TrackResult], dict[str, Any]]:
    """Every track of a results folder (sorted by id) and its summary."""
    folder = Path(folder)
    summary_path = folder / SUMMARY
    if not summary_path.is_file():
        raise InputError(f"{folder} is not a maed results folder (no {SUMMARY}); run "
                         f"`maed demo` first")
    try:
        summary = json.loads(summary_path.read_text())
    except json.JSONDecodeError as exc:
        raise InputError(f"{summary_path}: unreadable ({exc})") from None
    tracks = [load_track(p) for p in sorted((folder / TRACKS_DIR).glob("track_*.npz"))]
    return tracks, summary


TRACK_FIELDS = tuple(f.name for f in fields(TrackResult))
