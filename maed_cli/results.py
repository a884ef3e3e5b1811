"""The results folder of `maed demo`: what is written, and the one reader everything uses.

    DIR/summary.json              input metadata, settings, versions, timings, track list
    DIR/tracks/track_0001.npz     one file per tracked person (plain arrays, no pickle)

Per-track arrays (n = frames in which the person is tracked; VIBE-compatible names first):
    frame_ids (n,)            frame indices of the source video (unaffected by --start/--fps)
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
World arrays (only when the world layer ran; see maed_cli/world/ and DIR/world.npz):
    world_orient (n, 3, 3)    the body's global orientation in the world (y up, floor y = 0)
    world_t (n, 3)            SMPL `transl` in the world, metres: the SMPL body posed with
                              world_orient plus world_t is the world mesh (world.frames.world_vertices)
    contacts (n, 2)           uint8, 1 where the (left, right) foot is in contact with the floor

Track files are uncompressed .npz archives (what `np.savez` writes, readable with `np.load`).
`maed demo` streams `verts` into its file a chunk at a time as the body layer computes them,
and `load_track` maps `verts` from the file instead of reading it (np.memmap), so neither
writing nor rendering/exporting holds every vertex of a long video in memory.

`load_result_set` reads such a folder — or a VIBE/TCMR `*_output.pkl` (a joblib dict keyed by
track id with VIBE's keys, no `rotmat`/`cam_t`) — into a `ResultSet`, so both can be rendered,
exported and compared the same way. Arrays a source lacks are None.
"""
from __future__ import annotations

import contextlib
import json
import struct
import warnings
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np

from .atomic import atomic_path
from .errors import InputError

SUMMARY = "summary.json"
TRACKS_DIR = "tracks"
ARRAY_KEYS = ("frame_ids", "bboxes", "crop_boxes", "pred_cam", "orig_cam", "cam_t", "pose",
              "betas", "rotmat", "verts", "joints3d", "joints2d_img_coord",
              "world_orient", "world_t", "contacts")
_DTYPES = {"contacts": np.uint8}  # every other array is float32 (frame_ids int64)


@dataclass
class TrackResult:
    """One tracked person (shapes in the module docstring); None: not in the source."""

    track_id: int
    frame_ids: np.ndarray
    bboxes: np.ndarray | None = None
    crop_boxes: np.ndarray | None = None
    pred_cam: np.ndarray | None = None
    orig_cam: np.ndarray | None = None
    cam_t: np.ndarray | None = None
    pose: np.ndarray | None = None
    betas: np.ndarray | None = None
    rotmat: np.ndarray | None = None
    verts: np.ndarray | None = None
    joints3d: np.ndarray | None = None
    joints2d_img_coord: np.ndarray | None = None
    world_orient: np.ndarray | None = None
    world_t: np.ndarray | None = None
    contacts: np.ndarray | None = None
    focal: float | None = None

    def __len__(self) -> int:
        return len(self.frame_ids)

    def index_of(self, frame: int) -> int | None:
        """Row of source frame `frame`, or None when the person is not in that frame."""
        row = int(np.searchsorted(self.frame_ids, frame))
        if row < len(self.frame_ids) and self.frame_ids[row] == frame:
            return row
        hits = np.flatnonzero(self.frame_ids == frame)  # unsorted frame ids (foreign files)
        return int(hits[0]) if len(hits) else None

    def with_arrays(self, **arrays) -> "TrackResult":
        return replace(self, **arrays)

    def file_name(self) -> str:
        return track_path("", self.track_id).name


def track_path(folder: str | Path, track_id: int) -> Path:
    return Path(folder) / TRACKS_DIR / f"track_{int(track_id):04d}.npz"


class TrackArchive:
    """An open track file, written member by member (see `open_track_file`)."""

    def __init__(self, archive: zipfile.ZipFile):
        self._archive = archive
        self._written: set[str] = set()

    def add(self, key: str, array) -> None:
        """One whole array as member `key`."""
        self._check_new(key)
        with self._archive.open(f"{key}.npy", "w", force_zip64=True) as member:
            np.lib.format.write_array(member, np.asarray(array), allow_pickle=False)

    @contextlib.contextmanager
    def stream(self, key: str, shape: tuple[int, ...], dtype=np.float32
               ) -> Iterator[Callable[[np.ndarray], None]]:
        """Member `key` of `shape` written in row chunks: yields `write(chunk)`; the rows
        written must add up to shape[0] (else ValueError, and the file is not kept)."""
        self._check_new(key)
        dtype = np.dtype(dtype)
        rows = 0
        with self._archive.open(f"{key}.npy", "w", force_zip64=True) as member:
            np.lib.format.write_array_header_1_0(member, {
                "descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False,
                "shape": tuple(int(v) for v in shape)})

            def write(chunk: np.ndarray) -> None:
                nonlocal rows
                chunk = np.ascontiguousarray(chunk, dtype=dtype)
                if chunk.shape[1:] != tuple(shape[1:]) or rows + len(chunk) > shape[0]:
                    raise ValueError(f"{key}: chunk {chunk.shape} does not fit {shape} after "
                                     f"{rows} rows")
                member.write(chunk.tobytes())
                rows += len(chunk)

            yield write
            if rows != shape[0]:
                raise ValueError(f"{key}: {rows} rows written, {shape[0]} declared")

    def add_track(self, track: TrackResult) -> None:
        """Every array of `track` (float32; frame_ids int64, contacts uint8), its id and focal
        length."""
        self.add("track_id", np.int64(track.track_id))
        self.add("frame_ids", np.asarray(track.frame_ids).astype(np.int64))
        for key in ARRAY_KEYS[1:]:
            value = getattr(track, key)
            if value is not None:
                self.add(key, np.asarray(value).astype(_DTYPES.get(key, np.float32), copy=False))
        if track.focal is not None:
            self.add("focal", np.float64(track.focal))

    def _check_new(self, key: str) -> None:
        if key in self._written:
            raise ValueError(f"{key} is already in the track file")
        self._written.add(key)


@contextlib.contextmanager
def open_track_file(path: str | Path) -> Iterator[TrackArchive]:
    """Write a track file atomically: it appears complete at `path`, or not at all."""
    with atomic_path(path) as tmp:
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED, allowZip64=True) as archive:
            yield TrackArchive(archive)


def save_track(folder: str | Path, track: TrackResult) -> Path:
    path = track_path(folder, track.track_id)
    with open_track_file(path) as archive:
        archive.add_track(track)
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
    """One track file; `verts` is memory-mapped from it when stored uncompressed."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as data:
            values = {k: data[k] for k in data.files if k != "verts"}
            if "verts" in data.files:
                values["verts"] = _mapped_member(path, "verts.npy")
                if values["verts"] is None:
                    values["verts"] = data["verts"]
    except (ValueError, OSError, zipfile.BadZipFile) as exc:
        raise InputError(f"{path}: not a maed track result ({exc})") from None
    if "track_id" not in values or "frame_ids" not in values:
        raise InputError(f"{path}: not a maed track result (no track_id/frame_ids)")
    track = _clean(int(values["track_id"]), values, str(path))
    if "focal" in values:
        track.focal = float(values["focal"])
    return track


def _mapped_member(path: Path, name: str) -> np.ndarray | None:
    """A read-only np.memmap of an uncompressed .npy member of a zip/npz, or None when it
    cannot be mapped (compressed, object dtype, empty)."""
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo(name)
    if info.compress_type != zipfile.ZIP_STORED:
        return None
    readers = {(1, 0): np.lib.format.read_array_header_1_0,
               (2, 0): np.lib.format.read_array_header_2_0}
    with open(path, "rb") as handle:
        handle.seek(info.header_offset)
        local = handle.read(30)  # the local file header; its extra field may differ
        if len(local) < 30 or local[:4] != b"PK\x03\x04":
            return None
        name_length, extra_length = struct.unpack("<HH", local[26:30])
        handle.seek(info.header_offset + 30 + name_length + extra_length)
        version = np.lib.format.read_magic(handle)
        if version not in readers:
            return None
        shape, fortran, dtype = readers[version](handle)
        offset = handle.tell()
    if dtype.hasobject or not shape or 0 in shape:
        return None
    return np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=shape,
                     order="F" if fortran else "C")


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
    if isinstance(summary.get("images"), list) and not (folder / TRACKS_DIR).is_dir():
        # `maed demo` on independent images: one results folder per image below this one
        names = [row.get("results") for row in summary["images"][:2]]
        raise InputError(f"{folder} holds one results folder per image ({', '.join(names)}"
                         f"{', ...' if len(summary['images']) > 2 else ''}): give one of "
                         f"those, e.g. {folder / names[0]}")
    tracks = [load_track(p) for p in sorted((folder / TRACKS_DIR).glob("track_*.npz"))]
    return tracks, summary


TRACK_FIELDS = tuple(f.name for f in fields(TrackResult))


def _clean(track_id: int, arrays: dict, source: str) -> TrackResult:
    """Validated TrackResult from a dict of arrays; rotmat derived from pose when missing."""
    if "frame_ids" not in arrays:
        raise InputError(f"{source}: track {track_id} has no frame_ids")
    frame_ids = np.asarray(arrays["frame_ids"]).astype(np.int64).reshape(-1)
    n = len(frame_ids)
    kept = {}
    for key in ARRAY_KEYS[1:]:
        value = arrays.get(key)
        if value is None:
            continue
        value = np.asarray(value)
        if value.dtype == object or value.ndim == 0:
            continue
        if len(value) != n:
            raise InputError(f"{source}: track {track_id}: '{key}' has {len(value)} rows but "
                             f"there are {n} frame_ids")
        # astype without a copy keeps a memory map mapped
        kept[key] = value.astype(_DTYPES.get(key, np.float32), copy=False)
    if "pose" in kept and "rotmat" not in kept:
        import torch

        from .body.geometry import axis_angle_to_rotmat
        kept["rotmat"] = axis_angle_to_rotmat(
            torch.as_tensor(kept["pose"].reshape(n, 24, 3), dtype=torch.float64)
        ).numpy().astype(np.float32)
    return TrackResult(track_id=int(track_id), frame_ids=frame_ids, **kept)


# --- reading for render / export / compare -----------------------------------------------------

@dataclass
class ResultSet:
    """All tracks of one video, with what is known about the video.

    fps: the source's frame rate; start/end/select_fps: the frame selection the results were
    made with (None: all), so a renderer decodes exactly those frames."""

    tracks: dict[int, TrackResult]
    video: Path | None = None
    fps: float = 30.0
    width: int | None = None
    height: int | None = None
    start: str | int | None = None
    end: str | int | None = None
    select_fps: float | None = None
    faces: np.ndarray | None = None  # (F, 3) mesh faces, when the source carries them
    source: str = ""
    summary: dict = field(default_factory=dict)

    @property
    def frame_ids(self) -> np.ndarray:
        """Every frame that has at least one person, sorted."""
        if not self.tracks:
            return np.zeros(0, dtype=np.int64)
        return np.unique(np.concatenate([t.frame_ids for t in self.tracks.values()]))

    def fill_translation(self, focal: float | None = None) -> None:
        """Give every track a full-perspective `cam_t`, derived from `orig_cam` when missing."""
        if self.width is None or self.height is None:
            return
        import torch

        from .body.geometry import orig_cam_to_translation
        for tid, track in self.tracks.items():
            if track.cam_t is None and track.orig_cam is not None:
                cam_t = orig_cam_to_translation(torch.as_tensor(track.orig_cam, dtype=torch.float64),
                                                self.width, self.height, focal or track.focal)
                self.tracks[tid] = track.with_arrays(cam_t=cam_t.numpy().astype(np.float32))


def result_set_from_demo(input_path: str | Path, options, tracks: list[TrackResult],
                         summary: dict) -> ResultSet:
    """The ResultSet of a demo run that is still being written (for its --render/--export)."""
    source = summary.get("input", {})
    return ResultSet(tracks={t.track_id: t for t in tracks}, video=Path(input_path),
                     fps=float(source.get("fps") or 30.0), width=source.get("width"),
                     height=source.get("height"), start=options.start, end=options.end,
                     select_fps=options.fps, summary=summary)


def load_result_set(path: str | Path, *, video: str | Path | None = None) -> ResultSet:
    """A `maed demo` results folder, or a VIBE/TCMR `*_output.pkl`, as a ResultSet.

    `video` overrides the input recorded in summary.json (and gives a pkl its video: frame
    size and fps)."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such file or folder")
    if path.is_dir() and not (path / SUMMARY).is_file():
        pkls = sorted(path.glob("*_output.pkl"))
        if len(pkls) == 1:
            path = pkls[0]
    if path.is_dir():
        tracks, summary = load_results(path)
        source = summary.get("input", {})
        settings = summary.get("settings", {})
        result = ResultSet(
            tracks={t.track_id: t for t in tracks},
            video=Path(source["path"]) if source.get("path") else None,
            fps=float(source.get("fps") or 30.0), width=source.get("width"),
            height=source.get("height"), start=settings.get("start"), end=settings.get("end"),
            select_fps=settings.get("fps"), source=str(path), summary=summary)
    elif path.suffix in (".pkl", ".joblib"):
        result = _load_pkl(path)
    else:
        raise InputError(f"{path}: expected a `maed demo` results folder or a VIBE-style "
                         f"*_output.pkl")
    if video is not None:
        result.video = Path(video)
        if result.width is None or path.suffix in (".pkl", ".joblib"):
            _fill_video_meta(result)
    elif result.width is None:
        warnings.warn(f"{path}: without --video the frame rate is taken as {result.fps:g} fps "
                      f"and the image size is unknown, so people are not placed by cam_t; "
                      f"pass --video with the input video")
    return result


def _load_pkl(path: Path) -> ResultSet:
    from .safe_pickle import load_joblib  # restricted: a pkl cannot run code
    try:
        data = load_joblib(path)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is a user error here
        raise InputError(f"{path}: not a readable VIBE-style results pickle ({exc})") from None
    if not isinstance(data, dict):
        raise InputError(f"{path}: expected a dict keyed by track id, got {type(data).__name__}")
    tracks = {}
    for key, arrays in data.items():
        if not isinstance(arrays, dict):
            raise InputError(f"{path}: track {key!r} is not a dict of arrays")
        tracks[int(key)] = _clean(int(key), arrays, str(path))
    return ResultSet(tracks=tracks, source=str(path))


def _fill_video_meta(result: ResultSet) -> None:
    """Frame size and fps from the video itself (for pkls)."""
    if result.video is None:
        return
    if not result.video.is_file():
        raise InputError(f"--video {result.video}: no such file")
    from .video.io import open_frames
    meta = open_frames(result.video).meta
    result.width, result.height, result.fps = meta.width, meta.height, float(meta.fps)
