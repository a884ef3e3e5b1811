"""A synthetic results folder for `maed view`: people posed with the synthetic SMPL body,
placed in the camera frame, optionally with a world layer (world.npz and per-track world
arrays, per the world contract) for a level camera panning about the vertical."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from maed_cli.body.geometry import axis_angle_to_rotmat
from maed_cli.results import open_track_file, save_summary

SIZE = (320, 240)
FOCAL = 400.0
CAMERA_HEIGHT = 1.6
FLIP = np.diag([1.0, -1.0, -1.0])


def ry(t):
    c, s = np.cos(t), np.sin(t)
    return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])


def person_poses(p: int, frames: np.ndarray) -> np.ndarray:
    """(n, 72) axis-angle poses: upright in the camera frame, arms down, knees and arms moving."""
    n = len(frames)
    pose = np.zeros((n, 72))
    pose[:, 0] = np.pi  # SMPL y-up -> camera y-down
    phase = 2 * np.pi * frames / 24.0 + p
    pose[:, 3 * 4] = 0.8 * (1 + np.sin(phase))     # left knee 0..92 degrees
    pose[:, 3 * 5] = 0.8 * (1 + np.cos(phase))     # right knee
    pose[:, 3 * 1] = -0.4 * np.sin(phase)          # hips swing
    pose[:, 3 * 2] = 0.4 * np.sin(phase)
    pose[:, 3 * 16 + 2] = -1.2 + 0.5 * np.sin(phase)  # arms from down-ish up and down
    pose[:, 3 * 17 + 2] = 1.2 - 0.5 * np.sin(phase)
    return pose


def camera_translation(p: int, frames: np.ndarray, people: int) -> np.ndarray:
    x = (-0.9 + 1.8 * p / max(1, people - 1)) if people > 1 else 0.0
    return np.stack([x + 0.01 * frames * (1 if p % 2 == 0 else -1) * 0.5,
                     np.full(len(frames), 0.25), 5.0 + 0.5 * p + 0 * frames], axis=1)


def pan(frames: np.ndarray, total: int) -> np.ndarray:
    """Camera pan angle (radians) per frame: +-10 degrees over the clip."""
    return np.radians(10.0) * np.sin(2 * np.pi * frames / max(total, 1))


def write_results(folder: Path, body, *, frames: int = 12, people: int = 2, world: bool = False,
                  video: Path | None = None, fps: float = 24.0, chunk: int = 600,
                  template_frames: int | None = None) -> dict:
    """Write folder/summary.json and folder/tracks/track_000<p+1>.npz (and world.npz).

    template_frames: compute the body for that many frames and repeat them (a long result
    without a long computation; the translation still moves every frame)."""
    folder = Path(folder)
    (folder / "tracks").mkdir(parents=True, exist_ok=True)
    ids = np.arange(frames)
    w, h = SIZE
    camera_R = np.stack([ry(t) @ FLIP for t in pan(ids, frames)])
    camera_t = np.tile([0.0, CAMERA_HEIGHT, 0.0], (frames, 1))
    truth = {}
    for p in range(people):
        tid = p + 1
        base = ids if template_frames is None else ids % template_frames
        unique = np.unique(base)
        pose_u = person_poses(p, unique)
        rot_u = axis_angle_to_rotmat(torch.tensor(pose_u).reshape(-1, 24, 3)).float()
        betas = np.zeros((len(unique), 10), np.float32)
        verts_u, joints_u = [], []
        with torch.no_grad():
            for s in range(0, len(unique), 256):
                out = body(rotmat=rot_u[s:s + 256], betas=torch.tensor(betas[s:s + 256]))
                verts_u.append(out.vertices.numpy())
                joints_u.append(out.joints49.numpy())
        verts_u, joints_u = np.concatenate(verts_u), np.concatenate(joints_u)
        where = np.searchsorted(unique, base)
        rotmat = rot_u.numpy()[where]
        joints = joints_u[where]
        cam_t = camera_translation(p, ids, people).astype(np.float32)
        arrays = {"frame_ids": ids.astype(np.int64), "cam_t": cam_t,
                  "pose": pose_u[where].astype(np.float32), "betas": betas[where],
                  "rotmat": rotmat, "joints3d": joints}
        if world:
            pelvis = joints[:, 8].astype(np.float64)
            arrays["world_orient"] = (camera_R @ rotmat[:, 0]).astype(np.float32)
            arrays["world_t"] = (np.einsum("kij,kj->ki", camera_R, pelvis + cam_t) + camera_t
                                 - pelvis).astype(np.float32)
            arrays["contacts"] = np.zeros((frames, 2), np.uint8)
        with open_track_file(folder / "tracks" / f"track_{tid:04d}.npz") as archive:
            archive.add("track_id", np.int64(tid))
            for key, value in arrays.items():
                archive.add(key, value)
            archive.add("focal", np.float64(FOCAL))
            with archive.stream("verts", (frames, verts_u.shape[1], 3)) as write:
                for s in range(0, frames, chunk):
                    write(verts_u[where[s:s + chunk]])
        truth[tid] = {"verts_u": verts_u, "where": where, "cam_t": cam_t}
    if world:
        np.savez(folder / "world.npz", frame_ids=ids, camera_R=camera_R, camera_t=camera_t,
                 up=np.array([0.0, -1.0, 0.0]), floor=np.array([0.0, -1.0, 0.0, 1.6]),
                 focal=np.float64(FOCAL), image_size=np.array(SIZE))
    summary = {"input": {"path": str(video) if video else None, "fps": fps, "width": w,
                         "height": h}, "settings": {}, "tracks": list(range(1, people + 1))}
    if world:
        summary["world"] = {"frame": "world", "reason": None}
    save_summary(folder, summary)
    return {"truth": truth, "camera_R": camera_R, "camera_t": camera_t, "frames": frames}


def camera_vertices(truth: dict, tid: int, frame: int) -> np.ndarray:
    """(V, 3) camera-frame (OpenCV) vertices of person `tid` at `frame`."""
    t = truth[tid]
    return t["verts_u"][t["where"][frame]].astype(np.float64) + t["cam_t"][frame]
