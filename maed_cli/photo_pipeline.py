"""`maed demo` on photos: people in each image -> MAED's image mode (T = 1) -> SMPL results.

No tracking and no minimum track length: every person found in an image (by the detector
above --conf, or in --boxes, whose frame is the image's position in name order) is one
"track" of one frame (frame_ids [0]) and goes through the network once, as a clip of one
frame — how the official training feeds its image datasets ((N, 1, 3, 224, 224); the
temporal branch then attends over that one frame and temp_embed position 0 is added). That
is 1/16 of the work of the 16-frame clip a video frame is predicted in.

Layout. One image: DIR is an ordinary results folder (summary.json, tracks/, overlay.png or
overlay.jpg like the input). Several independent images (a folder, a glob, a list):
    DIR/summary.json        the mode and why, settings, and per image: its file, results
                            folder, size and number of people; timings
    DIR/<name>/             per image (name: its path relative to the input), a results
                            folder exactly as for one image, so `maed render DIR/<name>` and
                            `maed export DIR/<name>` work on it
The images are read one at a time (the detector holds one of its batches); the crops of up
to IMAGES_PER_CHUNK images are batched through the network together, 16 crops for every
clip of --batch-size.
"""
from __future__ import annotations

import platform
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from . import __version__
from .atomic import atomic_dir, check_writable
from .body.smpl import BodyModel
from .clips import CLIP_LEN
from .demo_options import DemoOptions
from .devices import resolve_device, resolve_dtype
from .errors import InputError
from .model import MAED
from .model.inference import forward_mixed, prepare_for_inference
from .network_pass import auto_batch_size, write_track
from .pipeline import make_detector
from .results import TRACKS_DIR, TrackResult, save_summary
from .stages import Progress, StageClock
from .tracks_cache import file_digest
from .video.crop import crop_images, crop_regions, normalize_crops
from .video.detect import BoxesFile, Detections, PersonDetector
from .video.images import ImageSet, ModeChoice
from .video.io import DEFAULT_IMAGE_FPS, read_image
from .video.track import Tracklet, square_boxes

IMAGES_PER_CHUNK = 32
OnResults = Callable[[Path, list[TrackResult], dict], None]


@dataclass
class PhotoReport:
    output: Path
    tracks: list[TrackResult]  # every person of every image (of many images: without verts)
    summary: dict  # the top-level summary (the image's own for one image)
    per_image: dict[str, list[TrackResult]]  # by image name


@dataclass
class _Image:
    """One image on its way through: its people and, once run, their network outputs."""

    index: int
    path: Path
    name: str
    width: int = 0
    height: int = 0
    ids: np.ndarray | None = None  # (k,) person ids
    boxes: np.ndarray | None = None  # (k, 4) square (cx, cy, side, side), pixels
    crops: np.ndarray | None = None  # (k, 224, 224, 3) uint8
    theta: dict | None = None  # rotmat (k, 24, 3, 3), betas (k, 10), cam (k, 3)


def check_photo_options(options: DemoOptions) -> None:
    """Refuse the options that select or link video frames: nothing to do with photos."""
    options.check()
    for name, flag in (("start", "--start"), ("end", "--end"), ("fps", "--fps")):
        if getattr(options, name) is not None:
            raise InputError(f"{flag} selects frames of a video; independent images have "
                             f"none (use --images sequence for the frames of one video)")
    if options.interp != 1:
        raise InputError("--interp skips frames of a video; every independent image is run")


def _people(image: _Image, dets: Detections, min_score: float,
            ids: np.ndarray | None = None) -> None:
    """The boxes scoring at least `min_score` are the image's people, numbered from left to
    right unless `ids` (a boxes file's track ids) are given."""
    keep = dets.scores >= min_score
    dets, ids = dets.select(keep), None if ids is None else ids[keep]
    square = square_boxes(dets.xyxy) if len(dets) else np.zeros((0, 3))
    order = np.argsort(square[:, 0], kind="stable")
    square = square[order]
    image.boxes = np.concatenate([square, square[:, 2:3]], axis=1).astype(np.float32)
    image.ids = (np.arange(1, len(square) + 1) if ids is None else ids[order]).astype(np.int64)


def _frames(images: list[_Image], clock: StageClock) -> Iterator[tuple[int, np.ndarray]]:
    for image in images:
        t = time.perf_counter()
        frame = read_image(image.path)
        clock.add("decode", time.perf_counter() - t)
        image.height, image.width = frame.shape[:2]
        yield image.index, frame


def find_people(images: list[_Image], options: DemoOptions, detector: PersonDetector | None,
                boxes: BoxesFile | None, clock: StageClock) -> None:
    """Read each image once: its people (detector or boxes file) and their crops."""
    by_index = {image.index: image for image in images}
    scale = options.crop_scale

    def keep(index: int, frame: np.ndarray) -> None:
        t = time.perf_counter()
        image = by_index[index]
        image.crops = crop_images(frame, crop_regions(image.boxes, scale))
        clock.add("crop", time.perf_counter() - t)

    if boxes is not None:
        per_frame = boxes.detections()
        for index, frame in _frames(images, clock):
            dets, ids = per_frame.get(index, Detections()), None
            if boxes.has_tracks:
                rows = np.flatnonzero(boxes.frames == index)
                dets = Detections(boxes.xyxy[rows], boxes.scores[rows])
                ids = boxes.track_ids[rows]
            _people(by_index[index], dets, -np.inf, ids)  # given boxes: all are people
            keep(index, frame)
        return
    assert detector is not None
    decoded = clock.seconds.get("decode", 0.0)
    t = time.perf_counter()
    for index, frame, dets in detector.stream(_frames(images, clock)):
        _people(by_index[index], dets, options.conf)
        clock.add("detect", time.perf_counter() - t)
        keep(index, frame)
        t = time.perf_counter()
    # the detector pulls the frames, so its wall time includes decoding: take that out
    clock.seconds["detect"] = clock.seconds.get("detect", 0.0) - (
        clock.seconds.get("decode", 0.0) - decoded)


def run_images_network(images: list[_Image], model: MAED, device: torch.device,
                       dtype: torch.dtype, per_batch: int, pad: bool, clock: StageClock,
                       precision: dict) -> None:
    """Every person's crop as a one-frame clip, `per_batch` crops per forward pass."""
    owners = [(image, k) for image in images for k in range(len(image.ids))]
    outputs: dict[str, list[torch.Tensor]] = {}

    def count_rerun() -> None:
        precision["fp32_reruns"] += 1

    for start in range(0, len(owners), per_batch):
        t = time.perf_counter()
        batch = owners[start:start + per_batch]
        crops = np.stack([image.crops[k] for image, k in batch])[:, None]  # (B, 1, H, W, 3)
        x = normalize_crops(torch.from_numpy(crops).to(device, non_blocking=True))
        out = forward_mixed(model, x, device, dtype, pad_to=per_batch if pad else None,
                            on_rerun=count_rerun)
        for key in ("rotmat", "betas", "cam"):
            outputs.setdefault(key, []).append(out[key][:, 0].float().cpu())
        clock.add("network", time.perf_counter() - t)
    merged = {k: torch.cat(v) for k, v in outputs.items()}
    row = 0
    for image in images:
        k = len(image.ids)
        image.theta = {key: value[row:row + k] for key, value in merged.items()} if k else None
        image.crops = None  # not needed any more
        row += k


def write_image_results(folder: Path, image: _Image, body: BodyModel, options: DemoOptions,
                        info: dict, clock: StageClock,
                        on_results: OnResults | None) -> tuple[list[TrackResult], dict]:
    """One image's results folder: a track file per person and summary.json."""
    tracks = []
    for k, tid in enumerate(image.ids):
        tracklet = Tracklet(int(tid), np.zeros(1, np.int64), image.boxes[k:k + 1],
                            np.ones(1, bool), int(tid))
        theta = {key: value[k:k + 1] for key, value in image.theta.items()}
        regions = crop_regions(tracklet.boxes, options.crop_scale)
        tracks.append(write_track(folder, tracklet, regions, theta, body, image.width,
                                  image.height, options.focal, clock))
    summary = {
        "maed_version": __version__,
        "input": {"path": str(image.path), "kind": "image", "width": image.width,
                  "height": image.height, "fps": DEFAULT_IMAGE_FPS,
                  "stream_fps": DEFAULT_IMAGE_FPS, "num_frames": 1,
                  "digest": file_digest(image.path), "images": info["images"]},
        **{key: info[key] for key in ("settings", "checkpoint", "body_model", "device",
                                       "precision", "versions")},
        "tracks": [{"track_id": t.track_id, "frames": 1, "first_frame": 0, "last_frame": 0,
                    "file": f"{TRACKS_DIR}/{t.file_name()}"} for t in tracks],
    }
    if on_results is not None:
        on_results(folder, tracks, summary)
    save_summary(folder, summary)
    return tracks, summary


def run_photos(images: ImageSet, output: str | Path, options: DemoOptions, model: MAED,
               body: BodyModel, mode: ModeChoice, *, detector: PersonDetector | None = None,
               checkpoint_info: dict | None = None, progress: Progress | None = None,
               outputs: Callable[[Path], OnResults | None] | None = None) -> PhotoReport:
    """Run every image of `images` independently (see the module docstring) and write the
    results folder atomically. `outputs(image_path)`, when given, returns the hook that adds
    the image's --render/--export files to its results folder."""
    progress = progress or (lambda stage, advance, total: None)
    started = time.perf_counter()
    output = Path(output)
    check_writable(output, "folder", "--output")
    check_photo_options(options)
    clock = StageClock()
    device = resolve_device(options.device)
    dtype = resolve_dtype(options.dtype, device)
    boxes = BoxesFile.load(options.boxes) if options.boxes else None
    if boxes is not None and not np.isin(boxes.frames, np.arange(len(images))).any():
        raise InputError(f"--boxes {boxes.path}: none of its boxes is on one of the "
                         f"{len(images)} images (frame = the image's position in name order, "
                         f"from 0)")
    if boxes is None and detector is None:
        detector = make_detector(options)
    model = prepare_for_inference(model, device, compile=options.compile)
    body = body.to(device)
    per_batch = (options.batch_size or auto_batch_size(device)) * CLIP_LEN
    precision = {"dtype": str(dtype).removeprefix("torch."), "fp32_reruns": 0}
    info = {"images": mode.to_dict(), "settings": asdict(options),
            "checkpoint": checkpoint_info or {}, "body_model": getattr(body, "source", ""),
            "device": str(device), "precision": precision,
            "versions": {"python": platform.python_version(), "torch": torch.__version__}}
    work = [_Image(i, path, name) for i, (path, name) in enumerate(zip(images.files,
                                                                       images.names))]
    per_image: dict[str, list[TrackResult]] = {}
    rows = []
    summary: dict = {}
    progress("images", 0, len(work))
    with atomic_dir(output) as tmp:
        for start in range(0, len(work), IMAGES_PER_CHUNK):
            chunk = work[start:start + IMAGES_PER_CHUNK]
            find_people(chunk, options, detector, boxes, clock)
            run_images_network(chunk, model, device, dtype, per_batch, options.compile,
                               clock, precision)
            for image in chunk:
                folder = tmp if images.single else tmp / image.name
                hook = outputs(image.path) if outputs is not None else None
                t = time.perf_counter()
                tracks, summary = write_image_results(folder, image, body, options, info,
                                                      clock, hook)
                clock.add("write", time.perf_counter() - t)
                if not images.single:
                    for track in tracks:  # each mapped file holds a descriptor: thousands
                        track.verts = None  # of photos would run out of them
                per_image[image.name] = tracks
                rows.append({"name": image.name, "path": str(image.path),
                             "results": "." if images.single else image.name,
                             "width": image.width, "height": image.height,
                             "people": len(tracks)})
                progress("images", 1, len(work))
        clock.seconds["total"] = time.perf_counter() - started
        if images.single:
            if not rows[0]["people"]:
                raise InputError(f"{images.files[0]}: nobody found in the image (try --conf "
                                 f"or --boxes)")
            summary["timings_s"] = clock.seconds
            save_summary(tmp, summary)
        else:
            summary = {"maed_version": __version__,
                       "input": {"path": images.given, "kind": "images",
                                 "num_images": len(work), "images": mode.to_dict()},
                       **{key: value for key, value in info.items() if key != "images"},
                       "images": rows, "people": sum(r["people"] for r in rows),
                       "timings_s": clock.seconds}
            save_summary(tmp, summary)
    tracks = [t for image_tracks in per_image.values() for t in image_tracks]
    return PhotoReport(output=output, tracks=tracks, summary=summary, per_image=per_image)


def default_images_output(images: ImageSet) -> Path:
    """<stem>_maed/ beside one image, a folder or a list file; a glob or several paths need
    --output (there is no one name to take it from)."""
    from .pipeline import default_output
    if images.one_path is not None:
        return default_output(images.one_path)
    raise InputError("give --output DIR for a glob or several inputs (where the results go)")


def run_images_command(inputs: list[str], output: Path | None, options: DemoOptions, *,
                       images_mode: str = "auto", checkpoint=None, smpl=None,
                       render: bool = False, export: str | None = None,
                       side_view: bool = False, quiet: bool = False, console=None,
                       err_console=None, download: bool = False):
    """`maed demo` on image inputs: picks the mode, says which (and why), then runs the
    sequence as a video or every image on its own."""
    from rich.console import Console
    from rich.markup import escape

    from .runner import (extra_outputs, load_model_and_body, preflight_demo,
                         run_demo_command, stage_progress)
    from .video.images import SEQUENCE, choose_mode, collect_images

    console = console or Console()
    images = collect_images(inputs, exclude=output)
    choice = choose_mode(images, images_mode)
    if not quiet:
        what = "1 image" if images.single else f"{len(images)} images"
        console.print(f"{what}: [bold]{choice.mode}[/] ({escape(choice.reason)})")
    if choice.mode == SEQUENCE:
        return run_demo_command(images.folder, output, options, checkpoint=checkpoint,
                                smpl=smpl, render=render, export=export, quiet=quiet,
                                console=console, err_console=err_console,
                                side_view=side_view, input_note={"images": choice.to_dict()},
                                download=download)
    output = Path(output) if output else default_images_output(images)
    check_writable(output, "folder", "--output")
    check_photo_options(options)
    preflight_demo(checkpoint, options.boxes, options.detector_weights, download=download,
                   console=err_console or console, quiet=quiet)
    outputs = extra_outputs(render, export, smpl=smpl, console=console, quiet=quiet,
                            side=side_view)
    loaded = load_model_and_body(checkpoint, smpl)
    per_image = None if outputs is None else (
        lambda path: outputs(path, options, loaded.body))
    with stage_progress(console, quiet) as progress:
        return run_photos(images, output, options, loaded.model, loaded.body, choice,
                          checkpoint_info=loaded.checkpoint_info, progress=progress,
                          outputs=per_image)
