"""The `maed` command line: one thin module per subcommand, all wired onto one Typer app."""
from __future__ import annotations

import sys

from ..errors import MaedError
from ._app import app, err_console

# Each module registers its subcommand(s) on `app` when imported.
from . import (batch, demo, doctor, evaluate, export, profile, render, setup,  # noqa: E402,F401
               train)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `maed` script; returns the exit status.

    Usage errors are reported by Typer itself; a MaedError (a user mistake or a missing asset)
    becomes one red line and a non-zero status, never a traceback.
    """
    try:
        app(args=argv, prog_name="maed", standalone_mode=True)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except MaedError as exc:
        err_console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        return exc.exit_code
    except KeyboardInterrupt:
        err_console.print("[bold red]interrupted[/]")
        return 130
    return 0


def run() -> None:
    sys.exit(main())
