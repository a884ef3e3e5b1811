"""`maed demo`: video -> tracked people -> MAED clips -> SMPL per person per frame -> results.

Two streaming passes over the input, so memory does not grow with the video's length:
  1. decode -> detect (or --boxes) -> track: only boxes are kept;
  2. decode -> crop each tracked person -> MAED clips as soon as all their frames are cropped
     -> free the crops no later clip needs (at most about two 128-frame pools per track).
Then per track: clip outputs back to frame order (every frame predicted once), the body layer
for vertices and joints in chunks whose vertices go straight into the track's file, cameras
converted to the full image, and one results folder written atomically (see
maed_cli.results). The render/export hooks read the vertices back memory-mapped.
"""
from __future__ import annotations

import platform
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from . import __version__
from .atomic import atomic_dir, check_writable
from .body.geometry import (crop_cam_to_full, crop_cam_to_translation,
                            default_focal, project_full_orthographic, rotmat_to_axis_angle)
from .body.smpl import BodyModel
from .clips import interpolate_outputs, plan_clips
from .demo_options import DemoOptions
from .devices import resolve_device, resolve_dtype
from .errors import InputError
from .model import MAED
from .model.inference import forward_mixed, prepare_for_inference
from .resume import NetworkResume, network_key, remove_resume, resume_dir
from .results import (TRACKS_DIR, TrackResult, load_track, open_track_file, save_summary,
                      track_path)
from .stages import Progress, StageClock
from .tracks_cache import CACHE_DIR, input_digest, load_cached_tracks, save_cached_tracks
from .video.crop import TrackCropper, crop_regions, normalize_crops
from .video.detect import BoxesFile, PersonDetector
from .video.io import FrameSource, open_frames
from .video.track import PersonTracker, TrackerConfig, Tracklet, tracklets_from_boxes
from .world.camera import CameraMotionEstimator
from .world.camera_motion import CameraMotion


def _no_progress(stage: str, advance: int, total: int | None) -> None:
    pass


def auto_batch_size(device: torch.device) -> int:
    """Clips (16 frames each) per forward pass: from free GPU memory, 2 on the CPU."""
    if device.type != "cuda":
        return 2
    free, _ = torch.cuda.mem_get_info(device)
    per_clip = 1.2 * 2 ** 30  # order of magnitude for 16 frames, 6 blocks, half precision
    return int(max(1, min(64, free * 0.6 // per_clip)))


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


# --- pass 2: crops and the network ---------------------------------------------------------

@dataclass
class _TrackWork:
    """One track's clips: which are ready, the crops they still need, their outputs."""

    plan: Any
    last_use: dict = field(default_factory=dict)  # position -> index of the last clip using it
    crops: dict = field(default_factory=dict)  # position -> (224, 224, 3) uint8
    next_clip: int = 0
    outputs: list = field(default_factory=list)  # per clip: (index, dict of (T, ...))

    @classmethod
    def create(cls, length: int, interp: int) -> "_TrackWork":
        work = cls(plan_clips(length, interp=interp))
        for c, clip in enumerate(work.plan.clips):
            for pos in clip:
                work.last_use[int(pos)] = c
        return work

    def ready_clips(self, cropped_upto: int) -> list[int]:
        """Clips whose furthest frame has been cropped (crops arrive in frame order)."""
        ready = []
        last = self.plan.clip_last
        while self.next_clip < self.plan.num_clips and last[self.next_clip] <= cropped_upto:
            ready.append(self.next_clip)
            self.next_clip += 1
        return ready

    def release(self, clip_index: int) -> None:
        for pos in self.plan.clips[clip_index]:
            if self.last_use.get(int(pos)) == clip_index:
                self.crops.pop(int(pos), None)


class ClipRunner:
    """Batches ready clips across tracks and runs MAED on them."""

    def __init__(self, model: MAED, device: torch.device, dtype: torch.dtype, batch_size: int,
                 clock: StageClock, on_done: Callable[[int], None], pad: bool = False,
                 on_track: Callable[[_TrackWork], None] | None = None):
        self.model, self.device, self.dtype, self.batch_size = model, device, dtype, batch_size
        self.clock, self.on_done, self.on_track = clock, on_done, on_track
        self.clips_run = 0
        self.pad_to = batch_size if pad else None  # one input shape for a compiled network
        self.fp32_reruns = 0  # fp16 batches that overflowed and ran again in fp32
        self.queue: list[tuple[_TrackWork, int]] = []

    def add(self, work: _TrackWork, clip_index: int) -> None:
        self.queue.append((work, clip_index))
        if len(self.queue) >= self.batch_size:
            self.flush()

    def _count_rerun(self) -> None:
        self.fp32_reruns += 1

    def flush(self) -> None:
        if not self.queue:
            return
        t = time.perf_counter()
        batch, self.queue = self.queue, []
        crops = np.stack([np.stack([work.crops[int(p)] for p in work.plan.clips[c]])
                          for work, c in batch])  # (B, T, 224, 224, 3) uint8
        x = normalize_crops(torch.from_numpy(crops).to(self.device, non_blocking=True))
        out = forward_mixed(self.model, x, self.device, self.dtype, pad_to=self.pad_to,
                            on_rerun=self._count_rerun)
        out = {k: out[k].float().cpu() for k in ("rotmat", "betas", "cam")}
        for i, (work, c) in enumerate(batch):
            work.outputs.append((c, {k: v[i] for k, v in out.items()}))
            work.release(c)
        self.clock.add("network", time.perf_counter() - t)
        self.clips_run += len(batch)
        self.on_done(len(batch))
        if self.on_track is not None:
            for work in {id(w): w for w, _ in batch}.values():
                if len(work.outputs) == work.plan.num_clips:
                    self.on_track(work)


def run_network(source: FrameSource, tracklets: dict[int, Tracklet], model: MAED,
                options: DemoOptions, device: torch.device, progress: Progress,
                clock: StageClock | None = None, stats: dict | None = None,
                finished: dict[int, dict[str, torch.Tensor]] | None = None,
                on_track: Callable[[int, dict[str, torch.Tensor]], None] | None = None
                ) -> dict[int, dict[str, torch.Tensor]]:
    """Stream the frames again, crop every tracked person, run the clips; per track the
    network outputs in frame order: rotmat (n, 24, 3, 3), betas (n, 10), cam (n, 3).
    `stats`, when given, receives the precision used and how many batches were rerun;
    `finished` holds tracks already done (a resumed run: they are not run again) and
    `on_track(track_id, outputs)` hears of each track as its last clip has run."""
    clock = clock or StageClock()
    dtype = resolve_dtype(options.dtype, device)
    merged = dict(finished or {})
    works = {tid: _TrackWork.create(len(t), options.interp) for tid, t in tracklets.items()
             if tid not in merged}
    by_work = {id(w): tid for tid, w in works.items()}

    def track_done(work: _TrackWork) -> None:
        tid = by_work[id(work)]
        merged[tid] = _merge_track(work, len(tracklets[tid]), options.interp)
        if on_track is not None:
            on_track(tid, merged[tid])

    if not works:  # everything was resumed: no second decoding pass
        if stats is not None:
            stats.update(dtype=str(dtype).removeprefix("torch."), fp32_reruns=0, clips_run=0)
        return merged
    cropper = TrackCropper({tid: tracklets[tid] for tid in works}, options.crop_scale,
                           positions={tid: sorted(w.last_use) for tid, w in works.items()})
    total = sum(w.plan.num_clips for w in works.values())
    progress("maed", 0, total)
    runner = ClipRunner(model, device, dtype, options.batch_size or auto_batch_size(device),
                        clock, lambda done: progress("maed", done, total), pad=options.compile,
                        on_track=track_done)
    last_frame = cropper.last_frame
    for frame_index, frame in clock.timed("decode", source):
        t = time.perf_counter()
        cropped = cropper(frame_index, frame)
        for tid, pos, crop in cropped:
            works[tid].crops[pos] = crop
        clock.add("crop", time.perf_counter() - t)
        # A clip's furthest frame is one of its own, so it was just cropped: checking at the
        # cropped positions finds every clip as soon as it is ready.
        for tid, pos, _ in cropped:
            for c in works[tid].ready_clips(pos):
                runner.add(works[tid], c)
        if last_frame is None or frame_index >= last_frame:
            break
    runner.flush()
    if stats is not None:
        stats.update(dtype=str(dtype).removeprefix("torch."), fp32_reruns=runner.fp32_reruns,
                     clips_run=runner.clips_run)
    for tid, work in works.items():
        if tid not in merged:
            raise RuntimeError(f"track {tid}: {len(work.outputs)} of {work.plan.num_clips} "
                               "clips ran (the second decoding pass yielded fewer frames)")
    return {tid: merged[tid] for tid in tracklets}


def _merge_track(work: _TrackWork, length: int, interp: int) -> dict[str, torch.Tensor]:
    """One track's clip outputs back to frame order (every frame predicted once)."""
    ordered = [o for _, o in sorted(work.outputs, key=lambda item: item[0])]
    per_clip = {k: torch.stack([o[k] for o in ordered]) for k in ordered[0]}
    frames = {k: work.plan.merge(v) for k, v in per_clip.items()}
    if interp > 1:
        frames = interpolate_outputs(work.plan.sample, frames, length)
    work.outputs.clear()
    return frames


# --- per-track results ---------------------------------------------------------------------

def build_track_result(tracklet: Tracklet, regions: np.ndarray, theta: dict[str, torch.Tensor],
                       joints: np.ndarray, width: int, height: int, focal: float | None
                       ) -> TrackResult:
    """Everything of one track but its vertices (those are streamed to the file, see
    `write_track`): cameras in the full image, axis-angle pose, 2D joints."""
    rotmat, betas, cam = theta["rotmat"], theta["betas"], theta["cam"]
    regions_t = torch.from_numpy(regions).to(torch.float64)
    cam64 = cam.to(torch.float64)
    orig_cam = crop_cam_to_full(cam64, regions_t, width, height)
    focal = focal or default_focal(width, height)
    cam_t = crop_cam_to_translation(cam64, regions_t, width, height, focal)
    joints2d = project_full_orthographic(torch.from_numpy(joints).to(torch.float64), orig_cam,
                                         width, height)
    return TrackResult(
        track_id=int(tracklet.track_id), frame_ids=tracklet.frames, bboxes=tracklet.boxes,
        crop_boxes=regions, pred_cam=cam.numpy(), orig_cam=orig_cam.numpy(),
        cam_t=cam_t.numpy(), pose=rotmat_to_axis_angle(rotmat).reshape(-1, 72).numpy(),
        betas=betas.numpy(), rotmat=rotmat.numpy(), joints3d=joints,
        joints2d_img_coord=joints2d.numpy(), focal=float(focal))


def write_track(folder: Path, tracklet: Tracklet, regions: np.ndarray,
                theta: dict[str, torch.Tensor], body: BodyModel, width: int, height: int,
                focal: float | None, clock: StageClock) -> TrackResult:
    """Run the body layer over one track in chunks, streaming the vertices into its track
    file as they come, then the rest of its arrays. Returns the track as read back, with
    `verts` memory-mapped from the file: memory stays one chunk, however long the track."""
    n = len(tracklet)
    path = track_path(folder, tracklet.track_id)
    joints = []
    with open_track_file(path) as archive:
        with archive.stream("verts", (n, body.v_template.shape[0], 3)) as write:
            for verts, joints49 in clock.timed("body", body.chunks(theta["rotmat"],
                                                                   theta["betas"])):
                write(verts)
                joints.append(joints49)
        t = time.perf_counter()
        track = build_track_result(tracklet, regions, theta, np.concatenate(joints), width,
                                   height, focal)
        clock.add("body", time.perf_counter() - t)
        archive.add_track(track)
    return load_track(path)


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


