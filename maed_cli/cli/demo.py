from __future__ import annotations

from pathlib import Path

import typer

from ._app import app, console, err_console


@app.command("demo")
def demo(
    input: Path = typer.Argument(..., help="A video file (mp4/avi/mov/mkv/webm/...), a folder "
                                           "of images, or one image."),
    output: Path = typer.Option(None, "--output", "-o",
                                help="Results folder (default: <input-stem>_maed/ next to the "
                                     "input). Written atomically: replaced only on success."),
    render: bool = typer.Option(False, "--render", help="Also write overlay.mp4: the meshes "
                                                        "drawn on the input video."),
    export: str = typer.Option(None, "--export",
                               help="Also export into DIR/export: comma-separated obj, ply, "
                                    "glb, bvh, csv, json (see `maed export --help`)."),
    device: str = typer.Option("auto", "--device", help="auto | cpu | cuda | cuda:N (auto: the "
                                                        "GPU when there is one)."),
    dtype: str = typer.Option("auto", "--dtype", help="auto | fp32 | bf16 | fp16 for the "
                                                      "network (auto: bf16 on GPU, fp32 on "
                                                      "CPU)."),
    batch_size: int = typer.Option(None, "--batch-size", min=1,
                                   help="Clips of 16 frames per forward pass (default: from "
                                        "free GPU memory; 2 on CPU)."),
    start: str = typer.Option(None, "--start", help="First frame: a frame number (75) or "
                                                    "seconds (2.5s)."),
    end: str = typer.Option(None, "--end", help="Stop before this frame / time (same forms)."),
    fps: float = typer.Option(None, "--fps", help="Process at most this many frames per second "
                                                  "(subsamples the input)."),
    interp: int = typer.Option(1, "--interp", help="Fast mode: run the network on every K-th "
                                                   "frame (K = 2, 4 or 8) and interpolate the "
                                                   "rest (slerp on rotations)."),
    boxes: Path = typer.Option(None, "--boxes", help="Person boxes from a file (JSON/CSV/MOT, "
                                                     "optional track ids) instead of the "
                                                     "detector; see the README."),
    detector_weights: str = typer.Option(None, "--detector-weights",
                                         help="Ultralytics YOLO weights (default yolo11n.pt, "
                                              "looked up in the asset folders)."),
    conf: float = typer.Option(0.5, "--conf", help="Detector confidence that starts a track."),
    min_size: float = typer.Option(40.0, "--min-size",
                                   help="Ignore people whose box is smaller (pixels, longer "
                                        "side)."),
    tracker: str = typer.Option("bytetrack", "--tracker", help="bytetrack | botsort."),
    min_track: int = typer.Option(25, "--min-track", min=1,
                                  help="Drop people tracked for fewer frames."),
    crop_scale: float = typer.Option(1.35, "--crop-scale",
                                     help="Crop side / detector box side. 1.35 matches MAED's "
                                          "training crops (1.3 x boxes of 1.1 x the keypoint "
                                          "extent)."),
    focal: float = typer.Option(None, "--focal", help="Focal length in pixels for cam_t "
                                                      "(default: the image diagonal)."),
    checkpoint: Path = typer.Option(None, "--checkpoint", help="MAED checkpoint (default: the "
                                                               "installed one)."),
    smpl: Path = typer.Option(None, "--smpl", help="SMPL model file (default: the installed one, "
                                                   "else the checkpoint's)."),
    no_cache: bool = typer.Option(False, "--no-cache", help="Do not reuse cached detections/"
                                                            "tracks from a previous run."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress display."),
) -> None:
    """Video -> tracked people -> MAED -> per-person SMPL results (and an overlay video).

    Writes DIR/summary.json and DIR/tracks/track_NNNN.npz (pose, betas, rotmat, cameras,
    vertices, 49 joints in 3D and in the image, boxes, frame ids); see the README.
    """
    from ..pipeline import DemoOptions
    from ..runner import run_demo_command

    options = DemoOptions(start=start, end=end, fps=fps, device=device, dtype=dtype,
                          batch_size=batch_size, interp=interp, crop_scale=crop_scale,
                          min_track=min_track, tracker=tracker, conf=conf, min_size=min_size,
                          detector_weights=detector_weights,
                          boxes=str(boxes) if boxes else None, focal=focal,
                          use_cache=not no_cache)
    report = run_demo_command(input, output, options, checkpoint=checkpoint, smpl=smpl,
                              render=render, export=export, quiet=quiet, console=console,
                              err_console=err_console)
    if not quiet:
        console.print(f"[green]done:[/] {len(report.tracks)} people, results in "
                      f"{report.output}")
