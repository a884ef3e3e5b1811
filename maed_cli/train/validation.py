"""Per-epoch validation during training: a pluggable callable, 3DPW val by default.

A validator is `fn(model, body, epoch) -> {"pa_mpjpe": mm, ...}`; the trainer keeps the
checkpoint with the lowest `pa_mpjpe`. Training goes on right after it, so a validator must
leave `model` as it found it: run it through `maed_cli.model.inference.inference_view` (as
`predict(..., prepare=False)` does), never `prepare_for_inference`. The default runs the evaluation package's own 3DPW
protocol (`maed_cli.evaluate`: MAED's interleaved evaluation clips, 14 LSP joints from
J_regressor_h36m, hip-centred MPJPE / PA-MPJPE / PVE in mm) on `<data_dir>/database/
3dpw_val_db.pt`, so training-time numbers are the ones `maed eval` reports.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

import torch

from ..errors import AssetMissingError, InputError

Validator = Callable[[torch.nn.Module, torch.nn.Module, int], dict[str, float]]


def _first_rows(evalset, n: int):
    """The first n rows of an EvalSet (a quick check on a part of the set)."""
    cut = {f.name: getattr(evalset, f.name)[:n] for f in dataclasses.fields(evalset)
           if f.name in ("vid_name", "frame_id", "img_name", "bbox", "joints3d", "valid",
                         "pose", "shape") and getattr(evalset, f.name) is not None}
    return dataclasses.replace(evalset, **cut)


def threedpw_validator(cfg, body: torch.nn.Module) -> Validator:
    """The default validator for `cfg` (a TrainConfig). The db, its images and the regressor
    are checked now, so a missing file stops the run before training, not after an epoch."""
    from ..data.evaluation_sets.db import find_db, read_db
    from ..evaluate.inference import predict
    from ..evaluate.protocol import score

    if not body.has_h36m:
        raise AssetMissingError("validation on 3DPW needs J_regressor_h36m.npy "
                                "(`maed setup regressors DIR`, or body.j_regressor_h36m=PATH), "
                                "or set val.enabled=false")
    data_dir = Path(cfg.data.data_dir)
    path = find_db(data_dir, cfg.val.dataset, cfg.val.split)
    if path is None:
        raise InputError(f"validation set {cfg.val.dataset}_{cfg.val.split}_db.pt not found in "
                         f"{data_dir} or {data_dir / 'database'} (set val.enabled=false to "
                         f"train without validation)")
    evalset = read_db(path, cfg.val.dataset, cfg.val.split, data_dir)
    if cfg.val.max_frames is not None:
        evalset = _first_rows(evalset, cfg.val.max_frames)

    def run(model: torch.nn.Module, body: torch.nn.Module, epoch: int) -> dict[str, float]:
        device = next(model.parameters()).device
        # prepare=False: the model is being trained; `maed eval`'s fast path would leave
        # it without gradients (and channels-last, with frozen standardised weights)
        predictions = predict(evalset, model, device, interp=cfg.val.interp,
                              batch_pools=cfg.val.batch,
                              workers=min(cfg.data.num_workers, 4), prepare=False)
        summary = score(evalset, predictions, body, device).summary()
        return {k: float(summary[k]) for k in ("mpjpe", "pa_mpjpe", "pve")
                if summary.get(k) is not None}

    return run
