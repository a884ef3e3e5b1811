from __future__ import annotations

from pathlib import Path

import typer

from ._app import app, not_implemented


@app.command("eval")
def evaluate(
    dataset: str = typer.Option("3dpw", "--dataset", help="3dpw | mpii3d | h36m."),
    data_dir: Path = typer.Option(None, "--data-dir", help="Dataset root folder."),
    checkpoint: Path = typer.Option(None, "--checkpoint", help="Checkpoint to evaluate "
                                                               "(default: the installed one)."),
) -> None:
    """Evaluate on 3DPW (the paper's protocol): MPJPE, PA-MPJPE, PVE, accel."""
    not_implemented("eval", "issue #6")
