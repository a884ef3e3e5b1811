"""The world frame of a run (`DIR/world.npz`) and THE one mapping of a track into it.

World axes (y up, metres): the floor is the plane y = 0; x is the first camera's right, seen
level; z points from the scene back towards the first camera (x right, y up, z backwards: the
right-handed OpenGL/glTF viewing convention, so a viewer's default view looks like the first
camera's). The origin is on the floor under the first person's first pelvis position.

    world.npz: frame_ids (F,)  camera_R (F, 3, 3)  camera_t (F, 3)  up (3,)  floor (4,)
               focal ()  image_size (2,)
    x_world = camera_R[f] @ x_camera_f + camera_t[f]    (camera frame: OpenCV, y down)
    up, floor: in the FIRST camera's frame; floor = (n, d) with n . x + d = 0, n = up

A track's world arrays follow SMPL's `transl` convention: posing SMPL with `world_orient`, the
track's body pose and betas, plus `world_t`, gives its world mesh; `world_vertices` and
`world_joints` below are where that formula lives (export, render and viewers call them).
"""
from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..atomic import atomic_path
from ..body.joints import PELVIS49
from ..errors import InputError
from ..results import TrackResult

WORLD_FILE = "world.npz"


@dataclass
class WorldFrame:
    """The world of one run (shapes and conventions in the module docstring)."""

    frame_ids: np.ndarray
    camera_R: np.ndarray
    camera_t: np.ndarray
    up: np.ndarray
    floor: np.ndarray
    focal: float
    image_size: tuple[int, int]

    def __len__(self) -> int:
        return len(self.frame_ids)

    @property
    def K(self) -> np.ndarray:
        """(3, 3) pinhole intrinsics, principal point at the image centre."""
        w, h = self.image_size
        return np.array([[self.focal, 0.0, w / 2.0], [0.0, self.focal, h / 2.0],
                         [0.0, 0.0, 1.0]])

    def index_of(self, frame: int) -> int | None:
        row = int(np.searchsorted(self.frame_ids, frame))
        if row < len(self.frame_ids) and self.frame_ids[row] == frame:
            return row
        return None

    def rows_for(self, frame_ids) -> np.ndarray:
        """Row of each source frame; a frame the run did not decode takes the nearest one."""
        frame_ids = np.asarray(frame_ids, dtype=np.int64)
        if len(self.frame_ids) == 0:
            raise ValueError("the world frame has no frames")
        right = np.clip(np.searchsorted(self.frame_ids, frame_ids), 0, len(self.frame_ids) - 1)
        left = np.clip(right - 1, 0, len(self.frame_ids) - 1)
        closer_left = (np.abs(self.frame_ids[left] - frame_ids)
                       < np.abs(self.frame_ids[right] - frame_ids))
        return np.where(closer_left, left, right)

    def camera_pose(self, frame: int) -> tuple[np.ndarray, np.ndarray]:
        """(R (3, 3), t (3,)) world-from-camera of source frame `frame` (nearest decoded)."""
        row = int(self.rows_for([frame])[0])
        return self.camera_R[row], self.camera_t[row]

    def to_arrays(self) -> dict[str, np.ndarray]:
        return {"frame_ids": np.asarray(self.frame_ids, np.int64),
                "camera_R": np.asarray(self.camera_R, np.float64),
                "camera_t": np.asarray(self.camera_t, np.float64),
                "up": np.asarray(self.up, np.float64), "floor": np.asarray(self.floor, np.float64),
                "focal": np.float64(self.focal),
                "image_size": np.asarray(self.image_size, np.int64)}


def save_world(folder: str | Path, world: WorldFrame) -> Path:
    path = Path(folder) / WORLD_FILE
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as handle:
            np.savez(handle, **world.to_arrays())
    return path


def load_world(folder: str | Path) -> WorldFrame | None:
    """The world frame of a results folder; None when the run has none (camera frame)."""
    path = Path(folder) / WORLD_FILE
    if not Path(folder).is_dir() or not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
        world = WorldFrame(
            frame_ids=arrays["frame_ids"].astype(np.int64).reshape(-1),
            camera_R=arrays["camera_R"].astype(np.float64).reshape(-1, 3, 3),
            camera_t=arrays["camera_t"].astype(np.float64).reshape(-1, 3),
            up=arrays["up"].astype(np.float64).reshape(3),
            floor=arrays["floor"].astype(np.float64).reshape(4),
            focal=float(arrays["focal"]),
            image_size=tuple(int(v) for v in arrays["image_size"].reshape(2)))
    except (KeyError, ValueError, OSError, zipfile.BadZipFile) as exc:
        raise InputError(f"{path}: not a maed world file ({exc}); run `maed demo` again") \
            from None
    if not (len(world.camera_R) == len(world.camera_t) == len(world.frame_ids)):
        raise InputError(f"{path}: camera_R, camera_t and frame_ids differ in length")
    return world


def _rows(track: TrackResult, rows) -> tuple[np.ndarray, bool]:
    if isinstance(rows, (int, np.integer)):
        return np.array([int(rows)]), True
    if isinstance(rows, slice):
        return np.arange(len(track))[rows], False
    return np.asarray(rows, dtype=np.int64).reshape(-1), False


def _to_world(track: TrackResult, rows, world: WorldFrame | None, points: np.ndarray
              ) -> np.ndarray:
    """Body-frame points (k, P, 3) of `rows` -> world, float32."""
    points = np.asarray(points, dtype=np.float64)
    if track.world_orient is not None and track.world_t is not None:
        # SMPL posed with world_orient = the body-frame mesh turned by D about the pelvis
        pelvis = np.asarray(track.joints3d[rows, PELVIS49], np.float64)[:, None]
        if track.rotmat is not None:
            root = np.asarray(track.rotmat[rows, 0], np.float64)
            turn = np.asarray(track.world_orient[rows], np.float64) @ np.swapaxes(root, 1, 2)
        else:
            if world is None:
                raise ValueError("a track without rotmat needs the world frame")
            turn = world.camera_R[world.rows_for(track.frame_ids[rows])]
        # a batched matmul: ~9x faster than the equivalent einsum (the viewer's chunks)
        moved = (points - pelvis) @ np.swapaxes(turn, 1, 2) + pelvis
        return (moved + np.asarray(track.world_t[rows], np.float64)[:, None]).astype(np.float32)
    if world is None or track.cam_t is None:
        raise ValueError(f"track {track.track_id} has no world arrays (and no world frame / "
                         f"cam_t to place it)")
    cams = world.rows_for(track.frame_ids[rows])
    camera = points + np.asarray(track.cam_t[rows], np.float64)[:, None]
    return (camera @ np.swapaxes(world.camera_R[cams], 1, 2)
            + world.camera_t[cams][:, None]).astype(np.float32)


def world_vertices(track: TrackResult, rows, world: WorldFrame | None = None) -> np.ndarray:
    """World vertices (k, 6890, 3) float32 of a track's `rows` (int -> (6890, 3)): from its
    world arrays, or — without them — from `world`'s camera poses and the track's cam_t."""
    index, single = _rows(track, rows)
    out = _to_world(track, index, world, np.asarray(track.verts[index]))
    return out[0] if single else out


def world_joints(track: TrackResult, rows, world: WorldFrame | None = None) -> np.ndarray:
    """World joints (k, 49, 3) float32 of a track's `rows`, like `world_vertices`."""
    index, single = _rows(track, rows)
    out = _to_world(track, index, world, np.asarray(track.joints3d[index]))
    return out[0] if single else out


def world_root(track: TrackResult, rows=slice(None)) -> np.ndarray:
    """(k, 3) world pelvis positions of a track with world arrays."""
    index, _ = _rows(track, rows)
    return (np.asarray(track.joints3d[index, PELVIS49], np.float64)
            + np.asarray(track.world_t[index], np.float64))


def level_axes(up: np.ndarray) -> np.ndarray:
    """(3, 3) rows = world x, y, z axes in the first camera's frame for an `up` direction there:
    y = up, z = the camera's backward direction on the floor, x = y x z (the camera's right)."""
    up = np.asarray(up, np.float64) / np.linalg.norm(up)
    back = np.array([0.0, 0.0, -1.0]) - (-up[2]) * up
    if np.linalg.norm(back) < 1e-6:  # a camera looking straight down: use its image "down"
        back = np.array([0.0, 1.0, 0.0]) - up[1] * up
    back /= np.linalg.norm(back)
    return np.stack([np.cross(up, back), up, back])


def make_world_frame(up: np.ndarray, floor_d: float, origin_cam0: np.ndarray,
                     frame_ids, rotations, focal: float, image_size) -> WorldFrame:
    """The world for a floor (up, d) in the first camera's frame, an origin on it (projected
    on the floor) and the camera motion `rotations` (F, 3, 3), camera-f-from-camera-0."""
    axes = level_axes(up)
    up = axes[1]
    origin = np.asarray(origin_cam0, np.float64)
    origin = origin - (up @ origin + floor_d) * up
    rotations = np.asarray(rotations, np.float64).reshape(-1, 3, 3)
    camera_R = axes[None] @ np.swapaxes(rotations, 1, 2)
    camera_t = np.tile(-axes @ origin, (len(rotations), 1))
    return WorldFrame(frame_ids=np.asarray(frame_ids, np.int64), camera_R=camera_R,
                      camera_t=camera_t, up=up, floor=np.append(up, floor_d),
                      focal=float(focal), image_size=(int(image_size[0]), int(image_size[1])))
