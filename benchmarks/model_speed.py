"""Forward speed of MAED-6 on 16-frame clips against the machine's measured matmul limit, and
against a VIBE-shaped network, in one run.

    python benchmarks/model_speed.py                   # CPU, fp32, 2 threads (+ GPU if present)
    python benchmarks/model_speed.py --threads 2 --iters 5 --json
    python benchmarks/model_speed.py --no-cpu --gpu-batch 8    # GPU part only

CPU part: one 16-frame clip per forward (batch 1), fp32, the inference path of
`prepare_for_inference` (channels-last convolutions, weight standardisation done once), next
to the plain network (`MAED().eval()`) and the VIBE-shaped network. The achievable limit is
the best FLOP/s of a large square `torch.mm` (2048 and 4096), measured before and after the
networks; a network's fraction of it is `2 x GMACs/s achieved / peak FLOP/s`, with MACs
counted as `maed profile` does (convolutions, linear layers, attention matmuls).

GPU part (only when CUDA is present): frames/s of MAED-6 at 16 frames for fp32 and bf16
(autocast), eager and `torch.compile`d, with CUDA-event timing and peak allocated memory,
and the fp32/bf16 matmul peaks.

Random weights and random input: the arithmetic is the real network's. The load average is
printed because other processes on the machine slow every figure down.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from maed_cli.model import MAED  # noqa: E402
from maed_cli.model.inference import prepare_for_inference  # noqa: E402
from maed_cli.model.vibe import VIBELike  # noqa: E402
from maed_cli.profiling import (count_maed, count_vibe, matmul_peak_flops,  # noqa: E402
                                measure_speed)


def _row(result, peak_flops: float | None) -> dict:
    row = result.to_dict()
    row.pop("timings_ms", None)
    row["fraction_of_matmul_peak"] = (2e9 * result.gmacs_per_s / peak_flops
                                      if peak_flops else None)
    best_gmacs = result.gmacs_per_s * result.latency_ms / result.latency_ms_min
    row["fraction_of_matmul_peak_best"] = 2e9 * best_gmacs / peak_flops if peak_flops else None
    return row


def _print_rows(title: str, rows: list[dict]) -> None:
    print(f"\n{title}")
    print(f"  {'network':<24}{'batch':>6}{'ms/forward':>12}{'(best)':>10}{'frames/s':>10}"
          f"{'GMAC/s':>9}{'of peak':>9}{'(best)':>8}{'peak mem MiB':>14}")
    for r in rows:
        frac = "" if r["fraction_of_matmul_peak"] is None else f"{r['fraction_of_matmul_peak']:.1%}"
        best = ("" if r["fraction_of_matmul_peak_best"] is None
                else f"{r['fraction_of_matmul_peak_best']:.1%}")
        mem = "" if r["peak_memory_mb"] is None else f"{r['peak_memory_mb']:,.0f}"
        print(f"  {r['label']:<24}{r['batch_size']:>6}{r['latency_ms']:>12,.1f}"
              f"{r['latency_ms_min']:>10,.1f}{r['frames_per_s']:>10.2f}{r['gmacs_per_s']:>9.1f}"
              f"{frac:>9}{best:>8}{mem:>14}")
    print("  (median of the timed forwards; 'best' = the fastest one)")


def cpu_part(args, maed_count, vibe_count) -> dict:
    torch.set_num_threads(args.threads)
    cpu = torch.device("cpu")
    load_before = os.getloadavg()
    peak_before = matmul_peak_flops(cpu, torch.float32, sizes=(2048, 4096), reps=args.mm_reps)
    torch.manual_seed(0)
    runs = [("MAED-%d fast path" % args.blocks,
             lambda: prepare_for_inference(MAED(num_blocks=args.blocks), cpu,
                                           compile=args.cpu_compile), maed_count)]
    if not args.no_baseline:
        runs.append(("MAED-%d plain eval()" % args.blocks,
                     lambda: MAED(num_blocks=args.blocks).eval(), maed_count))
    runs.append(("VIBE fast path", lambda: prepare_for_inference(VIBELike(), cpu,
                                                                 compile=args.cpu_compile),
                 vibe_count))
    results = []
    for label, build, count in runs:
        model = build()
        result = measure_speed(model, count.name, batch_size=1, frames=args.frames,
                               device=cpu, warmup=args.warmup, iters=args.iters,
                               macs_per_clip=count.macs_per_clip)
        results.append((label, result))
        del model
    peak_after = matmul_peak_flops(cpu, torch.float32, sizes=(2048, 4096), reps=args.mm_reps)
    peak = max(peak_before, peak_after)
    rows = []
    for label, result in results:
        row = _row(result, peak)
        row["label"] = label
        rows.append(row)
    maed_fast, vibe_fast = rows[0], rows[-1]
    return {
        "threads": torch.get_num_threads(), "dtype": "fp32", "frames": args.frames,
        "compile": args.cpu_compile,
        "matmul_peak_gflops": {"before": peak_before / 1e9, "after": peak_after / 1e9,
                               "used": peak / 1e9},
        "loadavg_before": load_before, "loadavg_after": os.getloadavg(),
        "runs": rows,
        "maed_fraction_of_peak": maed_fast["fraction_of_matmul_peak"],
        "time_ratio_maed_vibe": maed_fast["latency_ms"] / vibe_fast["latency_ms"],
    }


def gpu_part(args, maed_count, vibe_count) -> dict:
    gpu = torch.device("cuda")
    out = {"device": torch.cuda.get_device_name(gpu), "batch_size": args.gpu_batch,
           "allow_tf32": torch.backends.cuda.matmul.allow_tf32, "peaks_gflops": {}, "runs": []}
    for dtype_name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        peak = matmul_peak_flops(gpu, dtype, sizes=(4096, 8192), reps=10)
        out["peaks_gflops"][dtype_name] = peak / 1e9
        for compiled in (False, True):
            torch.manual_seed(0)
            model = prepare_for_inference(MAED(num_blocks=args.blocks), gpu, compile=compiled)
            result = measure_speed(model, maed_count.name, batch_size=args.gpu_batch,
                                   frames=args.frames, device=gpu, dtype=dtype,
                                   warmup=max(args.warmup, 3), iters=max(args.iters, 10),
                                   macs_per_clip=maed_count.macs_per_clip)
            row = _row(result, peak)
            row["label"] = f"MAED-{args.blocks} {dtype_name}" + (" compiled" if compiled else "")
            out["runs"].append(row)
            del model
            torch.cuda.empty_cache()
        model = prepare_for_inference(VIBELike(), gpu)
        result = measure_speed(model, "VIBE", batch_size=args.gpu_batch, frames=args.frames,
                               device=gpu, dtype=dtype, warmup=max(args.warmup, 3),
                               iters=max(args.iters, 10), macs_per_clip=vibe_count.macs_per_clip)
        row = _row(result, peak)
        row["label"] = f"VIBE {dtype_name}"
        out["runs"].append(row)
        del model
        torch.cuda.empty_cache()
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=2, help="CPU threads (default 2)")
    parser.add_argument("--blocks", type=int, default=6)
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--iters", type=int, default=3)
    parser.add_argument("--mm-reps", type=int, default=5)
    parser.add_argument("--no-baseline", action="store_true",
                        help="skip the plain eval() network on CPU")
    parser.add_argument("--cpu-compile", action="store_true",
                        help="torch.compile the CPU networks too (minutes of compiling)")
    parser.add_argument("--no-cpu", action="store_true", help="skip the CPU part")
    parser.add_argument("--gpu-batch", type=int, default=8, help="clips per forward on GPU")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)

    maed_count = count_maed(blocks=args.blocks, frames=args.frames)
    vibe_count = count_vibe(frames=args.frames)
    report = {"torch": torch.__version__,
              "gmacs_per_clip": {"maed": maed_count.gmacs_per_clip,
                                 "vibe": vibe_count.gmacs_per_clip}}
    if not args.no_cpu:
        report["cpu"] = cpu_part(args, maed_count, vibe_count)
    if torch.cuda.is_available():
        report["gpu"] = gpu_part(args, maed_count, vibe_count)
    if args.json:
        print(json.dumps(report, indent=2, default=float))
        return 0

    print(f"torch {torch.__version__}; MAED-{args.blocks} {maed_count.gmacs_per_clip:.1f} "
          f"GMACs and VIBE {vibe_count.gmacs_per_clip:.1f} GMACs per {args.frames}-frame clip")
    if "cpu" in report:
        c = report["cpu"]
        peaks = c["matmul_peak_gflops"]
        _print_rows(f"CPU, fp32, {c['threads']} threads, 1 clip of {args.frames} frames per "
                    f"forward{' (compiled)' if c['compile'] else ''}; matmul peak "
                    f"{peaks['used']:.1f} GFLOP/s (before {peaks['before']:.1f}, after "
                    f"{peaks['after']:.1f})", c["runs"])
        print(f"  MAED fast path: {c['maed_fraction_of_peak']:.1%} of the measured fp32 "
              f"matmul peak; MAED/VIBE time ratio {c['time_ratio_maed_vibe']:.2f}")
        print(f"  load average before {c['loadavg_before'][0]:.2f}, after "
              f"{c['loadavg_after'][0]:.2f} (on {os.cpu_count()} CPUs)")
    if "gpu" in report:
        g = report["gpu"]
        peaks = ", ".join(f"{k} {v:,.0f}" for k, v in g["peaks_gflops"].items())
        _print_rows(f"GPU {g['device']}, batch {g['batch_size']} clips of {args.frames} "
                    f"frames; matmul peaks GFLOP/s: {peaks} (fraction vs the peak of the "
                    f"same dtype; allow_tf32={g['allow_tf32']})", g["runs"])
    else:
        print("\nGPU: none found (torch.cuda.is_available() is False); GPU part skipped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
