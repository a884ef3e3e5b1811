"""Progress of a whole `maed demo` run: the time left for the run, not only for one bar.

The pipeline reports `progress(stage, advance, total)` per stage (see stages.Progress):

    detect  frames of the first pass (decode, detect, track); absent on a tracks-cache hit
    maed    clips of the second pass (decode, crop, network)
    body    tracks through the body layer and written
    render  frames of the overlay video (--render only)

`RunProgress` turns those calls into an estimate of the seconds left for the whole run.
A running stage's remaining time comes from its own measured rate; a stage that has not
started yet is estimated from its size (known or guessed from the frame count) times its
seconds per unit as measured on this machine in the previous run (kept in
MAED_HOME/progress_rates.json), or a rough default the first time. So the estimate is rough
before the network has started and tightens as each stage runs.

`--json` writes each update as one JSON object per line (on stderr), for scripts:

    {"event": "progress", "stage": "maed", "done": 40, "total": 120, "eta_s": 52.1,
     "run_eta_s": 61.0, "elapsed_s": 80.2}

`eta_s` is the stage's time left, `run_eta_s` the whole run's (null while unknown); stage
start and end are always written, updates in between at most every 0.5 s.
"""
from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

STAGES = ("detect", "maed", "body", "render")
CLIP_FRAMES = 16
# seconds per unit the first time (units: detect/render a frame, maed a clip, body a track),
# orders of magnitude from the 2-core CPU and H200 benchmarks; replaced by measurements
DEFAULT_RATES = {"cpu": {"detect": 0.15, "maed": 1.2, "body": 1.0, "render": 0.1},
                 "cuda": {"detect": 0.01, "maed": 0.01, "body": 0.2, "render": 0.02}}
RATES_FILE = "progress_rates.json"
JSON_INTERVAL_S = 0.5


@dataclass
class StageState:
    total: int | None = None
    done: int = 0
    started: float | None = None
    ended: float | None = None
    first_at: float | None = None  # when the first unit was done (the rate excludes set-up)

    def rate(self, now: float) -> float | None:
        """Seconds per unit measured so far (None before two units)."""
        if self.first_at is None or self.done < 2:
            return None
        return (now - self.first_at) / (self.done - 1)


def _rates_path() -> Path | None:
    home = os.environ.get("MAED_HOME")
    return Path(home) / RATES_FILE if home else None


def load_rates(device: str) -> dict[str, float]:
    rates = dict(DEFAULT_RATES["cuda" if device.startswith("cuda") else "cpu"])
    path = _rates_path()
    try:
        if path and path.is_file():
            saved = json.loads(path.read_text()).get(device.split(":")[0], {})
            rates.update({k: float(v) for k, v in saved.items() if k in rates and v > 0})
    except (OSError, ValueError, AttributeError):
        pass  # a damaged rates file only costs a rougher first estimate
    return rates


def save_rates(device: str, rates: dict[str, float]) -> None:
    path = _rates_path()
    if not path or not rates:
        return
    try:
        data = json.loads(path.read_text()) if path.is_file() else {}
        data.setdefault(device.split(":")[0], {}).update(rates)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=1))
        os.replace(tmp, path)
    except (OSError, ValueError, AttributeError):
        pass


@dataclass
class RunProgress:
    """A `progress(stage, advance, total)` callback that knows the whole run.

    stages: the stages this run will go through, in order (e.g. without "render");
    frames: frames of the input the run will process (None: unknown); device: "cpu"/"cuda";
    listeners: called with `snapshot(stage)` after every update.
    """

    stages: tuple[str, ...] = ("detect", "maed", "body")
    frames: int | None = None
    device: str = "cpu"
    listeners: list[Callable[[dict], None]] = field(default_factory=list)
    clock: Callable[[], float] = time.monotonic

    def __post_init__(self) -> None:
        self.state = {s: StageState() for s in self.stages}
        self.rates = load_rates(self.device)
        self.started = self.clock()

    # -- the pipeline's side -----------------------------------------------------------------

    def __call__(self, stage: str, advance: int, total: int | None) -> None:
        now = self.clock()
        if stage not in self.state:  # a stage the plan did not name: track it anyway
            self.state[stage] = StageState()
            self.stages = self.stages + (stage,)
        st = self.state[stage]
        if st.started is None:
            st.started = now
            for earlier in self.stages[:self.stages.index(stage)]:
                self._end(earlier, now)  # finished, or skipped (a cache hit)
        if total is not None:
            st.total = total
        if advance:
            st.done += advance
            if st.first_at is None:
                st.first_at = now
        if st.total is not None and st.done >= st.total:
            self._end(stage, now)
        snap = self.snapshot(stage, now)
        for listener in self.listeners:
            listener(snap)

    def _end(self, stage: str, now: float) -> None:
        st = self.state[stage]
        if st.ended is None:
            st.ended = now
            rate = st.rate(now)
            if rate:
                self.rates[stage] = rate

    def close(self) -> None:
        """The run is over: remember this machine's rates for the next estimate."""
        now = self.clock()
        for stage in self.stages:
            if self.state[stage].started is not None:
                self._end(stage, now)
        measured = {s: self.rates[s] for s in self.stages
                    if self.state[s].rate(self.state[s].ended or now)}
        save_rates(self.device, measured)

    # -- estimates ---------------------------------------------------------------------------

    def _expected_units(self, stage: str) -> float | None:
        st = self.state[stage]
        if st.total is not None:
            return st.total
        if self.frames is None:
            return None
        if stage in ("detect", "render"):
            return self.frames
        if stage == "maed":  # a guess until the tracks are known: one person throughout
            return max(1, self.frames // CLIP_FRAMES)
        return 1  # body: a track

    def stage_eta(self, stage: str, now: float | None = None) -> float | None:
        """Seconds left for `stage` (0 when done; None when unknown)."""
        now = self.clock() if now is None else now
        st = self.state[stage]
        if st.ended is not None:
            return 0.0
        units = self._expected_units(stage)
        if units is None:
            return None
        rate = st.rate(now) or self.rates.get(stage)
        if rate is None:
            return None
        left = max(units - st.done, 0) * rate
        if st.first_at is not None and st.done == 1:  # the first unit's time is all we know
            left = max(left, (units - 1) * (now - st.started))
        return left

    def run_eta(self, now: float | None = None) -> float | None:
        """Seconds left for the whole run (None when any stage ahead is unknown)."""
        now = self.clock() if now is None else now
        total = 0.0
        for stage in self.stages:
            left = self.stage_eta(stage, now)
            if left is None:
                return None
            total += left
        return total

    def snapshot(self, stage: str, now: float | None = None) -> dict:
        now = self.clock() if now is None else now
        st = self.state[stage]
        eta, run_eta = self.stage_eta(stage, now), self.run_eta(now)
        return {"event": "progress", "stage": stage, "done": st.done, "total": st.total,
                "eta_s": None if eta is None else round(eta, 1),
                "run_eta_s": None if run_eta is None else round(run_eta, 1),
                "elapsed_s": round(now - self.started, 1)}


class JsonEvents:
    """A RunProgress listener writing one JSON object per line (stage start/end always,
    updates in between at most every `interval` seconds)."""

    def __init__(self, stream: IO[str] | None = None, interval: float = JSON_INTERVAL_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.stream = stream or sys.stderr
        self.interval, self.clock = interval, clock
        self._last: dict[str, float] = {}
        self._seen: set[str] = set()

    def __call__(self, snap: dict) -> None:
        now = self.clock()
        stage = snap["stage"]
        edge = stage not in self._seen or (snap["total"] is not None
                                           and snap["done"] >= snap["total"])
        if not edge and now - self._last.get(stage, -1e9) < self.interval:
            return
        self._seen.add(stage)
        self._last[stage] = now
        self.write(snap)

    def write(self, event: dict) -> None:
        self.stream.write(json.dumps(event) + "\n")
        self.stream.flush()


def format_eta(seconds: float | None) -> str:
    """'run: 1:02:03 left' / 'run: 4:05 left' / '' while unknown."""
    if seconds is None:
        return ""
    s = int(round(seconds))
    h, rem = divmod(s, 3600)
    m, s = divmod(rem, 60)
    return f"run: {h}:{m:02d}:{s:02d} left" if h else f"run: {m}:{s:02d} left"
