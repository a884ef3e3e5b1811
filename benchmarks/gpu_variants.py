"""Which compiled-inference variant of MAED-6 runs fastest on this GPU, and how far each
strays from fp32: one compile per variant, variants cumulative.

    python benchmarks/gpu_variants.py --json-out variants.json
    python benchmarks/gpu_variants.py --device cpu --batch 1 --frames 2 --iters 1   # dry run

Variants (each adds to the one before): the stem's 7x7/2 convolution as cuDNN runs it (3
input channels); the same as a 2x2 space-to-depth convolution (`prepare_for_inference`'s
`stem_space_to_depth`, now the CUDA default); Inductor's coordinate-descent tuning of its
generated kernels; then the last one in fp16. Weights are the parity fixture's deterministic
fill; the input is random; agreement is against the same network in fp32 eager (TF32 off) on
the same input.

Tried on an H200 and dropped (benchmarks/results/h200_gpu_variants_2026-11-28.json): the
temporal attention written as broadcast-multiply-and-sum expressions for Inductor to fuse
(no copies of q/k/v) ran at 7,482 frames/s against 9,347 with the batched matmuls, and
coordinate-descent tuning gained nothing over that (9,368) for a 196 s compile.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

import torch  # noqa: E402

from maed_cli.body.geometry import rotmat_to_axis_angle  # noqa: E402
from maed_cli.devices import autocast  # noqa: E402
from maed_cli.model import MAED  # noqa: E402
from maed_cli.model.inference import prepare_for_inference  # noqa: E402
from maed_cli.profiling import time_calls  # noqa: E402

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def set_variant(model: torch.nn.Module, space_to_depth: bool, coordinate_descent: bool
                ) -> None:
    import torch._inductor.config as inductor_config

    model.encoder.patch_embed.backbone.stem.space_to_depth = space_to_depth
    inductor_config.coordinate_descent_tuning = coordinate_descent
    torch._dynamo.reset()


def rotation_error_deg(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    relative = a.transpose(-1, -2) @ b
    return torch.rad2deg(rotmat_to_axis_angle(relative.reshape(-1, 3, 3)).norm(dim=-1))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--iters", type=int, default=10)
    parser.add_argument("--only", type=int, nargs="*", default=None,
                        help="indices of the variants to run (default: all)")
    parser.add_argument("--json-out", type=Path, default=None)
    args = parser.parse_args()
    device = torch.device(args.device)
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False

    from parity_fill import filled_state_dict

    torch.manual_seed(0)
    net = MAED(num_blocks=6)
    net.load_state_dict(filled_state_dict(net.state_dict()))
    model = prepare_for_inference(net, device)
    x = torch.randn(args.batch, args.frames, 3, 224, 224, device=device)
    with torch.inference_mode():
        reference = model(x)["rotmat"].float()

    variants = [("stem conv as is", "bf16", False, False),
                ("+ stem space-to-depth", "bf16", True, False),
                ("+ coordinate descent", "bf16", True, True),
                ("same, fp16", "fp16", True, True)]
    rows = []
    for index, (label, dtype_name, s2d, coord) in enumerate(variants):
        if args.only is not None and index not in args.only:
            continue
        set_variant(model, s2d, coord)
        compiled = torch.compile(model)
        dtype = DTYPES[dtype_name]

        def call():
            with torch.inference_mode(), autocast(device, dtype):
                return compiled(x)

        t0 = time.perf_counter()
        out = call()
        compile_s = time.perf_counter() - t0
        degrees = rotation_error_deg(out["rotmat"].float(), reference)
        times = time_calls(call, device, 2, args.iters)
        ms = statistics.median(times)
        row = {"variant": label, "dtype": dtype_name, "space_to_depth": s2d,
               "coordinate_descent": coord,
               "ms_per_forward": ms, "ms_min": min(times),
               "frames_per_s": args.batch * args.frames * 1000.0 / ms,
               "compile_s": compile_s,
               "rotation_error_deg_mean": float(degrees.mean()),
               "rotation_error_deg_max": float(degrees.max())}
        rows.append(row)
        print(f"{label:<24}{dtype_name:>6}{ms:>9.1f} ms{row['frames_per_s']:>10,.0f} frames/s"
              f"  compile {compile_s:5.0f} s  rot. err mean {row['rotation_error_deg_mean']:.2f}"
              f" max {row['rotation_error_deg_max']:.2f} deg", flush=True)
        if args.json_out is not None:
            args.json_out.write_text(json.dumps({"device": str(device), "batch": args.batch,
                                                 "frames": args.frames, "rows": rows},
                                                indent=2))
        del compiled
    return 0


if __name__ == "__main__":
    sys.exit(main())
