from __future__ import annotations

import typer

from ._app import app, not_implemented


@app.command("setup")
def setup(
    what: str = typer.Argument(..., help="smpl | weights | regressors."),
    path: str = typer.Argument(None, help="File, zip or folder to install."),
) -> None:
    """Install SMPL, the checkpoint or the joint regressors into the asset folder."""
    not_implemented("setup", "issue #3")
