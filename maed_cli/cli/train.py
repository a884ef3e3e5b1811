from __future__ import annotations

from pathlib import Path

import typer

from ._app import app, not_implemented


@app.command("train")
def train(
    config: Path = typer.Option(None, "--config", help="Training YAML (configs/stage1.yaml, "
                                                       "configs/stage2.yaml, ...)."),
    resume: Path = typer.Option(None, "--resume", help="Checkpoint to resume from."),
) -> None:
    """Train MAED (two stages: images, then hybrid video+image); scales out with torchrun."""
    not_implemented("train", "issue #7")
