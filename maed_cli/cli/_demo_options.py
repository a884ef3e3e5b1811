"""The options `maed demo` and `maed batch` share, declared once (`eval` takes `--device` and
`--compile` from here too).

Each is an `Annotated` type, so a command lists them as `device: DeviceOpt = "auto"` and both
commands explain them with the same words; `demo_options(...)` turns them into DemoOptions.
"""
from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

RenderOpt = Annotated[bool, typer.Option(
    "--render", help="Also write overlay.mp4: the meshes drawn on the input video (for a "
                     "photo: overlay.jpg for a JPEG, else overlay.png).")]
ExportOpt = Annotated[str | None, typer.Option(
    "--export", help="Also export into DIR/export: comma-separated obj, ply, glb, bvh, csv, "
                     "json (see `maed export --help`).")]
DeviceOpt = Annotated[str, typer.Option(
    "--device", help="auto | cpu | cuda | cuda:N (auto: the GPU when there is one).")]
DtypeOpt = Annotated[str, typer.Option(
    "--dtype", help="auto | fp32 | bf16 | fp16 for the network (auto: fp16 on GPU, with a "
                    "fp32 rerun of any batch that overflows; fp32 on CPU).")]
BatchSizeOpt = Annotated[int | None, typer.Option(
    "--batch-size", min=1, help="Clips of 16 frames per forward pass (default: from free GPU "
                                "memory; 2 on CPU).")]
StartOpt = Annotated[str | None, typer.Option(
    "--start", help="First frame: a frame number (75) or seconds (2.5s).")]
EndOpt = Annotated[str | None, typer.Option(
    "--end", help="Stop before this frame / time (same forms).")]
FpsOpt = Annotated[float | None, typer.Option(
    "--fps", help="Process at most this many frames per second (subsamples the input).")]
InterpOpt = Annotated[int, typer.Option(
    "--interp", help="Fast mode: run the network on every K-th frame (K = 2, 4 or 8) and "
                     "interpolate the rest (slerp on rotations).")]
DetectorWeightsOpt = Annotated[str | None, typer.Option(
    "--detector-weights", help="Ultralytics YOLO weights (default yolo11n.pt, looked up in the "
                               "asset folders).")]
ConfOpt = Annotated[float, typer.Option(
    "--conf", help="Detector confidence that starts a track.")]
MinSizeOpt = Annotated[float, typer.Option(
    "--min-size", help="Ignore people whose box is smaller (pixels, longer side).")]
DetectSizeOpt = Annotated[int, typer.Option(
    "--detect-size", help="Detector input size in pixels (a multiple of 32). Smaller is "
                          "faster and misses more small people: on a 2-core CPU yolo11n took "
                          "about 2/3 of 640's time at 480 and 1/3 at 320.")]
TrackerOpt = Annotated[str, typer.Option("--tracker", help="bytetrack | botsort.")]
MinTrackOpt = Annotated[int, typer.Option(
    "--min-track", min=1, help="Drop people tracked for fewer frames.")]
CropScaleOpt = Annotated[float, typer.Option(
    "--crop-scale", help="Crop side / detector box side. 1.35 matches MAED's training crops "
                         "(1.3 x boxes of 1.1 x the keypoint extent).")]
FocalOpt = Annotated[float | None, typer.Option(
    "--focal", help="Focal length in pixels for cam_t (default: the image diagonal).")]
CheckpointOpt = Annotated[Path | None, typer.Option(
    "--checkpoint", help="MAED checkpoint (default: the installed one).")]
SmplOpt = Annotated[Path | None, typer.Option(
    "--smpl", help="SMPL model file (default: the installed one, else the checkpoint's).")]
NoCacheOpt = Annotated[bool, typer.Option(
    "--no-cache", help="Do not reuse cached detections/tracks from a previous run.")]
ImagesOpt = Annotated[str, typer.Option(
    "--images", help="auto | independent | sequence, for image folders, globs and lists: "
                     "independent photos (each image on its own: people detected, no "
                     "tracking, one frame each through the network) or the frames of one "
                     "video (a folder only). auto: sequence when the names are numbered "
                     "frames of one size, else independent; the choice is printed and kept "
                     "in summary.json.")]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No progress display.")]
CompileOpt = Annotated[bool, typer.Option(
    "--compile", help="torch.compile the network first: on a GPU about 2.5x the frames/s of "
                      "the default (measured on an H200), after a compile of a minute or two; "
                      "no gain measured on CPU. The results are the same.")]
WorldOpt = Annotated[bool, typer.Option(
    "--world/--no-world", help="Place everyone in one world frame (y up, floor at y = 0, "
                               "metres): the camera's rotation from the video, the floor, "
                               "stabilised depth, foot contacts. Writes DIR/world.npz and "
                               "world arrays per track; falls back to the camera frame with a "
                               "warning saying why when the video gives no floor or is too "
                               "short.")]
CameraMotionOpt = Annotated[str, typer.Option(
    "--camera", help="The camera's motion for --world: auto (static or panning/tilting, "
                     "decided from the background), static, moving (rotation only; a walking "
                     "camera gets a warning).")]


def demo_options(*, start=None, end=None, fps=None, device="auto", dtype="auto",
                 batch_size=None, interp=1, crop_scale=1.35, min_track=25,
                 tracker="bytetrack", conf=0.5, min_size=40.0, detector_weights=None,
                 boxes=None, focal=None, no_cache=False, compile=False, detect_size=640,
                 world=True, camera="auto"):
    """DemoOptions from the shared command-line values (one place for the mapping)."""
    from ..demo_options import DemoOptions
    return DemoOptions(start=start, end=end, fps=fps, device=device, dtype=dtype,
                       batch_size=batch_size, interp=interp, crop_scale=crop_scale,
                       min_track=min_track, tracker=tracker, conf=conf, min_size=min_size,
                       detector_weights=detector_weights, boxes=str(boxes) if boxes else None,
                       focal=focal, use_cache=not no_cache, compile=compile,
                       detect_size=detect_size, world=world, camera=camera)
