from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape
from rich.table import Table

from ._app import app, console, err_console
from ._demo_options import (BatchSizeOpt, CheckpointOpt, CompileOpt, ConfOpt, CropScaleOpt,
                            DetectorWeightsOpt, DetectSizeOpt, DeviceOpt, DtypeOpt, EndOpt,
                            ExportOpt, FocalOpt, FpsOpt, InterpOpt, MinSizeOpt, MinTrackOpt,
                            NoCacheOpt, QuietOpt, RenderOpt, SmplOpt, StartOpt, TrackerOpt,
                            CameraMotionOpt, WorldOpt, demo_options)
from .setup import NoDownloadOpt

STATUS_STYLE = {"done": "green", "skipped": "cyan", "failed": "red", "missing": "yellow"}
MAX_ROWS = 40  # beyond this, the table lists only the videos that are not complete


@app.command("batch")
def batch(
    inputs: list[str] = typer.Argument(None, help="Folders (searched recursively for videos), "
                                                  "globs ('clips/**/*.mp4', quoted), videos or "
                                                  "text files (.txt, .lst, .list) listing one "
                                                  "video path per line.",
                                       show_default=False),
    output: Path = typer.Option(None, "--output", "-o",
                                help="Results folder: DIR/<relative path of the video>/ per "
                                     "video (as `maed demo` writes it), DIR/manifest-rank<k>."
                                     "jsonl, DIR/summary.json."),
    summary: Path = typer.Option(None, "--summary", metavar="DIR",
                                 help="Only merge the manifests of DIR into a table and "
                                      "DIR/summary.json (no INPUTS needed)."),
    retry_failed: bool = typer.Option(False, "--retry-failed",
                                      help="Retry only the videos that failed before with the "
                                           "same settings (a plain re-run leaves them alone)."),
    render: RenderOpt = False,
    export: ExportOpt = None,
    device: DeviceOpt = "auto",
    dtype: DtypeOpt = "auto",
    batch_size: BatchSizeOpt = None,
    start: StartOpt = None,
    end: EndOpt = None,
    fps: FpsOpt = None,
    interp: InterpOpt = 1,
    detector_weights: DetectorWeightsOpt = None,
    conf: ConfOpt = 0.5,
    min_size: MinSizeOpt = 40.0,
    detect_size: DetectSizeOpt = 640,
    tracker: TrackerOpt = "bytetrack",
    min_track: MinTrackOpt = 25,
    crop_scale: CropScaleOpt = 1.35,
    focal: FocalOpt = None,
    world: WorldOpt = True,
    camera: CameraMotionOpt = "auto",
    checkpoint: CheckpointOpt = None,
    smpl: SmplOpt = None,
    no_cache: NoCacheOpt = False,
    compile_model: CompileOpt = False,
    quiet: QuietOpt = False,
    no_download: NoDownloadOpt = False,
) -> None:
    """Run the demo on many videos; resumable, sharded over processes/GPUs.

    One process, or `torchrun --nproc_per_node N -m maed_cli batch ...` / `srun maed batch ...`:
    each process takes a fixed, size-balanced share of the videos and its own GPU.

    Boxes: a `<video>.boxes.json` (or .csv/.txt) next to a video replaces the detector for it.

    Re-running the same command skips finished videos. See the README for the output layout.
    """
    from .. import batch as lib
    from ..devices import device_for_rank
    from ..errors import InputError

    if summary is not None:
        merged = lib.summarize(summary)
        _print_summary(merged, summary)
        raise typer.Exit(1 if merged["counts"]["failed"] or merged["counts"]["missing"] else 0)
    if not inputs:
        raise InputError("give the videos: folders, globs or a list file (or --summary DIR)")
    if output is None:
        raise InputError("--output DIR is required (where the results and manifests go)")

    info = lib.rank_info()
    options = demo_options(start=start, end=end, fps=fps,
                           device=device_for_rank(device, info.local_rank), dtype=dtype,
                           batch_size=batch_size, interp=interp, crop_scale=crop_scale,
                           min_track=min_track, tracker=tracker, conf=conf, min_size=min_size,
                           detect_size=detect_size,
                           detector_weights=detector_weights, focal=focal, no_cache=no_cache,
                           compile=compile_model, world=world, camera=camera)
    report, synced = _run(inputs, output, options, info, checkpoint, smpl, retry_failed, quiet,
                          render, export, download=not no_download)
    prefix = f"rank {info.rank}/{info.world_size}: " if info.world_size > 1 else ""
    if not quiet:
        console.print(f"{prefix}{report.count('done')} done, {report.count('skipped')} "
                      f"skipped, {report.count('failed')} failed, {len(report.left_alone)} "
                      f"failed before (--retry-failed) of {report.assigned}", highlight=False)
    if info.rank != 0:
        return
    merged = lib.summarize(output)
    if not quiet:
        _print_summary(merged, output)
    if not synced:
        err_console.print("[yellow]the other processes may still be running (no "
                          "MASTER_ADDR/MASTER_PORT to wait for them); run `maed batch "
                          f"--summary {output}` when all are done[/]", highlight=False)
    missing = merged["counts"]["missing"] if synced else 0
    raise typer.Exit(1 if merged["counts"]["failed"] or missing else 0)


def _run(inputs, output: Path, options, info, checkpoint, smpl, retry_failed: bool,
         quiet: bool, render: bool, export: str | None, download: bool = True):
    from .. import batch as lib
    from ..errors import AssetMissingError
    from ..atomic import check_writable
    from ..runner import extra_outputs, load_model_and_body, preflight_demo

    videos = lib.collect_videos(inputs, exclude=output)
    check_writable(output, "folder", "--output", inside=True)
    lib.check_options(options)
    mine = lib.shard(videos, info.world_size)[info.rank]
    unboxed = [v for v in mine if v.path.is_file() and v.boxes_file() is None]
    needs_detector = bool(unboxed)
    try:
        # one process downloads; several at once would each start the same file
        preflight_demo(checkpoint, None if needs_detector else "<boxes next to each video>",
                       options.detector_weights, download=download and info.world_size == 1,
                       console=err_console, quiet=quiet)
    except AssetMissingError as exc:
        if not needs_detector:
            raise
        raise AssetMissingError(f"{exc} (the detector is needed for {len(unboxed)} videos "
                                f"without a boxes file, e.g. {unboxed[0].path.name}.boxes."
                                "json)") from None
    outputs = extra_outputs(render, export, smpl=smpl, console=console, quiet=True)
    output.mkdir(parents=True, exist_ok=True)
    if info.rank == 0:
        lib.write_batch_file(output, videos, info, options)
    loaded = load_model_and_body(checkpoint, smpl)
    detector = None
    if needs_detector:
        from ..pipeline import make_detector
        detector = make_detector(options)
    prefix = f"[rank {info.rank}] " if info.world_size > 1 else ""

    def log(event: str, record: dict) -> None:
        if quiet:
            return
        style = STATUS_STYLE.get(event, "yellow")
        if event == "done":
            detail = (f"{record['people']} people, {record['frames']} frames, "
                      f"{record['seconds']:.1f} s")
        elif event == "left":
            event, detail = "failed before", record.get("error") or ""
        else:
            detail = record.get("error") or ""
        console.print(f"{prefix}[{style}]{event:>8}[/] {escape(record['video'])}  "
                      f"{escape(detail)}",
                      highlight=False, soft_wrap=True)

    if not quiet:
        console.print(f"{prefix}{len(mine)} of {len(videos)} videos for this process "
                      f"(device {options.device})", highlight=False)
    with lib.terminate_as_exit():
        report = lib.run_rank(videos, output, options, loaded, info=info,
                              retry_failed=retry_failed, detector=detector, log=log,
                              outputs=outputs, extras={"render": render, "export": export})
    return report, lib.wait_for_all_ranks(info)


def _print_summary(merged: dict, folder: Path) -> None:
    videos = merged["videos"]
    if len(videos) > MAX_ROWS:
        videos = [v for v in videos if v["status"] not in ("done", "skipped")]
    table = Table(title=f"maed batch: {folder}", title_justify="left")
    for column, justify in (("video", "left"), ("status", "left"), ("people", "right"),
                            ("frames", "right"), ("seconds", "right"), ("error", "left")):
        table.add_column(column, justify=justify, overflow="fold")
    for v in videos:
        style = STATUS_STYLE.get(v["status"], "")
        seconds = v.get("seconds")
        table.add_row(v["video"], f"[{style}]{v['status']}[/]", _cell(v.get("people")),
                      _cell(v.get("frames")), f"{seconds:.1f}" if seconds else "",
                      v.get("error") or "")
    console.print(table)
    counts = merged["counts"]
    console.print(f"{merged['complete']} of {merged['total']} complete "
                  f"({counts['done']} done, {counts['skipped']} skipped), "
                  f"{counts['failed']} failed, {counts['missing']} missing; "
                  f"{folder / 'summary.json'}", highlight=False)


def _cell(value) -> str:
    return "" if value is None else str(value)
