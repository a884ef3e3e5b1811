"""Milliseconds per 640x480 overlay frame with two people (synthetic SMPL-format body).

    PYTHONPATH=. python benchmarks/render_speed.py [--frames 50] [--camera ortho]

Times `MeshRenderer.render` (mesh upload, render, depth-buffer compositing over a frame), the
per-frame work of `maed render`, after one warm-up frame. Prints the platform chosen.
"""
from __future__ import annotations

import argparse
import tempfile
import time

import numpy as np
import torch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=50)
    parser.add_argument("--camera", default="ortho", choices=("ortho", "perspective"))
    parser.add_argument("--side-view", action="store_true")
    parser.add_argument("--antialias", choices=("auto", "on", "off"), default="auto")
    args = parser.parse_args()

    from maed_cli.body.geometry import orig_cam_to_translation
    from maed_cli.body.smpl import BodyModel
    from maed_cli.body.smpl_files import read_smpl_file
    from maed_cli.body.synthetic import write_synthetic_assets
    from maed_cli.render import MeshRenderer, PersonMesh, track_color

    paths = write_synthetic_assets(tempfile.mkdtemp())
    body = BodyModel(read_smpl_file(paths["npz"]), np.load(paths["extra"]))
    w, h = 640, 480
    n = args.frames + 1
    pose = torch.zeros(n, 72)
    pose[:, 0] = np.pi
    pose[:, 3 * 16 + 2] = torch.linspace(-0.3, -1.2, n)
    verts = body(pose=pose, betas=torch.zeros(n, 10)).vertices.numpy()
    cams = [np.array([0.45, 0.45 * w / h, -0.6, 0.0]), np.array([0.4, 0.4 * w / h, 0.6, 0.1])]
    image = np.random.default_rng(0).integers(0, 255, (h, w, 3), dtype=np.uint8)
    with MeshRenderer(w, h, body.faces, camera=args.camera,
                      antialias={"auto": None, "on": True, "off": False}[args.antialias]
                      ) as renderer:
        times, cpu = [], []
        for k in range(n):
            people = [PersonMesh(verts[k], track_color(i), orig_cam=c,
                                 cam_t=orig_cam_to_translation(torch.as_tensor(c), w, h).numpy())
                      for i, c in enumerate(cams)]
            start, start_cpu = time.perf_counter(), time.process_time()
            renderer.render(image, people)
            if args.side_view:
                renderer.render(None, people, turn=90.0)
            times.append(time.perf_counter() - start)
            cpu.append(time.process_time() - start_cpu)
        platform = f"{renderer.platform} ({renderer.gl_renderer})"
        msaa = f"{renderer.samples}x MSAA" if renderer.samples else "no antialiasing"
    ms = np.array(times[1:]) * 1000
    cpu_ms = np.array(cpu[1:]) * 1000
    print(f"platform: {platform}; {w}x{h}, 2 people, camera {args.camera}"
          f"{', side view' if args.side_view else ''}"
          f", {msaa}")
    print(f"wall ms per frame: median {np.median(ms):.1f}, mean {ms.mean():.1f}, "
          f"p90 {np.percentile(ms, 90):.1f} over {len(ms)} frames")
    print(f"CPU ms per frame (all threads): median {np.median(cpu_ms):.1f}")
    try:
        import os
        print(f"load average: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    except OSError:
        pass


if __name__ == "__main__":
    main()
