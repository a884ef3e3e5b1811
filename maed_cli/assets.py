"""Where user assets (checkpoints, SMPL, regressors, detector weights) are looked up.

One order everywhere: an explicit command-line path, then `$MAED_HOME`, then `./weights/`
(relative to the working directory), then the user data folder (platformdirs, e.g.
`~/.local/share/maed` on Linux). Nothing here downloads anything.
"""
from __future__ import annotations

import os
from pathlib import Path

from .errors import AssetMissingError

APP_NAME = "maed"
ENV_HOME = "MAED_HOME"


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


def find_asset(name: str, explicit: str | os.PathLike | None = None) -> Path | None:
    """The first existing file for asset `name` (a file name or relative path), or None.

    `explicit` wins when given: an existing path is returned as is; a bare file name (no
    folder part) that does not exist in the working directory is searched for in the asset
    folders under that name.
    """
    if explicit is not None:
        path = Path(explicit).expanduser()
        if path.is_file():
            return path
        if path.parent != Path("."):
            return None
        name = path.name
    for folder in search_dirs():
        candidate = folder / name
        if candidate.is_file():
            return candidate
    return None


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
