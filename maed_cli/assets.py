"""Where the licensed assets live, and how to find them.

Lookup order for every asset: an explicit path (command-line option) -> `$MAED_HOME` ->
`./weights/` -> the user data folder (platformdirs). `maed setup` installs into the first
writable folder of that list (`asset_home()`); `maed doctor` reports what is found where.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from .errors import AssetMissingError

CHECKPOINT_NAMES = ("model_best.pth.tar", "maed.pt")
SMPL_NPZ = "smpl/SMPL_NEUTRAL.npz"
SMPL_PKL_NAMES = ("SMPL_NEUTRAL.pkl", "basicModel_neutral_lbs_10_207_0_v1.0.0.pkl",
                  "basicmodel_neutral_lbs_10_207_0_v1.1.0.pkl")
REGRESSOR_EXTRA = "J_regressor_extra.npy"
REGRESSOR_H36M = "J_regressor_h36m.npy"
CHECKPOINT_GDRIVE_ID = "1raRMRCbMGTZNHCHAStoWM0EWoTfOg4-m"


def search_dirs() -> list[Path]:
    """Asset folders in lookup order (those that do not exist are still listed)."""
    dirs: list[Path] = []
    if os.environ.get("MAED_HOME"):
        dirs.append(Path(os.environ["MAED_HOME"]).expanduser())
    dirs.append(Path.cwd() / "weights")
    try:
        import platformdirs
        dirs.append(Path(platformdirs.user_data_dir("maed", appauthor=False)))
    except ImportError:  # pragma: no cover - platformdirs is a dependency
        dirs.append(Path.home() / ".local" / "share" / "maed")
    unique: list[Path] = []
    for d in dirs:
        if d not in unique:
            unique.append(d)
    return unique


def asset_home() -> Path:
    """The folder `maed setup` installs into: $MAED_HOME if set, else the user data folder."""
    if os.environ.get("MAED_HOME"):
        return Path(os.environ["MAED_HOME"]).expanduser()
    return search_dirs()[-1]


def find_asset(names: str | tuple[str, ...], explicit: str | os.PathLike | None = None
               ) -> Path | None:
    """First existing file among `names` (relative paths) in the search folders.

    An explicit path wins and must exist (a typo in an option is an error, not a fallback).
    """
    if explicit is not None:
        path = Path(explicit).expanduser()
        if not path.exists():
            raise AssetMissingError(f"{path} does not exist")
        return path
    names = (names,) if isinstance(names, str) else names
    for folder in search_dirs():
        for name in names:
            candidate = folder / name
            if candidate.is_file():
                return candidate
    return None


def where_to_put(name: str) -> str:
    return f"{asset_home() / name}"


def checkpoint_missing_message() -> str:
    return (f"no MAED checkpoint found (looked for {' / '.join(CHECKPOINT_NAMES)} in "
            f"{', '.join(str(d) for d in search_dirs())}). Get the official model_best.pth.tar "
            f"(Google Drive id {CHECKPOINT_GDRIVE_ID}, linked from the MAED README) and run "
            f"`maed setup weights PATH`, or `maed setup weights --download` when online, or "
            f"pass --checkpoint PATH")


def find_checkpoint(explicit: str | os.PathLike | None = None) -> Path:
    found = find_asset(CHECKPOINT_NAMES, explicit)
    if found is None:
        raise AssetMissingError(checkpoint_missing_message())
    return found


@dataclass(frozen=True)
class AssetStatus:
    name: str
    path: Path | None
    detail: str
    fix: str

    @property
    def ok(self) -> bool:
        return self.path is not None
