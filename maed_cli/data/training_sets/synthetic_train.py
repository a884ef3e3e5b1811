"""Small synthetic training data in the VIBE/MAED db format, for tests and the CPU smoke run.

    write_synthetic_train_data(folder) -> {name: db path}

From the command line, the data plus a synthetic SMPL model and regressors, and the
`maed train` command that trains on them:

    python -m maed_cli.data.training_sets.synthetic_train DIR

Writes `folder/database/<name>_<split>_db.pt` (joblib, as the real files) and the images they
name under `folder/<name>/...`: a 3D video set (`3dpw` train and val, with SMPL labels), a 2D
video set (`insta`: pre-cropped images, no bbox), and an image set (`coco2014-all`, half of
its rows with SMPL fits). Images are small (64²) coloured shapes; keypoints are random but
consistent with the boxes. Nothing here is licensed data.
"""
from __future__ import annotations

import argparse
import shlex
from pathlib import Path

import numpy as np

from ...atomic import atomic_path


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


BODY_FOLDER = "body"  # under the data folder: the synthetic SMPL model and the regressors


def write_synthetic_training_setup(folder: str | Path, seed: int = 0) -> dict[str, Path]:
    """The training data (`write_synthetic_train_data`) and, in `folder/body/`, a synthetic
    SMPL model with both regressors (`maed_cli.body.synthetic`): everything `maed train
    --config cpu-smoke` needs. Returns the db paths and `smpl`, `extra`, `h36m`."""
    from ...body.synthetic import write_synthetic_assets

    folder = Path(folder)
    out: dict[str, Path] = dict(write_synthetic_train_data(folder, seed=seed))
    body = write_synthetic_assets(folder / BODY_FOLDER, seed=seed)
    out.update(smpl=body["npz"], extra=body["extra"], h36m=body["h36m"])
    return out


def train_command(folder: str | Path, out_dir: str | Path, config: str = "cpu-smoke"
                  ) -> list[str]:
    """The `maed train` arguments that train `config` on what
    `write_synthetic_training_setup(folder)` wrote, into `out_dir`."""
    body = Path(folder) / BODY_FOLDER
    return ["train", "--config", config, f"data.data_dir={folder}",
            f"body.smpl={body / 'SMPL_NEUTRAL.npz'}",
            f"body.j_regressor_extra={body / 'J_regressor_extra.npy'}",
            f"body.j_regressor_h36m={body / 'J_regressor_h36m.npy'}", f"out_dir={out_dir}"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m maed_cli.data.training_sets.synthetic_train",
        description="Write small synthetic training data (db files and images of 3dpw "
                    "train/val, insta, coco2014-all) and a synthetic SMPL model with its "
                    "regressors into DIR (DIR/body/), then print the `maed train` command "
                    "that runs the tiny CPU configuration on them. Nothing here is licensed "
                    "data; the numbers such a run reports mean nothing.")
    parser.add_argument("folder", metavar="DIR", type=Path, help="where to write (created)")
    parser.add_argument("--out-dir", type=Path, default=None,
                        help="the run folder the printed command trains into "
                             "(default: DIR/run)")
    parser.add_argument("--seed", type=int, default=0, help="random seed of the data")
    args = parser.parse_args(argv)
    from ...atomic import check_writable
    from ...errors import MaedError

    try:
        check_writable(args.folder, "folder", "DIR", inside=True)
        paths = write_synthetic_training_setup(args.folder, seed=args.seed)
    except MaedError as exc:
        parser.exit(exc.exit_code, f"error: {exc}\n")
    out_dir = args.out_dir or args.folder / "run"
    dbs = sum(path.suffix == ".pt" for path in paths.values())
    print(f"wrote {dbs} synthetic db files and their images to "
          f"{args.folder / 'database'}, SMPL and regressors to {paths['smpl'].parent}")
    print("train on them (a tiny 1-block network, 2 epochs of 2 steps, validation after "
          "each):")
    print("  maed " + " ".join(shlex.quote(str(a)) for a in train_command(args.folder,
                                                                        out_dir)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
