"""The `maed` command line: one thin module per subcommand, all wired onto one Typer app."""
from __future__ import annotations

import os
import sys
import warnings

from rich.markup import escape

from ..errors import MaedError
from ._app import app, err_console

# Each module registers its subcommand(s) on `app` when imported.
from . import (batch, demo, doctor, evaluate, export, profile, render, setup,  # noqa: E402,F401
               train, view)


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Our warnings (a truncated video, an fp16 rerun) as one yellow line, not file:line."""
    err_console.print(f"[yellow]warning:[/] {escape(str(message))}", highlight=False,
                      soft_wrap=True)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `maed` script; returns the exit status.

    Usage errors are reported by Typer itself; a MaedError (a user mistake or a missing asset)
    becomes one red line and a non-zero status, never a traceback; so does an OSError that
    no check foresaw (a full disk), unless MAED_DEBUG is set.
    """
    try:
        with warnings.catch_warnings():  # restores the default display afterwards
            warnings.showwarning = _show_warning
            app(args=argv, prog_name="maed", standalone_mode=True)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except MaedError as exc:
        # paths like clips/[final].mp4 are text, not rich markup
        err_console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False,
                          soft_wrap=True)
        return exc.exit_code
    except KeyboardInterrupt:
        err_console.print("[bold red]interrupted[/]")
        return 130
    except OSError as exc:  # the disk filled up, a folder vanished, ...: say which file
        if os.environ.get("MAED_DEBUG"):
            raise
        where = f" {exc.filename}" if exc.filename else ""
        err_console.print(f"[bold red]error:[/] cannot read or write{escape(where)}: "
                          f"{escape(str(exc.strerror or exc))} (MAED_DEBUG=1 shows the "
                          f"traceback)",
                          highlight=False, soft_wrap=True)
        return 1
    return 0


def run() -> None:
    sys.exit(main())
