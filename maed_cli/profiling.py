"""Parameters, multiply-accumulates and measured speed of MAED (and a VIBE-shaped network).

Counting convention (what `maed profile` prints and the README states):
- MACs are counted by tracing the real network with `torch.utils.flop_counter.FlopCounterMode`
  on the meta device (shapes only, no arithmetic), with attention forced through the math path
  so its two matmuls (Q K^T and A V) are seen as plain batched matmuls.
- Counted: convolutions, linear layers (GRU gates included), attention matmuls. Not counted:
  normalisation, activations, softmax, pooling, additions and other elementwise work.
- MACs = the counter's FLOPs / 2 (it counts 2 FLOPs per multiply-accumulate).
- The supplementary's "GFLOPs" (Table 3) are GMACs in this sense; fvcore additionally counts
  GroupNorm/LayerNorm at 5 per element (206.8 G instead of 205.7 G for 6 blocks, 16 frames).

A clip is `frames` consecutive sequence frames of which every `interp`-th one goes through the
network (`network_frames = ceil(frames / interp)`); the others are interpolated afterwards and
cost nothing here. Per-frame figures divide by `frames`, per-network-frame ones by
`network_frames`.
"""
from __future__ import annotations

import math
import resource
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from .errors import InputError
from .model.encoder import MAX_FRAMES, StMode
from .devices import autocast
from .model.maed import MAED
from .model.vibe import VIBELike

IMAGE_SIZE = 224
CONVENTION = ("MACs = multiply-accumulates of convolutions, linear layers (GRU included) and "
              "attention matmuls, counted by tracing the network with "
              "torch.utils.flop_counter (its FLOPs / 2); norms, activations, softmax and other "
              "elementwise work are not counted. The paper's 'GFLOPs' are GMACs in this sense.")

# The supplementary's Table 3 (GMACs per 16-frame sequence), for the side-by-side check.
PAPER_GMACS = {("maed", 6, 16, 1): 201.1, ("maed", 6, 16, 2): 100.4, ("maed", 1, 16, 1): 91.1,
               ("vibe", None, 16, 1): 67.6}


def network_frames(frames: int, interp: int) -> int:
    """How many of `frames` sequence frames go through the network at every `interp`-th."""
    if frames < 1:
        raise InputError(f"--frames must be at least 1, got {frames}")
    if interp < 1:
        raise InputError(f"--interp must be at least 1, got {interp}")
    return math.ceil(frames / interp)


@dataclass
class PartCount:
    """One part of a network: parameters and MACs for one clip."""

    name: str
    params: int
    macs: int


@dataclass
class NetworkCount:
    """Parameters and MACs of one network for one clip (batch of 1)."""

    name: str
    frames: int
    interp: int
    network_frames: int
    params: int
    macs_per_clip: int
    parts: list[PartCount]
    blocks: int | None = None
    st_mode: str | None = None

    @property
    def gmacs_per_clip(self) -> float:
        return self.macs_per_clip / 1e9

    @property
    def gmacs_per_frame(self) -> float:
        """Per sequence frame (interpolated frames included, they cost nothing)."""
        return self.gmacs_per_clip / self.frames

    @property
    def gmacs_per_network_frame(self) -> float:
        return self.gmacs_per_clip / self.network_frames

    @property
    def paper_gmacs(self) -> float | None:
        key = ("vibe", None, self.frames, self.interp) if self.blocks is None else (
            "maed", self.blocks, self.frames, self.interp)
        return PAPER_GMACS.get(key) if self.st_mode in (None, "parallel") else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "blocks": self.blocks,
            "st_mode": self.st_mode,
            "frames": self.frames,
            "interp": self.interp,
            "network_frames": self.network_frames,
            "params": self.params,
            "gmacs_per_clip": round(self.gmacs_per_clip, 4),
            "gmacs_per_frame": round(self.gmacs_per_frame, 4),
            "gmacs_per_network_frame": round(self.gmacs_per_network_frame, 4),
            "paper_gmacs_per_clip": self.paper_gmacs,
            "parts": {p.name: {"params": p.params,
                               "gmacs_per_clip": round(p.macs / 1e9, 4),
                               "gmacs_per_frame": round(p.macs / 1e9 / self.frames, 4)}
                      for p in self.parts},
        }


def _trace_macs(model: nn.Module, x: torch.Tensor, parts: dict[str, nn.Module]
                ) -> tuple[int, dict[str, int]]:
    """Total MACs of `model(x)` and the MACs spent inside each part (parts must not nest).

    Each part is bracketed by forward hooks reading the counter's running total, so a part
    called several times (a regressor iterating) accumulates, and a ModuleList part is
    covered through its children.
    """
    counter = FlopCounterMode(display=False)
    spent = {name: 0 for name in parts}
    handles = []

    def bracket(name: str, module: nn.Module) -> None:
        start: list[int] = []

        def pre(_module, _args):
            start.append(counter.get_total_flops())

        def post(_module, _args, _out):
            spent[name] += counter.get_total_flops() - start.pop()

        handles.append(module.register_forward_pre_hook(pre))
        handles.append(module.register_forward_hook(post))

    for name, part in parts.items():
        called = list(part.children()) if isinstance(part, (nn.ModuleList, nn.ModuleDict)) \
            else [part]
        for module in called:
            bracket(name, module)
    try:
        # The math backend decomposes attention into matmuls the counter always sees.
        with sdpa_kernel([SDPBackend.MATH]), counter, torch.no_grad():
            model(x)
    finally:
        for handle in handles:
            handle.remove()
    # FlopCounterMode counts 2 FLOPs per multiply-accumulate for every op it knows.
    return counter.get_total_flops() // 2, {k: v // 2 for k, v in spent.items()}


def _count(name: str, model: nn.Module, x: torch.Tensor, parts: dict[str, nn.Module],
           frames: int, interp: int, rest: str = "other", **extra: Any) -> NetworkCount:
    """Count `model(x)`; whatever lies outside `parts` is reported as one row named `rest`."""
    total_macs, part_macs = _trace_macs(model, x, parts)
    total_params = sum(p.numel() for p in model.parameters())
    rows = []
    for part_name, module in parts.items():
        rows.append(PartCount(part_name, sum(p.numel() for p in module.parameters()),
                              part_macs[part_name]))
    rows.append(PartCount(rest, total_params - sum(r.params for r in rows),
                          total_macs - sum(r.macs for r in rows)))
    return NetworkCount(name=name, frames=frames, interp=interp,
                        network_frames=x.shape[1], params=total_params,
                        macs_per_clip=total_macs, parts=rows, **extra)


def maed_parts(model: MAED) -> dict[str, nn.Module]:
    """The parts the report breaks MAED down into; the rest ('embed+head') is the cls/pos/temp
    embeddings, the final LayerNorm and pre_logits."""
    return {"backbone": model.encoder.patch_embed.backbone,
            "projection": model.encoder.patch_embed.proj,
            "blocks": model.encoder.blocks,
            "decoder": model.decoder}


def count_maed(blocks: int = 6, frames: int = 16, interp: int = 1,
               st_mode: StMode = "parallel", executed: bool = False) -> NetworkCount:
    """Parameters and MACs of MAED for one clip, traced on the meta device (about a second).

    The architecture's MACs (Table 3's convention), unless `executed`: then what this
    implementation runs, which skips the last block's dead tokens (STEncoder.full_last_block).
    """
    t = network_frames(frames, interp)
    if t > MAX_FRAMES and st_mode != "vanilla":
        raise InputError(
            f"{frames} frames at --interp {interp} put {t} frames through the network; MAED "
            f"takes at most {MAX_FRAMES} per clip (raise --interp or lower --frames)")
    with torch.device("meta"):
        model = MAED(num_blocks=blocks, st_mode=st_mode).eval()
        x = torch.empty(1, t, 3, IMAGE_SIZE, IMAGE_SIZE)
    model.encoder.full_last_block = not executed
    return _count(f"MAED-{blocks}", model, x, maed_parts(model), frames, interp,
                  rest="embed+head", blocks=blocks, st_mode=st_mode)


def vibe_parts(model: VIBELike) -> dict[str, nn.Module]:
    return {"backbone": model.backbone, "temporal": model.temporal,
            "regressor": model.regressor}


def count_vibe(frames: int = 16) -> NetworkCount:
    """The VIBE-shaped network on every one of `frames` frames (VIBE has no interpolation)."""
    network_frames(frames, 1)
    with torch.device("meta"):
        model = VIBELike().eval()
        x = torch.empty(1, frames, 3, IMAGE_SIZE, IMAGE_SIZE)
    return _count("VIBE", model, x, vibe_parts(model), frames, 1)


# --------------------------------------------------------------------------- speed


@dataclass
class SpeedResult:
    """Measured forward speed of one network for one batch size, device and dtype."""

    name: str
    device: str
    dtype: str
    batch_size: int
    frames: int
    network_frames: int
    latency_ms: float  # median wall time of one batched forward (what every clip in it waits)
    latency_ms_min: float
    frames_per_s: float  # sequence frames (interpolated ones included) per second
    network_frames_per_s: float
    peak_memory_mb: float | None
    memory_kind: str  # "cuda_max_allocated" or "process_peak_rss"
    gmacs_per_s: float | None = None
    timings_ms: list[float] = field(default_factory=list)

    @property
    def clips_per_s(self) -> float:
        return self.batch_size * 1000.0 / self.latency_ms

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["clips_per_s"] = self.clips_per_s
        return out


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_calls(fn: Callable[[], Any], device: torch.device, warmup: int, iters: int
               ) -> list[float]:
    """Milliseconds of each of `iters` calls after `warmup` untimed ones (CUDA events on GPU)."""
    for _ in range(warmup):
        fn()
    _sync(device)
    times = []
    for _ in range(iters):
        if device.type == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end))
        else:
            t0 = time.perf_counter()
            fn()
            times.append((time.perf_counter() - t0) * 1000.0)
    return times


def _peak_rss_mb() -> float:
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 2**20 if sys.platform == "darwin" else rss / 1024.0  # bytes there, KiB here


def measure_speed(model: nn.Module, name: str, *, batch_size: int, frames: int,
                  interp: int = 1, device: torch.device, dtype: torch.dtype = torch.float32,
                  warmup: int = 2, iters: int = 5, macs_per_clip: int | None = None
                  ) -> SpeedResult:
    """Time `model` on random (batch_size, network_frames, 3, 224, 224) clips.

    `model` is already prepared (device, layout, compile). Peak memory: on CUDA the allocator's
    peak during the timed calls; on CPU the process's peak resident set (a high-water mark
    for the whole process, so it includes everything loaded before).
    """
    t = network_frames(frames, interp)
    x = torch.randn(batch_size, t, 3, IMAGE_SIZE, IMAGE_SIZE, device=device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)

    def call() -> None:
        with torch.inference_mode(), autocast(device, dtype):
            model(x)

    times = time_calls(call, device, warmup, iters)
    if device.type == "cuda":
        peak, kind = torch.cuda.max_memory_allocated(device) / 2**20, "cuda_max_allocated"
    else:
        peak, kind = _peak_rss_mb(), "process_peak_rss"
    median = statistics.median(times)
    gmacs = (macs_per_clip * batch_size / 1e9 / (median / 1000.0)
             if macs_per_clip is not None else None)
    return SpeedResult(name=name, device=str(device), dtype=str(dtype).removeprefix("torch."),
                       batch_size=batch_size, frames=frames, network_frames=t,
                       latency_ms=median, latency_ms_min=min(times),
                       frames_per_s=batch_size * frames * 1000.0 / median,
                       network_frames_per_s=batch_size * t * 1000.0 / median,
                       peak_memory_mb=peak, memory_kind=kind, gmacs_per_s=gmacs,
                       timings_ms=[round(v, 3) for v in times])


def matmul_peak_flops(device: torch.device, dtype: torch.dtype = torch.float32,
                      sizes: tuple[int, ...] = (2048, 4096), reps: int = 5) -> float:
    """The best FLOP/s of square `torch.mm` over `sizes` (best of `reps` each): the
    achievable matrix-multiply limit of this device and dtype, measured, not from a sheet."""
    best = 0.0
    for n in sizes:
        a = torch.randn(n, n, device=device, dtype=dtype)
        b = torch.randn(n, n, device=device, dtype=dtype)
        times = time_calls(lambda: torch.mm(a, b), device, warmup=1, iters=reps)
        best = max(best, 2 * n ** 3 / (min(times) / 1000.0))
        del a, b
    return best
