"""Network time per photo person: MAED's image mode (one-frame clips, batched across photos)
against running each photo as a video (its one frame repeated into a 16-frame clip, what
`maed demo photo.jpg --min-track 1` did before photos were an input of their own).

    python benchmarks/photo_speed.py                    # CPU, 2 threads, 32 crops, MAED-6
    python benchmarks/photo_speed.py --crops 64 --device cuda --dtype bf16

Random weights and random crops: the arithmetic is the real network's. Both paths go through
`prepare_for_inference` and `forward_mixed`, as `maed demo` does; MACs are counted as `maed
profile` counts them. The load average is printed: other processes slow both sides alike.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--crops", type=int, default=32, help="people (crops) to run")
    parser.add_argument("--batch", type=int, default=32, help="one-frame clips per forward")
    parser.add_argument("--video-crops", type=int, default=2,
                        help="how many of them to time the 16-frame way (slow)")
    parser.add_argument("--blocks", type=int, default=6)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="fp32")
    args = parser.parse_args()

    import torch

    from maed_cli.devices import resolve_device, resolve_dtype
    from maed_cli.model import MAED
    from maed_cli.model.inference import forward_mixed, prepare_for_inference
    from maed_cli.profiling import count_maed

    torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    dtype = resolve_dtype(args.dtype, device)
    model = prepare_for_inference(MAED(num_blocks=args.blocks), device)
    crops = torch.randn(args.crops, 1, 3, 224, 224)

    def timed(fn) -> float:
        fn()  # warm-up
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return time.perf_counter() - start

    def image_mode() -> None:
        for i in range(0, args.crops, args.batch):
            forward_mixed(model, crops[i:i + args.batch].to(device), device, dtype)

    def as_video() -> None:
        for i in range(args.video_crops):
            clip = crops[i:i + 1].expand(1, 16, 3, 224, 224).contiguous()
            forward_mixed(model, clip.to(device), device, dtype)

    image_s = timed(image_mode) / args.crops
    video_s = timed(as_video) / args.video_crops
    image_g = count_maed(args.blocks, frames=1).gmacs_per_clip
    video_g = count_maed(args.blocks, frames=16).gmacs_per_clip
    print(f"MAED-{args.blocks} on {device} ({str(dtype).removeprefix('torch.')}, "
          f"{args.threads} threads), load average {os.getloadavg()[0]:.2f}")
    print(f"image mode (T = 1, {args.batch} per forward): {1e3 * image_s:8.1f} ms per person"
          f"   {image_g:6.2f} GMAC")
    print(f"as a 16-frame clip                    : {1e3 * video_s:8.1f} ms per person"
          f"   {video_g:6.2f} GMAC")
    print(f"speed-up {video_s / image_s:.1f}x (MACs {video_g / image_g:.1f}x)")


if __name__ == "__main__":
    main()
