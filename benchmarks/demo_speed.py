"""Per-stage time per frame and peak memory of the `maed demo` pipeline on synthetic 720p video.

    python benchmarks/demo_speed.py                       # 30 s and 120 s, 720p, 30 fps
    python benchmarks/demo_speed.py --seconds 10 --interp 1 --people 3
    python benchmarks/demo_speed.py --hour                # 1 hour of 1080p (long: see below)
    python benchmarks/demo_speed.py --hour --scale 0.01 0.03   # 36 s and 108 s of it

`--hour` is one hour of 1080p at 30 fps, one person (`--scale` shortens it). Besides the stage
times it samples the run's resident memory (RSS) every half second and reports its range
over the second half of the run and its drift (MB per minute of the run), which stays near
zero when memory is flat; then it reads the results folder back (load_results) to show it
is complete. Mind the disk: the results keep every vertex, about 80 KB per person-frame
(an hour of one person: about 9 GB); on a 2-core CPU the hour takes hours.

Each run happens in a fresh Python process (so each peak RSS is that run's own):
  - the video: ffmpeg's testsrc2 background with `--people` moving boxes, and a boxes file
    (tracking runs on those; detection is timed separately on the same frames with a YOLO
    built from its yaml — random weights, the real compute of yolo11n);
  - the network: MAED-6 (the paper's architecture, random weights: the real compute);
  - the body: the synthetic SMPL-format model (the real SMPL's size and cost).
Stages: decode, detect (YOLO yaml model, per frame), track, crop, network, body, write.
Streaming means the peak memory must not grow with the length of the video.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

_CHILD = r"""
import json, os, resource, sys, threading, time
from pathlib import Path
import numpy as np, torch
video, boxes, out, interp, blocks, detect_frames = sys.argv[1:7]
samples = []  # (seconds since start, RSS MB)
t_start = time.perf_counter()
def sample():
    while True:
        with open("/proc/self/status") as f:
            rss = next(int(l.split()[1]) for l in f if l.startswith("VmRSS"))
        samples.append((time.perf_counter() - t_start, rss / 1024))
        time.sleep(0.5)
threading.Thread(target=sample, daemon=True).start()
os.environ.setdefault("YOLO_OFFLINE", "1")
from maed_cli.body.synthetic import write_synthetic_assets
from maed_cli.body.smpl import BodyModel
from maed_cli.body.smpl_files import read_smpl_file
from maed_cli.model import MAED
from maed_cli.demo_options import DemoOptions
from maed_cli.pipeline import run_demo
assets = write_synthetic_assets(Path(out).parent / "smpl")
body = BodyModel(read_smpl_file(assets["npz"]), np.load(assets["extra"]))
torch.manual_seed(0)
model = MAED(num_blocks=int(blocks)).eval()
report = run_demo(video, out, DemoOptions(boxes=boxes, interp=int(interp), min_track=5,
                                          device="cpu"), model, body)
timings = dict(report.summary["timings_s"])
frames = sum(len(t) for t in report.tracks)
run_samples = list(samples)
from maed_cli.results import load_results
tracks, _ = load_results(out)  # the folder reads back whole
readable = sum(len(t) for t in tracks) == frames and all(
    t.verts.shape[0] == len(t) and np.isfinite(t.verts[-1]).all() for t in tracks)
# detection, timed apart on the first frames with a yaml-built yolo11n (real compute)
from maed_cli.video.detect import PersonDetector, import_ultralytics
from maed_cli.video.io import open_frames
import_ultralytics()
from ultralytics import YOLO
detector = PersonDetector(model=YOLO("yolo11n.yaml"), device="cpu")
n = int(detect_frames)
batch = []
for index, frame in open_frames(video):
    batch.append(frame)
    if len(batch) == n:
        break
t = time.perf_counter()
detector(batch)
detect_per_frame = (time.perf_counter() - t) / max(len(batch), 1)
half = [m for t, m in run_samples if t >= run_samples[-1][0] / 2] or [0.0]
ts = np.array([t for t, _ in run_samples if t >= run_samples[-1][0] / 2] or [0.0])
drift = float(np.polyfit(ts, np.array(half), 1)[0]) * 60 if len(half) > 2 else 0.0
print(json.dumps({"timings": timings, "person_frames": frames, "readable": readable,
                  "rss_second_half_mb": [min(half), max(half)],
                  "rss_drift_mb_per_min_of_run": drift, "rss_samples": len(run_samples),
                  "video_frames": report.summary["input"]["num_frames"],
                  "detect_s_per_frame": detect_per_frame,
                  "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def make_video(path: Path, seconds: float, size: str, fps: int, people: int) -> Path:
    """testsrc2 background + `people` coloured boxes walking across; returns the boxes file."""
    import imageio_ffmpeg
    w, h = (int(v) for v in size.split("x"))
    filters = []
    boxes = []
    bw, bh = w // 8, h // 2
    frames = int(seconds * fps)
    for p in range(people):
        y = int(h * 0.3) + 20 * p
        speed = (w - bw) / max(frames - 1, 1)
        filters.append(f"drawbox=x='mod({40 + 300 * p}+t*{speed * fps:.4f},{w - bw})':y={y}:"
                       f"w={bw}:h={bh}:color=0x{(50 + 60 * p) % 255:02x}4080@1:t=fill")
        for f in range(frames):
            x = (40 + 300 * p + f * speed) % (w - bw)
            boxes.append({"frame": f, "x1": x, "y1": y, "x2": x + bw, "y2": y + bh,
                          "track_id": p + 1})
    cmd = [imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-loglevel", "error", "-f", "lavfi", "-i",
           f"testsrc2=size={size}:rate={fps}:duration={seconds}", "-vf", ",".join(filters),
           "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", str(path)]
    subprocess.run(cmd, check=True)
    boxes_path = path.with_suffix(".boxes.json")
    boxes_path.write_text(json.dumps(boxes))
    return boxes_path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, nargs="+", default=[30.0, 120.0])
    parser.add_argument("--size", default="1280x720")
    parser.add_argument("--fps", type=int, default=30)
    parser.add_argument("--people", type=int, default=2)
    parser.add_argument("--interp", type=int, default=8,
                        help="network on every K-th frame (default 8: the CPU-friendly mode)")
    parser.add_argument("--blocks", type=int, default=6)
    parser.add_argument("--detect-frames", type=int, default=16)
    parser.add_argument("--hour", action="store_true",
                        help="one hour of 1080p, one person (with --scale: a part of it)")
    parser.add_argument("--scale", type=float, nargs="+", default=[1.0],
                        help="with --hour: these fractions of the hour (0.02: 72 s)")
    parser.add_argument("--json-out", type=Path, help="also write the figures here")
    args = parser.parse_args()
    if args.hour:
        args.seconds = [3600.0 * f for f in args.scale]
        args.size, args.people = "1920x1080", 1
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for seconds in args.seconds:
            video = Path(tmp) / f"bench_{int(seconds)}s.mp4"
            boxes = make_video(video, seconds, args.size, args.fps, args.people)
            out = subprocess.run([sys.executable, "-c", _CHILD, str(video), str(boxes),
                                  str(Path(tmp) / f"out_{int(seconds)}"), str(args.interp),
                                  str(args.blocks), str(args.detect_frames)],
                                 capture_output=True, text=True, cwd=ROOT)
            if out.returncode != 0:
                sys.exit(out.stderr[-3000:])
            rows.append((seconds, json.loads(out.stdout.strip().splitlines()[-1])))
    print(f"maed demo, {args.size} @ {args.fps} fps, {args.people} people, MAED-{args.blocks}, "
          f"--interp {args.interp}, CPU")
    stages = ("decode", "track", "crop", "network", "body", "write")
    print(f"{'video':>8} {'frames':>7} " + " ".join(f"{s:>9}" for s in ("detect",) + stages)
          + f" {'peak MB':>8} {'RSS 2nd half':>13} {'drift':>9}  (ms per video frame)")
    for seconds, r in rows:
        n = max(r["video_frames"] or 1, 1)
        cells = [r["detect_s_per_frame"] * 1000] + [r["timings"].get(s, 0.0) * 1000 / n
                                                    for s in stages]
        low, high = r["rss_second_half_mb"]
        print(f"{seconds:>7.0f}s {n:>7d} " + " ".join(f"{c:>9.1f}" for c in cells)
              + f" {r['peak_mb']:>8.0f} {low:>6.0f}-{high:<6.0f} "
              f"{r['rss_drift_mb_per_min_of_run']:>+6.1f}/min"
              + ("" if r["readable"] else "  RESULTS NOT READABLE"))
    for seconds, r in rows:
        total = r["timings"].get("total", 0.0)
        print(f"{seconds:.0f} s: total {total:.1f} s; per stage (s): "
              + ", ".join(f"{k} {v:.1f}" for k, v in r["timings"].items() if k != "total"))
    if args.json_out:
        args.json_out.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()},
                                             "runs": [{"seconds": s, **r} for s, r in rows]},
                                            indent=1))


if __name__ == "__main__":
    main()
