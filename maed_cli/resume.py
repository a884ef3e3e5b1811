"""What an interrupted `maed demo` leaves to pick up: the tracks, and each finished track's
network outputs.

Both live in a hidden folder beside the results, `.<name>.resume/` (the results folder
itself appears only complete, see maed_cli.atomic):

    tracks_<key>.npz          the first pass (who is where), written as soon as it ends
    net_<key>/track_NNNN.npz  one track's network outputs in frame order (rotmat (n, 24, 3, 3),
                              betas (n, 10), cam (n, 3)), written as the track's last clip runs

Each file is renamed into place whole, so a kill -9 at any moment leaves only complete
files. A re-run with the same input and settings loads them and runs the network only for
the tracks not yet there; the folder is removed once the results folder is in place.
"""
from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import torch

from .atomic import atomic_path
from .interrupt import maybe_kill_for_test

THETA_KEYS = ("rotmat", "betas", "cam")


def resume_dir(output: Path) -> Path:
    return Path(output).parent / f".{Path(output).name}.resume"


def network_key(tracking_key: str, checkpoint_info: dict | None, settings: dict) -> str:
    """What a track's network outputs depend on beyond its boxes: the weights and the
    clip settings (interp, crop scale, precision)."""
    info = checkpoint_info or {}
    blob = json.dumps({"tracks": tracking_key, "weights": info.get("sha256") or info.get("path"),
                       **settings}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


class NetworkResume:
    """Per-track network outputs of a run, kept as each track completes (None: disabled)."""

    def __init__(self, folder: Path | None) -> None:
        self.folder = folder
        self.saved = 0

    def _path(self, track_id: int) -> Path:
        assert self.folder is not None
        return self.folder / f"track_{int(track_id):04d}.npz"

    def load(self, track_ids) -> dict[int, dict[str, torch.Tensor]]:
        """The finished tracks among `track_ids` (unreadable files are ignored)."""
        found: dict[int, dict[str, torch.Tensor]] = {}
        if self.folder is None or not self.folder.is_dir():
            return found
        for tid in track_ids:
            path = self._path(tid)
            if not path.is_file():
                continue
            try:
                with np.load(path, allow_pickle=False) as data:
                    found[tid] = {k: torch.from_numpy(data[k].copy()) for k in THETA_KEYS}
            except (OSError, KeyError, ValueError):
                continue
        return found

    def save(self, track_id: int, theta: dict[str, torch.Tensor]) -> None:
        if self.folder is None:
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        with atomic_path(self._path(track_id)) as tmp, open(tmp, "wb") as handle:
            np.savez(handle, **{k: theta[k].numpy() for k in THETA_KEYS})
        self.saved += 1
        maybe_kill_for_test(self.saved)


def remove_resume(output: Path) -> None:
    """The run is complete: what it kept for a resume is no longer needed."""
    shutil.rmtree(resume_dir(output), ignore_errors=True)
