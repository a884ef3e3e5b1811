"""One GPU session in one go (at most about 8 minutes): the prepared kernel variants, then
`maed demo` end to end on a synthetic 720p multi-person clip, with GPU utilisation sampled
per stage to show what starves the GPU. Everything lands as JSON in --out.

    python benchmarks/gpu_session.py --out $OUT            # on the GPU machine
    python benchmarks/gpu_session.py --out /tmp/g --dry-run  # here: tiny, on the CPU

Steps (each in its own process, each with a time limit, a failure recorded and skipped):
  1. benchmarks/triton_temporal.py and triton_groupnorm.py (their correctness checks and
     timings; GPU only), then benchmarks/gpu_variants.py --only default kernels
     triton-temporal gelu-epilogue triton-groupnorm multi-kernel --json-out OUT/v.json;
  2. the demo pipeline (run_demo: decode, track from boxes, crop, network, body, write, and
     the overlay render when OpenGL works) on a 720p clip with 4 people, MAED-6 with random
     weights (the real compute), the synthetic SMPL-format body; the detector (yolo11n from
     its yaml, random weights: the real compute, no people found) is timed apart on the
     same frames. nvidia-smi samples utilisation every 200 ms while a progress hook notes
     the stage running, so OUT/e2e.json has frames/s and mean GPU utilisation per stage and
     the network's share of the wall time (the target: >= 70 %).
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VARIANTS = ["default", "kernels", "triton-temporal", "gelu-epilogue", "triton-groupnorm",
            "multi-kernel"]


def run_step(name: str, cmd: list[str], timeout: float, log: dict) -> bool:
    t = time.perf_counter()
    try:
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
        ok = proc.returncode == 0
        tail = (proc.stdout + proc.stderr)[-4000:]
    except subprocess.TimeoutExpired as exc:
        ok, tail = False, f"timed out after {timeout:.0f} s\n" + str(exc.stdout or "")[-2000:]
    log[name] = {"ok": ok, "seconds": round(time.perf_counter() - t, 1), "output_tail": tail}
    print(f"[{name}] {'ok' if ok else 'FAILED'} in {log[name]['seconds']} s", flush=True)
    if not ok:
        print(tail[-1500:], flush=True)
    return ok


class GpuSampler:
    """nvidia-smi's utilisation every `period_ms`, each sample tagged with the stage then
    running (set by the progress hook). Without nvidia-smi it records nothing."""

    def __init__(self, period_ms: int = 200) -> None:
        self.samples: list[tuple[float, str, float, float]] = []  # t, stage, util %, MiB
        self.stage = "setup"
        self._proc = None
        exe = shutil.which("nvidia-smi")
        if exe:
            self._proc = subprocess.Popen(
                [exe, "--query-gpu=utilization.gpu,memory.used", "--format=csv,noheader,nounits",
                 f"-lms={period_ms}", "-i", "0"], stdout=subprocess.PIPE, text=True)
            self._thread = threading.Thread(target=self._read, daemon=True)
            self._thread.start()
        self.t0 = time.perf_counter()

    def _read(self) -> None:
        for line in self._proc.stdout:
            try:
                util, mem = (float(v) for v in line.strip().split(","))
            except ValueError:
                continue
            self.samples.append((time.perf_counter() - self.t0, self.stage, util, mem))

    def stop(self) -> None:
        if self._proc is not None:
            self._proc.terminate()
            self._proc.wait()

    def per_stage(self) -> dict:
        out: dict[str, dict] = {}
        for _, stage, util, mem in self.samples:
            d = out.setdefault(stage, {"samples": 0, "util_sum": 0.0, "mem_max_mib": 0.0})
            d["samples"] += 1
            d["util_sum"] += util
            d["mem_max_mib"] = max(d["mem_max_mib"], mem)
        return {s: {"mean_util_pct": round(d["util_sum"] / d["samples"], 1),
                    "samples": d["samples"], "mem_max_mib": d["mem_max_mib"]}
                for s, d in out.items()}


def end_to_end(args, out_dir: Path) -> dict:
    sys.path.insert(0, str(ROOT))
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import numpy as np
    import torch

    from demo_speed import make_video
    from maed_cli.body.smpl import BodyModel
    from maed_cli.body.smpl_files import read_smpl_file
    from maed_cli.body.synthetic import write_synthetic_assets
    from maed_cli.model import MAED
    from maed_cli.demo_options import DemoOptions
    from maed_cli.pipeline import run_demo

    device = "cuda" if torch.cuda.is_available() and not args.dry_run else "cpu"
    seconds, size, people = (1.0, "320x180", 2) if args.dry_run else (args.seconds, args.size,
                                                                         args.people)
    result: dict = {"device": device, "video": {"seconds": seconds, "size": size, "fps": 30,
                                                "people": people}}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        video = tmp / "clip.mp4"
        boxes = make_video(video, seconds, size, 30, people)
        assets = write_synthetic_assets(tmp / "smpl")
        body = BodyModel(read_smpl_file(assets["npz"]), np.load(assets["extra"]))
        torch.manual_seed(0)
        model = MAED(num_blocks=1 if args.dry_run else 6).eval()
        options = DemoOptions(boxes=str(boxes), min_track=5, device=device,
                              compile=args.compile, use_cache=False)
        sampler = GpuSampler()
        stage_time: dict[str, list[float]] = {}

        def progress(stage, advance, total):
            sampler.stage = stage
            span = stage_time.setdefault(stage, [time.perf_counter(), 0.0])
            span[1] = time.perf_counter()

        on_results = None
        if args.render:
            try:
                from maed_cli.render import make_overlay_hook
                on_results = make_overlay_hook(video, options, smpl=assets["npz"],
                                               progress=progress)
            except Exception as exc:  # no OpenGL on this machine: say so, go on
                result["render_error"] = str(exc)[:300]
        t = time.perf_counter()
        try:
            report = run_demo(video, tmp / "out", options, model, body, progress=progress,
                              on_results=on_results)
        finally:
            sampler.stop()
        wall = time.perf_counter() - t
        frames = report.summary["input"]["num_frames"] or 1
        person_frames = sum(len(tr) for tr in report.tracks)
        timings = report.summary["timings_s"]
        result.update(
            wall_s=round(wall, 2), video_frames=frames, person_frames=person_frames,
            timings_s={k: round(v, 3) for k, v in timings.items()},
            frames_per_s={k: round(frames / v, 1) for k, v in timings.items() if v > 0},
            network_person_frames_per_s=round(person_frames / timings["network"], 1)
            if timings.get("network") else None,
            network_share_of_wall=round(timings.get("network", 0.0) / wall, 3),
            # timings_s "write" includes the overlay render; its own span is stage "render"

            stage_spans_s={k: round(b - a, 2) for k, (a, b) in stage_time.items()},
            gpu_util_per_stage=sampler.per_stage(), gpu_samples=len(sampler.samples),
            precision=report.summary.get("precision"))
        # the detector, apart (the pipeline ran on boxes): the same frames, batches of 16
        try:
            from maed_cli.video.detect import PersonDetector, import_ultralytics
            from maed_cli.video.io import open_frames
            import_ultralytics()
            from ultralytics import YOLO
            detector = PersonDetector(model=YOLO("yolo11n.yaml"), device=device)
            frames_list = [f for _, f in open_frames(video, end=16 if args.dry_run else 256)]
            detector(frames_list[:16])  # warm-up
            sampler = GpuSampler()
            sampler.stage = "detect"
            t = time.perf_counter()
            for i in range(0, len(frames_list), 16):
                detector(frames_list[i:i + 16])
            seconds_detect = time.perf_counter() - t
            sampler.stop()
            result["detect"] = {"frames": len(frames_list),
                                "frames_per_s": round(len(frames_list) / seconds_detect, 1),
                                "gpu_util": sampler.per_stage().get("detect")}
        except Exception as exc:
            result["detect_error"] = f"{type(exc).__name__}: {exc}"[:300]
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--dry-run", action="store_true",
                        help="tiny sizes on the CPU, GPU-only steps skipped: checks the script")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--size", default="1280x720")
    parser.add_argument("--people", type=int, default=4)
    parser.add_argument("--compile", action="store_true",
                        help="the demo with --compile (adds a compile of a minute or two)")
    parser.add_argument("--no-render", dest="render", action="store_false")
    parser.add_argument("--skip-variants", action="store_true")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    log: dict = {}
    py = sys.executable
    started = time.perf_counter()
    if not args.skip_variants:
        if args.dry_run:
            log["triton"] = {"ok": None, "skipped": "dry run (the Triton kernels need a GPU)"}
            run_step("gpu_variants", [py, "benchmarks/gpu_variants.py", "--device", "cpu",
                                      "--batch", "1", "--frames", "2", "--iters", "1",
                                      "--only", "default", "--json-out",
                                      str(args.out / "v.json")], 300, log)
        else:
            run_step("triton_temporal", [py, "benchmarks/triton_temporal.py"], 90, log)
            run_step("triton_groupnorm", [py, "benchmarks/triton_groupnorm.py"], 90, log)
            run_step("gpu_variants", [py, "benchmarks/gpu_variants.py", "--only", *VARIANTS,
                                      "--json-out", str(args.out / "v.json")], 270, log)
    t = time.perf_counter()
    try:
        e2e = end_to_end(args, args.out)
        e2e["ok"] = True
    except Exception as exc:
        e2e = {"ok": False, "error": f"{type(exc).__name__}: {exc}"[:1000]}
    e2e["seconds"] = round(time.perf_counter() - t, 1)
    (args.out / "e2e.json").write_text(json.dumps(e2e, indent=1))
    log["total_s"] = round(time.perf_counter() - started, 1)
    (args.out / "session.json").write_text(json.dumps(log, indent=1))
    print(json.dumps({k: v for k, v in e2e.items() if k != "output_tail"}, indent=1))


if __name__ == "__main__":
    main()
