from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from ..errors import InputError
from ._app import app, console

KINDS = ("smpl", "weights", "regressors")

#: demo, batch and eval: what happens when no checkpoint is given or installed.
NoDownloadOpt = Annotated[bool, typer.Option(
    "--no-download", help="Never download the official checkpoint. Without this option, when "
                          "no --checkpoint is given and none is installed, it is downloaded "
                          "once (one large file; resumable, verified) into the asset folder "
                          "($MAED_HOME or the user data folder) before the run.")]


@app.command("setup")
def setup(
    what: str = typer.Argument(..., help="What to install: smpl | weights | regressors."),
    path: Path = typer.Argument(None, help="smpl: SMPL_NEUTRAL.pkl, any official SMPL pkl name "
                                           "or the SMPL zip (converted once to a safe .npz). "
                                           "weights: the official model_best.pth.tar or a "
                                           "maed checkpoint (verified by loading). "
                                           "regressors: the folder holding "
                                           "J_regressor_extra.npy / J_regressor_h36m.npy."),
    download: bool = typer.Option(False, "--download", help="weights only: fetch the official "
                                                            "checkpoint from its public Google "
                                                            "Drive file (needs internet; "
                                                            "resumes an interrupted download, "
                                                            "verifies it before installing)."),
) -> None:
    """Install SMPL, the checkpoint or the joint regressors into the asset folder.

    The folder is $MAED_HOME when set, else the user data folder (see `maed doctor`).
    Re-running with the same file changes nothing.
    """
    from .. import installer

    if what not in KINDS:
        raise InputError(f"unknown asset {what!r}: choose one of {', '.join(KINDS)}")
    if what == "weights" and download:
        results = installer.download_checkpoint(console=console)
    elif path is None:
        raise InputError(f"maed setup {what} needs a PATH"
                         + (" (or --download)" if what == "weights" else ""))
    elif what == "smpl":
        results = [installer.install_smpl(path)]
    elif what == "weights":
        results = installer.install_weights(path)
    else:
        results = installer.install_regressors(path)
    table = Table(title="maed setup", show_lines=False)
    for column in ("asset", "status", "path", "detail"):
        table.add_column(column, overflow="fold")
    for item in results:
        colour = "green" if item.status in ("installed", "available") else "cyan"
        table.add_row(item.asset, f"[{colour}]{item.status}[/]", str(item.path), item.detail)
    console.print(table)
