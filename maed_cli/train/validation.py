"""Per-epoch validation during training: a pluggable callable, 3DPW val by default.

A validator is `fn(model, body, epoch) -> {"pa_mpjpe": mm, ...}`; the trainer keeps the
checkpoint with the lowest `pa_mpjpe`. The default reads `3dpw_val_db.pt` and scores as the
3DPW protocol does (14 LSP joints from J_regressor_h36m, pelvis-centred MPJPE and PA-MPJPE,
mm), with MAED's evaluation clips: each 128-row pool is split into `pool/seqlen` interleaved
clips, so every frame is predicted once. Reflect-padded rows are scored once.

When the evaluation package (issue #6, `maed_cli.evaluate`) is merged, this default should
call its protocol instead; the interface stays the same.
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from ..body.joints import H36M_TO_J14
from ..data.train_datasets import AugmentSpec, VideoClips, find_db, read_table
from ..errors import AssetMissingError

Validator = Callable[[torch.nn.Module, torch.nn.Module, int], dict[str, float]]


def procrustes_align(pred: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    """Similarity-align pred (B, J, 3) to gt (B, J, 3) (scale, rotation, translation)."""
    mu_p, mu_g = pred.mean(1, keepdim=True), gt.mean(1, keepdim=True)
    p, g = pred - mu_p, gt - mu_g
    u, s, vt = torch.linalg.svd(p.transpose(1, 2) @ g)
    d = torch.sign(torch.det(u @ vt))
    fix = torch.ones_like(s)
    fix[:, -1] = d
    rot = u @ torch.diag_embed(fix) @ vt  # p @ rot ≈ g
    scale = (s * fix).sum(1) / (p ** 2).sum((1, 2)).clamp_min(1e-12)
    return scale[:, None, None] * p @ rot + mu_g


def pelvis_centre_j14(j: torch.Tensor) -> torch.Tensor:
    """(B, 14, 3) LSP joints centred on their hips (indices 2, 3), as the 3DPW protocol."""
    return j - 0.5 * (j[:, 2:3] + j[:, 3:4])


def threedpw_validator(cfg, body: torch.nn.Module) -> Validator:
    """The default validator for `cfg` (a TrainConfig). The db and the regressor are checked
    now, so that a missing file stops the run before training rather than after an epoch."""
    state: dict = {}
    if not body.has_h36m:
        raise AssetMissingError("validation on 3DPW needs J_regressor_h36m.npy "
                                "(`maed setup regressors DIR`, or body.j_regressor_h36m=PATH), "
                                "or set val.enabled=false")

    def prepare() -> None:
        if "clips" not in state:
            data_dir = Path(cfg.data.data_dir)
            path = find_db(data_dir, cfg.val.dataset, cfg.val.split)
            root = cfg.data.image_roots.get(cfg.val.dataset)
            root = Path(root) if root and Path(root).is_absolute() else \
                data_dir / (root or cfg.val.dataset)
            table = read_table(cfg.val.dataset, path, root, True, True, cfg.data.check_images)
            pool = cfg.data.sample_pool
            state["clips"] = VideoClips(table, cfg.data.seqlen, pool, pool,
                                        AugmentSpec(training=False,
                                                    crop_scale=cfg.augment.crop_scale),
                                        skip_bad=cfg.data.skip_bad_samples)

    prepare()

    def run(model: torch.nn.Module, body: torch.nn.Module, epoch: int) -> dict[str, float]:
        clips: VideoClips = state["clips"]
        device = next(model.parameters()).device
        seen: set[int] = set()
        errors, pa_errors = [], []
        was_training = model.training
        model.eval()
        try:
            with torch.no_grad():
                for p, pool_rows in enumerate(clips.pools):
                    if cfg.val.max_clips is not None and p >= cfg.val.max_clips:
                        break
                    items = [clips._sample(clips.clip_rows(pool_rows, s), None, False)
                             for s in range(clips.interval)]
                    x = torch.stack([it["images"] for it in items]).to(device)
                    out = model(x)
                    rotmat = out["rotmat"].reshape(-1, 24, 3, 3).float()
                    betas = out["betas"].reshape(-1, 10).float()
                    pred = body(rotmat=rotmat, betas=betas).joints_h36m17[:, list(H36M_TO_J14)]
                    gt = torch.stack([it["kp3d"] for it in items]).reshape(-1, 49, 4)
                    gt = gt[:, 25:39, :3].to(pred)
                    rows = np.concatenate([clips.clip_rows(pool_rows, s)
                                           for s in range(clips.interval)])
                    keep = []
                    for i, r in enumerate(rows.tolist()):
                        if r not in seen:
                            seen.add(r)
                            keep.append(i)
                    if not keep:
                        continue
                    pred, gt = pelvis_centre_j14(pred[keep]), pelvis_centre_j14(gt[keep])
                    errors.append((pred - gt).norm(dim=-1).mean(-1))
                    pa_errors.append((procrustes_align(pred, gt) - gt).norm(dim=-1).mean(-1))
        finally:
            model.train(was_training)
        if not errors:
            return {}
        return {"mpjpe": float(torch.cat(errors).mean()) * 1000,
                "pa_mpjpe": float(torch.cat(pa_errors).mean()) * 1000,
                "frames": float(len(seen))}

    return run
