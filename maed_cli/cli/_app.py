"""The Typer app and the consoles every subcommand prints through."""
from __future__ import annotations

import typer
from rich.console import Console

from .. import __version__

app = typer.Typer(
    name="maed",
    help="MAED (Wan et al., ICCV 2021) for video: detect and track people, estimate a 3D SMPL "
         "body per person per frame, render and export it; evaluate, train and profile the "
         "network.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
    context_settings={"help_option_names": ["-h", "--help"]},
)
console = Console()
err_console = Console(stderr=True)


def _version(value: bool) -> None:
    if value:
        console.print(f"maed {__version__}")
        raise typer.Exit()


@app.callback()
def _root(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                       help="Print the version and exit.")) -> None:
    """MAED command line."""


def not_implemented(command: str, issue: str) -> None:
    """For subcommands whose implementation has not landed yet."""
    err_console.print(f"[yellow]maed {command}: not implemented yet[/] ({issue})")
    raise typer.Exit(1)
