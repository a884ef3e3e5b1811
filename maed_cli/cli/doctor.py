from __future__ import annotations

from ._app import app, not_implemented


@app.command("doctor")
def doctor() -> None:
    """Check Python/torch/GPU, renderer, ffmpeg and every asset; say how to fix what is missing."""
    not_implemented("doctor", "issue #3")
