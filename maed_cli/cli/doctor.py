from __future__ import annotations

import typer
from rich.table import Table

from ._app import app, console


@app.command("doctor")
def doctor(
    no_render_probe: bool = typer.Option(False, "--no-render-probe",
                                         help="Skip trying the OpenGL platforms (faster)."),
) -> None:
    """Check Python/torch/GPU, renderer, ffmpeg and every asset; say how to fix what is missing.

    Every asset found is also read, as the demo would. Exits with status 1 when
    something the demo needs is missing or broken.
    """
    from ..doctor import run_checks

    checks = run_checks(render_probe=not no_render_probe)
    table = Table(title="maed doctor")
    for column in ("check", "", "found", "fix"):
        table.add_column(column, overflow="fold")
    for check in checks:
        colour = "red" if check.required else "yellow"
        mark = ("[green]OK[/]" if check.ok else f"[{colour}]BROKEN[/]" if check.broken
                else "[red]MISSING[/]" if check.required else "[yellow]--[/]")
        table.add_row(check.name, mark, check.detail, "" if check.ok else check.fix)
    console.print(table)
    blocking = [c for c in checks if c.required and not c.ok]
    if blocking:
        missing = [c.name for c in blocking if not c.broken]
        broken = [c.name for c in blocking if c.broken]
        console.print("[red]The demo cannot run yet:[/] " + "; ".join(
            f"{what} {', '.join(names)}" for what, names in (("missing", missing),
                                                            ("broken", broken)) if names)
            + ".")
        raise typer.Exit(1)
    console.print("[green]Everything the demo needs is in place.[/]")
