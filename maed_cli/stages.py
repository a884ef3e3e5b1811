"""What a run reports as it goes, shared by the demo's passes and the photo pipeline: the
`Progress` callback (consumed by maed_cli.progress for the run's time left) and `StageClock`,
the seconds per stage that end up in summary.json["timings_s"].
"""
from __future__ import annotations

import time
from collections.abc import Callable

Progress = Callable[[str, int, int | None], None]  # (stage, advance, total)


class StageClock:
    """Seconds spent per stage, accumulated over a run (decode, detect, track, crop, ...)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    def add(self, stage: str, seconds: float) -> None:
        self.seconds[stage] = self.seconds.get(stage, 0.0) + seconds

    def timed(self, stage: str, iterable):
        """Iterate, charging the time spent producing each item to `stage`."""
        iterator = iter(iterable)
        while True:
            t = time.perf_counter()
            try:
                item = next(iterator)
            except StopIteration:
                self.add(stage, time.perf_counter() - t)
                return
            self.add(stage, time.perf_counter() - t)
            yield item
