"""Which compiled-inference variant of MAED-6 runs fastest on this GPU, and how far each
strays from fp32: one compile per variant, each variant the default plus one change.

    python benchmarks/gpu_variants.py --json-out variants.json          # all, in this order
    python benchmarks/gpu_variants.py --only default gemm-autotune
    python benchmarks/gpu_variants.py --only default triton-temporal gelu-epilogue kernels
    python benchmarks/gpu_variants.py --device cpu --batch 1 --frames 2 --iters 1   # dry run

Variants: `default` (what `demo --compile` runs: bf16 autocast, NCHW, the stem's 7x7/2
convolution over 2x2 space-to-depth blocks); `gemm-autotune` (Inductor's GEMM autotuning
with Triton templates, so bias, GELU and residual adds can fuse into the matmuls' epilogues);
`triton-groupnorm` (the trunk's GroupNorms, residual adds and ReLUs as one Triton kernel
that reads each group once: benchmarks/triton_groupnorm.py); `multi-kernel` (Inductor
considers 16x longer persistent reductions and picks by timing: most of the trunk's
GroupNorm groups, 1,568-12,544 values, then fit one kernel that reads
its input once for statistics and normalisation, instead of a reduction and a second pass);
`triton-temporal` (the temporal attention as one Triton kernel that reads q, k, v where the
qkv projection wrote them: benchmarks/triton_temporal.py); `gelu-epilogue` (fc1's bias and
GELU in the epilogue of its cuBLASLt GEMM, `torch._addmm_activation`, which Inductor keeps as
one call: no separate pass over the 3,072-wide hidden activations; cuBLASLt's GELU is the
tanh approximation, within 5e-4 of the exact one, a sixteenth of bf16's rounding step at the
values where they differ most); `kernels` (the last three together);
`cudagraphs` (`mode="reduce-overhead"`); `stem-conv` (the stem's convolution as cuDNN runs
it, over 3 channels); `coordinate-descent` (Inductor's tuning of its generated kernels);
`fp16`. Weights are the parity fixture's deterministic fill; the input is random; agreement
is against the same network in fp32 eager (TF32 off) on the same input.

Measured on an H200 (benchmarks/results/h200_gpu_variants_2026-11-28.json, then cumulative):
stem-conv 8,854 frames/s, default 9,347, coordinate-descent 9,368 after a 196 s compile,
fp16 9,302; and, dropped since, the temporal attention as broadcast-multiply-and-sum
expressions for Inductor to fuse (no q/k/v copies): 7,482.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "benchmarks"))

import torch  # noqa: E402
import torch._inductor.config as inductor_config  # noqa: E402

from maed_cli.devices import autocast  # noqa: E402
from maed_cli.model import MAED  # noqa: E402
from maed_cli.model.inference import prepare_for_inference  # noqa: E402
from maed_cli.profiling import time_calls  # noqa: E402
from model_speed import rotation_error_deg  # noqa: E402

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


VARIANTS: dict[str, dict] = {
    "default": {},
    "gemm-autotune": {"inductor": {"max_autotune_gemm": True}},
    "triton-groupnorm": {"patches": ["triton-groupnorm"]},
    "triton-temporal": {"patches": ["triton-temporal"]},
    "gelu-epilogue": {"patches": ["gelu-epilogue"]},
    "kernels": {"patches": ["triton-groupnorm", "triton-temporal", "gelu-epilogue"]},
    "multi-kernel": {"inductor": {"triton.multi_kernel": 1}},
    "cudagraphs": {"mode": "reduce-overhead"},
    "stem-conv": {"space_to_depth": False},
    "coordinate-descent": {"inductor": {"coordinate_descent_tuning": True}},
    "fp16": {"dtype": "fp16"},
}


def mlp_with_gelu_epilogue(mlp, x: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """`Mlp.forward` in `dtype` with fc1's bias and GELU fused into its GEMM (CUDA: cuBLASLt's
    GELU_BIAS epilogue, tanh GELU; CPU: addmm then exact GELU); (..., C) -> (..., C)."""
    fc1 = mlp.fc1
    hidden = torch._addmm_activation(fc1.bias.to(dtype), x.reshape(-1, x.shape[-1]).to(dtype),
                                     fc1.weight.to(dtype).t(), use_gelu=True)
    return mlp.fc2(hidden.reshape(*x.shape[:-1], hidden.shape[-1]))


def install_gelu_epilogue() -> Callable[[], None]:
    """Route `Mlp.forward` through `mlp_with_gelu_epilogue` on CUDA under autocast; returns
    the undo."""
    from maed_cli.model.encoder import Mlp

    plain = Mlp.forward

    def forward(self, x):
        if not (x.is_cuda and torch.is_autocast_enabled("cuda")):
            return plain(self, x)
        return mlp_with_gelu_epilogue(self, x, torch.get_autocast_dtype("cuda"))

    Mlp.forward = forward

    def uninstall() -> None:
        Mlp.forward = plain

    return uninstall


def _install(patch: str) -> Callable[[], None]:
    if patch == "triton-groupnorm":
        from triton_groupnorm import install
    elif patch == "triton-temporal":
        from triton_temporal import install
    else:
        install = install_gelu_epilogue
    return install()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--iters", type=int, default=10)
    parser.add_argument("--only", nargs="+", choices=list(VARIANTS), default=list(VARIANTS),
                        help="variants to run, in this order (default: all)")
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

    stem_conv = model.encoder.patch_embed.backbone.stem.conv
    default_space_to_depth = stem_conv.space_to_depth
    rows = []

    def save() -> None:
        if args.json_out is not None:
            args.json_out.write_text(json.dumps({"device": str(device), "batch": args.batch,
                                                 "frames": args.frames, "rows": rows},
                                                indent=2))

    for label in args.only:
        variant = VARIANTS[label]
        dtype_name = variant.get("dtype", "bf16")
        dtype = DTYPES[dtype_name]
        stem_conv.space_to_depth = variant.get("space_to_depth", default_space_to_depth)
        torch._dynamo.reset()
        undos: list[Callable[[], None]] = []
        compiled = torch.compile(model, mode=variant.get("mode"))

        def call():
            with torch.inference_mode(), autocast(device, dtype):
                return compiled(x)

        try:
            for patch in variant.get("patches", []):
                undos.append(_install(patch))
            t0 = time.perf_counter()
            with inductor_config.patch(variant.get("inductor", {})):  # read when compiling
                out = call()
            compile_s = time.perf_counter() - t0
            times = time_calls(call, device, 2, args.iters)
        except Exception as exc:  # one broken variant must not cost the others
            print(f"{label:<20} failed: {type(exc).__name__}: {str(exc)[:300]}", flush=True)
            rows.append({"variant": label, "settings": variant, "error": repr(exc)[:2000]})
            save()
            continue
        finally:
            for undo in undos:
                undo()
        degrees = rotation_error_deg(out["rotmat"].float(), reference)
        ms = statistics.median(times)
        row = {"variant": label, "settings": variant, "dtype": dtype_name,
               "space_to_depth": stem_conv.space_to_depth,
               "ms_per_forward": ms, "ms_min": min(times),
               "frames_per_s": args.batch * args.frames * 1000.0 / ms,
               "compile_s": compile_s,
               "rotation_error_deg_mean": float(degrees.mean()),
               "rotation_error_deg_max": float(degrees.max())}
        rows.append(row)
        print(f"{label:<20}{dtype_name:>6}{ms:>9.1f} ms{row['frames_per_s']:>10,.0f} frames/s"
              f"  compile {compile_s:5.0f} s  rot. err mean {row['rotation_error_deg_mean']:.2f}"
              f" max {row['rotation_error_deg_max']:.2f} deg", flush=True)
        save()
        del compiled
    return 0


if __name__ == "__main__":
    sys.exit(main())
