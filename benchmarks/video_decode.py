"""Decode speed and peak memory of maed's streaming reader on synthetic 720p videos.

    python benchmarks/video_decode.py                 # 30 s and 120 s at 30 fps
    python benchmarks/video_decode.py --seconds 10 60 --size 1920x1080

Each video is made by ffmpeg's `testsrc2` source (H.264), then decoded by
`maed_cli.video.io.open_frames` in a fresh Python process, so each peak RSS belongs to that
decode alone. Streaming means the peak must not grow with the video's length.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

_CHILD = r"""
import json, resource, sys, time
from maed_cli.video.io import open_frames
path = sys.argv[1]
t0 = time.perf_counter()
source = open_frames(path)
n, checksum = 0, 0
for index, frame in source:
    n += 1
    checksum += int(frame[::97, ::89, 1].sum())   # touch the pixels
dt = time.perf_counter() - t0
print(json.dumps({
    "frames": n, "seconds": dt,
    "python_peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    "ffmpeg_peak_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
}))
"""


def make_video(path: Path, seconds: float, size: str, fps: int) -> None:
    import imageio_ffmpeg

    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-y", "-f", "lavfi",
                    "-i", f"testsrc2=size={size}:rate={fps}", "-t", str(seconds),
                    "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p",
                    str(path)], check=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, nargs="+", default=[30, 120])
    parser.add_argument("--size", default="1280x720")
    parser.add_argument("--fps", type=int, default=30)
    args = parser.parse_args()

    print(f"{'video':>10} {'frames':>7} {'decode fps':>11} {'python peak MB':>15} "
          f"{'ffmpeg peak MB':>15}")
    with tempfile.TemporaryDirectory() as tmp:
        for seconds in args.seconds:
            path = Path(tmp) / f"synthetic_{seconds:g}s.mp4"
            t0 = time.perf_counter()
            make_video(path, seconds, args.size, args.fps)
            made = time.perf_counter() - t0
            out = subprocess.run([sys.executable, "-c", _CHILD, str(path)], cwd=ROOT,
                                 capture_output=True, text=True, check=True,
                                 env={**__import__("os").environ, "PYTHONPATH": str(ROOT)})
            r = json.loads(out.stdout.strip().splitlines()[-1])
            print(f"{seconds:>9g}s {r['frames']:>7d} {r['frames'] / r['seconds']:>11.1f} "
                  f"{r['python_peak_mb']:>15.1f} {r['ffmpeg_peak_mb']:>15.1f}"
                  f"   ({args.size}, made in {made:.1f} s)")


if __name__ == "__main__":
    main()
