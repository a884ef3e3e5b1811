"""The fast inference path, shared by demo, eval and profile.

`prepare_for_inference` turns a loaded network into its inference form (eval, no grads, weight
standardisation computed once, channels-last convolutions on CPU, optional `torch.compile`),
in place: for a network that only runs from then on. `inference_view` runs a network that is
being trained (validation) in eval mode without autograd and leaves it exactly as it was.
`autocast` gives the reduced-precision context for a device; `forward_batched` runs many clips
(e.g. one per track) through the network `batch_size` at a time.

All of it keeps the network's math: fp32 on either layout gives the reference outputs to
float rounding (tests/test_profile.py checks this against the plain model).
"""
from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import sys
import warnings
from collections.abc import Callable, Iterator
from typing import Literal

import torch
from torch import nn

from ..devices import autocast, resolve_device
from ..errors import InputError
from .backbone import Stem, StdConv2dSame

DType = Literal["fp32", "bf16", "fp16"]


_ALLOCATOR_TUNED = False


def tune_cpu_allocator() -> bool:
    """Keep freed memory in the process for reuse (glibc only); True when it took effect.

    Every forward allocates the same large activations again. By default glibc serves blocks
    above 128 KiB-32 MiB with fresh `mmap`s and returns them on free, so each forward pays a
    page fault per 4 KiB of activations (about 5 % of MAED's CPU time on a VM). Raising the
    mmap and trim thresholds lets freed blocks be reused instead — the usual advice of
    jemalloc/tcmalloc for PyTorch on CPU, without another library. The process then keeps
    its peak memory until it exits, which suits a command that runs the network to the end.
    """
    global _ALLOCATOR_TUNED
    if _ALLOCATOR_TUNED:
        return True
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (musl has no mallopt)
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    m_trim_threshold, m_mmap_threshold = -1, -3
    ok = mallopt(m_mmap_threshold, 1 << 30) == 1 and mallopt(m_trim_threshold, 2**31 - 1) == 1
    _ALLOCATOR_TUNED = ok
    return ok


def freeze_weight_standardization(model: nn.Module) -> int:
    """Compute every StdConv's standardised weight once; returns how many convs were frozen."""
    frozen = 0
    for module in model.modules():
        if isinstance(module, StdConv2dSame):
            module.freeze_standardization()
            frozen += 1
    return frozen


def default_channels_last(model: nn.Module, device: torch.device) -> bool:
    """Channels-last convolutions on CPU (oneDNN runs them fastest) and, on CUDA, for networks
    without GroupNorm: PyTorch's CUDA GroupNorm copies channels-last activations to NCHW and
    back, which made MAED-6 1.4x slower in eager bf16 on an H200 (compiled the same), while
    a BatchNorm ResNet (the VIBE-shaped network) runs its bf16 convolutions fastest so."""
    if device.type == "cpu":
        return True
    return not any(isinstance(m, nn.GroupNorm) for m in model.modules())


def prepare_for_inference(model: nn.Module, device: str | torch.device = "cpu",
                          channels_last: bool | None = None, compile: bool = False,
                          compile_mode: str | None = None,
                          tune_allocator: bool = True,
                          stem_space_to_depth: bool | None = None) -> nn.Module:
    """Put a loaded network in its fast inference form and return the module to call.

    - eval mode and `requires_grad_(False)` (no autograd bookkeeping);
    - moved to `device`; convolution weights and activations channels-last when asked, by
      default as `default_channels_last` says (CPU; CUDA without GroupNorm);
    - the ResNet stem's 7x7/2 convolution over RGB as a space-to-depth convolution
      (`backbone.conv_stride2_as_space_to_depth`; the same sums), by default on CUDA only:
      its 3 input channels leave GPU kernels far below their rate (an H200 ran 64 compiled
      bf16 clips 6 % faster), while on CPU the rearranged kernel's 31 % more MACs cost time
      (the stem of 16 frames took 55-67 ms against 47 on the project's 2-core VM);
    - weight standardisation computed once here instead of at every forward (call this after
      loading the weights);
    - `torch.compile(model, mode=compile_mode)` when `compile` is set; on CPU it enables
      Inductor's weight freezing. The first call then compiles (tens of seconds to minutes)
      and each new input shape compiles again;
    - on CPU with `tune_allocator`, `tune_cpu_allocator()` (freed activations are reused
      rather than page-faulted in again at every forward; process-wide).

    Weights stay fp32: use `autocast(device, dtype)` around the forward for bf16/fp16.
    """
    device = resolve_device(device)
    if device.type == "cpu" and tune_allocator:
        tune_cpu_allocator()
    model = model.eval().requires_grad_(False).to(device)
    if channels_last is None:
        channels_last = default_channels_last(model, device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    freeze_weight_standardization(model)
    if stem_space_to_depth is None:
        stem_space_to_depth = device.type == "cuda"
    for module in model.modules():
        if isinstance(module, Stem):
            module.conv.space_to_depth = stem_space_to_depth
    if compile:
        if device.type == "cpu":
            import torch._inductor.config as inductor_config

            inductor_config.freezing = True  # constant-fold weights, prepack oneDNN kernels
        model = torch.compile(model, mode=compile_mode)
    return model


def unwrap(model: nn.Module) -> nn.Module:
    """The network inside a DistributedDataParallel/DataParallel wrapper (else `model`)."""
    while isinstance(model, (nn.parallel.DistributedDataParallel, nn.DataParallel)):
        model = model.module
    return model


@contextlib.contextmanager
def inference_view(model: nn.Module) -> Iterator[nn.Module]:
    """`with inference_view(model) as net:` -- `net` runs as at inference (eval mode, no
    autograd) and `model` is afterwards exactly as before: every module's training flag, every
    parameter's `requires_grad`, its memory layout and the grad mode are left alone or put
    back, and no inference-only state (frozen or cached weight standardisation) outlives the
    block. For validation during training, where `prepare_for_inference`'s in-place changes
    would stop the next backward (no parameter would require grad any more).

    A DDP-wrapped model is run through its `.module` (parameters never change their
    `requires_grad` under DDP, whose reducer registered them when it was built).
    """
    net = unwrap(model)
    flags = [(module, module.training) for module in net.modules()]
    convs = [m for m in net.modules() if isinstance(m, StdConv2dSame)]
    frozen_before = {id(m) for m in convs if m.frozen_weight is not None}
    net.eval()
    try:
        with torch.no_grad():
            yield net
    finally:
        for module, training in flags:
            module.training = training  # not .train(): it recurses and drops frozen weights
        for conv in convs:
            conv.clear_standardization_cache()
            if id(conv) not in frozen_before:
                conv.unfreeze_standardization()


_FELL_BACK = False


def forward_mixed(model: nn.Module, x: torch.Tensor, device: torch.device,
                  dtype: torch.dtype, pad_to: int | None = None,
                  on_rerun: Callable[[], None] | None = None) -> dict[str, torch.Tensor]:
    """`model(x)` under `autocast(device, dtype)` without gradients.

    fp16 reaches only +-65504: a batch whose fp16 outputs are not all finite (an activation
    overflowed) runs again in fp32, with one warning per process, instead of returning NaNs.
    `pad_to`: a smaller batch is padded (repeating its last clip) to this many clips and the
    padding dropped from the outputs, so a compiled network sees one input shape and
    compiles once instead of again for the last, partial batch. `on_rerun` is called for
    every batch that had to run again in fp32 (e.g. to report how many did).
    """
    n = x.shape[0]
    if pad_to is not None and n < pad_to:
        x = torch.cat([x, x[-1:].expand(pad_to - n, *x.shape[1:])])
    out = _forward_checked(model, x, device, dtype, on_rerun)
    return {k: v[:n] for k, v in out.items()} if x.shape[0] != n else out


def _forward_checked(model: nn.Module, x: torch.Tensor, device: torch.device,
                     dtype: torch.dtype, on_rerun: Callable[[], None] | None
                     ) -> dict[str, torch.Tensor]:
    global _FELL_BACK
    with torch.inference_mode(), autocast(device, dtype):
        out = model(x)
    if dtype is torch.float16 and not all(bool(torch.isfinite(v).all()) for v in out.values()):
        if not _FELL_BACK:
            warnings.warn("fp16 overflowed in a batch of clips; such batches run again in "
                          "fp32 (use --dtype bf16 or fp32 to avoid the rerun)", stacklevel=2)
            _FELL_BACK = True
        if on_rerun is not None:
            on_rerun()
        with torch.inference_mode():
            out = model(x)
    return out


def iter_batches(clips: torch.Tensor, batch_size: int) -> Iterator[torch.Tensor]:
    """(N, T, ...) -> successive (<=batch_size, T, ...) views along N."""
    if batch_size < 1:
        raise InputError(f"batch size must be at least 1, got {batch_size}")
    for start in range(0, clips.shape[0], batch_size):
        yield clips[start:start + batch_size]


@torch.no_grad()
def forward_batched(model: nn.Module, clips: torch.Tensor, batch_size: int = 8,
                    dtype: torch.dtype = torch.float32,
                    device: str | torch.device | None = None) -> dict[str, torch.Tensor]:
    """Run N clips (e.g. the clips of all tracks of a window) `batch_size` at a time.

    clips (N, T, 3, 224, 224) on any device -> dict of (N, T, ...) fp32 tensors on the CPU.
    Batching across tracks fills the GPU (or the CPU's GEMMs) better than one clip at a time.
    """
    if device is None:
        device = next(model.parameters()).device
    device = resolve_device(device)
    outputs: dict[str, list[torch.Tensor]] = {}
    for batch in iter_batches(clips, batch_size):
        out = forward_mixed(model, batch.to(device, non_blocking=True), device, dtype)
        for key, value in out.items():
            outputs.setdefault(key, []).append(value.float().cpu())
    return {key: torch.cat(values) for key, values in outputs.items()}
