"""Wiring shared by the commands that run the network: assets, progress display, the demo."""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from rich.console import Console
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TaskProgressColumn,
                           TextColumn, TimeElapsedColumn, TimeRemainingColumn)

from . import assets
from .errors import AssetMissingError

STAGE_LABELS = {"detect": "detect + track", "maed": "crop + MAED clips", "body": "body model",
                "render": "render"}


@dataclass
class LoadedAssets:
    model: object
    body: object
    checkpoint_info: dict


def load_model_and_body(checkpoint: str | Path | None = None, smpl: str | Path | None = None,
                        require_h36m: bool = False) -> LoadedAssets:
    """The network from the checkpoint, and the body model (SMPL file, else the checkpoint's)."""
    from .body.smpl import load_body_model
    from .model.checkpoint import file_sha256, load_checkpoint

    path = assets.find_checkpoint(checkpoint)
    loaded = load_checkpoint(path)
    body = load_body_model(smpl_path=smpl, checkpoint_buffers=loaded.smpl_buffers,
                           require_h36m=require_h36m)
    info = {"path": str(path), "kind": loaded.kind, "sha256": file_sha256(path),
            "config": loaded.config.to_dict()}
    return LoadedAssets(loaded.model, body, info)


def preflight_demo(checkpoint: str | Path | None, boxes: str | None,
                   detector_weights: str | None, download: bool = False,
                   console: Console | None = None, quiet: bool = False) -> None:
    """Name every missing asset in one message before any long work starts; with `download`,
    a missing checkpoint (none given) is downloaded when nothing else is missing."""
    problems = []
    if not boxes:
        from .video.detect import resolve_detector_weights
        try:
            resolve_detector_weights(detector_weights)
        except AssetMissingError as exc:
            problems.append(str(exc))
    if not problems:
        from .installer import ensure_checkpoint
        ensure_checkpoint(checkpoint, download=download, console=console, quiet=quiet)
    if assets.find_asset(assets.CHECKPOINT_NAMES, checkpoint) is None:
        problems.insert(0, assets.checkpoint_missing_message() if checkpoint is None
                        else f"checkpoint not found: {checkpoint} does not exist")
    if problems:
        raise AssetMissingError.naming_all(problems)


@contextmanager
def stage_progress(console: Console, quiet: bool = False, run=None) -> Iterator:
    """A `progress(stage, advance, total)` callback drawing one rich bar per stage; with
    `run` (a progress.RunProgress) each bar also shows the time left for the whole run,
    and `run` sees every update (its listeners write --json events even when quiet)."""
    if quiet:
        yield run if run is not None else (lambda stage, advance, total: None)
        return
    from .progress import format_eta
    columns = (TextColumn("{task.description:<18}"), BarColumn(), MofNCompleteColumn(),
               TaskProgressColumn(), TextColumn("{task.fields[rate]}"), TimeElapsedColumn(),
               TimeRemainingColumn(), TextColumn("{task.fields[run_eta]}"))
    with Progress(*columns, console=console, transient=False) as bar:
        tasks: dict[str, int] = {}

        def update(stage: str, advance: int, total: int | None) -> None:
            if run is not None:
                run(stage, advance, total)
            if stage not in tasks:
                tasks[stage] = bar.add_task(STAGE_LABELS.get(stage, stage), total=total,
                                            rate="", run_eta="")
            task_id = tasks[stage]
            task = bar.tasks[task_id]
            if total is not None and task.total != total:
                bar.update(task_id, total=total)
            if advance:
                bar.advance(task_id, advance)
                speed = bar.tasks[task_id].speed
                if speed:
                    bar.update(task_id, rate=f"{speed:.1f}/s")
            if run is not None:
                bar.update(task_id, run_eta=format_eta(run.run_eta()))

        yield update


def extra_outputs(render: bool = False, export: str | None = None, *, smpl=None,
                  console: Console | None = None, quiet: bool = False, side: bool = False,
                  progress=None):
    """--render (with the side panel when `side`) and --export of the demo (and batch):
    checked now, before any work (OpenGL, format names; one line when wrong); `progress`
    hears of the overlay's frames. Returns None when neither is asked for, else
    `make(input_path, options, body)` -> the `on_results` hook writing them into a results
    folder before it is moved into place."""
    formats = None
    if render:
        from .render import require_platform
        require_platform()
    if export:
        from .export import parse_formats
        formats = parse_formats(export)
    if not render and not formats:
        return None

    def make(input_path, options, body):
        hooks = []
        if render:
            from .render import make_overlay_hook
            hooks.append(make_overlay_hook(input_path, options, console=console, quiet=quiet,
                                           smpl=smpl, side=side,
                                           progress=progress))
        if formats:
            from .export import make_export_hook
            hooks.append(make_export_hook(input_path, options, formats, body))

        def on_results(folder, tracks, summary) -> None:
            for hook in hooks:
                hook(folder, tracks, summary)
        return on_results

    return make


class _LateProgress:
    """The progress callback, for hooks made before the progress display opens."""

    def __init__(self) -> None:
        self.target = None

    def __call__(self, stage: str, advance: int, total: int | None) -> None:
        if self.target is not None:
            self.target(stage, advance, total)


def run_demo_command(input_path: Path, output: Path | None, options, *, checkpoint=None,
                     smpl=None, render: bool = False, export: str | None = None,
                     quiet: bool = False, console: Console | None = None,
                     err_console: Console | None = None, side_view: bool = False,
                     input_note: dict | None = None, download: bool = False,
                     json_events: bool = False):
    """`maed demo` on a video (or a folder of frames); `input_note` is added to the input's
    entry of summary.json (e.g. why a folder of images was taken for a video); `download`:
    fetch the official checkpoint when none is found; with `json_events` the progress goes to
    stderr as JSON lines (see maed_cli.progress) instead of bars."""
    from .atomic import check_writable
    from .devices import resolve_device
    from .pipeline import default_output, run_demo
    from rich.markup import escape

    from .interrupt import terminate_as_exit
    from .progress import JsonEvents, RunProgress
    from .resume import resume_dir
    from .video.io import open_frames

    console = console or Console()
    source = open_frames(input_path, start=options.start, end=options.end,
                         fps=options.fps)  # bad input fails here, before the assets load
    output = Path(output) if output else default_output(input_path)
    check_writable(output, "folder", "--output")
    options.check()
    preflight_demo(checkpoint, options.boxes, options.detector_weights, download=download,
                   console=err_console or console, quiet=quiet)
    late = _LateProgress()
    outputs = extra_outputs(render, export, smpl=smpl, console=console, quiet=quiet,
                            side=side_view, progress=late)
    loaded = load_model_and_body(checkpoint, smpl)
    on_results = outputs(input_path, options, loaded.body) if outputs else None
    if input_note:
        on_results = _noting(input_note, on_results)
    events = JsonEvents() if json_events else None
    run = RunProgress(("detect", "maed", "body") + (("render",) if render else ()),
                      frames=source.estimated_length,
                      device=resolve_device(options.device).type,
                      listeners=[events] if events else [])
    try:
        with terminate_as_exit(), stage_progress(console, quiet or json_events, run) as progress:
            late.target = progress
            report = run_demo(input_path, output, options, loaded.model, loaded.body,
                              checkpoint_info=loaded.checkpoint_info, progress=progress,
                              on_results=on_results)
    except (KeyboardInterrupt, SystemExit):
        kept = resume_dir(output)
        if kept.is_dir() and err_console is not None:
            err_console.print(f"[yellow]stopped:[/] no results written; the work done is kept "
                              f"in {escape(str(kept))} and the same command resumes from it",
                              highlight=False, soft_wrap=True)
        raise
    run.close()
    if events is not None:
        events.write({"event": "done", "output": str(report.output),
                      "people": len(report.tracks),
                      "elapsed_s": round(run.clock() - run.started, 1)})
    return report


def _noting(note: dict, on_results=None):
    """An `on_results` hook that first adds `note` to the summary's input entry."""
    def hook(folder, tracks, summary) -> None:
        summary["input"].update(note)
        if on_results is not None:
            on_results(folder, tracks, summary)
    return hook
