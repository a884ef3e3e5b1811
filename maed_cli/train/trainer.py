"""The MAED trainer: stage 1 (images, vanilla) and stage 2 (hybrid video + images).

    trainer = Trainer(cfg, resume=None)      # builds data, body, model, optimiser
    summary = trainer.fit()                  # epochs; checkpoints; validation

Exact resume. Every random choice is a function of saved state: each data stream's order is a
`DistributedSampler` permutation seeded with (seed, pass), items are augmented from
(seed, dataset, pass, index), the data loaders never touch the global RNG, and the torch RNG
of every rank (dropout) is saved with each checkpoint. Resuming from a checkpoint written at
step k therefore continues exactly as the uninterrupted run did after step k.

Checkpoints (`<out_dir>/checkpoints/`, each written atomically): `last.pt` after every epoch
(and every `save_every_steps`), `best.pt` at the lowest validation PA-MPJPE, `epoch_NNN.pt`
when `keep_epoch_checkpoints`. Scalars go to `<out_dir>/metrics.csv` (and TensorBoard when
it is installed).
"""
from __future__ import annotations

import bisect
import csv
import itertools
import math
import os
import signal
import time
from collections.abc import Iterator
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import torch
import yaml
from torch.utils.data import DataLoader, DistributedSampler, Sampler

from ..assets import refuse_folder
from ..atomic import check_writable
from ..errors import CheckpointError, InputError, MaedError
from ..model import MAED, save_checkpoint
from ..model.checkpoint import checkpoint_filter_fn, extract_state_dict, read_checkpoint_file
from . import distributed as D
from .config import TrainConfig, apply_override, config_from_dict
from .losses import MAEDLoss

# Test hook: SIGKILL this process right after the given global step (simulates a crash).
KILL_ENV = "MAED_TRAIN_KILL_AT_STEP"


class TrainingDiverged(MaedError):
    """A non-finite loss; the message names the step and the batch's samples."""


# --- data streams ---------------------------------------------------------------------------

class _PassSampler(Sampler):
    """(pass, index) keys of one pass of a DistributedSampler, from batch `skip` on."""

    def __init__(self, base: DistributedSampler, pass_: int, skip_items: int):
        self.base, self.pass_, self.skip = base, pass_, skip_items

    def __iter__(self) -> Iterator[tuple[int, int]]:
        self.base.set_epoch(self.pass_)
        return ((self.pass_, i) for i in itertools.islice(iter(self.base), self.skip, None))

    def __len__(self) -> int:
        return max(0, len(self.base) - self.skip)


def _worker_init(_: int) -> None:
    """Loader workers: one thread each for OpenCV and torch, or N workers oversubscribe."""
    import cv2
    cv2.setNumThreads(1)
    torch.set_num_threads(1)


class Stream:
    """An endless, resumable sequence of batches from one dataset (restarts when it runs out).

    State = (pass, batches consumed in this pass)."""

    def __init__(self, name: str, dataset, batch: int, seed: int, info: D.DistInfo,
                 workers: int, device: torch.device):
        self.name, self.dataset, self.batch, self.workers = name, dataset, batch, workers
        if batch < 1:  # TrainConfig.validate refuses this; a config built in code may not
            raise InputError(f"the {name} datasets need a batch size >= 1 (data.batch_*), "
                             f"got {batch}")
        self.sampler = DistributedSampler(dataset, num_replicas=info.world_size, rank=info.rank,
                                          shuffle=True, seed=seed, drop_last=False)
        self.batches_per_pass = len(self.sampler) // batch
        if self.batches_per_pass == 0:
            raise InputError(f"the {name} datasets give {len(dataset)} samples, fewer than one "
                             f"batch of {batch} per process; lower data.batch_* or add data")
        self.pass_, self.position = 0, 0
        self.replaced = 0  # unreadable samples replaced (--skip-bad-samples)
        self.pin = device.type == "cuda"
        self._it: Iterator | None = None

    def _open(self) -> None:
        sampler = _PassSampler(self.sampler, self.pass_, self.position * self.batch)
        loader = DataLoader(self.dataset, batch_size=self.batch, sampler=sampler,
                            drop_last=True, num_workers=self.workers, pin_memory=self.pin,
                            generator=torch.Generator().manual_seed(0),  # keep global RNG
                            persistent_workers=False,
                            worker_init_fn=_worker_init if self.workers else None)
        self._it = iter(loader)

    def next(self) -> dict[str, Any]:
        if self.position >= self.batches_per_pass:
            self.pass_, self.position, self._it = self.pass_ + 1, 0, None
        if self._it is None:
            self._open()
        batch = next(self._it)
        self.position += 1
        if "replaced" in batch:
            self.replaced += int(batch["replaced"].sum())
        return batch

    def state_dict(self) -> dict[str, int]:
        return {"pass": self.pass_, "position": self.position}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.pass_, self.position, self._it = int(state["pass"]), int(state["position"]), None


def concat_batches(batches: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in batches[0]:
        if isinstance(batches[0][key], torch.Tensor):
            out[key] = torch.cat([b[key] for b in batches])
        else:
            out[key] = [v for b in batches for v in b[key]]
    return out


# --- weights --------------------------------------------------------------------------------

def load_pretrained(model: MAED, path: str, reinit_decoder: bool) -> dict[str, int]:
    """A maed/official checkpoint's weights into `model` where names and shapes agree."""
    state, _ = checkpoint_filter_fn(extract_state_dict(read_checkpoint_file(path)))
    if reinit_decoder:
        state = {k: v for k, v in state.items() if not k.startswith("decoder.")}
    own = model.state_dict()
    usable = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    if not usable:
        raise CheckpointError(f"{path}: none of its weights fit this MAED network")
    model.load_state_dict(usable, strict=False)
    return {"loaded": len(usable), "not_in_file": len(set(own) - set(usable)),
            "ignored": len(set(state) - set(usable))}


def load_timm_vit(model: MAED, path: str) -> dict[str, int]:
    """A local timm `vit_base_r50_s16_224.orig_in21k` state dict (.pth/.bin) into the encoder.

    timm's names are the encoder's names (`patch_embed.backbone.stem.conv.weight`,
    `blocks.N.attn.qkv.weight`, ...); blocks beyond `num_blocks` and the head are ignored."""
    file = Path(path)
    if file.suffix == ".npz":
        raise InputError(f"{file}: the original .npz (JAX) weights are not read; load them "
                         f"once with timm and save its state_dict as .pth")
    raw = read_checkpoint_file(file)
    state = raw.get("state_dict", raw.get("model", raw)) if isinstance(raw, dict) else raw
    own = model.state_dict()
    usable = {f"encoder.{k}": v for k, v in state.items()
              if f"encoder.{k}" in own and own[f"encoder.{k}"].shape == v.shape}
    backbone = [k for k in own if k.startswith("encoder.patch_embed.backbone.")]
    if sum(k in usable for k in backbone) < len(backbone):
        raise CheckpointError(f"{file}: not an R50+ViT-B/16 timm state dict (its ResNet "
                              f"backbone weights do not match)")
    model.load_state_dict(usable, strict=False)
    return {"loaded": len(usable), "not_in_file": len(set(own) - set(usable))}


# --- the trainer ----------------------------------------------------------------------------

def _pick_device(name: str, info: D.DistInfo) -> torch.device:
    """The shared device rule (`maed_cli.devices`); under torchrun each process takes the GPU
    of its local rank."""
    from ..devices import resolve_device
    device = resolve_device(name)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", info.local_rank)
    return device


class Trainer:
    def __init__(self, cfg: TrainConfig | None, resume: str | Path | None = None,
                 validator=None, body: torch.nn.Module | None = None,
                 console=None, quiet: bool = False, resume_overrides: list[str] = ()):
        self.resume_path = Path(resume) if resume else None
        resume_raw = None
        if self.resume_path is not None:
            refuse_folder(self.resume_path, "checkpoints/last.pt" if
                          (self.resume_path / "checkpoints").is_dir() else "last.pt")
            resume_raw = read_checkpoint_file(self.resume_path)
            if not isinstance(resume_raw, dict) or "train_state" not in resume_raw:
                raise CheckpointError(f"{self.resume_path}: not a training checkpoint (no "
                                      f"optimizer/RNG state); use init.pretrained to start "
                                      f"from a model's weights")
            # The run continues with the configuration it was started with, plus any
            # overrides given now (e.g. optim.epochs=120 to extend it).
            data = resume_raw["meta"]["train_config"]
            for override in resume_overrides:
                apply_override(data, override)
            cfg = config_from_dict(data)
        self.cfg = cfg
        device_kind = "cuda" if cfg.device != "cpu" and torch.cuda.is_available() else "cpu"
        self.info = D.init_distributed(device_kind)
        self.device = _pick_device(cfg.device, self.info)
        self.console, self.quiet = console, quiet or not self.info.is_main
        self.out_dir = Path(cfg.out_dir)
        self.ckpt_dir = self.out_dir / "checkpoints"
        check_writable(self.out_dir, "folder", "out_dir", inside=True)
        if resume_raw is None and (self.ckpt_dir / "last.pt").exists():
            raise InputError(f"{self.out_dir} already holds a run; pass --resume "
                             f"{self.ckpt_dir / 'last.pt'} to continue it, or choose another "
                             f"out_dir")

        torch.manual_seed(cfg.seed)  # identical initial weights on every rank
        mcfg = cfg.model
        self.model = MAED(mcfg.num_blocks, mcfg.num_heads, mcfg.st_mode, mcfg.hidden_dim)
        self.init_report: dict[str, Any] = {}
        if resume_raw is None:
            if cfg.init.timm_vit:
                self.init_report["timm_vit"] = load_timm_vit(self.model, cfg.init.timm_vit)
            if cfg.init.pretrained:
                self.init_report["pretrained"] = load_pretrained(
                    self.model, cfg.init.pretrained, cfg.init.reinit_decoder)
        self.model.to(self.device)

        if body is None:
            body = self._load_body()
        self.body = body.to(self.device)
        self.criterion = MAEDLoss(self.body, cfg.loss)

        from ..data.training_sets.datasets import build_datasets
        self.datasets = build_datasets(cfg)
        self.skipped = {k: d.skipped for k, d in self.datasets.items()}
        batch = {"video_2d": cfg.data.batch_2d, "video_3d": cfg.data.batch_3d,
                 "images": cfg.data.batch_img}
        self.streams = {name: Stream(name, ds, batch[name], cfg.seed, self.info,
                                     cfg.data.num_workers, self.device)
                        for name, ds in self.datasets.items()}
        main = "images" if cfg.stage == 1 else (
            "video_3d" if "video_3d" in self.streams else "video_2d")
        self.iters_per_epoch = cfg.optim.iters_per_epoch or self.streams[main].batches_per_pass

        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=cfg.optim.lr,
                                          weight_decay=cfg.optim.weight_decay)
        milestones, gamma = sorted(cfg.optim.milestones), cfg.optim.gamma
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda e: gamma ** bisect.bisect_right(milestones, e))
        self.amp_dtype = self._amp_dtype()
        self.scaler = torch.amp.GradScaler(enabled=self.amp_dtype == torch.float16)

        self.ddp = self.model
        if self.info.enabled:
            from torch.nn.parallel import DistributedDataParallel as DDP
            self.ddp = DDP(self.model, device_ids=[self.device.index] if
                           self.device.type == "cuda" else None, broadcast_buffers=False)

        self.epoch, self.step_in_epoch, self.global_step = 0, 0, 0
        self.best = math.inf
        self.validator = validator
        self.has_validation = validator is not None or cfg.val.enabled  # same on every rank
        if self.validator is None and cfg.val.enabled and self.info.is_main:
            from .validation import threedpw_validator
            self.validator = threedpw_validator(cfg, self.body)
        torch.manual_seed(cfg.seed * 1000 + 1 + self.info.rank)  # per-rank dropout streams
        if resume_raw is not None:
            self._restore(resume_raw)
        self._tb = None

    # -- setup helpers

    def _load_body(self):
        from ..body.smpl import BodyModel, load_body_model, load_regressor
        from ..body.smpl_files import read_smpl_file
        b = self.cfg.body
        if b.smpl:
            import numpy as np
            extra = np.load(b.j_regressor_extra) if b.j_regressor_extra else \
                load_regressor("J_regressor_extra.npy")
            h36m = np.load(b.j_regressor_h36m) if b.j_regressor_h36m else \
                load_regressor("J_regressor_h36m.npy")
            return BodyModel(read_smpl_file(b.smpl), extra, h36m, source=b.smpl)
        return load_body_model()

    def _amp_dtype(self) -> torch.dtype | None:
        amp = self.cfg.optim.amp
        if amp == "off" or (amp == "auto" and self.device.type != "cuda"):
            return None
        if amp == "fp16":
            return torch.float16
        if amp == "auto" and not torch.cuda.is_bf16_supported():
            return None
        return torch.bfloat16

    def _restore(self, raw: dict) -> None:
        from ..model.checkpoint import load_state_strict
        state, _ = checkpoint_filter_fn(extract_state_dict(raw))
        load_state_strict(self.model, state, str(self.resume_path))
        self.optimizer.load_state_dict(raw["optimizer"])
        self.scheduler.load_state_dict(raw["scheduler"])
        if raw.get("scaler"):
            self.scaler.load_state_dict(raw["scaler"])
        ts = raw["train_state"]
        self.epoch, self.step_in_epoch = int(ts["epoch"]), int(ts["step_in_epoch"])
        self.global_step, self.best = int(ts["global_step"]), float(ts["best"])
        for name, s in raw["streams"].items():
            if name in self.streams:
                self.streams[name].load_state_dict(s)
        rng = raw["rng"]
        if len(rng) != self.info.world_size and self.info.is_main and self.console:
            self.console.print(f"[yellow]resumed with {self.info.world_size} processes, the "
                               f"checkpoint had {len(rng)}: data order and dropout differ[/]")
        mine = rng[min(self.info.rank, len(rng) - 1)]
        torch.set_rng_state(mine["cpu"])
        if self.device.type == "cuda" and mine.get("cuda") is not None:
            torch.cuda.set_rng_state(mine["cuda"], self.device)

    # -- checkpoints

    def _rng_state(self) -> dict:
        return {"cpu": torch.get_rng_state(),
                "cuda": torch.cuda.get_rng_state(self.device) if self.device.type == "cuda"
                else None}

    def save(self, name: str, extra_names: tuple[str, ...] = (),
             val: dict | None = None) -> Path | None:
        rngs = D.gather_objects(self._rng_state(), self.info)  # collective: all ranks call
        if not self.info.is_main:
            return None
        meta = {"epoch": self.epoch, "global_step": self.global_step, "stage": self.cfg.stage,
                "train_config": self.cfg.to_dict(), "val": val or {},
                "best_pa_mpjpe": None if math.isinf(self.best) else self.best}
        extra = {"optimizer": self.optimizer.state_dict(),
                 "scheduler": self.scheduler.state_dict(),
                 "scaler": self.scaler.state_dict() if self.scaler.is_enabled() else None,
                 "train_state": {"epoch": self.epoch, "step_in_epoch": self.step_in_epoch,
                                 "global_step": self.global_step, "best": self.best},
                 "streams": {k: s.state_dict() for k, s in self.streams.items()},
                 "rng": rngs}
        path = save_checkpoint(self.ckpt_dir / name, self.model, meta, extra)
        for other in extra_names:
            save_checkpoint(self.ckpt_dir / other, self.model, meta, extra)
        return path

    # -- logging

    def _log_row(self, row: dict[str, Any]) -> None:
        if not self.info.is_main:
            return
        path = self.out_dir / "metrics.csv"
        fields = ["kind", "epoch", "step", "lr", "loss", "kp_2d", "kp_3d", "pose", "shape",
                  "norm", "img_loss", "img_kp_2d", "img_kp_3d", "img_pose", "img_shape",
                  "img_norm", "samples_per_s", "mpjpe", "pa_mpjpe"]
        new = not path.exists()
        with open(path, "a", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=fields, extrasaction="ignore")
            if new:
                writer.writeheader()
            writer.writerow(row)
        if self._tb is not None:
            for key, value in row.items():
                if isinstance(value, float):
                    self._tb.add_scalar(f"{row['kind']}/{key}", value, row["step"])

    def _trim_metrics(self) -> None:
        """After a resume, drop rows logged past the checkpoint by the interrupted run."""
        path = self.out_dir / "metrics.csv"
        if not (self.info.is_main and path.exists()):
            return
        with open(path, newline="") as handle:
            rows = list(csv.DictReader(handle))
            fields = rows[0].keys() if rows else None
        if fields is None:
            return
        from ..atomic import atomic_path
        with atomic_path(path) as tmp, open(tmp, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(fields))
            writer.writeheader()
            writer.writerows(r for r in rows if int(r["step"]) <= self.global_step)

    # -- one step

    def _forward_loss(self, batch: dict[str, Any]) -> tuple[torch.Tensor, dict[str, float]]:
        x = batch["images"].to(self.device, non_blocking=True)
        targets = {k: v.to(self.device, non_blocking=True) for k, v in batch.items()
                   if isinstance(v, torch.Tensor) and k != "images"}
        from ..devices import autocast
        with autocast(self.device, self.amp_dtype or torch.float32):
            pred = self.ddp(x)
        return self.criterion(pred, targets)

    def _check_finite(self, loss: torch.Tensor, terms: dict, batch: dict, part: str) -> None:
        bad = not bool(torch.isfinite(loss.detach()))
        if D.any_true(bad, self.info, self.device):
            where = ", ".join(batch["id"][:8]) + (" ..." if len(batch["id"]) > 8 else "")
            last = self.ckpt_dir / "last.pt"
            kept = f"; the last good checkpoint is {last}" if last.exists() else ""
            shown = ", ".join(f"{k}={v:.4g}" for k, v in terms.items())
            raise TrainingDiverged(
                f"non-finite {part} loss at epoch {self.epoch + 1}, step "
                f"{self.step_in_epoch + 1} (global step {self.global_step + 1})"
                f"{' on rank ' + str(self.info.rank) if bad and self.info.enabled else ''}: "
                f"{shown}; batch samples (db file:first row): {where}{kept}")

    def train_step(self) -> dict[str, float]:
        cfg = self.cfg
        self.optimizer.zero_grad(set_to_none=True)
        terms: dict[str, float] = {}
        if cfg.stage == 1:
            batch = self.streams["images"].next()
            loss, terms = self._forward_loss(batch)
            self._check_finite(loss, terms, batch, "image")
            self.scaler.scale(loss).backward()
            samples = len(batch["id"])
        else:
            parts = [self.streams[k].next() for k in ("video_2d", "video_3d")
                     if k in self.streams]
            video = concat_batches(parts) if len(parts) > 1 else parts[0]
            images = self.streams["images"].next() if "images" in self.streams else None
            nt_vid = video["images"].shape[0] * video["images"].shape[1]
            nt_img = images["images"].shape[0] if images is not None else 0
            if cfg.hybrid == "accumulate" or images is None:
                sync_ctx = self.ddp.no_sync() if (self.info.enabled and images is not None) \
                    else nullcontext()
                with sync_ctx:
                    loss_v, tv = self._forward_loss(video)
                    self._check_finite(loss_v, tv, video, "video")
                    self.scaler.scale(loss_v).backward()
                if images is not None:
                    loss_i, ti = self._forward_loss(images)
                    self._check_finite(loss_i, ti, images, "image")
                    self.scaler.scale(loss_i).backward()
            else:  # the official code: one loss weighted by frame counts, one backward
                loss_v, tv = self._forward_loss(video)
                loss_i, ti = self._forward_loss(images)
                loss = (loss_v * nt_vid + loss_i * nt_img) / (nt_vid + nt_img)
                self._check_finite(loss, {**tv, **{f"img_{k}": v for k, v in ti.items()}},
                                   {"id": video["id"] + images["id"]}, "hybrid")
                self.scaler.scale(loss).backward()
            terms = {**tv}
            if images is not None:
                terms.update({f"img_{k}": v for k, v in ti.items()})
            samples = nt_vid + nt_img
        if cfg.optim.grad_clip:
            self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.optim.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        terms["frames"] = float(samples)
        return terms

    # -- the loop

    def fit(self) -> dict[str, Any]:
        cfg = self.cfg
        self.out_dir.mkdir(parents=True, exist_ok=True)
        if self.info.is_main:
            from ..atomic import atomic_path
            with atomic_path(self.out_dir / "config.yaml") as tmp:
                tmp.write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))
            try:
                from torch.utils.tensorboard import SummaryWriter
                self._tb = SummaryWriter(str(self.out_dir / "tensorboard"))
            except Exception:  # tensorboard is optional
                self._tb = None
        if self.resume_path is not None:
            self._trim_metrics()
        kill_at = int(os.environ.get(KILL_ENV, "0") or 0)
        progress = self._progress()
        last_val: dict[str, float] = {}
        stopped_early = False
        with progress:
            task = progress.add_task("train", total=cfg.optim.epochs * self.iters_per_epoch,
                                     completed=self.global_step, stats="")
            while self.epoch < cfg.optim.epochs:
                self.model.train()
                window_t, window_frames = time.perf_counter(), 0.0
                while self.step_in_epoch < self.iters_per_epoch:
                    if cfg.max_steps is not None and self.global_step >= cfg.max_steps:
                        stopped_early = True
                        break
                    terms = self.train_step()
                    self.step_in_epoch += 1
                    self.global_step += 1
                    window_frames += terms.pop("frames")
                    elapsed = time.perf_counter() - window_t
                    speed = window_frames * self.info.world_size / max(elapsed, 1e-9)
                    lr = self.optimizer.param_groups[0]["lr"]
                    progress.update(task, advance=1, stats=(
                        f"ep {self.epoch + 1}/{cfg.optim.epochs} loss {terms['loss']:.4g} "
                        f"2d {terms['kp_2d']:.3g} 3d {terms['kp_3d']:.3g} "
                        f"pose {terms['pose']:.3g} {speed:.1f} fr/s lr {lr:.1e}"))
                    if self.global_step % max(1, cfg.log_every) == 0 or \
                            self.step_in_epoch == self.iters_per_epoch:
                        row = D.mean_over_ranks(terms, self.info, self.device)
                        self._log_row({"kind": "train", "epoch": self.epoch + 1,
                                       "step": self.global_step, "lr": lr,
                                       "samples_per_s": speed, **row})
                        window_t, window_frames = time.perf_counter(), 0.0
                    if cfg.save_every_steps and self.global_step % cfg.save_every_steps == 0 \
                            and self.step_in_epoch < self.iters_per_epoch:
                        self.save("last.pt")
                    if kill_at and self.global_step == kill_at:
                        os.kill(os.getpid(), signal.SIGKILL)
                if stopped_early:
                    self.save("last.pt")  # max_steps: stop mid-epoch, resumable
                    break
                # end of epoch: lr schedule, validation, checkpoints
                self.scheduler.step()
                self.epoch += 1
                self.step_in_epoch = 0
                last_val = self._validate()
                improved = "pa_mpjpe" in last_val and last_val["pa_mpjpe"] < self.best
                if improved:
                    self.best = last_val["pa_mpjpe"]
                names = (("best.pt",) if improved or not self.has_validation else ()) + (
                    (f"epoch_{self.epoch:03d}.pt",) if cfg.keep_epoch_checkpoints else ())
                self.save("last.pt", names, last_val)
        if self._tb is not None:
            self._tb.close()
        D.barrier(self.info)
        return {"epochs": self.epoch, "global_step": self.global_step, "val": last_val,
                "best_pa_mpjpe": None if math.isinf(self.best) else self.best,
                "stopped_early": stopped_early, "out_dir": str(self.out_dir),
                "skipped": self.skipped, "init": self.init_report,
                "replaced": {k: s.replaced for k, s in self.streams.items()}}

    def _validate(self) -> dict[str, float]:
        cfg = self.cfg
        if not self.has_validation or self.epoch % max(1, cfg.val.every_epochs) != 0:
            return {}
        result: dict[str, float] = {}
        if self.info.is_main and self.validator is not None:
            result = self._run_validator()
            if result:
                self._log_row({"kind": "val", "epoch": self.epoch, "step": self.global_step,
                               **result})
                if self.console and not self.quiet:
                    self.console.print(f"epoch {self.epoch}: val MPJPE "
                                       f"{result.get('mpjpe', float('nan')):.1f} mm, PA-MPJPE "
                                       f"{result.get('pa_mpjpe', float('nan')):.1f} mm")
        return D.broadcast_object(result, self.info)

    def _run_validator(self) -> dict[str, float]:
        """The validator, with the parameters' `requires_grad` put back should it have changed
        them (a custom one calling `prepare_for_inference`, say): the next backward, and
        DDP's reducer, need exactly the flags the run started with. The training flags are
        set again by `model.train()` at the start of the next epoch."""
        wanted = [p.requires_grad for p in self.model.parameters()]
        grad_mode = torch.is_grad_enabled()
        try:
            return self.validator(self.model, self.body, self.epoch)
        finally:
            changed = 0
            for param, flag in zip(self.model.parameters(), wanted):
                if param.requires_grad != flag:
                    param.requires_grad_(flag)
                    changed += 1
            torch.set_grad_enabled(grad_mode)
            if changed and self.console and not self.quiet:
                self.console.print(f"[yellow]the validator changed requires_grad of {changed} "
                                   f"parameters; put back for training (a validator should "
                                   f"run the model through model.inference.inference_view)[/]")

    def _progress(self):
        from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                                   TimeElapsedColumn, TimeRemainingColumn)
        return Progress(TextColumn("[bold]train[/]"), BarColumn(), MofNCompleteColumn(),
                        TimeElapsedColumn(), TimeRemainingColumn(),
                        TextColumn("{task.fields[stats]}"), console=self.console,
                        disable=self.quiet, transient=False)

    def close(self) -> None:
        D.shutdown(self.info)
