"""Where a MAED forward spends its GPU time: frames/s, time per part and the top kernels.

    python benchmarks/gpu_profile.py                          # bf16 eager, batch 64 x 16 frames
    python benchmarks/gpu_profile.py --compile --top 30
    python benchmarks/gpu_profile.py --no-channels-last --cudnn-benchmark --temporal fused

Random weights and input (the arithmetic is the real network's). Eager runs also print the
time of each part (stem, ResNet stages, projection, transformer blocks, decoder) from CUDA
events placed by forward hooks. `--temporal fused` computes the temporal attention (16-frame
sequences) with the fused kernel instead of the model's batched matmuls, for comparison.
Runs on CPU too (for checking the script; no kernel table there).
"""
from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
from torch.profiler import ProfilerActivity, profile  # noqa: E402

from maed_cli.devices import autocast  # noqa: E402
from maed_cli.model import MAED  # noqa: E402
from maed_cli.model import encoder as encoder_module  # noqa: E402
from maed_cli.model.inference import prepare_for_inference  # noqa: E402
from maed_cli.profiling import time_calls  # noqa: E402

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def use_fused_temporal() -> None:
    """Route the temporal branch through the fused attention kernel (the spatial one's)
    instead of the model's batched matmuls, to compare the two."""
    encoder_module.attend_short = encoder_module.attend


def part_timer(model: MAED, device: torch.device) -> dict[str, list]:
    """CUDA events around each part of the network; returns {part: [(start, end), ...]}."""
    parts = {"stem": model.encoder.patch_embed.backbone.stem,
             **{f"stage{i + 1}": s for i, s in
                enumerate(model.encoder.patch_embed.backbone.stages)},
             "proj": model.encoder.patch_embed.proj,
             **{f"block{i + 1}": b for i, b in enumerate(model.encoder.blocks)},
             "decoder": model.decoder}
    events: dict[str, list] = {name: [] for name in parts}
    for name, module in parts.items():
        def pre(_m, _a, name=name):
            e = torch.cuda.Event(enable_timing=True)
            e.record()
            events[name].append([e, None])

        def post(_m, _a, _o, name=name):
            e = torch.cuda.Event(enable_timing=True)
            e.record()
            events[name][-1][1] = e

        module.register_forward_pre_hook(pre)
        module.register_forward_hook(post)
    return events


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--batch", type=int, default=64, help="clips per forward")
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--blocks", type=int, default=6)
    parser.add_argument("--dtype", choices=sorted(DTYPES), default="bf16")
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--compile-mode", default=None)
    parser.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=None,
                        help="default: prepare_for_inference's (on CPU, off on CUDA)")
    parser.add_argument("--cudnn-benchmark", action="store_true")
    parser.add_argument("--temporal", choices=("matmul", "fused"), default="matmul",
                        help="temporal attention as the model computes it (batched matmuls) "
                             "or through the fused kernel")
    parser.add_argument("--no-cudnn-sdpa", action="store_true",
                        help="keep PyTorch from choosing cuDNN's fused attention")
    parser.add_argument("--iters", type=int, default=10)
    parser.add_argument("--top", type=int, default=20, help="kernels to list (0: none)")
    args = parser.parse_args(argv)

    device = torch.device(args.device)
    torch.backends.cudnn.benchmark = args.cudnn_benchmark
    if args.temporal == "fused":
        use_fused_temporal()
    if args.no_cudnn_sdpa:
        torch.backends.cuda.enable_cudnn_sdp(False)
    dtype = DTYPES[args.dtype]
    torch.manual_seed(0)
    net = MAED(num_blocks=args.blocks)
    events = part_timer(net, device) if device.type == "cuda" and not args.compile else None
    model = prepare_for_inference(net, device, channels_last=args.channels_last,
                                  compile=args.compile, compile_mode=args.compile_mode)
    x = torch.randn(args.batch, args.frames, 3, 224, 224, device=device)

    def call():
        with torch.inference_mode(), autocast(device, dtype):
            model(x)

    times = time_calls(call, device, warmup=3, iters=args.iters)
    median = statistics.median(times)
    label = (f"{args.dtype} {'compiled' + (f' ({args.compile_mode})' if args.compile_mode else '') if args.compile else 'eager'}"
             f" {'default layout' if args.channels_last is None else 'channels-last' if args.channels_last else 'NCHW'}"
             f" cudnn.benchmark={args.cudnn_benchmark} temporal={args.temporal}"
             f"{' no-cudnn-sdpa' if args.no_cudnn_sdpa else ''}")
    print(f"== {label}: batch {args.batch} x {args.frames} frames: {median:.1f} ms/forward, "
          f"{args.batch * args.frames * 1000 / median:,.0f} frames/s", flush=True)
    if events is not None:
        torch.cuda.synchronize()
        timed = args.iters
        per_part = {name: statistics.median(s.elapsed_time(e) for s, e in pairs[-timed:])
                    for name, pairs in events.items()}
        print("   ms per part: " + ", ".join(f"{k} {v:.1f}" for k, v in per_part.items()))
    if args.top and device.type == "cuda":
        with profile(activities=[ProfilerActivity.CUDA]) as prof:
            call()
            torch.cuda.synchronize()
        rows = [e for e in prof.key_averages() if e.self_device_time_total > 0]
        rows.sort(key=lambda e: e.self_device_time_total, reverse=True)
        total = sum(e.self_device_time_total for e in rows) / 1000.0
        print(f"   kernels of one forward: {total:.1f} ms in all")
        for e in rows[:args.top]:
            ms = e.self_device_time_total / 1000.0
            print(f"   {ms:8.2f} ms {100 * ms / total:5.1f}% x{e.count:<5} {e.key[:110]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
