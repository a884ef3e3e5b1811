"""Small synthetic training data in the VIBE/MAED db format, for tests and the CPU smoke run.

    write_synthetic_train_data(folder) -> {name: db path}

Writes `folder/database/<name>_<split>_db.pt` (joblib, as the real files) and the images they
name under `folder/<name>/...`: a 3D video set (`3dpw` train and val, with SMPL labels), a 2D
video set (`insta`: pre-cropped images, no bbox), and an image set (`coco2014-all`, half of
its rows with SMPL fits). Images are small (64²) coloured shapes; keypoints are random but
consistent with the boxes. Nothing here is licensed data.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..atomic import atomic_path


def _image(rng: np.random.Generator, size: int) -> np.ndarray:
    img = np.full((size, size, 3), rng.integers(0, 255, 3), np.uint8)
    for _ in range(3):
        x0, y0 = rng.integers(0, size - 8, 2)
        w, h = rng.integers(4, size // 2, 2)
        img[y0:y0 + h, x0:x0 + w] = rng.integers(0, 255, 3)
    return img


def _write_db(path: Path, db: dict) -> None:
    import joblib

    with atomic_path(path) as tmp:
        joblib.dump(db, tmp)


def _rows(rng: np.random.Generator, folder: Path, name: str, vids: list[str], per_vid: int,
          size: int, with_3d: bool, with_smpl: bool, bbox: bool) -> dict:
    import cv2

    img_names, vid_names, frame_ids = [], [], []
    for vid in vids:
        for f in range(per_vid):
            rel = Path(name) / vid / f"{f:05d}.png"
            out = folder / rel
            out.parent.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(out), _image(rng, size))
            img_names.append(str(rel))
            vid_names.append(vid)
            frame_ids.append(f)
    n = len(img_names)
    centre = size / 2
    kp2d = np.zeros((n, 49, 3), np.float32)
    kp2d[..., :2] = centre + rng.normal(0, size / 6, (n, 49, 2))
    kp2d[..., 2] = (rng.random((n, 49)) > 0.2).astype(np.float32)
    db = {"img_name": np.array(img_names), "vid_name": np.array(vid_names),
          "frame_id": np.array(frame_ids), "joints2D": kp2d}
    if bbox:
        db["bbox"] = np.tile(np.array([centre, centre, size * 0.7, size * 0.7], np.float32),
                             (n, 1))
    if with_3d:
        kp3d = np.zeros((n, 49, 4), np.float32)
        kp3d[..., :3] = rng.normal(0, 0.3, (n, 49, 3))
        kp3d[:, 25:39, 3] = 1.0
        db["joints3D"] = kp3d
    if with_smpl:
        db["pose"] = rng.normal(0, 0.2, (n, 72)).astype(np.float32)
        db["shape"] = rng.normal(0, 0.5, (n, 10)).astype(np.float32)
    return db


def write_synthetic_train_data(folder: str | Path, seed: int = 0, frames_per_video: int = 12,
                               videos: int = 2, images: int = 6, size: int = 64
                               ) -> dict[str, Path]:
    folder = Path(folder)
    rng = np.random.default_rng(seed)
    out = {}
    specs = {
        ("3dpw", "train"): dict(vids=[f"seq{i}_0" for i in range(videos)], per_vid=frames_per_video,
                                with_3d=True, with_smpl=True, bbox=True),
        ("3dpw", "val"): dict(vids=["valseq_0"], per_vid=frames_per_video, with_3d=True,
                              with_smpl=True, bbox=True),
        ("insta", "train"): dict(vids=[f"insta{i}" for i in range(videos)],
                                 per_vid=frames_per_video, with_3d=False, with_smpl=False,
                                 bbox=False),
        ("coco2014-all", "train"): dict(vids=["coco"], per_vid=images, with_3d=False,
                                        with_smpl=True, bbox=True),
    }
    for (name, split), spec in specs.items():
        db = _rows(rng, folder, name, size=size, **spec)
        if name == "coco2014-all":  # half the images have no SMPL fit
            del db["vid_name"]
            db["pose"][1::2] = 0.0
            db["shape"][1::2] = 0.0
        path = folder / "database" / f"{name}_{split}_db.pt"
        path.parent.mkdir(parents=True, exist_ok=True)
        _write_db(path, db)
        out[f"{name}_{split}"] = path
    return out
