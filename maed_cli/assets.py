"""Where the licensed assets live (checkpoints, SMPL, regressors, detector weights).

One lookup order everywhere: an explicit command-line path, then `$MAED_HOME`, then
`./weights/` (relative to the working directory), then the user data folder (platformdirs,
e.g. `~/.local/share/maed` on Linux). `maed setup` installs into `asset_home()`; `maed doctor`
reports what is found where. Nothing here downloads anything.
"""
from __future__ import annotations

import os
from pathlib import Path

from .errors import AssetMissingError, InputError

APP_NAME = "maed"
ENV_HOME = "MAED_HOME"
CHECKPOINT_NAMES = ("model_best.pth.tar", "maed.pt")
SMPL_NPZ = "smpl/SMPL_NEUTRAL.npz"
SMPL_PKL_NAMES = ("SMPL_NEUTRAL.pkl", "basicModel_neutral_lbs_10_207_0_v1.0.0.pkl",
                  "basicmodel_neutral_lbs_10_207_0_v1.1.0.pkl")
REGRESSOR_EXTRA = "J_regressor_extra.npy"
REGRESSOR_H36M = "J_regressor_h36m.npy"
CHECKPOINT_GDRIVE_ID = "1raRMRCbMGTZNHCHAStoWM0EWoTfOg4-m"


def user_data_dir() -> Path:
    """The per-user data folder (it may not exist yet)."""
    import platformdirs

    return Path(platformdirs.user_data_dir(APP_NAME, appauthor=False))


def search_dirs() -> list[Path]:
    """The asset folders in lookup order, without duplicates; they need not exist."""
    dirs: list[Path] = []
    home = os.environ.get(ENV_HOME)
    if home:
        dirs.append(Path(home).expanduser())
    dirs.append(Path.cwd() / "weights")
    dirs.append(user_data_dir())
    unique: list[Path] = []
    for d in dirs:
        if all(d.resolve() != u.resolve() for u in unique):
            unique.append(d)
    return unique


def asset_home() -> Path:
    """The folder `maed setup` installs into: $MAED_HOME if set, else the user data folder."""
    home = os.environ.get(ENV_HOME)
    return Path(home).expanduser() if home else user_data_dir()


def find_asset(names: str | tuple[str, ...], explicit: str | os.PathLike | None = None
               ) -> Path | None:
    """The first existing file among `names` (file names or relative paths), or None.

    `explicit` wins when given: an existing file is returned as is, an existing folder is an
    InputError (`refuse_folder`); a bare file name (no folder part) that does not exist in the
    working directory is searched for in the asset folders under that name; a missing path
    with a folder part gives None.
    """
    names = (names,) if isinstance(names, str) else tuple(names)
    if explicit is not None:
        path = Path(explicit).expanduser()
        if path.is_file():
            return path
        refuse_folder(path, Path(names[0]).name)
        if path.parent != Path("."):
            return None
        names = (path.name,)
    for folder in search_dirs():
        for name in names:
            candidate = folder / name
            if candidate.is_file():
                return candidate
    return None


def refuse_folder(path: str | os.PathLike, example: str) -> None:
    """An InputError when `path`, given where a file is wanted, is a folder: callers that only
    ask `is_file()` would otherwise report an existing path as "not found".

    `example` is the file name to suggest inside it (e.g. model_best.pth.tar)."""
    path = Path(path).expanduser()
    if path.is_dir():
        raise InputError(f"{path} is a folder; give the file (e.g. {path / example})")


def describe_search(name: str) -> str:
    """'a, b, c' — the places `find_asset(name)` looked, for error messages."""
    return ", ".join(str(folder / name) for folder in search_dirs())


def require_asset(name: str, explicit: str | os.PathLike | None = None, *,
                  what: str, how: str) -> Path:
    """`find_asset` or an AssetMissingError naming the file, the places tried and the fix."""
    found = find_asset(name, explicit)
    if found is not None:
        return found
    if explicit is not None and Path(explicit).expanduser().parent != Path("."):
        raise AssetMissingError(f"{what} not found: {explicit} does not exist. {how}")
    raise AssetMissingError(f"{what} '{Path(explicit or name).name}' not found "
                            f"(looked in {describe_search(Path(explicit or name).name)}). {how}")


def checkpoint_missing_message() -> str:
    return (f"no MAED checkpoint found (looked for {' / '.join(CHECKPOINT_NAMES)} in "
            f"{', '.join(str(d) for d in search_dirs())}). Get the official model_best.pth.tar "
            f"(Google Drive id {CHECKPOINT_GDRIVE_ID}, linked from the MAED README) and run "
            f"`maed setup weights PATH`, or `maed setup weights --download` when online (demo, "
            f"eval and a one-process batch do that themselves unless --no-download), or pass "
            f"--checkpoint PATH")


def find_checkpoint(explicit: str | os.PathLike | None = None) -> Path:
    found = find_asset(CHECKPOINT_NAMES, explicit)
    if found is not None:
        return found
    if explicit is not None:
        raise AssetMissingError(f"checkpoint not found: {explicit} does not exist")
    raise AssetMissingError(checkpoint_missing_message())
