"""Write files and folders so that a failure never leaves a half-written result behind."""
from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

from .errors import InputError


def check_writable(path: str | os.PathLike, kind: Literal["file", "folder"], option: str,
                   *, inside: bool = False) -> None:
    """Fail now, in one line naming `option`, if `path` cannot be written as a `kind`: not
    after the long work. Where the writing happens: beside `path` (the atomic writers below
    make a temporary there, then rename), or with `inside` in the folder `path` itself once
    it exists (a folder that files are written into one by one).

    Permission bits are not enough (root passes them, and /proc or a read-only mount refuse
    files anyway), so a probe file is created and removed where the writing will happen."""
    path = Path(path).expanduser()
    try:
        if path.exists():
            if kind == "file" and path.is_dir():
                raise InputError(f"{option} {path}: is a folder; give a file name")
            if kind == "folder" and not path.is_dir():
                raise InputError(f"{option} {path}: exists and is not a folder")
        folder = path if inside and path.is_dir() else path.parent
        while not folder.exists() and folder != folder.parent:
            folder = folder.parent
    except OSError as exc:  # a folder on the way that we may not look into
        raise InputError(f"{option} {path}: cannot look into {exc.filename or path} "
                         f"({exc.strerror or exc})") from None
    if not folder.is_dir():
        raise InputError(f"{option} {path}: {folder} is a file, not a folder")
    try:
        fd, probe = tempfile.mkstemp(prefix=".maed-write-check.", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise InputError(f"{option} {path}: cannot write in {folder} "
                         f"({exc.strerror or exc})") from None


def _read_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# mkstemp/mkdtemp make private (0600/0700) temporaries; the files and folders they become get
# what an ordinary open() or mkdir() would give under the user's umask. Read once, at import,
# before any thread runs: reading it means setting it for a moment.
_UMASK = _read_umask()


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success rename it over `path`, else delete it.

    The temporary name keeps the suffix, so writers that infer the format from it still work.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".part{path.suffix}",
                               dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        if tmp_path.exists():  # some writers replace the file, others write into it
            os.chmod(tmp_path, 0o666 & ~_UMASK)
        os.replace(tmp_path, path)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary folder beside `path`; on success it replaces `path` as a whole."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent))
    try:
        yield tmp
        os.chmod(tmp, 0o777 & ~_UMASK)
        if path.exists():
            old = path.with_name(f".{path.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
