from __future__ import annotations

from pathlib import Path

import typer

from ._app import app, not_implemented


@app.command("demo")
def demo(
    input: Path = typer.Argument(..., help="A video file (mp4/avi/mov/mkv/webm), a folder of "
                                           "images, or one image."),
    output: Path = typer.Option(None, "--output", "-o",
                                help="Results folder (default: <input-stem>_maed/ next to "
                                     "the input)."),
    render: bool = typer.Option(False, "--render", help="Also write an overlay video of the "
                                                        "meshes on the input."),
    device: str = typer.Option("auto", "--device", help="auto | cpu | cuda | cuda:N."),
) -> None:
    """Video -> tracked people -> MAED -> per-person SMPL results (and an overlay video)."""
    not_implemented("demo", "issue #4")
