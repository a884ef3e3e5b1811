from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape

from ._app import app, console, err_console
from ._demo_options import (BatchSizeOpt, CheckpointOpt, CompileOpt, ConfOpt, CropScaleOpt,
                            DetectorWeightsOpt, DetectSizeOpt, DeviceOpt, DtypeOpt, EndOpt,
                            ExportOpt, FocalOpt, FpsOpt, ImagesOpt, InterpOpt, MinSizeOpt,
                            MinTrackOpt, NoCacheOpt, QuietOpt, RenderOpt, SmplOpt, StartOpt,
                            TrackerOpt, CameraMotionOpt, WorldOpt, demo_options)
from .setup import NoDownloadOpt


@app.command("demo")
def demo(
    inputs: list[str] = typer.Argument(..., metavar="INPUT...",
                                       help="A video file (mp4/avi/mov/mkv/webm/...), one "
                                            "image, a folder of images, globs of images "
                                            "('shoot/*.jpg', quoted), text files (.txt, .lst, "
                                            ".list) listing one image per line, or several "
                                            "images."),
    output: Path = typer.Option(None, "--output", "-o",
                                help="Results folder (default: <input-stem>_maed/ next to the "
                                     "input). Written atomically: replaced only on success."),
    render: RenderOpt = False,
    side_view: bool = typer.Option(False, "--side-view",
                                   help="With --render: a second panel with the meshes turned "
                                        "90° beside the overlay (doubles the width)."),
    images: ImagesOpt = "auto",
    export: ExportOpt = None,
    device: DeviceOpt = "auto",
    dtype: DtypeOpt = "auto",
    batch_size: BatchSizeOpt = None,
    start: StartOpt = None,
    end: EndOpt = None,
    fps: FpsOpt = None,
    interp: InterpOpt = 1,
    boxes: Path = typer.Option(None, "--boxes", help="Person boxes from a file (JSON/CSV/MOT, "
                                                     "optional track ids) instead of the "
                                                     "detector; see the README."),
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
    json_events: bool = typer.Option(
        False, "--json", help="Progress as JSON lines on stderr instead of bars, for scripts: "
                              "{\"event\": \"progress\", \"stage\", \"done\", \"total\", "
                              "\"eta_s\" (the stage), \"run_eta_s\" (the whole run)}, then "
                              "{\"event\": \"done\", \"output\", ...}; see the README."),
) -> None:
    """Video or photos -> people -> MAED -> per-person SMPL results (and an overlay).

    Writes DIR/summary.json and DIR/tracks/track_NNNN.npz (pose, betas, rotmat, cameras,
    vertices, 49 joints in 3D and in the image, boxes, frame ids); see the README. Photos
    (one image, or independent images: DIR/<image name>/ each) are run without tracking,
    one frame per person (MAED's image mode).
    """
    from ..runner import run_demo_command

    options = demo_options(start=start, end=end, fps=fps, device=device, dtype=dtype,
                           batch_size=batch_size, interp=interp, crop_scale=crop_scale,
                           min_track=min_track, tracker=tracker, conf=conf, min_size=min_size,
                           detect_size=detect_size,
                           detector_weights=detector_weights, boxes=boxes, focal=focal,
                           no_cache=no_cache, compile=compile_model, world=world,
                           camera=camera)
    from ..video.images import is_image_input
    if is_image_input(inputs):
        from ..photo_pipeline import run_images_command
        report = run_images_command(inputs, output, options, images_mode=images,
                                    checkpoint=checkpoint, smpl=smpl, render=render,
                                    export=export, side_view=side_view, quiet=quiet,
                                    console=console, err_console=err_console,
                                    download=not no_download)
    else:
        if images != "auto":
            from ..errors import InputError
            raise InputError(f"--images {images}: for image inputs; {inputs[0]} is a video")
        report = run_demo_command(Path(inputs[0]), output, options, checkpoint=checkpoint,
                                  smpl=smpl, render=render, export=export, quiet=quiet,
                                  console=console, err_console=err_console,
                                  side_view=side_view, download=not no_download,
                                  json_events=json_events)
    if not quiet and not json_events:
        frame = (report.summary.get("world") or {}).get("frame", "camera")
        console.print(f"[green]done:[/] {len(report.tracks)} people, results in "
                      f"{escape(str(report.output))} ({frame} frame)", soft_wrap=True)
