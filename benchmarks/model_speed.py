"""Forward speed of MAED-6 on 16-frame clips against the machine's measured matmul limit, and
against a VIBE-shaped network, in one run.

    python benchmarks/model_speed.py                   # CPU, fp32, 2 threads (+ GPU if present)
    python benchmarks/model_speed.py --threads 2 --iters 5 --json
    python benchmarks/model_speed.py --no-cpu --json-out gpu.json   # GPU part only
    python benchmarks/model_speed.py --no-cpu --gpu-device cpu --gpu-batch 1 --no-gpu-compile \
        --gpu-mm-sizes 512 --iters 1 --warmup 0      # a dry run of the GPU part's code on CPU

CPU part: one 16-frame clip per forward (batch 1), fp32, the inference path of
`prepare_for_inference` (channels-last convolutions, weight standardisation done once), next
to the VIBE-shaped network (and to the plain `MAED().eval()` with --baseline). The achievable limit is
the best FLOP/s of a large square `torch.mm` (2048 and 4096), measured between every two
forwards; each forward's fraction is `2 x GMACs/s achieved / peak FLOP/s` against the peak
measured next to it, with MACs counted as `maed profile` does (convolutions, linear layers,
attention matmuls; the architecture's count, Table 3). The implementation skips the last
block's dead tokens (8 % of those MACs), so the fraction of the arithmetic it actually
executes is printed too. Networks and peaks are interleaved, so a machine shared with other work
slows both sides alike.

GPU part (only when CUDA is present): first the agreement of fp32 (TF32 off and on) and bf16
autocast (eager and compiled) with the official outputs of the parity fixture
(tests/fixtures); then frames/s of MAED-6 at 16 frames, 64 clips per forward, for bf16 and
fp16 and fp32, eager and `torch.compile`d, with CUDA-event timing and peak allocated memory,
and the matmul peak of each dtype; the same for the VIBE-shaped network.

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

from maed_cli.body.geometry import rotmat_to_axis_angle  # noqa: E402
from maed_cli.devices import autocast  # noqa: E402
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
        # the same against the MACs this implementation executes (it skips the last block's
        # dead tokens: STEncoder.full_last_block), i.e. the efficiency of the kernels alone
        "maed_fraction_of_peak_executed": maed_fast["fraction_of_matmul_peak"]
        * args.executed_ratio,
        "time_ratio_maed_vibe": statistics.median(ratios),
    }


def _save(report: dict, path: Path | None) -> None:
    """Write the report so far (atomically), so a run stopped midway keeps what it measured."""
    if path is None:
        return
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(report, indent=2, default=float))
    tmp.replace(path)


def rotation_error_deg(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Angles (degrees) of the rotations between rotation matrices a and b (..., 3, 3)."""
    relative = a.transpose(-1, -2) @ b
    return torch.rad2deg(rotmat_to_axis_angle(relative.reshape(-1, 3, 3)).norm(dim=-1))


def agreement_part(device: torch.device, precisions: list[str]) -> list[dict]:
    """The parity fixture (tests/fixtures: deterministic weights and clip, outputs of the
    official code in fp32 on CPU) run on `device` in each of `precisions` (fp32, fp32-tf32,
    bf16, fp16, bf16-compiled); per precision the largest deviation from the official outputs
    per output, and the largest and mean rotation error in degrees."""
    sys.path.insert(0, str(ROOT / "tests"))
    from parity_fill import clip_input, filled_state_dict, load_fixture

    ref, meta = load_fixture()
    torch.manual_seed(0)
    model = MAED(num_blocks=meta["num_blocks"], st_mode=meta["st_mode"])
    model.load_state_dict(filled_state_dict(model.state_dict()), strict=True)
    model = prepare_for_inference(model, device)
    x = clip_input(meta["seed"], meta["n"], meta["t"]).to(device)
    dtypes = {"fp32": torch.float32, "fp32-tf32": torch.float32, "bf16": torch.bfloat16,
              "fp16": torch.float16, "bf16-compiled": torch.bfloat16}
    variants = [(p, dtypes[p], p != "fp32", p.endswith("compiled")) for p in precisions]
    compiled = None
    rows = []
    keys = (("feature", "feature"), ("pose6d", "pose6d"), ("rotmat", "rotmat"),
            ("betas", "shape"), ("cam", "cam"))
    for label, dtype, tf32, use_compiled in variants:
        saved = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = tf32
        if use_compiled and compiled is None:
            compiled = torch.compile(model)
        net = compiled if use_compiled else model
        try:
            with torch.inference_mode(), autocast(device, dtype):
                out = {k: v.float().cpu() for k, v in net(x).items()}
        finally:
            torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved
        row = {"label": label}
        for ours, theirs in keys:
            row[f"max_abs_{ours}"] = float((out[ours] - torch.from_numpy(ref[theirs])).abs().max())
        degrees = rotation_error_deg(out["rotmat"], torch.from_numpy(ref["rotmat"]))
        row["rotation_error_deg_max"] = float(degrees.max())
        row["rotation_error_deg_mean"] = float(degrees.mean())
        rows.append(row)
    return rows


def gpu_part(args, maed_count, vibe_count, report: dict) -> dict:
    """Agreement with the official outputs first (quick), then frames/s: bf16 before fp32,
    eager before compiled, MAED before VIBE, so a run cut short keeps the figures that matter
    most. `report["gpu"]` is filled (and saved) as it goes."""
    gpu = torch.device(args.gpu_device)
    name = torch.cuda.get_device_name(gpu) if gpu.type == "cuda" else str(gpu)
    out = report["gpu"] = {
        "device": name, "batch_size": args.gpu_batch,
        "allow_tf32_matmul": torch.backends.cuda.matmul.allow_tf32,
        "allow_tf32_cudnn": torch.backends.cudnn.allow_tf32, "peaks_gflops": {}, "runs": []}
    out["agreement"] = {"fixture": "tests/fixtures/maed_b6_parallel_s0_n1_t16.npz",
                        "rows": agreement_part(gpu, ["fp32", "fp32-tf32", "bf16", "fp16"])}
    _save(report, args.json_out)
    # bf16 first (the target), then fp16 (the default for inference on CUDA), fp32
    for dtype_name, dtype in (("bf16", torch.bfloat16), ("fp16", torch.float16),
                              ("fp32", torch.float32)):
        peak = matmul_peak_flops(gpu, dtype, sizes=args.gpu_mm_sizes, reps=10)
        out["peaks_gflops"][dtype_name] = peak / 1e9
        nets = [(f"MAED-{args.blocks} {dtype_name}", False)]
        if args.gpu_compile:
            nets.append((f"MAED-{args.blocks} {dtype_name} compiled", True))
        nets.append((f"VIBE {dtype_name}", False))
        for label, compiled in nets:
            torch.manual_seed(0)
            is_vibe = label.startswith("VIBE")
            net = VIBELike() if is_vibe else MAED(num_blocks=args.blocks)
            count = vibe_count if is_vibe else maed_count
            model = prepare_for_inference(net, gpu, compile=compiled)
            t0 = time.perf_counter()
            result = measure_speed(model, count.name, batch_size=args.gpu_batch,
                                   frames=args.frames, device=gpu, dtype=dtype,
                                   warmup=max(args.warmup, 3), iters=max(args.iters, 10),
                                   macs_per_clip=count.macs_per_clip)
            row = _row(result, peak)
            row["label"] = label
            row["seconds_incl_warmup_and_compile"] = time.perf_counter() - t0
            out["runs"].append(row)
            _save(report, args.json_out)
            print(f"  {label}: {row['frames_per_s']:,.0f} frames/s", flush=True)
            del model, net
            if gpu.type == "cuda":
                torch.cuda.empty_cache()
    if args.gpu_compile:  # last: a compile of its own (another input shape)
        out["agreement"]["rows"] += agreement_part(gpu, ["bf16-compiled"])
        _save(report, args.json_out)
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
    parser.add_argument("--gpu-batch", type=int, default=64, help="clips per forward on GPU")
    parser.add_argument("--gpu-device", default="cuda",
                        help="device of the GPU part (cpu: a dry run of its code, e.g. with "
                             "--gpu-batch 1 --no-gpu-compile)")
    parser.add_argument("--gpu-compile", action=argparse.BooleanOptionalAction, default=True,
                        help="also time torch.compile'd MAED on the GPU (default: yes)")
    parser.add_argument("--gpu-mm-sizes", type=int, nargs="+", default=[4096, 8192],
                        help="square matmul sizes for the GPU peak")
    parser.add_argument("--json-out", type=Path, default=None,
                        help="also write the report to this file, updated after every step")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)

    maed_count = count_maed(blocks=args.blocks, frames=args.frames)
    args.executed_ratio = (count_maed(blocks=args.blocks, frames=args.frames, executed=True)
                           .macs_per_clip / maed_count.macs_per_clip)
    vibe_count = count_vibe(frames=args.frames)
    report = {"torch": torch.__version__,
              "gmacs_per_clip": {"maed": maed_count.gmacs_per_clip,
                                 "vibe": vibe_count.gmacs_per_clip}}
    if not args.no_cpu:
        report["cpu"] = cpu_part(args, maed_count, vibe_count)
        _save(report, args.json_out)
    if args.gpu_device != "cuda" or torch.cuda.is_available():
        gpu_part(args, maed_count, vibe_count, report)
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
              f"peak (median; best {c['maed_fraction_of_peak_best']:.1%}); of the MACs it "
              f"executes ({args.executed_ratio:.1%} of the counted): "
              f"{c['maed_fraction_of_peak_executed']:.1%}; MAED/VIBE time "
              f"ratio {c['time_ratio_maed_vibe']:.2f}")
        print(f"  load average before {c['loadavg_before'][0]:.2f}, after "
              f"{c['loadavg_after'][0]:.2f} (on {os.cpu_count()} CPUs)")
    if "gpu" in report:
        g = report["gpu"]
        peaks = ", ".join(f"{k} {v:,.0f}" for k, v in g["peaks_gflops"].items())
        print(f"\nGPU {g['device']}: agreement with the official outputs "
              f"({g['agreement']['fixture']}, official fp32 CPU), largest deviation")
        print(f"  {'precision':<18}{'feature':>10}{'rotmat':>10}{'betas':>10}{'cam':>10}"
              f"{'rot. max deg':>14}{'mean deg':>10}")
        for r in g["agreement"]["rows"]:
            print(f"  {r['label']:<18}{r['max_abs_feature']:>10.2e}{r['max_abs_rotmat']:>10.2e}"
                  f"{r['max_abs_betas']:>10.2e}{r['max_abs_cam']:>10.2e}"
                  f"{r['rotation_error_deg_max']:>14.3f}{r['rotation_error_deg_mean']:>10.3f}")
        _print_rows(f"GPU {g['device']}, batch {g['batch_size']} clips of {args.frames} "
                    f"frames; matmul peaks GFLOP/s: {peaks} (fraction vs the peak of the "
                    f"same dtype; TF32 matmul={g['allow_tf32_matmul']}, "
                    f"cuDNN={g['allow_tf32_cudnn']})", g["runs"])
    else:
        print("\nGPU: none found (torch.cuda.is_available() is False); GPU part skipped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
