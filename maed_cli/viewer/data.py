"""What `maed view` sends to the page: a results folder as small JSON metadata and compact
binary files, read lazily (track vertices stay memory-mapped; a chunk reads only its rows).

Every file has one path, the same on the local server and in a `--out` static folder:

    data/meta.json                 fps, frame range, image size, focal, frame of reference,
                                   tracks (id, colour, rows, chunk count), angle names, video
    data/faces.bin                 uint16 (F, 3) SMPL triangles
    data/camera.bin                float32 (F, 13): frame id, then the three.js camera's
                                   rotation (9, row-major) and position (3) per decoded frame
                                   (world frame only)
    data/tracks/<id>/frames.bin    int32 (n,) source frame ids
    data/tracks/<id>/path.bin      float32 (n, 3) pelvis positions (the trajectory)
    data/tracks/<id>/angles.bin    float32 (n, A) joint angles, degrees (body.angles)
    data/tracks/<id>/chunk_<c>.bin rows [c K, (c+1) K) with K = CHUNK_ROWS:
                                   int32 first row, int32 row count k, float32 (k, 3) pelvis
                                   positions, float16 (k, V, 3) vertices minus the pelvis

Coordinates are three.js's (y up): the world frame as it is (`maed_cli.world`), else the
camera frame turned 180 deg about x (x right, y up, z towards the viewer; the camera at the
origin looking down -z). Offsets from the pelvis keep float16 to about 1 mm.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..body.joints import PELVIS49
from ..results import ResultSet, TrackResult, load_result_set

CHUNK_ROWS = 30
FLIP = np.array([1.0, -1.0, -1.0])  # OpenCV camera frame <-> three.js (y up, z back)
VIDEO_TYPES = {".mp4": "video/mp4", ".m4v": "video/mp4", ".mov": "video/mp4",
               ".webm": "video/webm", ".mkv": "video/webm", ".ogv": "video/ogg"}


from ..world.frames import load_world, world_root, world_vertices


@dataclass
class TrackView:
    track: TrackResult
    color: tuple[float, float, float]

    @property
    def chunks(self) -> int:
        return -(-len(self.track) // CHUNK_ROWS)


class ViewerData:
    """A results folder (or VIBE pkl) prepared for the page; files made on request."""

    def __init__(self, path: str | Path, *, faces: np.ndarray, video: str | Path | None = None):
        from ..render import track_color
        self.source = Path(path)
        results: ResultSet = load_result_set(path, video=video)
        results.fill_translation()
        self.results = results
        self.faces = np.asarray(faces, dtype=np.int64)
        folder = self.source if self.source.is_dir() else None
        self.world = load_world(folder) if folder is not None else None
        self.tracks: dict[int, TrackView] = {}
        for tid, track in sorted(results.tracks.items()):
            if track.verts is None:
                raise InputError(f"track {tid} has no vertices: nothing to show")
            self.tracks[tid] = TrackView(track, track_color(tid))
        if not self.tracks:
            raise InputError(f"{path}: no tracked people to show")
        self.frame = "world" if self.world is not None and all(
            self._placeable(v.track) for v in self.tracks.values()) else "camera"
        self.video = results.video if results.video is not None and results.video.is_file() \
            else None
        self._paths: dict[int, np.ndarray] = {}

    def _placeable(self, track: TrackResult) -> bool:
        return getattr(track, "world_orient", None) is not None \
            and getattr(track, "world_t", None) is not None and track.joints3d is not None

    # --- geometry in the viewer's frame -------------------------------------------------------

    def vertices(self, track: TrackResult, rows: np.ndarray) -> np.ndarray:
        """(k, V, 3) float32 vertices of `rows` in three.js coordinates."""
        if self.frame == "world":
            return world_vertices(track, rows, self.world)
        verts = np.asarray(track.verts[rows], dtype=np.float32)
        if track.cam_t is not None:
            verts = verts + track.cam_t[rows][:, None].astype(np.float32)
        return verts * FLIP.astype(np.float32)

    def pelvis(self, track: TrackResult, rows: np.ndarray) -> np.ndarray:
        """(k, 3) float32 pelvis positions of `rows` in three.js coordinates."""
        if track.joints3d is None:
            return self.vertices(track, rows).mean(axis=1)
        if self.frame == "world":
            return world_root(track, rows).astype(np.float32)
        root = np.asarray(track.joints3d[rows, PELVIS49], np.float32)
        if track.cam_t is not None:
            root = root + track.cam_t[rows].astype(np.float32)
        return root * FLIP.astype(np.float32)

    # --- the files ------------------------------------------------------------------------------

    def meta(self, video_url: str | None) -> dict:
        from ..body.angles import ANGLE_NAMES
        r = self.results
        first = min(int(v.track.frame_ids.min()) for v in self.tracks.values())
        last = max(int(v.track.frame_ids.max()) for v in self.tracks.values())
        focal = next((v.track.focal for v in self.tracks.values() if v.track.focal), None)
        if focal is None and r.width and r.height:
            from ..body.geometry import default_focal
            focal = default_focal(r.width, r.height)
        return {
            "format": 1, "source": str(self.source), "fps": r.fps, "first_frame": first,
            "last_frame": last, "width": r.width, "height": r.height, "focal": focal,
            "frame": self.frame, "chunk_rows": CHUNK_ROWS, "vertices": int(
                next(iter(self.tracks.values())).track.verts.shape[1]),
            "faces": len(self.faces), "video": video_url, "angle_names": list(ANGLE_NAMES),
            "tracks": [{"id": tid, "color": list(v.color), "rows": len(v.track),
                        "chunks": v.chunks, "first_frame": int(v.track.frame_ids.min()),
                        "last_frame": int(v.track.frame_ids.max()),
                        "angles": v.track.rotmat is not None}
                       for tid, v in self.tracks.items()],
        }

    def faces_bin(self) -> bytes:
        return self.faces.astype(np.uint16 if self.faces.max() < 65536 else np.uint32).tobytes()

    def camera_bin(self) -> bytes:
        """Per decoded frame: id, the three.js camera's rotation (world-from-camera, y up,
        looking down -z: camera_R @ diag(1, -1, -1)) and its position."""
        if self.frame != "world":
            return b""
        w = self.world
        rot = w.camera_R * FLIP[None, None, :]
        table = np.concatenate([w.frame_ids[:, None].astype(np.float64),
                                rot.reshape(-1, 9), w.camera_t], axis=1)
        return table.astype(np.float32).tobytes()

    def frames_bin(self, tid: int) -> bytes:
        return self._view(tid).track.frame_ids.astype(np.int32).tobytes()

    def path_bin(self, tid: int) -> bytes:
        if tid not in self._paths:
            track = self._view(tid).track
            self._paths[tid] = self.pelvis(track, np.arange(len(track))).astype(np.float32)
        return self._paths[tid].tobytes()

    def angles_bin(self, tid: int) -> bytes:
        from ..body.angles import angle_table
        track = self._view(tid).track
        if track.rotmat is None:
            return b""
        orient = getattr(track, "world_orient", None) if self.frame == "world" else None
        if orient is not None:
            return angle_table(track.rotmat, global_orient=orient).tobytes()
        return angle_table(track.rotmat).tobytes()

    def chunk_bin(self, tid: int, chunk: int) -> bytes:
        view = self._view(tid)
        if not 0 <= chunk < view.chunks:
            raise KeyError(f"track {tid} has no chunk {chunk}")
        rows = np.arange(chunk * CHUNK_ROWS, min((chunk + 1) * CHUNK_ROWS, len(view.track)))
        verts = self.vertices(view.track, rows)
        centre = self.pelvis(view.track, rows).astype(np.float32)
        offsets = (verts - centre[:, None]).astype(np.float16)
        header = np.array([rows[0], len(rows)], dtype=np.int32)
        return header.tobytes() + centre.tobytes() + offsets.tobytes()

    def _view(self, tid: int) -> TrackView:
        if tid not in self.tracks:
            raise KeyError(f"no track {tid}")
        return self.tracks[tid]

    def files(self) -> dict[str, object]:
        """Every data file's path (below data/) -> a function giving its bytes."""
        out: dict[str, object] = {"faces.bin": self.faces_bin, "camera.bin": self.camera_bin}
        for tid, view in self.tracks.items():
            base = f"tracks/{tid}"
            out[f"{base}/frames.bin"] = lambda t=tid: self.frames_bin(t)
            out[f"{base}/path.bin"] = lambda t=tid: self.path_bin(t)
            out[f"{base}/angles.bin"] = lambda t=tid: self.angles_bin(t)
            for c in range(view.chunks):
                out[f"{base}/chunk_{c}.bin"] = lambda t=tid, c=c: self.chunk_bin(t, c)
        return out

    def data_file(self, name: str) -> bytes:
        """The bytes of data/<name> (KeyError when there is no such file)."""
        parts = name.split("/")
        if name in ("faces.bin", "camera.bin"):
            return self.faces_bin() if name == "faces.bin" else self.camera_bin()
        if len(parts) == 3 and parts[0] == "tracks" and parts[1].isdigit():
            tid, leaf = int(parts[1]), parts[2]
            if leaf == "frames.bin":
                return self.frames_bin(tid)
            if leaf == "path.bin":
                return self.path_bin(tid)
            if leaf == "angles.bin":
                return self.angles_bin(tid)
            if leaf.startswith("chunk_") and leaf.endswith(".bin") and leaf[6:-4].isdigit():
                return self.chunk_bin(tid, int(leaf[6:-4]))
        raise KeyError(name)

    def video_name(self) -> str | None:
        if self.video is None:
            return None
        return "video" + (self.video.suffix.lower() or ".mp4")

    def meta_json(self) -> bytes:
        name = self.video_name()
        return json.dumps(self.meta(f"data/{name}" if name else None)).encode()
