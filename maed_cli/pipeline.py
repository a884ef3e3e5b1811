"""`maed demo`: video -> tracked people -> MAED clips -> SMPL per person per frame -> results.

Two streaming passes over the input, so memory does not grow with the video's length:
  1. decode -> detect (or --boxes) -> track: only boxes are kept;
  2. decode -> crop each tracked person -> MAED clips as soon as all their frames are cropped
     -> free the crops no later clip needs (at most about two 128-frame pools per track).
Then per track: clip outputs back to frame order (every frame predicted once), the body layer
for vertices and joints in chunks whose vertices go straight into the track's file, cameras
converted to the full image, and one results folder written atomically (see
maed_cli.results). The render/export hooks read the vertices back memory-mapped.

Here: the first pass, the world layer's wiring and the steps that join them (prepare_demo,
finish_demo, run_demo). Below, so they can be shared without importing this module: the
settings (demo_options), the second pass and the per-track writing (network_pass), the
first pass's cache (tracks_cache), progress and stage timings (stages).
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
from .body.geometry import default_focal
from .body.smpl import BodyModel
from .demo_options import DemoOptions
from .devices import resolve_device, resolve_dtype
from .errors import InputError
from .model import MAED
from .model.inference import prepare_for_inference
from .network_pass import run_network, write_track
from .resume import NetworkResume, network_key, remove_resume, resume_dir
from .results import TRACKS_DIR, TrackResult, load_track, save_summary, track_path
from .stages import Progress, StageClock
from .tracks_cache import CACHE_DIR, input_digest, load_cached_tracks, save_cached_tracks
from .video.crop import crop_regions
from .video.detect import BoxesFile, PersonDetector
from .video.io import FrameSource, open_frames
from .video.track import PersonTracker, TrackerConfig, Tracklet, tracklets_from_boxes
from .world.camera import CameraMotionEstimator
from .world.camera_motion import CameraMotion


def _no_progress(stage: str, advance: int, total: int | None) -> None:
    pass


# --- pass 1: who is where ------------------------------------------------------------------

def run_focal(options: DemoOptions, source: FrameSource) -> float:
    """The focal length (pixels) the run uses: --focal, else the image diagonal."""
    meta = source.meta
    return float(options.focal) if options.focal else default_focal(meta.width, meta.height)


def find_tracklets(source: FrameSource, options: DemoOptions, detector: PersonDetector | None,
                   progress: Progress, clock: StageClock | None = None
                   ) -> tuple[dict[int, Tracklet], CameraMotion]:
    """Who is where, and how the camera turned: the camera motion is estimated from the same
    decoded frames, with the frame's person boxes (detections or --boxes) masked out."""
    clock = clock or StageClock()
    fps = source.stream_fps
    config = TrackerConfig(method=options.tracker, high_conf=options.conf)
    total = source.estimated_length
    camera = CameraMotionEstimator(run_focal(options, source),
                                   (source.meta.width, source.meta.height))
    frames = clock.timed("decode", _frames_with_progress(source, "detect", progress, total))
    if options.boxes:
        boxes = BoxesFile.load(options.boxes)
        by_frame = boxes.detections()
        no_boxes = np.zeros((0, 4), np.float32)
        indices = []
        for index, frame in frames:
            indices.append(index)
            t = time.perf_counter()
            found_here = by_frame.get(index)
            camera.add(index, frame, no_boxes if found_here is None else found_here.xyxy)
            clock.add("camera", time.perf_counter() - t)
        t = time.perf_counter()
        found = tracklets_from_boxes(boxes, indices, fps, config, min_track=options.min_track)
        clock.add("track", time.perf_counter() - t)
        return found, camera.finish()
    assert detector is not None
    tracker = PersonTracker(config, fps)
    decode_before = clock.seconds.get("decode", 0.0)
    detect_before = clock.seconds.get("detect", 0.0)
    for index, frame, dets in clock.timed("detect", detector.stream(frames)):
        t = time.perf_counter()
        camera.add(index, frame, dets.xyxy)
        t_camera = time.perf_counter()
        clock.add("camera", t_camera - t)
        tracker.update(index, dets, frame)
        clock.add("track", time.perf_counter() - t_camera)
    # the detector pulls the frames, so its wall time includes decoding: take that out
    decoded = clock.seconds.get("decode", 0.0) - decode_before
    clock.seconds["detect"] = detect_before + (clock.seconds["detect"] - detect_before) - decoded
    t = time.perf_counter()
    found = tracker.tracklets(min_track=options.min_track)
    clock.add("track", time.perf_counter() - t)
    return found, camera.finish()


def camera_from_tracklets(source: FrameSource, tracklets: dict[int, Tracklet], focal: float,
                          progress: Progress, clock: StageClock | None = None) -> CameraMotion:
    """The camera motion from a decode-only pass, masking the tracked boxes: for a cached
    first pass that has no camera motion for this focal (an older cache, or another --focal)."""
    clock = clock or StageClock()
    masks: dict[int, list] = {}
    for tracklet in tracklets.values():
        cx, cy, w, h = np.asarray(tracklet.boxes, np.float64).T
        for frame, box in zip(tracklet.frames.tolist(),
                              np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], 1)):
            masks.setdefault(int(frame), []).append(box)
    camera = CameraMotionEstimator(focal, (source.meta.width, source.meta.height))
    frames = clock.timed("decode", _frames_with_progress(source, "camera motion", progress,
                                                         source.estimated_length))
    for index, frame in frames:
        t = time.perf_counter()
        camera.add(index, frame, np.asarray(masks.get(index, []), np.float64).reshape(-1, 4))
        clock.add("camera", time.perf_counter() - t)
    return camera.finish()


def _frames_with_progress(source: FrameSource, stage: str, progress: Progress,
                          total: int | None) -> Iterator:
    progress(stage, 0, total)
    for item in source:
        yield item
        progress(stage, 1, total)


# --- the whole demo ------------------------------------------------------------------------

@dataclass
class DemoReport:
    output: Path
    tracks: list[TrackResult]
    summary: dict
    cache_hit: bool


@dataclass
class PreparedInput:
    """A video after the first pass (who is where): what the second pass needs."""

    input_path: Path
    output: Path
    options: DemoOptions
    source: FrameSource
    tracklets: dict[int, Tracklet]
    digest: str
    cache_key: str
    cache_file: Path
    cache_hit: bool
    started: float  # time.perf_counter() when the first pass began
    clock: StageClock
    # the camera's rotation per decoded frame, under the run's --camera mode
    camera_motion: CameraMotion | None = None


def prepare_demo(input_path: str | Path, output: str | Path | None, options: DemoOptions, *,
                 detector: PersonDetector | None = None, progress: Progress | None = None
                 ) -> PreparedInput:
    """Open the input, check the settings and run the first pass (or reuse its cache).

    Needs neither the network nor the body model, so `maed batch` runs it for the next video
    in a background thread while the current one is in the network.
    """
    progress = progress or _no_progress
    input_path = Path(input_path).expanduser()
    t0 = time.perf_counter()
    clock = StageClock()
    source = open_frames(input_path, start=options.start, end=options.end, fps=options.fps)
    output = Path(output) if output else default_output(input_path)
    check_writable(output, "folder", "--output")
    options.check()
    digest = input_digest(input_path)
    cache_key = options.tracking_key(digest)
    cache_file = output / CACHE_DIR / f"tracks_{cache_key}.npz"
    # the results of a finished run, else what an interrupted one kept (see maed_cli.resume)
    kept = resume_dir(output) / cache_file.name
    tracklets, camera = None, None
    for candidate in (cache_file, kept) if options.use_cache else ():
        tracklets, camera = load_cached_tracks(candidate) if candidate.is_file() \
            else (None, None)
        if tracklets is not None:
            break
    cache_hit = tracklets is not None
    if tracklets is None:
        if not options.boxes and detector is None:
            detector = make_detector(options)
        tracklets, camera = find_tracklets(source, options, detector, progress, clock)
        if tracklets and options.use_cache:  # kept at once: a resumed run skips this pass
            save_cached_tracks(kept, tracklets, camera)
    if not tracklets:
        raise InputError(f"{input_path}: no person was tracked for at least "
                         f"{options.min_track} frames (try --min-track, --conf or --boxes)")
    focal = run_focal(options, source)
    if camera is None or not np.isclose(camera.focal, focal, rtol=1e-6):
        camera = camera_from_tracklets(source, tracklets, focal, progress, clock)
    return PreparedInput(input_path, output, options, source, tracklets, digest, cache_key,
                         cache_file, cache_hit, t0, clock, camera.with_mode(options.camera))


def make_detector(options: DemoOptions) -> PersonDetector:
    """The YOLO person detector the options ask for (loads the weights)."""
    return PersonDetector(options.detector_weights, conf=options.conf,
                          min_size=options.min_size, imgsz=options.detect_size,
                          device=options.device)


WORLD_OFF_REASON = "turned off (--no-world)"


def _world_results(folder: Path, tracks: list[TrackResult], prepared: PreparedInput,
                   body: BodyModel) -> tuple[list[TrackResult], dict]:
    """The world layer over a run's fresh tracks in `folder`: each track file gains its world
    arrays, folder/world.npz the run's world frame. Returns the tracks as read back and the
    summary.json["world"] block. Never ends the run: whatever goes wrong leaves the
    camera-frame results and one warning saying why."""
    import warnings
    import zipfile

    from .results import TrackArchive
    meta, camera = prepared.source.meta, prepared.camera_motion
    if camera is not None and camera.reason_unusable:
        warnings.warn(f"camera motion: {camera.reason_unusable}; the camera is taken as static")
    try:
        from .world import build_world, save_world
        build = build_world(tracks, camera, run_focal(prepared.options, prepared.source),
                            (meta.width, meta.height), body, fps=float(meta.fps or 30.0))
        reason = build.fell_back_reason if build.frame is None else None
    except Exception as exc:  # noqa: BLE001 - the world layer must never cost the body results
        build, reason = None, f"the world layer failed ({type(exc).__name__}: {exc})"
    if build is None or reason is not None:
        warnings.warn(f"no world frame, the results stay in the camera frame: {reason}")
        block = dict(build.summary) if build is not None else {}
        block.update(frame="camera", reason=reason)
        return tracks, block
    warning = (build.summary.get("camera") or {}).get("translating_warning")
    if warning:
        warnings.warn(f"camera motion: {warning}")
    hint = (build.summary.get("floor") or {}).get("focal_from_lines_px")
    if hint:
        used = run_focal(prepared.options, prepared.source)
        warnings.warn(f"the background's vertical and horizontal lines are not at right angles "
                      f"for this run's focal length ({used:.0f} px); they would be at "
                      f"{hint:.0f} px: try --focal {hint:.0f} (distances scale with it)")
    placed = []
    for track in build.tracks:
        path = track_path(folder, track.track_id)
        arrays = {"world_orient": (track.world_orient, np.float32),
                  "world_t": (track.world_t, np.float32), "contacts": (track.contacts, np.uint8)}
        if any(value is None for value, _ in arrays.values()):  # a track the layer skipped
            placed.append(track)
            continue
        # appended after the streamed vertices, which stay where they are (and mapped)
        with zipfile.ZipFile(path, "a", zipfile.ZIP_STORED, allowZip64=True) as archive:
            members = TrackArchive(archive)
            for key, (value, dtype) in arrays.items():
                members.add(key, np.asarray(value, dtype))
        placed.append(load_track(path))
    save_world(folder, build.frame)
    return placed, build.summary


def finish_demo(prepared: PreparedInput, model: MAED, body: BodyModel, *,
                checkpoint_info: dict | None = None, progress: Progress | None = None,
                on_results: Callable[[Path, list[TrackResult], dict], None] | None = None
                ) -> DemoReport:
    """The second pass (crops + network), the body layer and the atomic results folder."""
    progress = progress or _no_progress
    p, options, clock = prepared, prepared.options, prepared.clock
    meta, tracklets = p.source.meta, p.tracklets
    device = resolve_device(options.device)
    model = prepare_for_inference(model, device, compile=options.compile)
    body = body.to(device)
    precision: dict = {}
    dtype = str(resolve_dtype(options.dtype, device)).removeprefix("torch.")
    resume = NetworkResume(resume_dir(p.output) / ("net_" + network_key(
        p.cache_key, checkpoint_info, {"interp": options.interp, "dtype": dtype,
                                       "crop_scale": options.crop_scale}))
                           if options.use_cache else None)
    finished = resume.load(tracklets)
    theta = run_network(p.source, tracklets, model, options, device, progress, clock,
                        stats=precision, finished=finished, on_track=resume.save)
    network = {"tracks_resumed": len(finished), "clips_run": precision.pop("clips_run", 0)}
    with atomic_dir(p.output) as tmp:
        body_before = clock.seconds.get("body", 0.0)
        t = time.perf_counter()
        tracks = []
        progress("body", 0, len(tracklets))
        for tid, tracklet in tracklets.items():
            regions = crop_regions(tracklet.boxes, options.crop_scale)
            tracks.append(write_track(tmp, tracklet, regions, theta.pop(tid), body, meta.width,
                                      meta.height, options.focal, clock))
            progress("body", 1, len(tracklets))
        # writing is what the body layer's chunks did not take
        clock.add("write", time.perf_counter() - t - (clock.seconds["body"] - body_before))
        world = {"frame": "camera", "reason": WORLD_OFF_REASON}
        if options.world:
            t = time.perf_counter()
            progress("world", 0, 1)
            tracks, world = _world_results(tmp, tracks, p, body)
            progress("world", 1, 1)
            clock.add("world", time.perf_counter() - t)
        summary = {
            "maed_version": __version__,
            "input": {"path": str(p.input_path), "kind": meta.kind, "width": meta.width,
                      "height": meta.height, "fps": meta.fps,
                      "stream_fps": p.source.stream_fps, "num_frames": meta.num_frames,
                      "digest": p.digest, "rotation": getattr(meta, "rotation", 0),
                      "variable_frame_rate": getattr(meta, "variable_rate", False)},
            "settings": asdict(options),
            "checkpoint": checkpoint_info or {},
            "body_model": getattr(body, "source", ""),
            "device": str(device),
            "precision": precision,
            "network": network,
            "versions": {"python": platform.python_version(), "torch": torch.__version__},
            "tracks": [{"track_id": t.track_id, "frames": len(t),
                        "first_frame": int(t.frame_ids[0]), "last_frame": int(t.frame_ids[-1]),
                        "file": f"{TRACKS_DIR}/{t.file_name()}"} for t in tracks],
            "tracks_cache": {"key": p.cache_key, "reused": p.cache_hit},
            "world": world,
            "timings_s": clock.seconds,
        }
        t = time.perf_counter()
        save_cached_tracks(tmp / CACHE_DIR / p.cache_file.name, tracklets, p.camera_motion)
        if on_results is not None:
            on_results(tmp, tracks, summary)
        clock.add("write", time.perf_counter() - t)
        clock.seconds["total"] = time.perf_counter() - p.started
        save_summary(tmp, summary)
    remove_resume(p.output)
    return DemoReport(output=p.output, tracks=tracks, summary=summary, cache_hit=p.cache_hit)


def run_demo(input_path: str | Path, output: str | Path | None, options: DemoOptions,
             model: MAED, body: BodyModel, *, detector: PersonDetector | None = None,
             checkpoint_info: dict | None = None, progress: Progress | None = None,
             on_results: Callable[[Path, list[TrackResult], dict], None] | None = None
             ) -> DemoReport:
    """Run the demo pipeline; `on_results(tmp_folder, tracks, summary)` may add files (e.g.
    the overlay video) to the results folder before it is moved into place."""
    prepared = prepare_demo(input_path, output, options, detector=detector, progress=progress)
    return finish_demo(prepared, model, body, checkpoint_info=checkpoint_info,
                       progress=progress, on_results=on_results)


def default_output(input_path: Path) -> Path:
    input_path = Path(input_path)
    return input_path.parent / f"{input_path.stem}_maed"


