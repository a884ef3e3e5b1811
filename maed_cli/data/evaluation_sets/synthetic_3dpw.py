"""A small synthetic dataset in the official 3DPW layout, for tests and smoke runs.

`write_synthetic_3dpw(root, body)` writes `sequenceFiles/<split>/<seq>.pkl` with the keys of
the real release and `imageFiles/<seq>/image_%05d.jpg` rendered from a body model: people
walking in front of a slowly panning camera, 2D keypoints projected from the body's joints.
Visibility is shaped to exercise every rule of the evaluation-set construction:

- person 1 of the first sequence appears only after a few frames (the track starts late,
  the case where the official script's boxes drift out of alignment);
- a run of frames with too few visible limb keypoints (rows dropped), and one frame with no
  visible keypoint at all (its box interpolated, its row dropped);
- a few frames whose camera pose is flagged invalid (kept, reported).

`body(pose (B,72) world axis-angle, betas (B,10), trans (B,3))` must return
`(vertices (B,V,3), joints (B,24,3))` in world metres, SMPL joint order.
"""
from __future__ import annotations

import pickle
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from scipy.spatial.transform import Rotation

from .threedpw import SPLIT_DIRS

BodyFn = Callable[[np.ndarray, np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]

#: COCO-18 keypoint -> SMPL joint used to place it (eyes and ears at the head joint).
COCO18_FROM_SMPL24 = [15, 12, 17, 19, 21, 16, 18, 20, 2, 5, 8, 1, 4, 7, 15, 15, 15, 15]
#: COCO-18 indices of the 12 limb keypoints (see threedpw.COCO18_TO_COMMON12)
LIMBS = [10, 9, 8, 11, 12, 13, 4, 3, 2, 5, 6, 7]


@dataclass
class SyntheticTruth:
    """What the writer did, for tests to check the reader against."""

    sequences: list[str] = field(default_factory=list)
    frames: dict[str, int] = field(default_factory=dict)
    late_start: dict[str, int] = field(default_factory=dict)       # track -> first visible
    few_visible: dict[str, list[int]] = field(default_factory=dict)  # track -> dropped frames
    invisible: dict[str, list[int]] = field(default_factory=dict)  # track -> no keypoint
    campose_invalid: dict[str, list[int]] = field(default_factory=dict)


def _walk_pose(frames: int, phase: float, rng: np.random.Generator) -> np.ndarray:
    """(F, 72) a gentle walking motion: hips, knees, shoulders, elbows swing; the body turns."""
    t = np.arange(frames) / 30.0
    pose = np.zeros((frames, 72))
    swing = 0.5 * np.sin(2 * np.pi * 0.8 * t + phase)
    pose[:, 0:3] = Rotation.from_euler(
        "y", 0.4 * np.sin(2 * np.pi * 0.1 * t + phase)[:, None]).as_rotvec()
    pose[:, 1 * 3] = swing          # L hip (x axis)
    pose[:, 2 * 3] = -swing         # R hip
    pose[:, 4 * 3] = 0.4 * (1 + np.sin(2 * np.pi * 0.8 * t + phase + 1))  # L knee
    pose[:, 5 * 3] = 0.4 * (1 - np.sin(2 * np.pi * 0.8 * t + phase + 1))  # R knee
    pose[:, 16 * 3 + 2] = -1.1 + 0.2 * swing  # L shoulder down (z axis)
    pose[:, 17 * 3 + 2] = 1.1 + 0.2 * swing   # R shoulder down
    pose[:, 18 * 3 + 1] = -0.4 * (1 + swing)  # L elbow
    pose[:, 19 * 3 + 1] = 0.4 * (1 - swing)   # R elbow
    pose += rng.normal(scale=0.01, size=pose.shape)
    return pose


def _camera(frames: int, distance: float) -> np.ndarray:
    """(F, 4, 4) world -> camera: looking at the origin from `distance`, world y up becomes
    image y down, the camera pans slowly about the vertical."""
    t = np.arange(frames) / 30.0
    flip = Rotation.from_euler("x", np.pi)
    pan = Rotation.from_euler("y", 0.15 * np.sin(2 * np.pi * 0.05 * t)[:, None])
    cams = np.tile(np.eye(4), (frames, 1, 1))
    cams[:, :3, :3] = (flip * pan).as_matrix() if frames else np.zeros((0, 3, 3))
    cams[:, :3, 3] = [0.0, 0.2, distance]
    return cams


def _project(points: np.ndarray, cams: np.ndarray, k: np.ndarray) -> np.ndarray:
    """(F, P, 3) world points, (F, 4, 4) cameras -> (F, P, 2) pixels."""
    cam_points = np.einsum("fij,fpj->fpi", cams[:, :3, :3], points) + cams[:, None, :3, 3]
    uv = cam_points[..., :2] / cam_points[..., 2:3]
    return uv * np.array([k[0, 0], k[1, 1]]) + k[:2, 2]


def write_synthetic_3dpw(root: str | Path, body: BodyFn, split: str = "test",
                         sequences: int = 2, frames: int = 150, people: int = 2,
                         size: tuple[int, int] = (160, 120), seed: int = 0) -> SyntheticTruth:
    """Write the dataset under `root` (split folder as in the release); returns the truth."""
    root = Path(root)
    rng = np.random.default_rng(seed)
    width, height = size
    k = np.array([[0.9 * width, 0, width / 2], [0, 0.9 * width, height / 2], [0, 0, 1.0]])
    truth = SyntheticTruth()
    seq_dir = root / "sequenceFiles" / SPLIT_DIRS[split]
    seq_dir.mkdir(parents=True, exist_ok=True)
    palette = [(70, 120, 230), (230, 140, 60), (80, 200, 120)]
    for s in range(sequences):
        name = f"synth_{split}_{s:02d}"
        truth.sequences.append(name)
        truth.frames[name] = frames
        cams = _camera(frames, distance=4.0 + s)
        data: dict = {"sequence": name, "betas": [], "poses": [], "trans": [], "poses2d": [],
                      "campose_valid": [], "genders": [], "cam_poses": cams,
                      "cam_intrinsics": k, "img_frame_ids": np.arange(frames) * 2}
        verts_all, joints_all = [], []
        for p in range(people):
            track = f"{name}_{p}"
            betas = rng.normal(scale=0.5, size=10)
            pose = _walk_pose(frames, phase=p * 1.3 + s, rng=rng)
            t = np.arange(frames) / 30.0
            trans = np.stack([(p - (people - 1) / 2) * 1.0 + 0.2 * np.sin(0.5 * t + p),
                              np.zeros(frames), 0.3 * np.sin(0.3 * t + s)], axis=1)
            verts, joints = body(pose, np.repeat(betas[None], frames, 0), trans)
            verts_all.append(np.asarray(verts))
            joints_all.append(np.asarray(joints))
            kp_uv = _project(np.asarray(joints)[:, COCO18_FROM_SMPL24], cams, k)
            conf = np.ones((frames, 18))
            if s == 0 and p == 1:
                late = max(2, frames // 20)
                truth.late_start[track] = late
                conf[:late] = 0.0
            if s == 0 and p == 0:
                few = [frames // 4 + i for i in range(4)]
                conf[np.ix_(few, LIMBS[:6])] = 0.1  # 6 of 12 limbs visible: not > 6
                truth.few_visible[track] = few
                conf[frames // 2] = 0.0
                truth.invisible[track] = [frames // 2]
            valid = np.ones(frames, dtype=bool)
            if p == 0:
                invalid = [frames // 3, frames // 3 + 1]
                valid[invalid] = False
                truth.campose_invalid[track] = invalid
            kp = np.concatenate([kp_uv, conf[..., None]], axis=-1)  # (F, 18, 3)
            data["betas"].append(betas)
            data["poses"].append(pose)
            data["trans"].append(trans)
            data["poses2d"].append(kp.transpose(0, 2, 1).copy())  # (F, 3, 18) as released
            data["campose_valid"].append(valid)
            data["genders"].append("m" if p % 2 == 0 else "f")
        with open(seq_dir / f"{name}.pkl", "wb") as handle:
            pickle.dump(data, handle, protocol=2)
        image_dir = root / "imageFiles" / name
        image_dir.mkdir(parents=True, exist_ok=True)
        for f in range(frames):
            image = np.full((height, width, 3), 40 + 10 * s, dtype=np.uint8)
            depth = [(cams[f, :3, :3] @ v[f].mean(0))[2] for v in verts_all]
            depth_order = np.argsort(depth)[::-1]
            for p in depth_order:  # far to near
                uv = _project(verts_all[p][f:f + 1], cams[f:f + 1], k)[0]
                inside = (uv[:, 0] >= 0) & (uv[:, 0] < width) & (uv[:, 1] >= 0) & \
                    (uv[:, 1] < height)
                px = uv[inside].astype(int)
                image[px[:, 1], px[:, 0]] = palette[p % len(palette)]
            cv2.imwrite(str(image_dir / f"image_{f:05d}.jpg"), image)
    return truth
