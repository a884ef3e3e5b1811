"""World layer accuracy, ground part (issue #15 points 2-4): up, floor, placement, contacts.

    PYTHONPATH=. python benchmarks/world_ground_accuracy.py [--seeds 5] [--frames 90]
        [--rendered] [--json OUT]

On the synthetic scenes of tests/world_scene.py (3 SMPL walkers with planted feet, MAED-like
camera-frame results with depth noise on the crop scale s and orientation noise), with the
TRUE camera rotations (the camera estimate is measured by benchmarks/world_accuracy.py), it
runs `maed_cli.world.build_world` and prints per configuration the median and worst over
seeds of: up direction error (deg), floor height error at the true stance feet (cm), root
trajectory error after aligning each person's first frame (% of the distance walked, worst
person), error of the distance between persons 1 and 2 (%), foot skating before (raw cam_t)
and after (m/s, mean horizontal speed of a foot labelled in contact), ground penetration
(mean and max over frames, cm), and the cost of build_world (ms per person-frame).
--rendered adds the end-to-end rows: the static and panning scenes rendered to pixels
(tests/world_render.py, 640x360), the camera motion ESTIMATED from them
(maed_cli.world.camera) and the world built on that estimate; in the noise-textured room
(no straight lines but its edges) and in a lit, tiled room, where a still camera's
background gives vanishing directions (maed_cli/world/vanishing.py), with and without them.
Targets (issue #15): up <= 2 deg, floor <= 3 cm, trajectory <= 5 %, pair <= 5 %, skating
reduced >= 50 %, penetration <= 2 cm.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

METRICS = ("up_deg", "floor_cm", "rte_pct", "pair_pct", "skating_before", "skating_after",
           "penetration_cm", "penetration_max_cm", "ms_per_person_frame")


def configurations():
    from world_scene import DepthNoise
    return [
        ("static, camera 2.0 m, default noise", dict(camera="static")),
        ("pan +-30 tilt +-10, camera 2.0 m", dict(camera="pan")),
        ("static, camera 1.5 m (flatter rays)", dict(camera="static", camera_height=1.5,
                                                     pitch_deg=-8.0)),
        ("static, heavy noise (10 %, slow wander)", dict(
            camera="static", depth_noise=DepthNoise(bias=1.5, wander=0.05, rho=0.9,
                                                    frame=0.04))),
        ("static, no noise", dict(camera="static", noise=False)),
    ]


def estimated_camera(scene, lit: bool = False):
    """The camera motion estimated from the scene rendered to pixels (the demo's estimator);
    lit: in the lit, tiled room (straight lines: a still camera's vanishing directions)."""
    from world_accuracy import run_estimator
    from world_render import render_world_scene
    frames, boxes = render_world_scene(scene, lit=lit)
    return run_estimator(frames, boxes, scene.focal, scene.image_size, scene.frame_ids)[0]


def ground_accuracy(seeds: int = 5, frames: int = 90, rendered: bool = False) -> list[dict]:
    """One row per configuration: each metric's median and max over `seeds` scenes."""
    from world_scene import evaluate_world, make_scene, synthetic_body

    from maed_cli.world import build_world
    body = synthetic_body()
    rows = []
    base = dict(configurations())
    configs = [(name, kwargs, None, True) for name, kwargs in base.items()]
    if rendered:
        low = base["static, camera 1.5 m (flatter rays)"]
        heavy = base["static, heavy noise (10 %, slow wander)"]
        configs += [("rendered static, ESTIMATED camera", dict(camera="static"), "noise", True),
                    ("rendered pan, ESTIMATED camera", dict(camera="pan"), "noise", True)]
        for name, kwargs in (("rendered static, lit tiled room, lines", dict(camera="static")),
                             ("rendered static 1.5 m, lit room, lines", low),
                             ("rendered static heavy noise, lit, lines", heavy)):
            configs += [(name, kwargs, "lit", True), ("  the same, lines off", kwargs, "lit",
                                                      False)]
    for name, kwargs, room, lines in configs:
        values, fallbacks = [], []
        for seed in range(seeds):
            scene = make_scene(body, people=3, frames=frames, seed=seed, **kwargs)
            camera = (estimated_camera(scene, lit=room == "lit") if room
                      else scene.camera_motion())
            start = time.perf_counter()
            build = build_world(scene.tracks, camera, scene.focal, scene.image_size,
                                fps=scene.fps, lines=lines)
            seconds = time.perf_counter() - start
            if build.fell_back_reason:
                fallbacks.append(build.fell_back_reason)
                continue
            m = evaluate_world(scene, build)
            m["ms_per_person_frame"] = 1000 * seconds / sum(len(t) for t in scene.tracks)
            values.append([m[k] for k in METRICS])
        values = np.asarray(values) if values else np.full((1, len(METRICS)), np.nan)
        rows.append({"config": name, "scenes": seeds, "fallbacks": fallbacks,
                     "median": dict(zip(METRICS, np.median(values, 0).tolist())),
                     "max": dict(zip(METRICS, values.max(0).tolist()))})
    return rows


def print_ground_table(rows: list[dict]) -> None:
    print("world ground/placement/contacts with the true camera rotations "
          "(median / worst over seeds)")
    short = ("up deg", "floor cm", "traj %", "pair %", "skate raw", "skate out", "pen cm",
             "pen max", "ms/pf")
    print(f"{'configuration':42s} " + " ".join(f"{s:>13s}" for s in short))
    for r in rows:
        cells = " ".join(f"{r['median'][k]:6.2f}/{r['max'][k]:6.2f}" for k in METRICS)
        extra = f"  fallbacks: {r['fallbacks']}" if r["fallbacks"] else ""
        print(f"{r['config']:42s} {cells}{extra}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--frames", type=int, default=90)
    parser.add_argument("--rendered", action="store_true",
                        help="also the end-to-end rows: camera estimated from rendered frames")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args()
    rows = ground_accuracy(args.seeds, args.frames, args.rendered)
    print_ground_table(rows)
    if args.json:
        args.json.write_text(json.dumps({"ground": rows}, indent=2))


if __name__ == "__main__":
    main()
