"""The first pass's cache: who is where (the tracklets) and how the camera turned, per input
and tracking settings, so a rerun with other network settings skips detection and tracking.

`prepare_demo` looks for CACHE_DIR/tracks_<key>.npz in the results folder, then for the copy
an interrupted run kept (maed_cli.resume); the key is `DemoOptions.tracking_key`, over
`input_digest` of the input. `finish_demo` writes the file into the new results folder.
`file_digest` is also the content key `maed batch` and the photo pipeline record for inputs.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from .atomic import atomic_path
from .video.track import Tracklet
from .world.camera_motion import CameraMotion

CACHE_DIR = "cache"
CACHE_VERSION = 1
CAMERA_CACHE_PREFIX = "camera_"  # the camera motion's arrays in the tracks cache


def file_digest(path: Path, chunk: int = 4 << 20) -> str:
    """A fast content key: size plus the first and last 4 MiB (whole file when smaller)."""
    digest = hashlib.sha256()
    size = path.stat().st_size
    digest.update(str(size).encode())
    with open(path, "rb") as handle:
        digest.update(handle.read(chunk))
        if size > 2 * chunk:
            handle.seek(-chunk, 2)
        digest.update(handle.read(chunk))
    return digest.hexdigest()


def input_digest(path: Path) -> str:
    if path.is_dir():
        digest = hashlib.sha256()
        for p in sorted(path.iterdir()):
            if p.is_file():
                stat = p.stat()
                digest.update(f"{p.name}:{stat.st_size}:{int(stat.st_mtime)}".encode())
        return digest.hexdigest()
    return file_digest(path)


def save_cached_tracks(path: Path, tracklets: dict[int, Tracklet],
                       camera: CameraMotion | None = None) -> None:
    """The first pass's result: the tracklets and (when given) the camera motion."""
    arrays = {} if camera is None else camera.to_arrays(CAMERA_CACHE_PREFIX)
    for tid, t in tracklets.items():
        arrays[f"{tid}_frames"] = t.frames
        arrays[f"{tid}_boxes"] = t.boxes
        arrays[f"{tid}_detected"] = t.detected
        arrays[f"{tid}_source"] = np.int64(t.source_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        np.savez(handle, ids=np.asarray(sorted(tracklets), np.int64), **arrays)


def load_cached_tracks(path: Path) -> tuple[dict[int, Tracklet] | None, CameraMotion | None]:
    """(tracklets, camera motion); None for what the file does not hold (the camera motion
    of a cache written before it was estimated) or when the file is unreadable."""
    try:
        with np.load(path, allow_pickle=False) as data:
            tracklets = {int(tid): Tracklet(int(tid), data[f"{tid}_frames"],
                                            data[f"{tid}_boxes"], data[f"{tid}_detected"],
                                            int(data[f"{tid}_source"]))
                         for tid in data["ids"]}
            try:
                camera = CameraMotion.from_arrays(data, CAMERA_CACHE_PREFIX)
            except (KeyError, ValueError, IndexError):
                camera = None
            return tracklets, camera
    except (OSError, KeyError, ValueError):
        return None, None
