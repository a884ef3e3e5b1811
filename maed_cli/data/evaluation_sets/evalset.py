"""An evaluation set: one row per evaluated frame of one person track, in track order.

Whatever the source (the official 3DPW release, a VIBE/MAED `*_db.pt` file), an evaluation
runs on this one structure. Rows of one track (`vid_name`) are contiguous and in frame order.
"""
from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import dataclass, field, fields
from pathlib import Path

import numpy as np

from ...atomic import atomic_path
from ...errors import InputError

#: Ground-truth joint layouts, with the indices of the right and left hip in each (the
#: protocols centre both sides on the hip midpoint).
JOINT_SETS: dict[str, dict] = {
    "lsp14": {"joints": 14, "hips": (2, 3),
              "about": "14 LSP joints from J_regressor_h36m (3DPW protocol)"},
    "h36m17": {"joints": 17, "hips": (2, 3),
               "about": "14 LSP + pelvis, spine, head from J_regressor_h36m (H36M_TO_J17)"},
    "mpii3d17": {"joints": 17, "hips": (2, 3),
                 "about": "14 LSP + pelvis, spine, head of the 49-joint set (J49_TO_MPII3D)"},
}

CACHE_FORMAT = 1


@dataclass
class EvalSet:
    """Columns of the evaluation rows (N rows).

    vid_name (N,) str: track name, `<sequence>_<person>` for 3DPW
    frame_id (N,) int: frame index in the sequence
    img_name (N,) str: absolute image path
    bbox (N, 4) float64: (cx, cy, w, h) pixels, the db box (the network crop is 1.3 x this)
    joints3d (N, J, 3) float64: ground-truth joints in `joint_set` order, metres
    valid (N,) bool: the dataset's own validity flag (reported, never used to drop frames,
        as in MAED's evaluation)
    pose (N, 72) / shape (N, 10) float64 or None: SMPL ground truth, for PVE
    """

    dataset: str
    split: str
    joint_set: str
    vid_name: np.ndarray
    frame_id: np.ndarray
    img_name: np.ndarray
    bbox: np.ndarray
    joints3d: np.ndarray
    valid: np.ndarray
    pose: np.ndarray | None = None
    shape: np.ndarray | None = None
    source: str = ""
    notes: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        n = len(self.vid_name)
        for name in ("frame_id", "img_name", "bbox", "joints3d", "valid", "pose", "shape"):
            value = getattr(self, name)
            if value is not None and len(value) != n:
                raise ValueError(f"EvalSet column {name} has {len(value)} rows, expected {n}")
        expected = JOINT_SETS[self.joint_set]["joints"]
        if self.joints3d.shape[1:] != (expected, 3):
            raise ValueError(f"joints3d {self.joints3d.shape} does not fit {self.joint_set}")

    def __len__(self) -> int:
        return len(self.vid_name)

    @property
    def has_mesh(self) -> bool:
        return self.pose is not None and self.shape is not None

    @property
    def hips(self) -> tuple[int, int]:
        return JOINT_SETS[self.joint_set]["hips"]

    def tracks(self) -> list[tuple[str, int, int]]:
        """(vid_name, start, stop) of each contiguous run of rows of one track."""
        if len(self) == 0:
            return []
        names = self.vid_name
        cuts = np.flatnonzero(names[1:] != names[:-1]) + 1
        starts = np.concatenate([[0], cuts])
        stops = np.concatenate([cuts, [len(names)]])
        return [(str(names[a]), int(a), int(b)) for a, b in zip(starts, stops)]

    def take(self, rows: np.ndarray | slice) -> "EvalSet":
        """The rows selected (index array or slice), as a new set."""
        values = {}
        for f in fields(self):
            value = getattr(self, f.name)
            values[f.name] = value[rows] if isinstance(value, np.ndarray) else value
        values["notes"] = list(self.notes)
        return EvalSet(**values)

    # -- cache (npz, no pickle) -------------------------------------------------------------
    def save(self, path: str | Path, meta: dict | None = None) -> None:
        """Write atomically as .npz without any pickled object."""
        arrays = {f.name: getattr(self, f.name) for f in fields(self)
                  if isinstance(getattr(self, f.name), np.ndarray)}
        header = {"format": CACHE_FORMAT, "dataset": self.dataset, "split": self.split,
                  "joint_set": self.joint_set, "source": self.source, "notes": self.notes,
                  "meta": meta or {}}
        arrays["vid_name"] = arrays["vid_name"].astype(str)
        arrays["img_name"] = arrays["img_name"].astype(str)
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as handle:
                np.savez(handle, _header=np.array(json.dumps(header)), **arrays)

    @classmethod
    def load(cls, path: str | Path) -> "EvalSet":
        with np.load(path, allow_pickle=False) as data:
            header = json.loads(str(data["_header"]))
            if header.get("format") != CACHE_FORMAT:
                raise ValueError(f"cache format {header.get('format')} != {CACHE_FORMAT}")
            arrays = {k: data[k] for k in data.files if k != "_header"}
        return cls(dataset=header["dataset"], split=header["split"],
                   joint_set=header["joint_set"], source=header["source"],
                   notes=list(header.get("notes", [])),
                   pose=arrays.pop("pose", None), shape=arrays.pop("shape", None), **arrays)


def check_images(paths: Iterable[str], what: str) -> None:
    """InputError naming the first missing image (and how many more are missing)."""
    missing = [p for p in dict.fromkeys(paths) if not os.path.isfile(p)]
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        folder = Path(missing[0]).parent
        hint = (f"the folder {folder} does not exist" if not folder.is_dir()
                else "the image folder is incomplete")
        raise InputError(f"{what} image missing: {missing[0]}{more}; {hint} — extract the "
                         f"dataset's images completely")
