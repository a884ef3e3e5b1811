"""`maed batch` scaling: videos per minute with 1 and 2 processes on this machine.

Builds synthetic one-person videos with boxes files (no detector, no licensed assets), a
random network and the synthetic SMPL, then runs `maed batch` once as a single process and
once under `torchrun --nproc_per_node 2`, each into a fresh folder, and prints the figures.

    python benchmarks/batch_scaling.py                    # 8 videos of 24 frames, tiny network
    python benchmarks/batch_scaling.py --videos 16 --frames 48 --blocks 6 --device cuda

Wall time includes process start-up and model loading (what a user waits for).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]


def build(root: Path, videos: int, frames: int, blocks: int) -> dict:
    import numpy as np
    import torch

    from maed_cli.body.smpl import BodyModel
    from maed_cli.body.smpl_files import read_smpl_file
    from maed_cli.body.synthetic import write_synthetic_assets
    from maed_cli.model import MAED, save_checkpoint
    from maed_cli.video.io import VideoWriter, open_frames
    from synthetic_video import make_walkers_video, write_boxes

    assets = write_synthetic_assets(root / "smpl")
    body = BodyModel(read_smpl_file(assets["npz"]), np.load(assets["extra"]),
                     np.load(assets["h36m"]), source="synthetic")
    torch.manual_seed(0)
    small = dict(num_heads=2, hidden_dim=64, embed_dim=96, backbone_layers=(1, 1, 1))
    network = MAED(num_blocks=blocks, **(small if blocks == 1 else {}))
    ckpt = save_checkpoint(root / "net.pt", network)
    source = make_walkers_video(root / "source.mp4", body, num_frames=frames + 4, people=1)
    decoded = [f for _, f in open_frames(root / "source.mp4")]
    folder = root / "videos"
    folder.mkdir()
    for i in range(videos):
        first = i % 5
        path = folder / f"clip_{i:03d}.mp4"
        with VideoWriter(path, source["fps"]) as writer:
            for frame in decoded[first:first + frames]:
                writer.write(frame)
        write_boxes(path.with_name(path.name + ".boxes.json"),
                    [dict(b, frame=b["frame"] - first) for b in source["boxes"]
                     if first <= b["frame"] < first + frames])
    home = root / "home"
    home.mkdir()
    shutil.copy(assets["extra"], home / "J_regressor_extra.npy")
    return {"ckpt": ckpt, "smpl": assets["npz"], "folder": folder, "home": home}


def run(setup: dict, out: Path, procs: int, args) -> tuple[float, dict]:
    batch = ["batch", str(setup["folder"]), "--output", str(out), "--checkpoint",
             str(setup["ckpt"]), "--smpl", str(setup["smpl"]), "--min-track", "5",
             "--interp", str(args.interp), "--device", args.device, "--quiet"]
    if procs == 1:
        cmd = [sys.executable, "-m", "maed_cli", *batch]
    else:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nnodes", "1",
               "--nproc_per_node", str(procs), "-m", "maed_cli", *batch]
    env = dict(os.environ, MAED_HOME=str(setup["home"]), YOLO_OFFLINE="1",
               PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    # the same CPU threads in total: torchrun gives each worker 1 unless told otherwise
    env["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // procs))
    start = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"{procs} process(es) failed:\n{proc.stdout}\n{proc.stderr}")
    return wall, json.loads((out / "summary.json").read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=8)
    parser.add_argument("--frames", type=int, default=24)
    parser.add_argument("--blocks", type=int, default=1, help="1: a tiny network; 6: MAED's")
    parser.add_argument("--interp", type=int, default=8)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--procs", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="maed_batch_bench_") as tmp:
        root = Path(tmp)
        setup = build(root, args.videos, args.frames, args.blocks)
        print(f"{args.videos} videos x {args.frames} frames, 1 person each, "
              f"{args.blocks}-block network, --interp {args.interp}, device {args.device}, "
              f"{os.cpu_count()} CPU cores")
        print(f"{'processes':>9}  {'wall s':>7}  {'videos/min':>10}")
        for procs in args.procs:
            wall, summary = run(setup, root / f"out_{procs}", procs, args)
            assert summary["counts"]["done"] == args.videos, summary["counts"]
            print(f"{procs:>9}  {wall:7.1f}  {60 * args.videos / wall:10.1f}", flush=True)


if __name__ == "__main__":
    main()
