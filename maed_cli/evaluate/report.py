"""Print an evaluation report: a rich table (ours beside the paper's numbers) or JSON."""
from __future__ import annotations

import json
import sys

from rich.console import Console
from rich.table import Table


def _fmt(value: float | None) -> str:
    return "—" if value is None else f"{value:.1f}"


def report_table(report: dict) -> Table:
    m = report["metrics"]
    paper = report.get("paper") or {}
    readme_accel = paper.get("accel_readme")
    title = f"maed eval · {report['dataset']} {report['split']} · mm (accel: mm/frame²)"
    table = Table(title=title, title_justify="left")
    table.add_column("metric")
    table.add_column("ours", justify="right")
    if paper:
        table.add_column("paper", justify="right")
    table.caption_justify = "left"
    table.add_column("how", style="dim")
    rows = [
        ("MPJPE", m["mpjpe"], paper.get("mpjpe"), "hip-centred"),
        ("PA-MPJPE", m["pa_mpjpe"], paper.get("pa_mpjpe"), "after per-frame Procrustes"),
        ("PVE", m["pve"], paper.get("pve"), "mesh, no alignment"),
        ("accel", m["accel"]["concatenated"], readme_accel,
         "prediction's own, all frames concatenated (MAED/VIBE code)"),
        ("accel", m["accel"]["per_sequence"], None, "prediction's own, inside each track"),
        ("accel error", m["accel_error"]["concatenated"], readme_accel,
         "vs ground truth, all frames concatenated (MAED/VIBE code)"),
        ("accel error", m["accel_error"]["per_sequence"], None,
         "vs ground truth, inside each track (TCMR)"),
    ]
    for name, ours, theirs, how in rows:
        cells = [name, _fmt(ours)]
        if paper:
            mark = " †" if theirs is not None and theirs == readme_accel else ""
            cells.append("" if theirs is None else f"{theirs:.1f}{mark}")
        cells.append(how)
        table.add_row(*cells)
    counts = report["counts"]
    table.add_section()
    frames = str(counts["frames"])
    if counts["frames"] != counts["frames_in_set"]:
        frames += f" of {counts['frames_in_set']}"
    rows = [("frames", frames, "each predicted once"),
            ("sequences", str(counts["sequences"]), "person tracks")]
    order = report.get("protocol", {}).get("sequence_order")
    if order:
        rows.append(("order", order["mode"], "of the tracks in the concatenated accel "
                     "(--sequence-order)"))
    for name, value, how in rows:
        table.add_row(name, value, *([""] if paper else []), how)
    if paper:
        table.caption = ("† the MAED README's ACCEL column; whether it is accel or accel error "
                         "is not confirmed")
    return table


def print_report(report: dict, console: Console, as_json: bool = False) -> None:
    if as_json:  # plain text: rich would wrap long lines
        sys.stdout.write(json.dumps(report, indent=2) + "\n")
        return
    console.print(report_table(report))
    for note in report.get("notes", []):
        console.print(f"[dim]note:[/] {note}", highlight=False)
