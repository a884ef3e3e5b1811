"""Experiment (not used by maed yet): GroupNorm (+ residual add, + ReLU) as one Triton kernel
that reads each group from memory once, for the ResNet trunk on GPUs.

Why: compiled bf16 MAED-6 on an H200 spends most of its non-GEMM time in the trunk's 52
GroupNorms, which Inductor runs as a reduction kernel (statistics) and a second kernel
(normalise, add the residual, ReLU), each reading the whole activation from HBM. Here one
program handles one (sample, group) span of 1,568-25,088 contiguous NCHW values and passes
over it three times (mean, variance about the mean, normalise); the second and third passes
find the span in L2, so HBM sees one read and one write.

    python benchmarks/triton_groupnorm.py            # GPU: check, then time against PyTorch
    TRITON_INTERPRET=1 python benchmarks/triton_groupnorm.py --check-only --device cpu

`install()` routes `GroupNormAct`, `DownsampleConv` and `Bottleneck` through the kernel
(CUDA tensors only); `benchmarks/gpu_variants.py --only triton-groupnorm` measures the whole
network with it.
"""
from __future__ import annotations

import argparse
import statistics
import sys
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
import triton  # noqa: E402
import triton.language as tl  # noqa: E402


@triton.jit
def _group_norm_kernel(x_ptr, res_ptr, w_ptr, b_ptr, y_ptr, group_size, hw,
                       channels_per_group, num_groups, eps,
                       BLOCK: tl.constexpr, HAS_RESIDUAL: tl.constexpr, RELU: tl.constexpr):
    pid = tl.program_id(0)  # sample * num_groups + group
    group = pid % num_groups
    base = pid.to(tl.int64) * group_size
    lanes = tl.arange(0, BLOCK)

    acc = tl.zeros([BLOCK], dtype=tl.float32)
    for start in range(0, group_size, BLOCK):
        offs = start + lanes
        acc += tl.load(x_ptr + base + offs, mask=offs < group_size, other=0.0).to(tl.float32)
    mean = tl.sum(acc, axis=0) / group_size

    acc = tl.zeros([BLOCK], dtype=tl.float32)
    for start in range(0, group_size, BLOCK):
        offs = start + lanes
        inside = offs < group_size
        x = tl.load(x_ptr + base + offs, mask=inside, other=0.0).to(tl.float32)
        d = tl.where(inside, x - mean, 0.0)
        acc += d * d
    rstd = 1.0 / tl.sqrt(tl.sum(acc, axis=0) / group_size + eps)

    for start in range(0, group_size, BLOCK):
        offs = start + lanes
        inside = offs < group_size
        x = tl.load(x_ptr + base + offs, mask=inside, other=0.0).to(tl.float32)
        channel = group * channels_per_group + offs // hw
        w = tl.load(w_ptr + channel, mask=inside, other=0.0).to(tl.float32)
        b = tl.load(b_ptr + channel, mask=inside, other=0.0).to(tl.float32)
        y = (x - mean) * rstd * w + b
        if HAS_RESIDUAL:
            y += tl.load(res_ptr + base + offs, mask=inside, other=0.0).to(tl.float32)
        if RELU:
            y = tl.maximum(y, 0.0)
        tl.store(y_ptr + base + offs, y.to(y_ptr.dtype.element_ty), mask=inside)


def group_norm_act(x: torch.Tensor, num_groups: int, weight: torch.Tensor, bias: torch.Tensor,
                   eps: float, residual: torch.Tensor | None = None, relu: bool = False,
                   out_dtype: torch.dtype | None = None, block: int = 2048,
                   num_warps: int = 8) -> torch.Tensor:
    """relu?(group_norm(x) + residual?) for contiguous NCHW x; (B, C, H, W) -> same shape."""
    batch, channels = x.shape[:2]
    x = x.contiguous()
    hw = x[0, 0].numel()
    group_size = channels // num_groups * hw
    y = torch.empty(x.shape, dtype=out_dtype or x.dtype, device=x.device)
    if residual is not None:
        residual = residual.contiguous()
    _group_norm_kernel[(batch * num_groups,)](
        x, residual if residual is not None else x, weight, bias, y, group_size, hw,
        channels // num_groups, num_groups, eps,
        BLOCK=min(block, triton.next_power_of_2(group_size)),
        HAS_RESIDUAL=residual is not None, RELU=relu, num_warps=num_warps)
    return y


def install(cpu_too: bool = False) -> Callable[[], None]:
    """Route the trunk's GroupNorms through `group_norm_act` for CUDA tensors (CPU ones too
    with `cpu_too`, for checking under TRITON_INTERPRET=1); returns the undo.

    Dtypes follow what autocast gives the plain network where it matters: GroupNorm is an
    fp32 op under autocast, so the residual stream (block outputs, projection shortcuts)
    stays fp32, while a normalisation that only feeds the next convolution is written in
    the input's dtype (the convolution would cast it to that anyway)."""
    from maed_cli.model import backbone

    def stream_dtype(x: torch.Tensor) -> torch.dtype:
        return torch.float32 if torch.is_autocast_enabled(x.device.type) else x.dtype

    plain_norm = backbone.GroupNormAct.forward

    def norm_forward(self, x):
        if not (x.is_cuda or cpu_too):
            return plain_norm(self, x)
        return group_norm_act(x, self.num_groups, self.weight, self.bias, self.eps,
                              relu=self.apply_act,
                              out_dtype=None if self.apply_act else stream_dtype(x))

    plain_block = backbone.Bottleneck.forward

    def block_forward(self, x):
        if not (x.is_cuda or cpu_too):
            return plain_block(self, x)
        shortcut = x if self.downsample is None else self.downsample(x)
        y = self.norm1(self.conv1(x))
        y = self.norm2(self.conv2(y))
        n3 = self.norm3
        return group_norm_act(self.conv3(y), n3.num_groups, n3.weight, n3.bias, n3.eps,
                              residual=shortcut, relu=True,
                              out_dtype=torch.promote_types(stream_dtype(x), shortcut.dtype))

    backbone.GroupNormAct.forward = norm_forward
    backbone.Bottleneck.forward = block_forward

    def uninstall() -> None:
        backbone.GroupNormAct.forward = plain_norm
        backbone.Bottleneck.forward = plain_block

    return uninstall


SHAPES = [  # (channels, height=width) of the trunk's GroupNorm inputs, per frame
    (64, 112), (64, 56), (256, 56), (128, 56), (128, 28), (512, 28), (256, 28), (256, 14),
    (1024, 14)]


def check(device: torch.device, frames: int) -> None:
    torch.manual_seed(0)
    for dtype in (torch.float32, torch.bfloat16):
        for channels, size in SHAPES[:3] if device.type == "cpu" else SHAPES:
            x = (torch.randn(frames, channels, size, size, device=device) * 3 + 1).to(dtype)
            r = torch.randn_like(x)
            w = torch.randn(channels, device=device)
            b = torch.randn(channels, device=device)
            ref = F.group_norm(x.float(), 32, w, b, 1e-5)
            for residual, relu in ((None, False), (None, True), (r, True)):
                expected = ref + residual.float() if residual is not None else ref
                expected = expected.relu() if relu else expected
                out = group_norm_act(x, 32, w, b, 1e-5, residual=residual, relu=relu,
                                     out_dtype=torch.float32)
                tol = 1e-4 if dtype is torch.float32 else 2e-2
                torch.testing.assert_close(out, expected, atol=tol, rtol=tol)
    print("group_norm_act matches F.group_norm (+ residual, + ReLU) in fp32 and bf16")


CONFIGS = [(1024, 4), (2048, 8), (4096, 8), (4096, 16), (8192, 16)]  # (BLOCK, num_warps)


def bench(frames: int, iters: int) -> None:
    """Milliseconds of relu(group_norm(x)) in bf16 on each trunk shape: PyTorch eager,
    Inductor (what `--compile` runs today), and the kernel with each (BLOCK, num_warps)."""
    from maed_cli.profiling import time_calls

    device = torch.device("cuda")
    compiled_ref = torch.compile(lambda x, w, b: F.relu(F.group_norm(x, 32, w, b, 1e-5)))
    print(f"{'shape':>16}{'PyTorch':>10}{'Inductor':>10}"
          + "".join(f"{f'{b}/{w}':>11}" for b, w in CONFIGS)
          + f"   (ms, bf16 + ReLU, {frames} frames; Triton BLOCK/num_warps)")
    for channels, size in SHAPES:
        x = torch.randn(frames, channels, size, size, device=device, dtype=torch.bfloat16)
        w = torch.randn(channels, device=device)
        b = torch.randn(channels, device=device)
        fns = [lambda: F.relu(F.group_norm(x, 32, w, b, 1e-5)), lambda: compiled_ref(x, w, b)]
        fns += [lambda block=block, warps=warps: group_norm_act(
                    x, 32, w, b, 1e-5, relu=True, block=block, num_warps=warps)
                for block, warps in CONFIGS]
        row = [statistics.median(time_calls(fn, device, 3, iters)) for fn in fns]
        gbytes = x.numel() * 2 * 2 / 1e9  # one read, one write
        print(f"{channels:>6} x {size:>3}x{size:<3}" + "".join(f"{t:>10.3f}" for t in row[:2])
              + "".join(f"{t:>11.3f}" for t in row[2:])
              + f"   best {gbytes / (min(row) / 1e3):,.0f} GB/s (1 read + 1 write)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--frames", type=int, default=1024)
    parser.add_argument("--iters", type=int, default=20)
    parser.add_argument("--check-only", action="store_true")
    args = parser.parse_args()
    device = torch.device(args.device)
    check(device, 2 if device.type == "cpu" else 16)
    if not args.check_only:
        bench(args.frames, args.iters)
    return 0


if __name__ == "__main__":
    sys.exit(main())
