"""Training datasets read from VIBE/MAED-style db files (reference §4.5) and their images.

    VideoClips   3DPW, MPI-INF-3DHP, Human3.6M (3D); InstaVariety, PoseTrack, PennAction (2D)
    ImageRows    COCO, LSP-extended, MPII (2D, optional SMPL fits), or a 3D db used per frame

A db file `<data_dir>/database/<name>_train_db.pt` is a joblib dict of per-row arrays; it is
read with a loader that refuses anything but arrays and plain data. Each item is indexed by
`(pass, index)`: the augmentation draws from a generator seeded with (seed, dataset, pass,
index), so an item is a pure function of those numbers (exact resume, any worker count).

Clip sampling (supplementary; reference §3.2): each video is reflect-padded to a multiple of
`sample_pool` (128) rows and windowed with a stride; an item is one pool, from which a clip of
`seqlen` (16) frames is taken at interval `pool // seqlen` (8) from a random start in
0..interval-1.

Every sample is a dict of tensors, T = seqlen for clips and 1 for images:
    images (T, 3, 224, 224) float32 ImageNet-normalised   kp2d (T, 49, 3) normalised crop xy+conf
    kp3d (T, 49, 4) metres xyz+conf                        pose (T, 72) axis-angle, shape (T, 10)
    w_smpl (T,) 1 where pose/shape are labels               w_3d (T,) 1 where kp3d is a label
    id: "<db file>:<first row>" for error messages
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from ...errors import InputError
from . import augment as A
from ...safe_pickle import as_str_array as str_array

# Datasets whose images are already 224² person crops (no bbox in the db).
PRECROPPED = {"insta"}


class BadSampleError(InputError):
    """A db row or clip that cannot be used; the message names the file and the row."""


def load_db_file(path: Path) -> dict[str, np.ndarray]:
    """A joblib/pickle db as a dict of arrays, refusing files that could run code."""
    from ...safe_pickle import load_joblib
    if not path.is_file():
        raise InputError(f"db file not found: {path}")
    try:
        raw = load_joblib(path)
    except Exception as exc:  # noqa: BLE001 - any failure is one clear message
        raise InputError(f"{path}: not a readable db file ({type(exc).__name__}: "
                         f"{str(exc)[:160]})") from None
    if not isinstance(raw, dict):
        raise InputError(f"{path}: not a db file (holds a {type(raw).__name__}, not a dict)")
    return raw




def find_db(data_dir: Path, name: str, split: str = "train") -> Path:
    file = f"{name}_{split}_db.pt"
    for candidate in (data_dir / "database" / file, data_dir / file):
        if candidate.is_file():
            return candidate
    raise InputError(f"db file {file} not found in {data_dir / 'database'} or {data_dir} "
                     f"(set data.data_dir, or drop {name!r} from the dataset lists)")


def resolve_image_paths(names: np.ndarray, root: Path, db_path: Path) -> np.ndarray:
    """Map db image names (often the authors' absolute paths) under `root`.

    The first name decides how many leading folders to drop so that the rest exists under
    `root`; all rows are mapped the same way. Rows whose file is missing are found later by
    the per-row check, which names them.
    """
    first = Path(str(names[0]))
    if first.is_absolute() and first.is_file():
        return names.astype(str)
    parts = first.parts
    for drop in range(len(parts)):
        if (root / Path(*parts[drop:])).is_file():
            return np.array([str(root / Path(*Path(str(n)).parts[drop:])) for n in names])
    raise InputError(f"{db_path}: row 0: image {first} is not under {root} (set "
                     f"data.image_roots.<dataset> to the folder that holds its images)")


@dataclass
class DbTable:
    """One db file, validated: per-row arrays and a mask of usable rows."""

    name: str
    path: Path
    img: np.ndarray  # (R,) str, resolved paths
    kp2d: np.ndarray  # (R, 49, 3)
    bbox: np.ndarray | None  # (R, 4) cx, cy, w, h
    kp3d: np.ndarray | None  # (R, 49, 4)
    pose: np.ndarray | None  # (R, 72)
    shape: np.ndarray | None  # (R, 10)
    vid: np.ndarray | None  # (R,) str
    smpl_mask: np.ndarray | None = None  # (R,) bool: rows whose pose/shape are real labels
    bad: dict[int, str] = field(default_factory=dict)  # row -> reason

    def __len__(self) -> int:
        return len(self.img)


def read_table(name: str, path: Path, image_root: Path, need_3d: bool, need_video: bool,
               check_images: bool) -> DbTable:
    raw = load_db_file(path)
    need = ["img_name", "joints2D"] + (["joints3D"] if need_3d else []) \
        + (["vid_name"] if need_video else []) + ([] if name in PRECROPPED else ["bbox"])
    missing = [k for k in need if k not in raw]
    if missing:
        raise InputError(f"{path}: lacks {', '.join(missing)} (keys found: "
                         f"{', '.join(sorted(map(str, raw)))}); a {name} training db needs "
                         f"{', '.join(need)}")
    n = len(raw["img_name"])
    if n == 0:
        raise InputError(f"{path}: the db has no rows")

    def arr(key: str, shape: tuple[int, ...]) -> np.ndarray | None:
        if key not in raw:
            return None
        a = np.asarray(raw[key], np.float32)
        if a.shape[0] != n:
            raise InputError(f"{path}: {key} has {a.shape[0]} rows, img_name has {n}")
        if key == "pose" and a.shape[1:] == (24, 3, 3):  # rotation matrices in some dbs
            from ...body.geometry import rotmat_to_axis_angle
            a = rotmat_to_axis_angle(torch.from_numpy(a)).reshape(n, 72).numpy()
        if key == "shape" and a.ndim == 2 and a.shape[1] > 10:
            a = a[:, :10]
        if a.shape[1:] != shape:
            raise InputError(f"{path}: {key} has per-row shape {a.shape[1:]}, expected {shape}")
        return a

    kp2d = arr("joints2D", (49, 3))
    table = DbTable(name=name, path=path, img=np.empty(0), kp2d=kp2d,
                    bbox=arr("bbox", (4,)), kp3d=arr("joints3D", (49, 4)),
                    pose=arr("pose", (72,)), shape=arr("shape", (10,)),
                    vid=str_array(raw["vid_name"]) if "vid_name" in raw else None)
    if table.pose is not None and table.shape is not None:
        # Image dbs with optional fits: an explicit flag if the db has one, else a row whose
        # pose is exactly zero has no fit (the official code trained towards zero there).
        flag = next((raw[k] for k in ("has_smpl", "w_smpl") if k in raw), None)
        table.smpl_mask = (np.asarray(flag).reshape(n) > 0 if flag is not None
                           else np.abs(table.pose).sum(axis=1) > 0)
    table.img = resolve_image_paths(str_array(raw["img_name"]), image_root, path)
    # Per-row checks: each bad row is named; the caller raises or skips.
    for key in ("kp2d", "bbox", "kp3d", "pose", "shape"):
        values = getattr(table, key)
        if values is not None:
            for row in np.flatnonzero(~np.isfinite(values.reshape(n, -1)).all(axis=1)):
                table.bad.setdefault(int(row), f"{key} is not finite")
    if table.bbox is not None:
        for row in np.flatnonzero(~(np.maximum(table.bbox[:, 2], table.bbox[:, 3]) > 0)):
            table.bad.setdefault(int(row), "bbox has no extent")
    if check_images:
        for row, image in enumerate(table.img):
            if not os.path.isfile(image):
                table.bad.setdefault(row, f"image {image} does not exist")
    return table


def bad_rows_error(table: DbTable, rows: list[int]) -> BadSampleError:
    first = rows[0]
    more = f" (and {len(rows) - 1} more bad rows)" if len(rows) > 1 else ""
    return BadSampleError(f"{table.path}: row {first}: {table.bad[first]}{more}; fix the db or "
                          f"pass --skip-bad-samples to drop such samples")


def reflect_indices(n: int, length: int) -> np.ndarray:
    """0..n-1 then reflected (n-2 .. 1, 0 ..) up to `length` indices."""
    if n == 1:
        return np.zeros(length, np.int64)
    period = np.concatenate([np.arange(n), np.arange(n - 2, 0, -1)])
    return period[np.arange(length) % len(period)]


def plan_pools(vid: np.ndarray, pool: int, stride: int) -> list[tuple[int, np.ndarray]]:
    """Runs of equal `vid` rows -> (first row, (pool,) db rows) windows, reflect-padded."""
    pools = []
    change = np.flatnonzero(vid[1:] != vid[:-1]) + 1
    starts = np.concatenate([[0], change])
    ends = np.concatenate([change, [len(vid)]])
    for s, e in zip(starts, ends):
        n = int(e - s)
        padded = -(-n // pool) * pool
        idx = s + reflect_indices(n, padded)
        for w in range(0, padded - pool + 1, stride):
            pools.append((int(s), idx[w:w + pool]))
    return pools


def normalize(crops: np.ndarray) -> torch.Tensor:
    """(T, H, W, 3) uint8 -> (T, 3, H, W) float32 ImageNet-normalised, as at inference."""
    from ...video.crop import normalize_crops
    return torch.from_numpy(normalize_crops(crops))


def read_image(path: str, table: DbTable, row: int) -> np.ndarray:
    import cv2

    image = cv2.imread(path, cv2.IMREAD_COLOR)
    if image is None:
        raise BadSampleError(f"{table.path}: row {row}: cannot read image {path}")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


@dataclass
class AugmentSpec:
    training: bool = True
    crop_scale: float = 1.3
    random_crop_p: float = 0.2
    random_crop_scale: tuple[float, float] = (0.7, 1.3)
    color_jitter: tuple[float, float, float, float] | None = None  # None = off
    erase_p: float = 0.0
    erase_max: float = 0.7
    flip_p: float = 0.5


class _RowsDataset(Dataset):
    """Shared sample building: crop, augment, normalise, targets."""

    def __init__(self, table: DbTable, aug: AugmentSpec, seed: int, dataset_id: int,
                 skip_bad: bool = False):
        self.table, self.aug, self.seed, self.dataset_id = table, aug, seed, dataset_id
        self.skip_bad = skip_bad

    def __getitem__(self, key) -> dict[str, Any]:
        """The item, or with skip_bad an unreadable one replaced by the next readable item
        (marked `replaced` = 1, so the trainer can count them across worker processes)."""
        pass_, index = key if isinstance(key, tuple) else (0, key)
        for attempt in range(min(len(self), 16)):
            try:
                item = self._item((pass_, (index + attempt) % len(self)))
            except BadSampleError:
                if not self.skip_bad:
                    raise
                continue
            item["replaced"] = torch.tensor(float(attempt > 0))
            return item
        raise BadSampleError(f"{self.table.path}: 16 samples in a row from index {index} "
                             f"cannot be read")

    def _rng(self, key: Any) -> np.random.Generator:
        pass_, index = key if isinstance(key, tuple) else (0, key)
        return np.random.default_rng([self.seed, self.dataset_id, int(pass_), int(index)])

    def _sample(self, rows: np.ndarray, rng: np.random.Generator,
                jitter_colors: bool) -> dict[str, Any]:
        t = self.table
        aug = self.aug
        if aug.training:
            crop = A.sample_crop(rng, aug.crop_scale, aug.random_crop_p, aug.random_crop_scale)
        else:
            crop = A.CropParams(aug.crop_scale)
        frames, kp2d = [], []
        for row in rows:
            image = read_image(t.img[row], t, int(row))
            if t.bbox is None:  # pre-cropped images: the whole image is the crop
                h, w = image.shape[:2]
                region = np.array([w / 2, h / 2, max(w, h)], np.float64)
            else:
                region = A.crop_region(t.bbox[row], crop)
            frames.append(A.warp_crop(image, region))
            kp2d.append(A.keypoints_to_crop(t.kp2d[row], region))
        crops = np.stack(frames)
        kp2d = np.stack(kp2d)
        n = len(rows)
        kp3d = t.kp3d[rows].copy() if t.kp3d is not None else np.zeros((n, 49, 4), np.float32)
        has_smpl = t.pose is not None and t.shape is not None
        pose = t.pose[rows].copy() if has_smpl else np.zeros((n, 72), np.float32)
        shape = t.shape[rows].copy() if has_smpl else np.zeros((n, 10), np.float32)
        w_smpl = (t.smpl_mask[rows].astype(np.float32) if has_smpl and t.smpl_mask is not None
                  else np.full(n, float(has_smpl), np.float32))
        if aug.training:
            if jitter_colors and aug.color_jitter is not None:
                crops = A.color_jitter(crops, rng, aug.color_jitter)
            if aug.erase_p > 0:
                crops = A.random_erase(crops, rng, aug.erase_p, aug.erase_max)
            if rng.random() < aug.flip_p:
                crops = np.ascontiguousarray(crops[:, :, ::-1])
                kp2d = A.flip_keypoints(kp2d)
                kp3d = A.flip_keypoints(kp3d)
                pose = A.flip_pose(pose)
        w_3d = float(t.kp3d is not None)
        return {
            "images": normalize(crops),
            "kp2d": torch.from_numpy(kp2d.astype(np.float32)),
            "kp3d": torch.from_numpy(kp3d.astype(np.float32)),
            "pose": torch.from_numpy(pose.astype(np.float32)),
            "shape": torch.from_numpy(shape.astype(np.float32)),
            "w_smpl": torch.from_numpy(w_smpl),
            "w_3d": torch.full((n,), w_3d),
            "id": f"{t.path}:{int(rows[0])}",
        }


class VideoClips(_RowsDataset):
    """Clips of `seqlen` frames at interval pool // seqlen from `sample_pool`-row pools."""

    def __init__(self, table: DbTable, seqlen: int = 16, sample_pool: int = 128,
                 stride: int = 64, aug: AugmentSpec | None = None, seed: int = 0,
                 dataset_id: int = 0, skip_bad: bool = False, color: bool = False):
        super().__init__(table, aug or AugmentSpec(), seed, dataset_id, skip_bad)
        if table.vid is None:
            raise InputError(f"{table.path}: a video db needs vid_name")
        self.seqlen, self.pool, self.color = seqlen, sample_pool, color
        self.interval = sample_pool // seqlen
        self.skipped = 0
        self.pools: list[np.ndarray] = []
        change = np.flatnonzero(table.vid[1:] != table.vid[:-1]) + 1
        bounds = zip(np.concatenate([[0], change]), np.concatenate([change, [len(table)]]))
        short_rows = {}
        for s, e in bounds:
            if e - s < seqlen:
                short_rows[int(s)] = (f"video {table.vid[s]!s} (rows {s}..{e - 1}) has {e - s} "
                                      f"frames, fewer than the {seqlen} a clip needs")
        for row, reason in short_rows.items():
            table.bad.setdefault(row, reason)
        bad = np.zeros(len(table), bool)
        bad[list(table.bad)] = True
        for first, rows in plan_pools(table.vid, sample_pool, stride):
            if first in short_rows or bad[rows].any():
                if not skip_bad:
                    raise bad_rows_error(table, sorted(table.bad))
                self.skipped += 1
                continue
            self.pools.append(rows)
        if not self.pools:
            raise InputError(f"{table.path}: no usable clip ({self.skipped} skipped as bad)")

    def __len__(self) -> int:
        return len(self.pools)

    def clip_rows(self, pool: np.ndarray, start: int) -> np.ndarray:
        return pool[start::self.interval][:self.seqlen]

    def _item(self, key) -> dict[str, Any]:
        rng = self._rng(key)
        index = key[1]
        start = int(rng.integers(0, self.interval)) if self.aug.training else 0
        return self._sample(self.clip_rows(self.pools[index], start), rng, self.color)


class ImageRows(_RowsDataset):
    """Single frames (T = 1); every `subsample`-th row."""

    def __init__(self, table: DbTable, aug: AugmentSpec | None = None, seed: int = 0,
                 dataset_id: int = 0, skip_bad: bool = False, subsample: int = 1):
        super().__init__(table, aug or AugmentSpec(), seed, dataset_id, skip_bad)
        rows = np.arange(0, len(table), max(1, subsample))
        bad = [r for r in rows if int(r) in table.bad]
        if bad and not skip_bad:
            raise bad_rows_error(table, [int(r) for r in bad])
        self.skipped = len(bad)
        self.rows = np.array([r for r in rows if int(r) not in table.bad], np.int64)
        if not len(self.rows):
            raise InputError(f"{table.path}: no usable row ({self.skipped} skipped as bad)")

    def __len__(self) -> int:
        return len(self.rows)

    def _item(self, key) -> dict[str, Any]:
        rng = self._rng(key)
        index = key[1]
        return self._sample(self.rows[index:index + 1], rng, False)


class Concat(Dataset):
    """Datasets back to back, indexed by (pass, global index)."""

    def __init__(self, parts: list[Dataset]):
        self.parts = parts
        self.offsets = np.cumsum([0] + [len(p) for p in parts])

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def __getitem__(self, key) -> dict[str, Any]:
        pass_, index = key if isinstance(key, tuple) else (0, key)
        part = int(np.searchsorted(self.offsets, index, side="right") - 1)
        return self.parts[part][(pass_, int(index - self.offsets[part]))]

    @property
    def skipped(self) -> int:
        return sum(getattr(p, "skipped", 0) for p in self.parts)


def pool_stride(pool: int, overlap: float) -> int:
    return int(overlap) if overlap >= 1 else max(1, int(pool * (1 - overlap)))


def build_datasets(cfg, training: bool = True) -> dict[str, Concat]:
    """The configured streams: 'video_2d', 'video_3d', 'images' (empty ones left out).

    `cfg` is a TrainConfig. 3D videos get colour jitter; stage 1 turns colour/erase off via
    augment.color/erase."""
    data, aug_cfg = cfg.data, cfg.augment
    data_dir = Path(data.data_dir)
    streams: dict[str, Concat] = {}

    def spec(color: bool) -> AugmentSpec:
        return AugmentSpec(training=training, crop_scale=aug_cfg.crop_scale,
                           random_crop_p=aug_cfg.random_crop_p,
                           random_crop_scale=tuple(aug_cfg.random_crop_scale),
                           color_jitter=tuple(aug_cfg.color_jitter) if color and aug_cfg.color
                           else None,
                           erase_p=aug_cfg.erase_p if aug_cfg.erase else 0.0,
                           erase_max=aug_cfg.erase_max, flip_p=aug_cfg.flip_p)

    def root(name: str) -> Path:
        given = data.image_roots.get(name)
        return (data_dir / given if given and not Path(given).is_absolute() else
                Path(given) if given else data_dir / name)

    dataset_id = 0
    for stream, names, is3d in (("video_2d", data.video_2d, False),
                                ("video_3d", data.video_3d, True),
                                ("images", data.images, None)):
        if cfg.stage == 1 and stream != "images":
            continue
        parts = []
        for name in names:
            dataset_id += 1
            path = find_db(data_dir, name)
            if stream == "images":
                table = read_table(name, path, root(name), False, False, data.check_images)
                parts.append(ImageRows(table, spec(False), cfg.seed, dataset_id,
                                       data.skip_bad_samples,
                                       data.image_subsample.get(name, 1)))
            else:
                table = read_table(name, path, root(name), bool(is3d), True, data.check_images)
                stride = pool_stride(data.sample_pool,
                                     data.overlap_by_dataset.get(name, data.overlap))
                parts.append(VideoClips(table, data.seqlen, data.sample_pool, stride,
                                        spec(bool(is3d)), cfg.seed, dataset_id,
                                        data.skip_bad_samples, color=bool(is3d)))
        if parts:
            streams[stream] = Concat(parts)
    return streams
