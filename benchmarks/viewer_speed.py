"""`maed view` speed: playback frames/s for 3 people, and the time to open a 10-minute result.

    PYTHONPATH=.:tests python benchmarks/viewer_speed.py [--frames 18000] [--people 3]
        [--seconds 10] [--folder DIR] [--json OUT]

Writes a synthetic result once (18000 frames x 3 people at 30 fps: 10 minutes, ~4.5 GB of
vertices; reused when --folder already holds one), then in headless Chromium (software WebGL,
SwiftShader) over the DevTools protocol:
  open      seconds for the server to read the results (ViewerData: summaries, arrays, the
            memory map of the vertices) plus the page's own time from navigation to its first
            drawn frame (performance.now() when the test hook is ready);
  playback  1x playback for --seconds: the browser's frame rate (requestAnimationFrame
            timestamps collected by the page) and poses shown per second (source frames whose
            meshes were all on screen; a frame whose chunk had not arrived yet is a stall).
  cpu       the browser's CPU time (all its processes) per pose shown: what a frame costs,
            whatever else the machine is doing (2 cores x 1000 ms / this = the poses/s an
            idle 2-core machine could hold), beside the 1-minute load average; and the
            server's (this process's) CPU time per pose, the chunks it makes meanwhile.
Targets: open < 3 s, 30 poses/s.
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile
import threading
import time
from pathlib import Path

import numpy as np


def tree_cpu_seconds(root: int) -> float:
    """User + system CPU seconds of process `root` and all its descendants (Linux /proc)."""
    import os
    parents, times = {}, {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        parents[int(entry)] = int(fields[1])
        times[int(entry)] = int(fields[11]) + int(fields[12])
    tree, grew = {root}, True
    while grew:
        grew = False
        for pid, parent in parents.items():
            if parent in tree and pid not in tree:
                tree.add(pid)
                grew = True
    return sum(times.get(pid, 0) for pid in tree) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=18000)
    parser.add_argument("--people", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--folder", type=Path, default=None,
                        help="where the synthetic result is (written when missing)")
    parser.add_argument("--window", default="1280x800", help="browser window, WxH")
    parser.add_argument("--no-antialias", action="store_true",
                        help="open the page with ?antialias=0")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args()

    from cdp import Browser, find_chromium
    from viewer_scene import write_results

    from maed_cli.body.smpl import BodyModel
    from maed_cli.body.smpl_files import read_smpl_file
    from maed_cli.body.synthetic import write_synthetic_assets
    from maed_cli.viewer.data import ViewerData
    from maed_cli.viewer.server import make_server

    if find_chromium() is None:
        raise SystemExit("needs Chromium (Debian: apt-get install chromium)")
    folder = args.folder or Path(tempfile.gettempdir()) / f"maed_view_bench_{args.frames}x{args.people}"
    assets = write_synthetic_assets(Path(tempfile.mkdtemp()))
    faces = read_smpl_file(assets["npz"])["f"]
    if not (folder / "summary.json").is_file():
        body = BodyModel(read_smpl_file(assets["npz"]), np.load(assets["extra"]))
        t = time.perf_counter()
        write_results(folder, body, frames=args.frames, people=args.people, world=True,
                      fps=30.0, template_frames=48)
        print(f"wrote {folder} in {time.perf_counter() - t:.1f} s")

    t = time.perf_counter()
    data = ViewerData(folder, faces=faces)
    load_s = time.perf_counter() - t
    server = make_server(data, 0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/"
    if args.no_antialias:
        url += "?antialias=0"
    figures = {"antialias": "off" if args.no_antialias else "auto (off on software GL)", "frames": args.frames, "people": args.people, "frame_of_reference": data.frame,
               "server_load_s": round(load_s, 3)}
    try:
        width, height = (int(v) for v in args.window.lower().split("x"))
        figures["window"] = args.window
        with Browser(width=width, height=height) as browser:
            t = time.perf_counter()
            browser.navigate(url)
            browser.wait_for("window.maedViewerReady !== undefined", timeout=120, interval=0.02)
            page_ms = browser.evaluate("window.maedViewerReady", timeout=120)
            wall = time.perf_counter() - t
            figures.update(page_first_frame_s=round(page_ms / 1000, 3),
                           page_wall_s=round(wall, 3),
                           open_s=round(load_s + page_ms / 1000, 3))
            browser.evaluate("window.maedViewer.seek(1000)")
            cpu0 = tree_cpu_seconds(browser.process.pid)
            server0 = time.process_time()
            browser.evaluate("window.maedViewer.startTiming(); window.maedViewer.play(); true")
            time.sleep(args.seconds)
            timing = browser.evaluate("window.maedViewer.stopTiming()")
            cpu = tree_cpu_seconds(browser.process.pid) - cpu0
            server_cpu = time.process_time() - server0
            state = browser.evaluate("window.maedViewer.info()")
            browser.evaluate("window.maedViewer.pause()")
            raf = np.asarray(timing["raf"])
            span = (raf[-1] - raf[0]) / 1000 if len(raf) > 1 else float("nan")
            figures.update(
                playback_s=round(span, 2), browser_fps=round((len(raf) - 1) / span, 1),
                browser_frame_ms_p50=round(float(np.median(np.diff(raf))), 2),
                browser_frame_ms_p95=round(float(np.percentile(np.diff(raf), 95)), 2),
                poses_per_s=round(timing["poses"] / span, 1), stalls=timing["stalls"],
                page_js_ms_per_frame_p50=round(float(np.median(timing["drawMs"])), 2),
                frames_advanced=state["frame"] - 1000,
                browser_cpu_ms_per_pose=round(1000 * cpu / max(timing["poses"], 1), 1),
                server_cpu_ms_per_pose=round(1000 * server_cpu / max(timing["poses"], 1), 1),
                load_average_1min=round(os.getloadavg()[0], 2), cpu_cores=os.cpu_count(),
                errors=browser.errors())
    finally:
        server.shutdown()
        server.server_close()
    for key, value in figures.items():
        print(f"{key:24s} {value}")
    verdict = []
    verdict.append(f"open {'OK' if figures['open_s'] < 3 else 'SLOW'} (< 3 s)")
    verdict.append(f"playback {'OK' if figures['poses_per_s'] >= 29.5 else 'SLOW'} (30 poses/s)")
    print("; ".join(verdict))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
