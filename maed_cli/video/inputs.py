"""Input paths as users give them: files, folders, glob patterns and list files, expanded once.

`maed batch` (videos) and `maed demo` (images) accept the same forms:
    a file                     taken as it is, when `accept` says it is of the wanted kind
    a folder                   its files of that kind (recursively, unless told otherwise)
    a glob ('clips/**/*.mp4')  its matches of that kind (folders matched: their files)
    a list (.txt/.lst/.list)   one path per line, blank lines and # comments ignored,
                               relative paths relative to the list file
Each file gets a name, its path relative to the folder, to the glob's fixed part, or to the
common folder of a list's entries: where its results go (DIR/<name>/).
"""
from __future__ import annotations

import glob
import os
from collections.abc import Callable, Sequence
from pathlib import Path

from ..errors import InputError

LIST_SUFFIXES = (".txt", ".lst", ".list")


def glob_base(pattern: str) -> Path:
    """The leading part of a glob pattern without wildcards: names are relative to it."""
    parts = Path(pattern).expanduser().parts
    fixed = []
    for part in parts:
        if glob.has_magic(part):
            break
        fixed.append(part)
    return Path(*fixed) if fixed else Path(".")


def is_list_file(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in LIST_SUFFIXES


def read_list(path: Path, noun: str = "video") -> list[Path]:
    """The paths a list file names (absolute, normalised: no '..' in the result names)."""
    try:
        lines = path.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: not a readable list of {noun}s ({exc})") from None
    entries = []
    for line in lines:
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        entry = Path(line).expanduser()
        entry = entry if entry.is_absolute() else path.parent.absolute() / entry
        entries.append(Path(os.path.normpath(entry)))
    if not entries:
        raise InputError(f"{path}: lists no {noun}s (one path per line)")
    return entries


def _hidden_below(path: Path, base: Path) -> bool:
    return any(part.startswith(".") for part in path.relative_to(base).parts)


def expand_inputs(inputs: Sequence[str | Path], accept: Callable[[Path], bool], *,
                  noun: str = "video", suffixes: Sequence[str] = (),
                  recursive: bool = True, exclude: Path | None = None,
                  sort_key: Callable[[Path], object] | None = None) -> list[tuple[Path, str]]:
    """Every wanted file of `inputs` (see the module docstring) as (path, name) pairs.

    accept(path): whether a file is of the wanted kind; noun and suffixes word the errors;
    recursive: whether folders are searched below their top level; exclude: a folder whose
    files are left out (e.g. the output folder inside an input folder); sort_key: the order
    within a folder or glob (default: by path). A file named twice is kept once; two files
    with one name, a path that is nothing, or a file of another kind are InputErrors.
    """
    found: list[tuple[Path, str]] = []
    exclude = Path(exclude).resolve() if exclude else None
    order = sort_key or (lambda p: p)
    kinds = f" ({', '.join(sorted(suffixes))})" if suffixes else ""

    def add(path: Path, base: Path) -> None:
        if exclude is not None and path.resolve().is_relative_to(exclude):
            return
        found.append((path, path.relative_to(base).as_posix()))

    def in_folder(folder: Path) -> list[Path]:
        files = folder.rglob("*") if recursive else folder.iterdir()
        return sorted((p for p in files if accept(p) and not _hidden_below(p, folder)),
                      key=order)

    for raw in inputs:
        text = str(raw)
        path = Path(text).expanduser()
        if glob.has_magic(text):
            base = glob_base(text)
            matches = sorted((Path(m) for m in glob.glob(str(path), recursive=True)), key=order)
            files = [m for m in matches if accept(m)]
            for folder in (m for m in matches if m.is_dir()):
                files += in_folder(folder)
            if not files:
                raise InputError(f"{text}: matches no {noun} file")
            for file in files:
                add(file, base)
        elif path.is_dir():
            files = in_folder(path)
            if not files:
                raise InputError(f"{path}: the folder contains no {noun} files{kinds}")
            for file in files:
                add(file, path)
        elif path.is_file() and accept(path):
            add(path, path.parent)
        elif is_list_file(path):
            entries = read_list(path, noun)
            base = Path(os.path.commonpath([str(e.parent) for e in entries]))
            for entry in entries:
                add(entry, base)
        elif path.is_file():
            article = "an" if noun[:1] in "aeiou" else "a"
            raise InputError(f"{path}: not {article} {noun}, a folder or a list of {noun}s "
                             f"({', '.join(LIST_SUFFIXES)}: one {noun} path per line)")
        else:
            raise InputError(f"{text}: no such file, folder or glob match")
    kept: list[tuple[Path, str]] = []
    seen_paths: set[Path] = set()
    seen_names: dict[str, Path] = {}
    for path, name in found:
        key = path.resolve()
        if key in seen_paths:
            continue
        if name in seen_names:
            raise InputError(f"{seen_names[name]} and {path} would both write to {name}/ "
                             "(give their common parent folder instead)")
        seen_paths.add(key)
        seen_names[name] = path
        kept.append((path, name))
    if not kept:
        raise InputError(f"no {noun}s to process")
    return kept
