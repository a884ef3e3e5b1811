"""`maed eval` orchestration: options -> evaluation set -> predictions -> scores -> report.

Nothing is written unless the whole run succeeds: the JSON report and the predictions file
are written atomically at the end, and the 3DPW cache only once its set is fully built.
"""
from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from rich.console import Console
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                           TimeElapsedColumn, TimeRemainingColumn)

from .. import __version__, assets
from ..atomic import atomic_path, check_writable
from ..data.evaluation_sets import db as dbfiles
from ..data.evaluation_sets import threedpw
from ..data.evaluation_sets.evalset import JOINT_SETS, EvalSet
from ..devices import resolve_device
from ..errors import InputError
from . import protocol

DATASETS = ("3dpw", "mpii3d", "h36m")
SPLITS = ("test", "val")
INTERP = (1, 2, 4, 8)
SEQUENCE_ORDERS = ("listdir", "sorted")
POOL, CLIPS, CLIP_LEN, CROP_SCALE = 128, 8, 16, 1.3


@dataclass
class EvalOptions:
    dataset: str = "3dpw"
    data_dir: Path | None = None
    split: str = "test"
    db: Path | None = None
    checkpoint: Path | None = None
    smpl: Path | None = None
    predictions: Path | None = None
    interp: int = 1
    limit: int | None = None
    batch_pools: int = 8
    workers: int | None = None
    device: str = "auto"
    amp: bool = True
    compile: bool = False
    output: Path | None = None
    save_predictions: Path | None = None
    cache_dir: Path | None = None
    rebuild_cache: bool = False
    quiet: bool = False
    download: bool = True
    sequence_order: str = "listdir"


def default_cache_dir() -> Path:
    """$MAED_HOME/cache when MAED_HOME is set, else the user cache folder."""
    if os.environ.get("MAED_HOME"):
        return Path(os.environ["MAED_HOME"]).expanduser() / "cache"
    import platformdirs
    return Path(platformdirs.user_cache_dir("maed", appauthor=False))


def _check_options(opts: EvalOptions) -> None:
    if opts.dataset not in DATASETS:
        raise InputError(f"--dataset {opts.dataset!r}: choose one of {', '.join(DATASETS)}")
    if opts.split not in SPLITS:
        raise InputError(f"--split {opts.split!r}: choose one of {', '.join(SPLITS)}")
    if opts.sequence_order not in SEQUENCE_ORDERS:
        raise InputError(f"--sequence-order {opts.sequence_order!r}: choose one of "
                         f"{', '.join(SEQUENCE_ORDERS)}")
    if opts.interp not in INTERP:
        raise InputError(f"--interp {opts.interp}: must divide {POOL // CLIP_LEN} "
                         f"(one of {', '.join(map(str, INTERP))}), so that each 128-frame pool "
                         f"still splits into whole 16-frame clips")
    if opts.data_dir is None and opts.db is None:
        raise InputError("--data-dir is required (the dataset root folder)")
    if opts.data_dir is not None and not Path(opts.data_dir).is_dir():
        if Path(opts.data_dir).is_file():
            raise InputError(f"--data-dir {opts.data_dir}: is a file; give the dataset folder "
                             f"(a preprocessed db file goes to --db)")
        raise InputError(f"data folder not found: {opts.data_dir}")
    for path, kind, option in ((opts.output, "file", "--output"),
                               (opts.save_predictions, "file", "--save-predictions"),
                               (opts.cache_dir, "folder", "--cache-dir")):
        if path is not None:
            check_writable(path, kind, option, inside=kind == "folder")
    if opts.predictions is not None and opts.interp != 1:
        raise InputError("--interp applies to running the network; it cannot be combined with "
                         "--predictions")


def _progress(console: Console, quiet: bool) -> Progress:
    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TimeElapsedColumn(), TimeRemainingColumn(), console=console,
                    disable=quiet, transient=False)


def _checkpoint_smpl_buffers(explicit: Path | None) -> dict | None:
    """The neutral SMPL inside the (installed) checkpoint, if it carries one."""
    from ..model.checkpoint import read_checkpoint
    path = assets.find_asset(assets.CHECKPOINT_NAMES, explicit)
    if path is None:
        return None
    return read_checkpoint(path).smpl_buffers or None


def _nothing() -> None:
    pass


def load_evalset(opts: EvalOptions, body, device: torch.device, console: Console
                 ) -> tuple[EvalSet, str, Callable[[], None]]:
    """The set the options name, how it was obtained ('built', 'cache' or 'db'), and the
    function that caches a freshly built set (to call once the run has succeeded)."""
    data_dir = Path(opts.data_dir) if opts.data_dir is not None else None
    if opts.db is not None:
        return dbfiles.read_db(opts.db, opts.dataset, opts.split, data_dir), "db", _nothing
    assert data_dir is not None
    if opts.dataset == "3dpw" and (data_dir / "sequenceFiles").is_dir():
        files = threedpw.list_sequence_files(data_dir, opts.split)
        with _progress(console, opts.quiet) as bar:
            task = bar.add_task(f"3DPW {opts.split}: reading sequences", total=len(files))
            evalset, how, commit = threedpw.load_or_build(
                data_dir, opts.split, protocol.gt_joints_function(body, device),
                protocol.body_fingerprint(body), opts.cache_dir or default_cache_dir(),
                rebuild=opts.rebuild_cache, progress=lambda _: bar.advance(task))
            bar.update(task, completed=len(files))
        return evalset, how, commit
    found = dbfiles.find_db(data_dir, opts.dataset, opts.split)
    if found is None:
        name = dbfiles.db_filename(opts.dataset, opts.split)
        release = ("neither sequenceFiles/ (the official 3DPW release) nor "
                   if opts.dataset == "3dpw" else "no ")
        raise InputError(f"{data_dir} holds {release}{name} (also looked in "
                         f"{data_dir / 'database'}); pass the dataset root with --data-dir or "
                         f"the db file with --db")
    return dbfiles.read_db(found, opts.dataset, opts.split, data_dir), "db", _nothing


def _track_key(name: str) -> tuple[str, int]:
    """'<sequence>_<person>' -> (sequence, person); other names sort as they are."""
    sequence, _, person = name.rpartition("_")
    return (sequence, int(person)) if sequence and person.isdigit() else (name, -1)


def order_sequences(evalset: EvalSet, order: str, listing: list[str] | None = None
                    ) -> EvalSet:
    """The set's tracks in the order the concatenated acceleration metrics run through them.

    "listdir", as the official code: 3DPW sequences in `listing` order (`os.listdir` of the
    release's sequence folder, whatever the file system returns), each sequence's people by
    index; without a listing (a db file) the db's own row order, which is the order its
    builder's `os.listdir` gave. "sorted": sequences by name, people by index, on any
    machine. Only the concatenated accel and accel error depend on it (one frame triple per
    boundary between two tracks); every other figure, and each track's own, does not.
    """
    tracks = evalset.tracks()
    if order == "sorted":
        keys = [_track_key(name) for name, _, _ in tracks]
    elif listing is not None:
        rank = {seq: i for i, seq in enumerate(listing)}
        keys = [(rank.get(_track_key(name)[0], len(rank)), _track_key(name)[1])
                for name, _, _ in tracks]
    else:
        return evalset
    ranked = sorted(range(len(tracks)), key=lambda i: (keys[i], i))
    if ranked == list(range(len(tracks))):
        return evalset
    return evalset.take(np.concatenate([np.arange(tracks[i][1], tracks[i][2])
                                        for i in ranked]))


def sequence_listing(opts: EvalOptions, how: str) -> list[str] | None:
    """The sequence names in `os.listdir` order, for a 3DPW set read from the release."""
    if how == "db" or opts.dataset != "3dpw" or opts.data_dir is None:
        return None
    folder = threedpw.sequence_dir(Path(opts.data_dir), opts.split)
    return [name[:-4] for name in os.listdir(folder) if name.endswith(".pkl")]


def run_evaluation(opts: EvalOptions, console: Console | None = None) -> dict:
    """Run `maed eval`; returns the report (also written to opts.output as JSON)."""
    from ..body.smpl import find_smpl_file, load_body_model
    from ..model.checkpoint import load_checkpoint

    console = console or Console(stderr=True)
    _check_options(opts)
    device = resolve_device(opts.device)
    loaded = None
    if opts.predictions is None:  # fail on a missing or bad checkpoint before any heavy work
        from ..installer import ensure_checkpoint
        ensure_checkpoint(opts.checkpoint, download=opts.download, console=console,
                          quiet=opts.quiet)
        loaded = load_checkpoint(assets.find_checkpoint(opts.checkpoint), device=device)
        buffers = loaded.smpl_buffers
    else:
        buffers = None if find_smpl_file(opts.smpl) else _checkpoint_smpl_buffers(
            opts.checkpoint)
    body = load_body_model(opts.smpl, checkpoint_buffers=buffers,
                           require_h36m=opts.dataset in ("3dpw", "h36m"), device=device).eval()
    evalset, how, commit_cache = load_evalset(opts, body, device, console)
    evalset = order_sequences(evalset, opts.sequence_order, sequence_listing(opts, how))
    full_size = len(evalset)
    if opts.limit is not None and opts.limit < len(evalset):
        evalset = evalset.take(slice(0, opts.limit))

    if opts.predictions is not None:
        predictions = protocol.load_predictions(opts.predictions, evalset)
    else:
        from .inference import predict
        with _progress(console, opts.quiet) as bar:
            task = bar.add_task("predicting", total=len(evalset))
            predictions = predict(evalset, loaded.model, device=device, interp=opts.interp,
                                  batch_pools=opts.batch_pools, amp=opts.amp,
                                  compile=opts.compile,
                                  workers=opts.workers,
                                  progress=lambda frames: bar.advance(task, frames))
    with _progress(console, opts.quiet) as bar:
        task = bar.add_task("scoring", total=len(evalset))
        result = protocol.score(evalset, predictions, body, device=device,
                                progress=lambda frames: bar.advance(task, frames))

    report = build_report(opts, evalset, result, how, full_size, loaded, body)
    # both files or, on a failure, neither: the report waits in its temporary file until the
    # predictions (written atomically themselves) are in place
    with contextlib.ExitStack() as outputs:
        if opts.output is not None:
            report_tmp = outputs.enter_context(atomic_path(opts.output))
            report_tmp.write_text(json.dumps(report, indent=2) + "\n")
        if opts.save_predictions is not None:
            protocol.save_predictions(opts.save_predictions, evalset, predictions, result)
    commit_cache()
    return report


def build_report(opts: EvalOptions, evalset: EvalSet, result: protocol.EvalResult, how: str,
                 full_size: int, loaded, body) -> dict:
    summary = result.summary()
    tracks = evalset.tracks()
    report = {
        "maed_version": __version__,
        "dataset": opts.dataset,
        "split": opts.split,
        "source": evalset.source + (" (cached set)" if how == "cache" else ""),
        "predictions": (str(opts.predictions) if opts.predictions is not None
                        else "network"),
        "checkpoint": None if loaded is None else {
            "path": str(loaded.path), "kind": loaded.kind, "config": loaded.config.to_dict(),
            **{k: _plain(v) for k, v in loaded.meta.items() if k in ("epoch", "performance")}},
        "body_model": getattr(body, "source", ""),
        "protocol": {
            "pool_frames": POOL, "clips_per_pool": CLIPS // opts.interp,
            "clip_frames": CLIP_LEN, "clip_stride": CLIPS,
            "interp": opts.interp,
            "crop": f"{CROP_SCALE} x db box, 224 x 224, the official affine (box centre as a "
                    f"pixel index onto crop pixel 112), bilinear, black border",
            "sequence_order": {
                "mode": opts.sequence_order,
                "about": ("os.listdir order of the sequence files, as the official code"
                          if how != "db" else "the db's own row order (its builder's "
                          "os.listdir order), as the official code")
                if opts.sequence_order == "listdir" else "sequences sorted by name",
                "affects": "only the concatenated accel and accel error",
                "sequences": [name for name, _, _ in tracks]},
            "alignment": "both skeletons centred on the hip midpoint",
            "joint_set": evalset.joint_set, "joints": JOINT_SETS[evalset.joint_set]["about"],
            "pve": "predicted vs ground-truth neutral SMPL vertices, no translation, no "
                   "alignment" if evalset.has_mesh else "not available for this dataset",
        },
        "counts": {
            "frames": len(evalset), "sequences": len(tracks),
            "frames_in_set": full_size, "invalid_flagged_frames": int((~evalset.valid).sum()),
            "accel_triples_concatenated": len(result.accel_concat),
            "accel_triples_per_sequence": len(result.accel_seq),
        },
        "metrics": summary,
        "units": "mm; accel and accel_error in mm/frame^2",
        "definitions": {
            "accel": "the prediction's own acceleration, mean over joints of "
                     "|x[t-1] - 2 x[t] + x[t+1]| (what VIBE and MAED print as ACCEL)",
            "accel_error": "mean over joints of the distance between predicted and "
                           "ground-truth second differences",
            **{f"style_{k}": v for k, v in protocol.ACCEL_STYLES.items()},
        },
        "paper": None,
        "per_sequence": result.tracks,
        "notes": list(evalset.notes),
    }
    if opts.limit is not None and len(evalset) < full_size:
        report["notes"].append(f"--limit {opts.limit}: {len(evalset)} of {full_size} frames "
                               f"evaluated")
    if opts.dataset == "3dpw" and opts.split == "test":
        report["paper"] = {
            **protocol.PAPER_3DPW_TEST,
            "about": "MAED README, official checkpoint (w/ 3DPW). Its ACCEL column (17.6) may "
                     "be either accel or accel error (not confirmed), computed over all "
                     "frames concatenated.",
        }
    return report


def _plain(value):
    if isinstance(value, (np.generic,)):
        return value.item()
    if isinstance(value, torch.Tensor):
        return value.item() if value.numel() == 1 else value.tolist()
    return value if isinstance(value, (int, float, str, type(None))) else str(value)

