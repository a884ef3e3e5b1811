"""Forward speed of MAED-6 on 16-frame clips against the machine's measured matmul limit, and
against a VIBE-shaped network, in one run.

    python benchmarks/model_speed.py                   # CPU, fp32, 2 threads (+ GPU if present)
    python benchmarks/model_speed.py --threads 2 --iters 5 --json
    python benchmarks/model_speed.py --no-cpu --gpu-batch 8    # GPU part only

CPU part: one 16-frame clip per forward (batch 1), fp32, the inference path of
`prepare_for_inference` (channels-last convolutions, weight standardisation done once), next
to the VIBE-shaped network (and to the plain `MAED().eval()` with --baseline). The achievable limit is
the best FLOP/s of a large square `torch.mm` (2048 and 4096), measured between every two
forwards; each forward's fraction is `2 x GMACs/s achieved / peak FLOP/s` against the peak
measured next to it, with MACs counted as `maed profile` does (convolutions, linear layers,
attention matmuls). Networks and peaks are interleaved, so a machine shared with other work
slows both sides alike.

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
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from maed_cli.model import MAED  # noqa: E402
from maed_cli.model.inference import prepare_for_inference  # noqa: E402
from maed_cli.model.vibe import VIBELike  # noqa: E402
from maed_cli.profiling import (_peak_rss_mb, count_maed, count_vibe,  # noqa: E402
                                matmul_peak_flops, measure_speed)


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
    print("  (median of the timed forwards; 'best' = the fastest one / the best fraction; "
          "each fraction against the matmul peak measured next to that forward)")


def cpu_part(args, maed_count, vibe_count) -> dict:
    """Interleaved: [peak, MAED, (plain), VIBE] x iters, then a last peak.

    Each forward's fraction uses the larger of the matmul peaks measured just before and just
    after it, so a machine that slows down (shared cores, clock changes) slows both sides of
    the ratio and the fraction stays honest."""
    torch.set_num_threads(args.threads)
    cpu = torch.device("cpu")
    load_before = os.getloadavg()
    torch.manual_seed(0)
    nets = [("MAED-%d fast path" % args.blocks,
             prepare_for_inference(MAED(num_blocks=args.blocks), cpu, compile=args.cpu_compile),
             maed_count)]
    if args.baseline:
        nets.append(("MAED-%d plain eval()" % args.blocks,
                     MAED(num_blocks=args.blocks).eval(), maed_count))
    nets.append(("VIBE fast path", prepare_for_inference(VIBELike(), cpu,
                                                         compile=args.cpu_compile), vibe_count))
    x = torch.randn(1, args.frames, 3, 224, 224)

    def forward_ms(model) -> float:
        with torch.inference_mode():
            t0 = time.perf_counter()
            model(x)
            return (time.perf_counter() - t0) * 1000.0

    for _, model, _ in nets:
        for _ in range(args.warmup):
            forward_ms(model)
    times: dict[str, list[float]] = {label: [] for label, _, _ in nets}
    around: dict[str, list[tuple[int, int]]] = {label: [] for label, _, _ in nets}
    peaks = [matmul_peak_flops(cpu, torch.float32, sizes=(2048, 4096), reps=args.mm_reps)]
    for _ in range(args.iters):
        for label, model, _ in nets:
            times[label].append(forward_ms(model))
            peaks.append(matmul_peak_flops(cpu, torch.float32, sizes=(2048, 4096),
                                           reps=args.mm_reps))
            around[label].append((len(peaks) - 2, len(peaks) - 1))
    rows = []
    for label, _, count in nets:
        fractions = [2 * count.macs_per_clip / (ms / 1000.0) / max(peaks[a], peaks[b])
                     for ms, (a, b) in zip(times[label], around[label])]
        median_ms = statistics.median(times[label])
        rows.append({
            "label": label, "name": count.name, "batch_size": 1, "frames": args.frames,
            "latency_ms": median_ms, "latency_ms_min": min(times[label]),
            "timings_ms": [round(v, 1) for v in times[label]],
            "frames_per_s": args.frames * 1000.0 / median_ms,
            "gmacs_per_s": count.gmacs_per_clip * 1000.0 / median_ms,
            "fraction_of_matmul_peak": statistics.median(fractions),
            "fraction_of_matmul_peak_best": max(fractions),
            "fractions": [round(f, 4) for f in fractions],
            "peak_memory_mb": _peak_rss_mb(), "memory_kind": "process_peak_rss",
        })
    maed_fast, vibe_fast = rows[0], rows[-1]
    ratios = [m / v for m, v in zip(times[maed_fast["label"]], times[vibe_fast["label"]])]
    return {
        "threads": torch.get_num_threads(), "dtype": "fp32", "frames": args.frames,
        "compile": args.cpu_compile,
        "matmul_peaks_gflops": [round(p / 1e9, 1) for p in peaks],
        "loadavg_before": load_before, "loadavg_after": os.getloadavg(),
        "runs": rows,
        "maed_fraction_of_peak": maed_fast["fraction_of_matmul_peak"],
        "maed_fraction_of_peak_best": maed_fast["fraction_of_matmul_peak_best"],
        "time_ratio_maed_vibe": statistics.median(ratios),
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
    parser.add_argument("--baseline", action="store_true",
                        help="also time the plain MAED().eval() network on CPU (NCHW, "
                             "standardisation cached on first use)")
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
        peaks = c["matmul_peaks_gflops"]
        _print_rows(f"CPU, fp32, {c['threads']} threads, 1 clip of {args.frames} frames per "
                    f"forward{' (compiled)' if c['compile'] else ''}; fp32 matmul peak "
                    f"{min(peaks):.0f}-{max(peaks):.0f} GFLOP/s over the run", c["runs"])
        print(f"  MAED fast path: {c['maed_fraction_of_peak']:.1%} of the measured fp32 matmul "
              f"peak (median; best {c['maed_fraction_of_peak_best']:.1%}); MAED/VIBE time "
              f"ratio {c['time_ratio_maed_vibe']:.2f}")
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
