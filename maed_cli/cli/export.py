"""`maed export`: meshes, animations and joint tables from saved results."""
from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape

from ..atomic import check_writable
from ._app import app, console
from .render import BETA_HELP, D_CUTOFF_HELP, MIN_CUTOFF_HELP, SMOOTH_HELP, load_body, smoothed


@app.command("export")
def export(
    results_path: Path = typer.Argument(..., metavar="RESULTS",
                                        help="A `maed demo` results folder "
                                             "or a VIBE/TCMR *_output.pkl."),
    formats: str = typer.Option(..., "--format", "-f",
                                help="Comma-separated: obj, ply (a mesh per frame per person), "
                                     "glb (animated skinned body per person, and scene.glb "
                                     "with everyone, the camera and a floor), bvh (skeleton "
                                     "animation per person), csv, json (joints per frame), "
                                     "angles (anatomical joint angles per frame, degrees: "
                                     "angles.csv and angles.json)."),
    frame: str = typer.Option(None, "--frame",
                              help="world: y up, floor at y = 0, everyone in one world that "
                                   "stays put when the camera turns (the default when the "
                                   "results have world.npz); camera: y-up camera frame, "
                                   "people placed where the camera saw them (the default "
                                   "otherwise)."),
    output: Path = typer.Option(None, "--output", "-o",
                                help="Folder to write into (default: RESULTS/export)."),
    video: Path = typer.Option(None, "--video", help="The input video (for a pkl: its size "
                                                     "and fps)."),
    pose_correctives: bool = typer.Option(True, "--pose-correctives/--no-pose-correctives",
                                          help="glb: include SMPL's 207 pose blend shapes as "
                                               "morph targets (exact body; ~17.7 MB per person). "
                                               "Without: plain skinning, small files."),
    smooth: bool = typer.Option(False, "--smooth", help=SMOOTH_HELP),
    min_cutoff: float = typer.Option(2.0, "--min-cutoff", help=MIN_CUTOFF_HELP),
    beta: float = typer.Option(1.0, "--beta", help=BETA_HELP),
    d_cutoff: float = typer.Option(1.0, "--d-cutoff", help=D_CUTOFF_HELP),
    smpl: Path = typer.Option(None, "--smpl", help="SMPL model file (glb/bvh need the body "
                                                   "model; default: the installed one)."),
) -> None:
    """Export results: y-up meshes, animations and joints in the world frame (floor at
    y = 0) when the results have one, else placed as the camera saw them. Every file is
    written atomically."""
    from ..export import export_results, parse_formats, parse_frame, resolve_frame
    from ..results import load_result_set
    from ..world.frames import load_world
    wanted = parse_formats(formats)
    parse_frame(frame)  # a bad value is refused before anything is read
    base = results_path if results_path.is_dir() else results_path.parent
    folder = output or base / "export"
    check_writable(folder, "folder", "--output", inside=True)
    world = load_world(results_path) if results_path.is_dir() else None
    frame = resolve_frame(frame, world)
    results = load_result_set(results_path, video=video)
    results = smoothed(results, smooth, min_cutoff, beta, d_cutoff, smpl)
    body = load_body(smpl) if {"glb", "bvh"} & set(wanted) else None
    faces = None
    if body is None and {"obj", "ply"} & set(wanted):
        from ..render import load_faces
        faces = load_faces(smpl)
    with console.status(f"exporting {', '.join(wanted)} ({frame} frame)"):
        files = export_results(results, folder, wanted, body=body, faces=faces,
                               pose_correctives=pose_correctives,
                               world=world if frame == "world" else None)
    console.print(f"[green]wrote[/] {len(files)} files under {escape(str(folder))} "
                  f"({frame} frame{': y up, floor at y = 0' if frame == 'world' else ''})",
                  soft_wrap=True)
