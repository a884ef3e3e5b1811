from __future__ import annotations

import typer

from ._app import app, not_implemented


@app.command("profile")
def profile(
    blocks: int = typer.Option(6, "--blocks", min=1, max=12, help="Number of STE blocks."),
    frames: int = typer.Option(16, "--frames", min=1, max=16, help="Frames per clip."),
) -> None:
    """Parameters, multiply-accumulates (the supplementary's Table 3) and measured speed."""
    not_implemented("profile", "issue #8")
