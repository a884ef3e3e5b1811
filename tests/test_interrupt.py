"""Ctrl-C, SIGTERM and kill -9 during `maed demo`: no partial results, and the re-run resumes.

The demo runs in a subprocess that signals itself after N tracks have been through the
network (the MAED_DEMO_KILL_AFTER_TRACKS seam, see maed_cli.interrupt). Five people follow
each other through a 40-frame video (8 frames each), so 4 finished tracks are
80 % of the network work.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from maed_cli.cli import main
from maed_cli.results import load_results
from maed_cli.resume import resume_dir

from test_demo import demo_setup, installed_regressor  # noqa: F401 - fixtures

ROOT = Path(__file__).resolve().parents[1]
PEOPLE, SPAN = 5, 8


@pytest.fixture(scope="module")
def relay_video(demo_setup, synthetic_body):  # noqa: F811
    """A 40-frame video with five tracks one after another (the boxes need not fit the
    drawn person: the network runs on whatever the crops show)."""
    from synthetic_video import make_walkers_video
    root = demo_setup["root"]
    video = root / "relay.mp4"
    make_walkers_video(video, synthetic_body, num_frames=PEOPLE * SPAN, people=1)
    boxes = [{"frame": f, "x1": 100 + 2 * f, "y1": 40, "x2": 180 + 2 * f, "y2": 200,
              "track_id": k + 1} for k in range(PEOPLE) for f in range(k * SPAN, (k + 1) * SPAN)]
    path = root / "relay_boxes.json"
    path.write_text(json.dumps(boxes))
    return {"video": video, "boxes": path}


def demo_args(setup, relay, out):
    return ["demo", str(relay["video"]), "--boxes", str(relay["boxes"]), "--checkpoint",
            str(setup["ckpt"]), "--smpl", str(setup["smpl"]), "--output", str(out),
            "--min-track", "5", "--batch-size", "1", "--quiet"]


def run_killed(setup, relay, out, signal_name: str, after: int = 4):
    env = dict(os.environ, PYTHONPATH=f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
               MAED_DEMO_KILL_AFTER_TRACKS=str(after), MAED_DEMO_KILL_SIGNAL=signal_name)
    return subprocess.run([sys.executable, "-m", "maed_cli", *demo_args(setup, relay, out)],
                          env=env, capture_output=True, text=True, timeout=300)


def no_partial_results(out: Path) -> None:
    assert not out.exists()
    assert not list(out.parent.glob(f".{out.name}.*.part"))


@pytest.mark.slow  # two demo subprocesses (about 20 s each on 2 cores)
@pytest.mark.parametrize("signal_name, code", [("INT", 130), ("TERM", 143)])
def test_ctrl_c_and_sigterm_leave_no_results_and_a_resumable_cache(
        tmp_path, capsys, demo_setup, relay_video, installed_regressor,  # noqa: F811
        signal_name, code):
    out = tmp_path / "out"
    proc = run_killed(demo_setup, relay_video, out, signal_name)
    assert proc.returncode == code, proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    assert "the same command resumes" in proc.stderr
    no_partial_results(out)
    kept = resume_dir(out)
    assert len(list(kept.glob("tracks_*.npz"))) == 1
    assert len(list(kept.glob("net_*/track_*.npz"))) == 4
    # the re-run takes the tracks and the four finished people, runs the fifth only
    assert main(demo_args(demo_setup, relay_video, out)) == 0, capsys.readouterr()
    tracks, summary = load_results(out)
    assert summary["tracks_cache"]["reused"] is True
    from maed_cli.clips import plan_clips
    assert summary["network"] == {"tracks_resumed": 4,
                                  "clips_run": plan_clips(SPAN, interp=1).num_clips}
    assert [len(t) for t in tracks] == [SPAN] * PEOPLE
    assert not kept.exists()  # done: nothing left beside the results


@pytest.mark.slow
def test_kill_9_at_80_percent_resumes_the_last_20(tmp_path, capsys, demo_setup, relay_video,
                                                 installed_regressor):  # noqa: F811
    out = tmp_path / "out"
    proc = run_killed(demo_setup, relay_video, out, "KILL")
    assert proc.returncode == -9
    assert not out.exists()
    # a clean run for comparison, with the cache off
    fresh = tmp_path / "fresh"
    assert main(demo_args(demo_setup, relay_video, fresh) + ["--no-cache"]) == 0
    _, fresh_summary = load_results(fresh)
    assert fresh_summary["network"]["tracks_resumed"] == 0
    assert main(demo_args(demo_setup, relay_video, out)) == 0, capsys.readouterr()
    tracks, summary = load_results(out)
    assert summary["network"]["tracks_resumed"] == 4
    # at most the remaining 20 % of the network work
    assert summary["network"]["clips_run"] <= 0.2 * fresh_summary["network"]["clips_run"]
    expected, _ = load_results(fresh)
    for a, b in zip(tracks, expected):  # resumed results are the results
        np.testing.assert_allclose(a.pose, b.pose, atol=1e-5)


def test_resume_folder_is_ignored_when_settings_change(tmp_path):
    from maed_cli.resume import network_key
    base = network_key("tracks", {"sha256": "a"}, {"interp": 1, "dtype": "float32"})
    assert base != network_key("tracks", {"sha256": "b"}, {"interp": 1, "dtype": "float32"})
    assert base != network_key("tracks", {"sha256": "a"}, {"interp": 2, "dtype": "float32"})
    assert base != network_key("other", {"sha256": "a"}, {"interp": 1, "dtype": "float32"})
