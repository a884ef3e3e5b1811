"""The whole-run time estimate and the --json progress events (maed_cli.progress)."""
from __future__ import annotations

import io
import json

import pytest

from maed_cli.progress import JsonEvents, RunProgress, format_eta, load_rates


class FakeClock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def test_run_eta_covers_the_stages_ahead_and_tightens():
    clock = FakeClock()
    run = RunProgress(("detect", "maed", "body"), frames=100, device="cpu", clock=clock)
    run.rates.update(detect=0.1, maed=1.0, body=2.0)  # as if measured on an earlier run
    run("detect", 0, 100)
    # before any measurement: 100 frames x 0.1 + 6 guessed clips x 1.0 + 1 track x 2.0
    assert run.run_eta() == pytest.approx(10 + 6 + 2)
    for _ in range(50):
        clock.t += 0.2  # this machine is twice as slow at detection as the last run
        run("detect", 1, 100)
    assert run.stage_eta("detect") == pytest.approx(50 * 0.2)
    assert run.run_eta() == pytest.approx(10 + 6 + 2)
    for _ in range(50):
        clock.t += 0.2
        run("detect", 1, 100)
    assert run.stage_eta("detect") == 0.0
    # the second pass knows its clips: 20 of them, from the measured rate once it runs
    run("maed", 0, 20)
    assert run.run_eta() == pytest.approx(20 * 1.0 + 2.0)
    for _ in range(10):
        clock.t += 3.0
        run("maed", 1, 20)
    assert run.stage_eta("maed") == pytest.approx(10 * 3.0)
    assert run.run_eta() == pytest.approx(30.0 + 2.0)


def test_a_skipped_stage_counts_for_nothing():
    clock = FakeClock()
    run = RunProgress(("detect", "maed", "body"), frames=100, device="cpu", clock=clock)
    run("maed", 0, 4)  # a tracks-cache hit: no first pass
    assert run.stage_eta("detect") == 0.0
    assert run.run_eta() == pytest.approx(4 * run.rates["maed"] + run.rates["body"])


def test_unknown_length_gives_no_run_estimate():
    run = RunProgress(("detect", "maed"), frames=None, device="cpu", clock=FakeClock())
    run("detect", 0, None)
    assert run.run_eta() is None and format_eta(None) == ""


def test_rates_are_remembered_for_the_next_run(monkeypatch, tmp_path):
    monkeypatch.setenv("MAED_HOME", str(tmp_path))
    clock = FakeClock()
    run = RunProgress(("detect",), frames=10, device="cpu", clock=clock)
    run("detect", 0, 10)
    for _ in range(10):
        clock.t += 0.5
        run("detect", 1, 10)
    run.close()
    assert load_rates("cpu")["detect"] == pytest.approx(0.5)
    (tmp_path / "progress_rates.json").write_text("{not json")
    assert load_rates("cpu")["detect"] > 0  # a damaged file falls back to the defaults


def test_json_events_one_object_per_line_throttled():
    clock = FakeClock()
    stream = io.StringIO()
    events = JsonEvents(stream, interval=0.5, clock=clock)
    run = RunProgress(("detect", "maed"), frames=10, device="cpu", clock=clock,
                      listeners=[events])
    run("detect", 0, 10)
    for _ in range(10):
        clock.t += 0.1
        run("detect", 1, 10)
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert lines[0]["stage"] == "detect" and lines[0]["done"] == 0
    assert lines[-1]["done"] == 10 and lines[-1]["eta_s"] == 0.0  # the end is always written
    assert 3 <= len(lines) <= 5  # 1 s of updates at most every 0.5 s, plus start and end
    assert set(lines[1]) == {"event", "stage", "done", "total", "eta_s", "run_eta_s",
                             "elapsed_s"}
    assert all(e["run_eta_s"] >= e["eta_s"] for e in lines if e["run_eta_s"] is not None)


def test_format_eta():
    assert format_eta(65) == "run: 1:05 left"
    assert format_eta(3725) == "run: 1:02:05 left"
