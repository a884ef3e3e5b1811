"""Experiment (not used by maed yet): MAED's temporal attention as one Triton kernel that reads
q, k and v where the qkv projection wrote them and writes the output where the gate reads it.

Why: the temporal branch attends over T <= 16 frames at each of 197 token positions and 12
heads: 151,296 tiny (16 x 64) attentions per 64-clip batch. Today (`attend_short`) q, k and v
are first copied into (N, H*L, T, d) order, then two batched matmuls run on 16 x 16 tiles
(cuBLAS, in three launches each: 2 x 2.8 ms over the six blocks in the H200 profile of
benchmarks/results, compiled bf16) and the output is permuted back: about 1 ms per block. One program per (clip, token, head) here loads its 16 x 64 q, k and v straight
from the projection's (B, L, 3, H, d) output (128 contiguous bytes per frame), keeps the
16 x 16 scores in registers (fp32, softmax included) and stores 16 x 64 values into the
(B, L, H*d) output: q, k, v read once and the output written once, about 1.2 GB per block.

    python benchmarks/triton_temporal.py            # GPU: check, then time against PyTorch
    TRITON_INTERPRET=1 python benchmarks/triton_temporal.py --check-only --device cpu

`install()` routes `SpatioTemporalAttention._temporal` through the kernel for bf16/fp16 CUDA
tensors (fp32 stays on PyTorch's matmuls: `tl.dot` would round fp32 to TF32);
`benchmarks/gpu_variants.py --only triton-temporal` measures the whole network with it.
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
import triton  # noqa: E402
import triton.language as tl  # noqa: E402


@triton.jit
def _temporal_attention_kernel(q_ptr, k_ptr, v_ptr, o_ptr,
                               stride_frame, stride_head, stride_token,
                               out_stride_frame, out_stride_token,
                               seqlen, tokens, heads, scale,
                               BLOCK_T: tl.constexpr, HEAD_DIM: tl.constexpr):
    pid = tl.program_id(0)  # (clip * tokens + token) * heads + head: neighbours share rows
    head = pid % heads
    token = (pid // heads) % tokens
    clip = pid // (heads * tokens)

    t = tl.arange(0, BLOCK_T)
    j = tl.arange(0, HEAD_DIM)
    frames = (clip * seqlen + t).to(tl.int64)
    valid = t < seqlen
    offs = (frames[:, None] * stride_frame + head * stride_head + token * stride_token
            + j[None, :])
    q = tl.load(q_ptr + offs, mask=valid[:, None], other=0.0)
    k = tl.load(k_ptr + offs, mask=valid[:, None], other=0.0)
    v = tl.load(v_ptr + offs, mask=valid[:, None], other=0.0)

    scores = tl.dot(q, tl.trans(k)) * scale  # (BLOCK_T, BLOCK_T), fp32
    scores = tl.where(valid[None, :], scores, float("-inf"))
    weights = tl.exp(scores - tl.max(scores, axis=1)[:, None])
    weights = weights / tl.sum(weights, axis=1)[:, None]
    out = tl.dot(weights.to(v.dtype), v)  # (BLOCK_T, HEAD_DIM), fp32

    out_offs = (frames[:, None] * out_stride_frame + token * out_stride_token
                + head * HEAD_DIM + j[None, :])
    tl.store(o_ptr + out_offs, out.to(o_ptr.dtype.element_ty), mask=valid[:, None])


def temporal_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, seqlen: int,
                       scale: float, num_warps: int = 4) -> torch.Tensor:
    """Attention over the T frames of each clip at each token position and head.

    q, k, v: (B = N*T, H, L, d) views with unit stride along d and equal strides (the
    unbound permute of one qkv projection) -> (B, L, H*d), frames of a clip consecutive:
    what `SpatioTemporalAttention._temporal` returns."""
    batch, heads, tokens, head_dim = q.shape
    if not (q.stride() == k.stride() == v.stride()) or q.stride(-1) != 1:
        q, k, v = (t.contiguous() for t in (q, k, v))
    out = torch.empty(batch, tokens, heads * head_dim, dtype=q.dtype, device=q.device)
    grid = (batch // seqlen * tokens * heads,)
    _temporal_attention_kernel[grid](
        q, k, v, out, q.stride(0), q.stride(1), q.stride(2), out.stride(0), out.stride(1),
        seqlen, tokens, heads, scale,
        BLOCK_T=max(16, triton.next_power_of_2(seqlen)), HEAD_DIM=head_dim,
        num_warps=num_warps)
    return out


def install(cpu_too: bool = False) -> Callable[[], None]:
    """Route the temporal branch through `temporal_attention` for bf16/fp16 CUDA tensors (any
    CPU tensor too with `cpu_too`, for checking under TRITON_INTERPRET=1); returns the undo."""
    from maed_cli.model.encoder import SpatioTemporalAttention

    plain = SpatioTemporalAttention._temporal

    def temporal(self, q, k, v, seqlen):
        if q.is_cuda and q.dtype in (torch.bfloat16, torch.float16) or (cpu_too and not q.is_cuda):
            return temporal_attention(q, k, v, seqlen, self.scale)
        return plain(self, q, k, v, seqlen)

    SpatioTemporalAttention._temporal = temporal

    def uninstall() -> None:
        SpatioTemporalAttention._temporal = plain

    return uninstall


def _qkv(batch: int, tokens: int, heads: int, head_dim: int, device, dtype):
    """q, k, v as the model has them: the unbound permute of one (B, L, 3, H, d) tensor."""
    qkv = torch.randn(batch, tokens, 3, heads, head_dim, device=device).to(dtype)
    return qkv.permute(2, 0, 3, 1, 4).unbind(0)


def _plain(q, k, v, seqlen, scale):
    from maed_cli.model.encoder import SpatioTemporalAttention

    attn = SpatioTemporalAttention.__new__(SpatioTemporalAttention)
    attn.scale = scale
    return SpatioTemporalAttention._temporal(attn, q, k, v, seqlen)


def check(device: torch.device) -> None:
    torch.manual_seed(0)
    dtypes = (torch.float32,) if device.type == "cpu" else (torch.bfloat16, torch.float16)
    for dtype in dtypes:
        for seqlen in (16, 5, 1):
            q, k, v = _qkv(2 * seqlen, 7, 3, 64, device, dtype)
            expected = _plain(q.float(), k.float(), v.float(), seqlen, 0.125)
            out = temporal_attention(q, k, v, seqlen, 0.125)
            tol = 1e-5 if dtype is torch.float32 else 2e-2
            torch.testing.assert_close(out.float(), expected, atol=tol, rtol=tol)
    print("temporal_attention matches the temporal branch's matmuls")


def bench(clips: int, iters: int) -> None:
    """Milliseconds of one block's temporal branch (64 clips x 16 frames x 197 tokens x 12
    heads, bf16): PyTorch eager, Inductor, and the kernel with 1, 2, 4 and 8 warps."""
    from maed_cli.profiling import time_calls

    device = torch.device("cuda")
    seqlen, scale = 16, 64 ** -0.5
    q, k, v = _qkv(clips * seqlen, 197, 12, 64, device, torch.bfloat16)
    compiled = torch.compile(_plain)
    fns = {"PyTorch": lambda: _plain(q, k, v, seqlen, scale),
           "Inductor": lambda: compiled(q, k, v, seqlen, scale)}
    for warps in (1, 2, 4, 8):
        fns[f"Triton/{warps}w"] = (lambda warps=warps:
                                   temporal_attention(q, k, v, seqlen, scale, num_warps=warps))
    gbytes = 4 * q.numel() * 2 / 1e9  # q, k, v read once, the output written once
    for name, fn in fns.items():
        ms = statistics.median(time_calls(fn, device, 3, iters))
        print(f"{name:>12} {ms:8.3f} ms   {gbytes / (ms / 1e3):7,.0f} GB/s "
              f"(q, k, v read + output written once)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--clips", type=int, default=64)
    parser.add_argument("--iters", type=int, default=20)
    parser.add_argument("--check-only", action="store_true")
    args = parser.parse_args()
    check(torch.device(args.device))
    if not args.check_only:
        bench(args.clips, args.iters)
    return 0


if __name__ == "__main__":
    sys.exit(main())
