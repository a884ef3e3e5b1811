"""Run MAED over an EvalSet with the official evaluation windowing.

Each track is planned by `maed_cli.clips.plan_clips` (128-frame pools, 8 interleaved
16-frame clips at stride 8, reflect padding whose predictions are dropped; with `interp` K
only every K-th frame is run and the rest interpolated). Pools of all tracks are batched
`batch_pools` at a time, so a forward sees up to 8 × 8 = 64 clips as in MAED's eval. Crops
are 1.3 × the db box, warped to 224², ImageNet-normalised on the device; images are read and
cropped by DataLoader workers, each image once per pool.
"""
from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ..clips import ClipPlan, interpolate_outputs, plan_clips
from ..data.evaluation_sets.evalset import EvalSet
from ..devices import resolve_dtype
from ..errors import InputError
from ..model.inference import forward_mixed, inference_view, prepare_for_inference
from ..video.crop import crop_images, crop_regions, normalize_crops
from .protocol import Predictions

CROP_SCALE = 1.3  # MAED's crop: 1.3 x the db box (§3.1)
OUTPUT_KEYS = ("rotmat", "betas", "cam")


@dataclass
class _PoolJob:
    track: int  # index into the set's tracks
    clips: np.ndarray  # indices of this pool's clips in the track's plan
    frames: np.ndarray  # (U,) unique track positions the pool needs
    layout: np.ndarray  # (c, T) index into `frames` for each clip slot


class _PoolImages(torch.utils.data.Dataset):
    """Item i: the uint8 crops (U, 224, 224, 3) of pool job i (or the path it could not read)."""

    def __init__(self, evalset: EvalSet, starts: list[int], jobs: list[_PoolJob]):
        self.paths = evalset.img_name
        self.regions = crop_regions(evalset.bbox, scale=CROP_SCALE)
        self.starts = starts
        self.jobs = jobs

    def __len__(self) -> int:
        return len(self.jobs)

    def __getitem__(self, i: int):
        import cv2

        job = self.jobs[i]
        rows = self.starts[job.track] + job.frames
        crops = np.zeros((len(rows), 224, 224, 3), np.uint8)
        for k, row in enumerate(rows):
            image = cv2.imread(str(self.paths[row]), cv2.IMREAD_COLOR)
            if image is None:  # reported by the main process as one clear error
                return i, None, str(self.paths[row])
            crops[k] = crop_images(cv2.cvtColor(image, cv2.COLOR_BGR2RGB),
                                   self.regions[row:row + 1])[0]
        return i, torch.from_numpy(crops), None


def default_workers() -> int:
    return min(4, max(0, (os.cpu_count() or 1) - 1))


def predict(evalset: EvalSet, model: nn.Module, device: torch.device | str = "cpu",
            interp: int = 1, batch_pools: int = 8, amp: bool = True, compile: bool = False,
            workers: int | None = None,
            progress: Callable[[int], None] | None = None,
            prepare: bool = True) -> Predictions:
    """Per-row predictions (rotmat, betas, cam) of `model` for every row of `evalset`.

    `model` maps (N, T, 3, 224, 224) to a dict with rotmat (N, T, 24, 3, 3), betas (N, T, 10)
    and cam (N, T, 3) — MAED, or anything with its interface.

    `prepare`: first put `model` in its fast inference form (`prepare_for_inference`, which
    changes it in place: no gradients any more; for a loaded checkpoint, as `maed eval`).
    False (a model being trained, e.g. validation): run it through `inference_view`, which
    leaves it exactly as it was; it must already be on `device`; `compile` is not possible.
    """
    device = torch.device(device)
    if prepare:
        return _predict(evalset, prepare_for_inference(model, device, compile=compile), device,
                        interp, batch_pools, amp, compile, workers, progress)
    if compile:
        raise ValueError("predict(prepare=False) runs the model as it is; it cannot compile")
    with inference_view(model) as net:
        return _predict(evalset, net, device, interp, batch_pools, amp, False, workers,
                        progress)


def _predict(evalset: EvalSet, model: nn.Module, device: torch.device, interp: int,
             batch_pools: int, amp: bool, compile: bool, workers: int | None,
             progress: Callable[[int], None] | None) -> Predictions:
    tracks = evalset.tracks()
    starts = [a for _, a, _ in tracks]
    plans: list[ClipPlan] = [plan_clips(b - a, interp=interp) for _, a, b in tracks]
    jobs = []
    for t, plan in enumerate(plans):
        for pool in np.unique(plan.pool_of_clip):
            clips = np.flatnonzero(plan.pool_of_clip == pool)
            frames, layout = np.unique(plan.clips[clips], return_inverse=True)
            jobs.append(_PoolJob(t, clips, frames, layout.reshape(len(clips), -1)))
    # a compiled network sees one batch shape: the largest a batch of pools can have
    pad_to = batch_pools * max(len(job.clips) for job in jobs) if compile and jobs else None
    outputs = [{k: None for k in OUTPUT_KEYS} for _ in plans]
    remaining = [plan.num_clips for plan in plans]
    result = {"rotmat": np.zeros((len(evalset), 24, 3, 3), np.float32),
              "betas": np.zeros((len(evalset), 10), np.float32),
              "cam": np.zeros((len(evalset), 3), np.float32)}

    workers = default_workers() if workers is None else workers
    loader = torch.utils.data.DataLoader(
        _PoolImages(evalset, starts, jobs), batch_size=None, shuffle=False,
        num_workers=workers, pin_memory=device.type == "cuda",
        persistent_workers=False, prefetch_factor=2 if workers else None,
        generator=torch.Generator().manual_seed(0))  # leaves the global RNG (dropout) alone
    dtype = resolve_dtype("auto" if amp else "fp32", device)  # half precision on a GPU only

    def finish_track(t: int) -> None:
        plan = plans[t]
        per_frame = {k: plan.merge(v) for k, v in outputs[t].items()}  # (M, ...)
        if interp > 1:
            per_frame = interpolate_outputs(plan.sample, per_frame, plan.length)
        rows = slice(starts[t], starts[t] + plan.length)
        for k in OUTPUT_KEYS:
            result[k][rows] = per_frame[k]
        outputs[t] = {}
        if progress:
            progress(plan.length)

    def run_batch(batch: list[tuple[_PoolJob, torch.Tensor]]) -> None:
        clips = []
        for job, crops in batch:
            crops = crops.to(device, non_blocking=True)
            clips.append(crops[torch.as_tensor(job.layout, device=device)])  # (c, T, ...)
        x = normalize_crops(torch.cat(clips))
        out = forward_mixed(model, x, device, dtype, pad_to=pad_to)
        out = {k: out[k].float().cpu().numpy() for k in OUTPUT_KEYS}
        first = 0
        for job, _ in batch:
            c = len(job.clips)
            plan = plans[job.track]
            store = outputs[job.track]
            for k in OUTPUT_KEYS:
                if store[k] is None:
                    store[k] = np.zeros((plan.num_clips, plan.clip_len, *out[k].shape[2:]),
                                        np.float32)
                store[k][job.clips] = out[k][first:first + c]
            first += c
            remaining[job.track] -= c
            if remaining[job.track] == 0:
                finish_track(job.track)

    batch: list[tuple[_PoolJob, torch.Tensor]] = []
    for i, crops, failed in loader:
        if failed is not None:
            raise InputError(f"cannot read image {failed} (missing, truncated or not an "
                             f"image)")
        batch.append((jobs[i], crops))
        if len(batch) == batch_pools:
            run_batch(batch)
            batch = []
    if batch:
        run_batch(batch)
    return Predictions(rotmat=result["rotmat"], betas=result["betas"], cam=result["cam"])
