"""`maed batch`: the demo pipeline over many videos, sharded over processes, resumable.

One process per GPU (torchrun, Slurm or a plain single process). Every rank computes the same
deterministic, size-balanced share of the video list, loads the network and body layer once,
and runs its videos one after the other while a background thread already runs the first pass
(decode + detect/track) of the next one. Ranks never talk to each other until the end, where
rank 0 waits for the others (a gloo barrier when torchrun/MASTER_ADDR is there) and merges
their manifests into DIR/summary.json.

Layout of DIR:
    DIR/<relative path of the video>/    the video's results, exactly as `maed demo` writes them,
                                         plus "batch": {"settings_hash", "boxes_digest"}
                                         in its summary.json
    DIR/manifest-rank<k>.jsonl           one JSON line per video and attempt, flushed per line
    DIR/batch.json                       the video list and settings of the last launch
    DIR/summary.json                     the merged manifest (latest record per video)

Resume: a video whose results folder is complete for the same settings hash (and the same
video and boxes-file content) is skipped; a video that failed with the same settings is left
alone unless `retry_failed`, which then retries only those. Results folders are written to a
temporary folder and renamed when complete, so an interrupted video leaves nothing behind but
a hidden `.part` folder, which the next attempt removes.
"""
from __future__ import annotations

import glob
import hashlib
import json
import os
import shutil
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import timedelta
from pathlib import Path
from typing import Any

from .atomic import atomic_path
from .demo_options import DemoOptions
from .devices import RankInfo, rank_info
from .errors import InputError, MaedError
from .interrupt import terminate_as_exit  # noqa: F401 - `maed batch` uses it
from .pipeline import PreparedInput, finish_demo, prepare_demo
from .results import SUMMARY
from .tracks_cache import file_digest
from .video.inputs import LIST_SUFFIXES, expand_inputs  # noqa: F401 - LIST_SUFFIXES re-exported
from .video.io import (DEFAULT_IMAGE_FPS, VIDEO_SUFFIXES, VideoMeta, make_selection,
                       parse_position)

MANIFEST_GLOB = "manifest-rank*.jsonl"
BATCH_FILE = "batch.json"
BOXES_SUFFIXES = (".boxes.json", ".boxes.csv", ".boxes.txt")
SYNC_TIMEOUT_S = 7 * 24 * 3600  # ranks of one launch may finish days apart
STATUSES = ("done", "skipped", "failed")


# --- who am I ------------------------------------------------------------------------------

# --- which videos --------------------------------------------------------------------------

@dataclass(frozen=True)
class VideoItem:
    path: Path  # as given (absolute when it came from a list file)
    name: str  # relative path, POSIX separators: the results go to DIR/<name>/
    size: int  # bytes, 0 when missing: the weight for sharding

    def boxes_file(self) -> Path | None:
        """`<video>.boxes.json` (or .csv/.txt) next to the video: boxes instead of detection."""
        for suffix in BOXES_SUFFIXES:
            candidate = self.path.with_name(self.path.name + suffix)
            if candidate.is_file():
                return candidate
        return None


def _is_video(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in VIDEO_SUFFIXES and \
        not path.name.startswith(".")


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def collect_videos(inputs: Sequence[str | Path], exclude: Path | None = None) -> list[VideoItem]:
    """Videos from folders (searched recursively), globs, single files, and text files
    (LIST_SUFFIXES) that list one video path per line (blank lines and # comments ignored;
    relative paths are relative to the list file); any other file is an InputError. Names
    are relative to the folder, to the glob's fixed part, or to the common folder of a
    list's entries (see maed_cli.video.inputs). Anything under `exclude` is left out."""
    for raw in inputs:
        path = Path(str(raw)).expanduser()
        if path.is_file() and path.name.lower().endswith(BOXES_SUFFIXES):
            # e.g. an unquoted clips/* expanded by the shell: its lines are boxes, not videos
            raise InputError(f"{path}: a boxes file (used for the video next to it), not a "
                             "list of videos; leave it out or quote the glob")
    found = expand_inputs(inputs, _is_video, noun="video", suffixes=VIDEO_SUFFIXES,
                          exclude=exclude)
    return [VideoItem(path, name, _size(path)) for path, name in found]


# --- settings checked once ------------------------------------------------------------------

# --start/--end in seconds become frames at each video's own rate; this one stands in for it
_ANY_VIDEO = VideoMeta(Path("<every video>"), "video", DEFAULT_IMAGE_FPS, 0, 0, None, None)


def check_options(options: DemoOptions) -> None:
    """What `maed demo` refuses before its long work, refused once for all videos: a bad value
    would otherwise load the model and then fail every video with the same message."""
    options.check()
    start, end = options.start, options.end
    # "--start 100 --end 4s" is right at 30 fps and wrong at 24: only each video can tell
    mixed = start is not None and end is not None and \
        _in_seconds(start, "--start") != _in_seconds(end, "--end")
    make_selection(_ANY_VIDEO, start, None if mixed else end, options.fps)


def _in_seconds(value: str, option: str) -> bool:
    return parse_position(value, 1.0, option=option) != \
        parse_position(value, 1000.0, option=option)


def shard(items: Sequence[VideoItem], world_size: int) -> list[list[VideoItem]]:
    """Deterministic, size-balanced shares: largest video first to the least-loaded rank
    (ties: fewer videos, then lower rank). Every rank computes the same shares from the same
    list, so no communication is needed; each share is in name order."""
    loads = [0] * world_size
    shares: list[list[VideoItem]] = [[] for _ in range(world_size)]
    for item in sorted(items, key=lambda v: (-v.size, v.name)):
        k = min(range(world_size), key=lambda r: (loads[r], len(shares[r]), r))
        shares[k].append(item)
        loads[k] += max(item.size, 1)
    return [sorted(share, key=lambda v: v.name) for share in shares]


# --- settings and completeness -------------------------------------------------------------

_RESULT_INDEPENDENT = ("device", "batch_size", "use_cache", "boxes")


def settings_hash(options: DemoOptions, checkpoint_info: dict, body_source: str,
                  extras: dict | None = None) -> str:
    """What the results depend on besides each video and its boxes file: the options (not
    the device, batch size or cache), the checkpoint's sha256, the body model and `extras`
    (the files asked for besides the results: --render, --export)."""
    keys = {k: v for k, v in asdict(options).items() if k not in _RESULT_INDEPENDENT}
    keys.update(extras or {})
    keys["checkpoint"] = checkpoint_info.get("sha256", "")
    keys["body_model"] = body_source
    blob = json.dumps(keys, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def results_complete(folder: Path, settings: str, video_digest: str | None,
                     boxes_digest: str | None = None) -> bool:
    """True when `folder` holds complete results for these settings, this video content and
    this boxes file (None: the detector)."""
    try:
        summary = json.loads((folder / SUMMARY).read_text())
    except (OSError, ValueError):
        return False
    mark = summary.get("batch", {})
    if mark.get("settings_hash") != settings or mark.get("boxes_digest") != boxes_digest:
        return False
    if video_digest is not None and summary.get("input", {}).get("digest") != video_digest:
        return False
    return all((folder / t["file"]).is_file() for t in summary.get("tracks", []))


def remove_stale_parts(folder: Path) -> None:
    """Temporary folders an interrupted attempt left beside `folder` (see atomic_dir)."""
    for stale in folder.parent.glob(f".{glob.escape(folder.name)}.*.part"):
        shutil.rmtree(stale, ignore_errors=True)
    shutil.rmtree(folder.with_name(f".{folder.name}.old"), ignore_errors=True)


# --- manifests -----------------------------------------------------------------------------

class Manifest:
    """Appends one JSON line per video; each line is flushed and synced before the next."""

    def __init__(self, path: Path):
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._handle = open(path, "a", encoding="utf-8")

    def write(self, record: dict[str, Any]) -> None:
        self._handle.write(json.dumps(record, default=str) + "\n")
        self._handle.flush()
        os.fsync(self._handle.fileno())

    def close(self) -> None:
        self._handle.close()


def read_manifests(folder: Path) -> list[dict[str, Any]]:
    """Every record of every rank's manifest; a torn last line (a killed rank) is ignored."""
    records = []
    for path in sorted(Path(folder).glob(MANIFEST_GLOB)):
        with open(path, encoding="utf-8") as handle:
            for line in handle:
                try:
                    record = json.loads(line)
                except ValueError:
                    continue
                if isinstance(record, dict) and "video" in record:
                    records.append(record)
    return records


def latest_records(records: Iterable[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The most recent record per video name."""
    latest: dict[str, dict[str, Any]] = {}
    for record in sorted(records, key=lambda r: r.get("time", 0.0)):
        latest[record["video"]] = record
    return latest


def summarize(folder: Path, write: bool = True) -> dict[str, Any]:
    """Merge the manifests of DIR (latest record per video) into DIR/summary.json.

    Videos listed in DIR/batch.json without any record are reported as `missing`.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"{folder}: no such folder")
    records = read_manifests(folder)
    expected: list[str] = []
    batch_file = folder / BATCH_FILE
    if batch_file.is_file():
        try:
            expected = [v["name"] for v in json.loads(batch_file.read_text())["videos"]]
        except (ValueError, KeyError, TypeError):
            expected = []
    if not records and not expected:
        raise InputError(f"{folder}: no maed batch manifests ({MANIFEST_GLOB}) in it")
    latest = latest_records(records)
    videos = []
    for name in dict.fromkeys([*expected, *sorted(latest)]):
        record = latest.get(name)
        if record is None:
            videos.append({"video": name, "status": "missing"})
        else:
            videos.append({k: record.get(k) for k in ("video", "path", "status", "error",
                                                      "frames", "people", "seconds",
                                                      "settings_hash", "rank", "time")})
    counts = {status: 0 for status in (*STATUSES, "missing")}
    for video in videos:
        counts[video["status"]] = counts.get(video["status"], 0) + 1
    summary = {
        "videos": videos,
        "counts": counts,
        "complete": counts["done"] + counts["skipped"],
        "total": len(videos),
        "seconds": round(sum(v.get("seconds") or 0.0 for v in videos
                             if v["status"] == "done"), 3),
        "manifests": sorted(p.name for p in folder.glob(MANIFEST_GLOB)),
    }
    if write:
        with atomic_path(folder / SUMMARY) as tmp:
            tmp.write_text(json.dumps(summary, indent=2) + "\n")
    return summary


# --- the per-rank loop ---------------------------------------------------------------------

@dataclass
class _Job:
    item: VideoItem
    options: DemoOptions
    settings: str
    boxes_digest: str | None
    output: Path


class _Prefetch:
    """Runs `fn()` in a daemon thread (so an interrupted rank exits at once); `result()`
    returns its value or raises its exception."""

    def __init__(self, fn: Callable[[], Any]):
        self._value: Any = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(fn,), daemon=True,
                                        name="maed-prefetch")
        self._thread.start()

    def _run(self, fn: Callable[[], Any]) -> None:
        try:
            self._value = fn()
        except BaseException as exc:  # handed over to the main thread
            self._error = exc

    def result(self) -> Any:
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._value


@dataclass
class RankReport:
    rank: RankInfo
    assigned: int
    records: list[dict[str, Any]] = field(default_factory=list)
    left_alone: list[str] = field(default_factory=list)  # failed before; not retried

    def count(self, status: str) -> int:
        return sum(r["status"] == status for r in self.records)


def describe_error(exc: BaseException) -> str:
    if isinstance(exc, MaedError):
        return str(exc)
    import torch
    if isinstance(exc, torch.cuda.OutOfMemoryError):
        return "out of GPU memory (try a smaller --batch-size)"
    return f"{type(exc).__name__}: {exc}"


def run_rank(videos: Sequence[VideoItem], output_dir: Path, options: DemoOptions, loaded, *,
             info: RankInfo, retry_failed: bool = False, detector=None,
             log: Callable[[str, dict[str, Any]], None] | None = None,
             outputs: Callable | None = None, extras: dict | None = None) -> RankReport:
    """Process this rank's share of `videos` into `output_dir`.

    loaded: the network, body layer and checkpoint info (runner.LoadedAssets), loaded once.
    log(event, record) is called after each video (event: done/failed/skipped/left).
    outputs(video_path, options, body) -> on_results: extra files per video (runner.
    extra_outputs: --render, --export); extras: what they are, for the settings hash.
    """
    log = log or (lambda event, record: None)
    output_dir = Path(output_dir)
    share = shard(videos, info.world_size)[info.rank]
    report = RankReport(info, len(share))
    settings = settings_hash(options, loaded.checkpoint_info,
                             getattr(loaded.body, "source", ""), extras)
    previous = latest_records(read_manifests(output_dir))
    manifest = Manifest(output_dir / f"manifest-rank{info.rank}.jsonl")

    def record(job: _Job, status: str, *, error: str | None = None, frames: int | None = None,
               people: int | None = None, seconds: float = 0.0) -> None:
        entry = {"video": job.item.name, "path": str(job.item.path.absolute()),
                 "status": status, "error": error, "frames": frames, "people": people,
                 "seconds": round(seconds, 3), "settings_hash": job.settings,
                 "boxes_digest": job.boxes_digest, "rank": info.rank, "time": time.time()}
        manifest.write(entry)
        report.records.append(entry)
        log(status, entry)

    todo: list[_Job] = []
    try:
        for item in share:
            boxes = item.boxes_file()
            job_options = replace(options, boxes=str(boxes) if boxes else None)
            job = _Job(item, job_options, settings, file_digest(boxes) if boxes else None,
                       output_dir / item.name)
            before = previous.get(item.name)
            failed_before = before is not None and before.get("status") == "failed" and \
                before.get("settings_hash") == job.settings and \
                before.get("boxes_digest") == job.boxes_digest
            if (job.output / SUMMARY).is_file() and item.path.is_file() and \
                    results_complete(job.output, job.settings, file_digest(item.path),
                                     job.boxes_digest):
                if not retry_failed:
                    summary = json.loads((job.output / SUMMARY).read_text())
                    record(job, "skipped", frames=summary["input"].get("num_frames"),
                           people=len(summary.get("tracks", [])))
            elif retry_failed != failed_before:
                # a plain run leaves earlier failures alone; --retry-failed does only those
                if failed_before:
                    report.left_alone.append(item.name)
                    log("left", {"video": item.name, "error": before.get("error")})
            else:
                todo.append(job)
        _process(todo, loaded, detector, record, outputs)
    finally:
        manifest.close()
    return report


def _process(todo: list[_Job], loaded, detector, record, outputs=None) -> None:
    def prepare(job: _Job) -> PreparedInput:
        return prepare_demo(job.item.path, job.output, job.options, detector=detector)

    def mark(job: _Job) -> Callable:
        extra = outputs(job.item.path, job.options, loaded.body) if outputs else None

        def on_results(tmp: Path, tracks, summary: dict) -> None:
            summary["batch"] = {"settings_hash": job.settings,
                                "boxes_digest": job.boxes_digest}
            if extra is not None:
                extra(tmp, tracks, summary)
        return on_results

    pending = _Prefetch(lambda: prepare(todo[0])) if todo else None
    for i, job in enumerate(todo):
        started = time.perf_counter()
        try:
            remove_stale_parts(job.output)
            prepared = pending.result()
        except Exception as exc:
            prepared, error = None, exc
        # the next video's first pass overlaps this one's network
        pending = _Prefetch(lambda job=todo[i + 1]: prepare(job)) if i + 1 < len(todo) \
            else None
        if prepared is None:
            record(job, "failed", error=describe_error(error),
                   seconds=time.perf_counter() - started)
            continue
        try:
            report = finish_demo(prepared, loaded.model, loaded.body,
                                 checkpoint_info=loaded.checkpoint_info,
                                 on_results=mark(job))
        except Exception as exc:
            _release_gpu_memory()
            record(job, "failed", error=describe_error(exc),
                   seconds=time.perf_counter() - prepared.started)
            continue
        record(job, "done", frames=report.summary["input"]["num_frames"],
               people=len(report.tracks), seconds=report.summary["timings_s"]["total"])


def _release_gpu_memory() -> None:
    import torch
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def write_batch_file(output_dir: Path, videos: Sequence[VideoItem], info: RankInfo,
                     options: DemoOptions) -> None:
    """The launch's video list and shares, so `--summary` can name never-attempted videos."""
    shares = shard(videos, info.world_size)
    rank_of = {v.name: k for k, share in enumerate(shares) for v in share}
    content = {"world_size": info.world_size, "launcher": info.launcher,
               "settings": asdict(options),
               "videos": [{"name": v.name, "path": str(v.path), "size": v.size,
                           "rank": rank_of[v.name]} for v in videos]}
    with atomic_path(Path(output_dir) / BATCH_FILE) as tmp:
        tmp.write_text(json.dumps(content, indent=2) + "\n")


def wait_for_all_ranks(info: RankInfo, timeout_s: float = SYNC_TIMEOUT_S) -> bool:
    """The one place ranks wait on each other: a gloo barrier at the very end (the process
    group is created only here, so nobody waits at the start). False when it cannot be done
    (no MASTER_ADDR/MASTER_PORT, e.g. a bare `srun`) or failed (a rank died)."""
    if info.world_size == 1:
        return True
    if not info.can_sync:
        return False
    import torch.distributed as dist
    try:
        if not dist.is_initialized():
            dist.init_process_group("gloo", rank=info.rank, world_size=info.world_size,
                                    timeout=timedelta(seconds=timeout_s))
        dist.barrier()
        dist.destroy_process_group()
        return True
    except Exception:
        return False


