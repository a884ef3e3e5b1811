"""`maed setup`: install SMPL, checkpoints and regressors into the asset home, idempotently;
and the one download of the official checkpoint (`maed setup weights --download`, and
demo/eval/batch when none is installed)."""
from __future__ import annotations

import os
import re
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from rich.console import Console

from . import assets
from .atomic import atomic_path, check_writable
from .body.smpl_files import read_smpl_file, write_smpl_npz
from .errors import AssetMissingError, CheckpointError, InputError, MaedError
from .model.checkpoint import file_sha256, load_checkpoint
from .model.maed import MAEDConfig


@dataclass
class Installed:
    asset: str
    path: Path
    status: str  # "installed", "unchanged"
    detail: str = ""


def install_target(name: str, home: Path | None = None) -> Path:
    """`<home>/<name>`, once a file can be written there: checked before the slow reading and
    converting, and in one line naming $MAED_HOME when that is where the home comes from."""
    option = f"${assets.ENV_HOME}" if home is None and os.environ.get(assets.ENV_HOME) \
        else "asset folder"
    target = (home or assets.asset_home()) / name
    check_writable(target, "file", option)
    return target


def install_smpl(source: str | Path, home: Path | None = None) -> Installed:
    """SMPL pkl/zip/npz -> `<home>/smpl/SMPL_NEUTRAL.npz` (plain arrays, no pickle)."""
    assets.refuse_folder(source, assets.SMPL_PKL_NAMES[0])
    target = install_target(assets.SMPL_NPZ, home)
    model = read_smpl_file(source)
    if target.is_file():
        try:
            existing = read_smpl_file(target)
            if all(np.array_equal(existing[k], model[k]) for k in model):
                return Installed("SMPL (neutral)", target, "unchanged", str(source))
        except MaedError:
            pass
    write_smpl_npz(model, target)
    return Installed("SMPL (neutral)", target, "installed", f"from {source}")


def install_weights(source: str | Path, home: Path | None = None, *, move: bool = False,
                    expect: MAEDConfig | None = None) -> list[Installed]:
    """Verify a checkpoint loads, put it into the home, record its sha256 beside it.

    move: rename `source` into place instead of copying it (a finished download, in the same
    folder). expect: refuse a checkpoint of another architecture (a download must be the
    official network)."""
    source = Path(source)
    home = install_target(assets.CHECKPOINT_NAMES[0], home).parent  # both names live there
    loaded = load_checkpoint(source)  # raises CheckpointError with one clear line
    if expect is not None and (loaded.kind, loaded.config) != ("official", expect):
        raise CheckpointError(
            f"{source}: not the official MAED checkpoint ({loaded.kind} format, "
            f"{loaded.config.num_blocks} blocks {loaded.config.st_mode}, hidden "
            f"{loaded.config.hidden_dim}; expected the official {expect.num_blocks} blocks "
            f"{expect.st_mode}, hidden {expect.hidden_dim})")
    name = assets.CHECKPOINT_NAMES[0] if loaded.kind == "official" else assets.CHECKPOINT_NAMES[1]
    target = home / name
    digest = file_sha256(source)
    detail = (f"{loaded.kind}, {loaded.config.num_blocks} blocks {loaded.config.st_mode}, "
              f"sha256 {digest[:12]}…")
    results = []
    if target.is_file() and file_sha256(target) == digest:
        results.append(Installed("checkpoint", target, "unchanged", detail))
        if move:
            source.unlink()
    elif move:
        os.replace(source, target)
        results.append(Installed("checkpoint", target, "installed", detail))
    else:
        with atomic_path(target) as tmp:
            shutil.copyfile(source, tmp)
        results.append(Installed("checkpoint", target, "installed", detail))
    with atomic_path(target.with_name(target.name + ".sha256")) as tmp:
        tmp.write_text(f"{digest}  {target.name}\n")
    if "v_template" in loaded.smpl_buffers:
        results.append(Installed("SMPL (from checkpoint)", target, "available",
                                 "the checkpoint carries a neutral SMPL model"))
    return results


def install_regressors(folder: str | Path, home: Path | None = None) -> list[Installed]:
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"{folder} is not a folder (give the folder that holds "
                         f"{assets.REGRESSOR_EXTRA} and/or {assets.REGRESSOR_H36M})")
    home = install_target(assets.REGRESSOR_EXTRA, home).parent  # both names live there
    results = []
    for name, rows in ((assets.REGRESSOR_EXTRA, 9), (assets.REGRESSOR_H36M, 17)):
        source = folder / name
        if not source.is_file():
            continue
        try:
            array = np.load(source, allow_pickle=False)
        except (ValueError, OSError) as exc:
            raise InputError(f"{source}: not a readable .npy file ({exc})") from None
        if array.shape != (rows, 6890):
            raise InputError(f"{source}: shape {array.shape}, expected ({rows}, 6890)")
        target = home / name
        if target.is_file() and np.array_equal(np.load(target, allow_pickle=False), array):
            results.append(Installed(name, target, "unchanged"))
            continue
        with atomic_path(target) as tmp:
            shutil.copyfile(source, tmp)
        results.append(Installed(name, target, "installed", f"from {source}"))
    if not results:
        raise AssetMissingError(f"neither {assets.REGRESSOR_EXTRA} nor {assets.REGRESSOR_H36M} "
                                f"is in {folder}")
    return results


# -- downloading the official checkpoint --------------------------------------------------------
#: Google Drive's direct endpoint; `confirm=t` skips the "cannot scan for viruses" page that
#: a file this large otherwise gets first.
DRIVE_URL = "https://drive.usercontent.google.com/download"
PART_SUFFIX = ".part"
ENV_OFFLINE = "MAED_OFFLINE"
#: What a download must be: the paper's network (6 parallel blocks, KTD hidden 1024).
OFFICIAL = MAEDConfig()
CHUNK = 1 << 20
_HTML_STARTS = (b"<!doctype html", b"<html", b"<!--", b"<head")


class DriveRefused(Exception):
    """Google Drive answered with a web page (quota exceeded, access denied), not the file."""


def by_hand() -> str:
    return (f"download model_best.pth.tar in a browser (https://drive.google.com/file/d/"
            f"{assets.CHECKPOINT_GDRIVE_ID}) and run `maed setup weights PATH`")


def open_session():
    """The HTTP session downloads go through (tests put a local stand-in here)."""
    import requests

    session = requests.Session()
    session.headers["User-Agent"] = "maed (checkpoint download)"
    return session


def _looks_like_html(head: bytes) -> bool:
    return head.lstrip()[:20].lower().startswith(_HTML_STARTS)


def _page_reason(page: str) -> str:
    text = re.sub(r"<[^>]+>", " ", page)
    text = " ".join(text.split())
    for marker in ("Too many users", "Quota exceeded", "quota", "Access denied",
                   "You need access", "not found"):
        at = text.find(marker)
        if at >= 0:
            return text[at:at + 110].rstrip(" .") + "…"
    return text[:110] + ("…" if len(text) > 110 else "")


def _confirm_fields(page: str) -> dict[str, str]:
    """The hidden fields of Drive's "download anyway" form (id, export, confirm, uuid)."""
    if 'id="download-form"' not in page and "download-form" not in page:
        return {}
    return dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', page))


def fetch_checkpoint(part: Path, progress: Callable[[int, int | None], None]) -> None:
    """Download the official checkpoint into `part`, resuming from the bytes already there
    (HTTP Range). progress(completed, total) is called as bytes arrive. Raises DriveRefused
    when Drive answers with a page instead of the file, an OSError (requests' errors are
    OSErrors) when the network fails; what arrived stays in `part` for the next try."""
    session = open_session()
    params = {"id": assets.CHECKPOINT_GDRIVE_ID, "export": "download", "confirm": "t"}
    for attempt in range(2):
        have = part.stat().st_size if part.is_file() else 0
        headers = {"Range": f"bytes={have}-"} if have else {}
        response = session.get(DRIVE_URL, params=params, headers=headers, stream=True,
                               timeout=60)
        if response.status_code == 416 and have:  # nothing left to send: already complete
            response.close()
            progress(have, have)
            return
        if response.status_code >= 400:
            reason = _page_reason(response.text) if "html" in response.headers.get(
                "Content-Type", "") else ""
            response.close()
            raise DriveRefused(f"HTTP {response.status_code}" + (f": {reason}" if reason
                                                                  else ""))
        chunks = response.iter_content(CHUNK)
        first = next(chunks, b"")
        if "text/html" in response.headers.get("Content-Type", "") or _looks_like_html(first):
            page = (first + b"".join(chunks)).decode("utf-8", "replace")
            response.close()
            fields = _confirm_fields(page)
            if fields and attempt == 0:
                params.update(fields)
                continue
            raise DriveRefused(_page_reason(page))
        if response.status_code == 206:
            match = re.match(r"bytes (\d+)-\d+/(\d+|\*)",
                             response.headers.get("Content-Range", ""))
            start = int(match.group(1)) if match else -1
            if start != have:
                response.close()
                raise DriveRefused(f"the server resumed at byte {start}, not {have}")
            total = int(match.group(2)) if match.group(2) != "*" else None
        else:  # a full answer: start again
            have = 0
            length = response.headers.get("Content-Length")
            total = int(length) if length else None
        with open(part, "ab" if have else "wb") as handle:
            done = have
            progress(done, total)
            handle.write(first)
            done += len(first)
            for block in chunks:
                handle.write(block)
                done += len(block)
                progress(done, total)
        response.close()
        if total is not None and done < total:
            raise ConnectionError(f"the connection closed after {done} of {total} bytes")
        return
    raise DriveRefused("Drive kept answering with its confirmation page")


@contextmanager
def _exclusive(part: Path) -> Iterator[None]:
    """One downloader per file: a second `maed` at the same time stops with one line. The
    lock is on `part` itself; an empty one (nothing arrived) is removed afterwards."""
    with open(part, "ab") as handle:
        try:
            import fcntl
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except ImportError:  # not on POSIX: no lock
            pass
        except OSError:
            raise AssetMissingError(f"another maed process is downloading the checkpoint into "
                                    f"{part.parent}; wait for it to finish") from None
        try:
            yield
        finally:
            if part.is_file() and part.stat().st_size == 0:
                part.unlink()


def _download_bar(console: Console | None, quiet: bool):
    from rich.progress import (BarColumn, DownloadColumn, Progress, TextColumn,
                               TimeRemainingColumn, TransferSpeedColumn)
    return Progress(TextColumn("[bold]checkpoint"), BarColumn(), DownloadColumn(),
                    TransferSpeedColumn(), TimeRemainingColumn(), console=console,
                    disable=quiet, transient=False)


def _network_failure(exc: BaseException) -> str:
    import requests

    if isinstance(exc, requests.exceptions.Timeout):
        return "Google Drive did not answer in time"
    if isinstance(exc, requests.exceptions.ConnectionError):
        return "cannot reach Google Drive"
    text = str(exc).strip()
    return text.splitlines()[0][:120] if text else type(exc).__name__


def _kept(part: Path) -> str:
    kept = part.stat().st_size if part.is_file() else 0
    return f"; {kept / 1e6:.1f} MB kept in {part}, the next try resumes" if kept else ""


def download_checkpoint(home: Path | None = None, console: Console | None = None,
                        quiet: bool = False, expect: MAEDConfig | None = None
                        ) -> list[Installed]:
    """Fetch the official checkpoint from its public Google Drive file into the asset home.

    Bytes go to `model_best.pth.tar.part` (never looked for as a checkpoint), which a failed
    or interrupted download leaves behind so that the next run resumes it; the finished file
    is verified (it loads strictly with `load_checkpoint` and is the official architecture,
    `expect`, default the paper's MAED) and only then renamed into place, its sha256 recorded
    beside it. Every failure is one AssetMissingError line saying what to do.
    """
    expect = OFFICIAL if expect is None else expect
    part = install_target(assets.CHECKPOINT_NAMES[0] + PART_SUFFIX, home)
    part.parent.mkdir(parents=True, exist_ok=True)
    if not quiet and console is not None:
        resumed = part.is_file() and part.stat().st_size > 0
        console.print(f"{'resuming the download of' if resumed else 'downloading'} the "
                      f"official MAED checkpoint (Google Drive id "
                      f"{assets.CHECKPOINT_GDRIVE_ID}) into {part.parent}", highlight=False)
    with _exclusive(part), _download_bar(console, quiet) as bar:
        task = bar.add_task("checkpoint", total=None)
        try:
            fetch_checkpoint(part, lambda done, total: bar.update(task, completed=done,
                                                                  total=total))
        except DriveRefused as exc:  # the page itself was never written into `part`
            raise AssetMissingError(
                f"could not download the checkpoint: Google Drive sent a page, not the file "
                f"({exc}){_kept(part)}; try again later, or {by_hand()}") from None
        except (OSError, ValueError) as exc:  # requests' errors are OSErrors
            detail = _network_failure(exc)
            raise AssetMissingError(
                f"could not download the checkpoint ({detail}){_kept(part)}. Offline? Run "
                f"again when online, or {by_hand()}") from None
        try:
            return install_weights(part, part.parent, move=True, expect=expect)
        except MaedError as exc:
            part.unlink(missing_ok=True)
            raise AssetMissingError(f"the downloaded checkpoint was removed, it did not "
                                    f"verify: {exc}. Try again, or {by_hand()}") from None


def ensure_checkpoint(explicit: str | os.PathLike | None = None, download: bool = True,
                      console: Console | None = None, quiet: bool = False) -> None:
    """Before a run that needs the network: when no checkpoint is given or installed and
    downloads are allowed, download the official one (see `download_checkpoint`). Otherwise
    nothing; a missing checkpoint is then reported by the caller's own check. $MAED_OFFLINE
    (set, not 0) forbids downloads as --no-download does (clusters without internet, tests).
    """
    if explicit is not None or not download or os.environ.get(ENV_OFFLINE, "") not in ("", "0"):
        return
    if assets.find_asset(assets.CHECKPOINT_NAMES) is not None:
        return
    download_checkpoint(console=console, quiet=quiet)
