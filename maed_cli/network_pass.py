"""The demo's second pass and what it gives per track.

`run_network` decodes the input again, crops every tracked person and runs MAED clips as soon
as all their frames are cropped, freeing the crops no later clip needs (at most about two
128-frame pools per track); per track the clip outputs go back to frame order, every frame
predicted once. `write_track` then runs the body layer over one track in chunks and streams
its vertices into the track's file; the photo pipeline writes its tracks with it too.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .body.geometry import (crop_cam_to_full, crop_cam_to_translation, default_focal,
                            project_full_orthographic, rotmat_to_axis_angle)
from .body.smpl import BodyModel
from .clips import interpolate_outputs, plan_clips
from .demo_options import DemoOptions
from .devices import resolve_dtype
from .model import MAED
from .model.inference import forward_mixed
from .results import TrackResult, load_track, open_track_file, track_path
from .stages import Progress, StageClock
from .video.crop import TrackCropper, normalize_crops
from .video.io import FrameSource
from .video.track import Tracklet


def auto_batch_size(device: torch.device) -> int:
    """Clips (16 frames each) per forward pass: from free GPU memory, 2 on the CPU."""
    if device.type != "cuda":
        return 2
    free, _ = torch.cuda.mem_get_info(device)
    per_clip = 1.2 * 2 ** 30  # order of magnitude for 16 frames, 6 blocks, half precision
    return int(max(1, min(64, free * 0.6 // per_clip)))


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
