"""Ctrl-C and SIGTERM end a run cleanly: temporaries removed, what can be reused kept.

Ctrl-C raises KeyboardInterrupt in the main thread, which unwinds through the atomic writers
(see maed_cli.atomic), so no half-written folder is left. SIGTERM (`kill`, Slurm's time
limit, a container stopping) would end the process on the spot; `terminate_as_exit` turns it
into SystemExit(143), which unwinds the same way. kill -9 cannot be caught: what survives
it is what was already renamed into place (the resume folder, see maed_cli.resume).

`KILL_ENV` is a test seam, like the trainer's: `MAED_DEMO_KILL_AFTER_TRACKS=N` with
`MAED_DEMO_KILL_SIGNAL=INT|TERM|KILL` makes `maed demo` signal itself once N tracks have
been through the network, so tests can interrupt it at a known point.
"""
from __future__ import annotations

import os
import signal
import threading

KILL_ENV = "MAED_DEMO_KILL_AFTER_TRACKS"
KILL_SIGNAL_ENV = "MAED_DEMO_KILL_SIGNAL"


class terminate_as_exit:
    """SIGTERM raises SystemExit(143) in the main thread while the block runs, so the work in
    progress removes its temporary folder instead of leaving it."""

    def __enter__(self):
        self._previous = None
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGTERM, self._handler)
        return self

    @staticmethod
    def _handler(signum, frame):
        raise SystemExit(128 + signum)

    def __exit__(self, *exc):
        if self._previous is not None:
            signal.signal(signal.SIGTERM, self._previous)
        return False


def maybe_kill_for_test(tracks_done: int) -> None:
    """The test seam: signal this process once `tracks_done` reaches $MAED_DEMO_KILL_AFTER_TRACKS."""
    at = os.environ.get(KILL_ENV)
    if at and tracks_done == int(at):
        name = os.environ.get(KILL_SIGNAL_ENV, "INT").upper()
        os.kill(os.getpid(), getattr(signal, f"SIG{name}"))
