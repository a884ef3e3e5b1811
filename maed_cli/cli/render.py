"""`maed render`: overlay videos from saved results (no recomputation), side views, comparisons."""
from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape

from ..atomic import check_writable
from ..errors import InputError
from ._app import app, console

CAMERAS = ("ortho", "perspective")


def load_body(smpl: Path | None):
    """The SMPL body layer from an SMPL file, else from the official checkpoint's buffers."""
    from .. import assets
    from ..body.smpl import find_smpl_file, load_body_model
    buffers = None
    if find_smpl_file(smpl) is None:
        checkpoint = assets.find_asset(assets.CHECKPOINT_NAMES)
        if checkpoint is not None:
            from ..model.checkpoint import read_smpl_buffers
            buffers = read_smpl_buffers(checkpoint)
    return load_body_model(smpl, checkpoint_buffers=buffers)


def smoothed(results, smooth: bool, min_cutoff: float, beta: float, d_cutoff: float,
             smpl: Path | None):
    """`results`, One-Euro smoothed when asked (vertices recomputed with the body layer)."""
    if not smooth:
        return results
    from ..smoothing import OneEuroParams, smooth_results
    if min(min_cutoff, d_cutoff) <= 0 or beta < 0:
        raise InputError("--min-cutoff and --d-cutoff must be > 0, --beta >= 0")
    return smooth_results(results, OneEuroParams(min_cutoff, beta, d_cutoff), load_body(smpl))


SMOOTH_HELP = ("Smooth the motion first: One-Euro filter on rotations (6D), translation and "
               "camera. Off by default: raw MAED output.")
MIN_CUTOFF_HELP = "One-Euro cutoff at rest, Hz (lower: smoother, more lag)."
BETA_HELP = "One-Euro speed coefficient (higher: less lag on fast motion)."
D_CUTOFF_HELP = "One-Euro cutoff of the speed estimate, Hz."


@app.command("render")
def render(
    results_path: Path = typer.Argument(..., metavar="RESULTS",
                                        help="A `maed demo` results folder "
                                             "or a VIBE/TCMR *_output.pkl."),
    output: Path = typer.Option(None, "--output", "-o",
                                help="The mp4 to write (default: RESULTS/render.mp4, or "
                                     "compare.mp4 with --compare); for the results of one "
                                     "image, a .png or .jpg (default: render.png/.jpg like "
                                     "the image)."),
    video: Path = typer.Option(None, "--video", help="The input video (default: the one "
                                                     "recorded in summary.json; needed for "
                                                     "a pkl)."),
    side_view: bool = typer.Option(False, "--side-view", help="Add a panel with the meshes "
                                                              "turned 90° (doubles the width)."),
    wireframe: bool = typer.Option(False, "--wireframe", help="Draw mesh edges only."),
    alpha: float = typer.Option(1.0, "--alpha", min=0.0, max=1.0,
                                help="Mesh opacity over the video, 0..1."),
    antialias: bool = typer.Option(None, "--antialias/--no-antialias",
                                   help="4x multisampled outlines (default: on with a GPU, off "
                                        "with software GL, where it costs ~2.5x per frame)."),
    camera: str = typer.Option("ortho", "--camera",
                               help="ortho: each person's orthographic full-image camera "
                                    "(exact alignment, any results); perspective: the "
                                    "full-perspective translation cam_t."),
    focal: float = typer.Option(None, "--focal", help="Focal length in pixels (perspective "
                                                      "camera; default: image diagonal)."),
    compare: Path = typer.Option(None, "--compare", help="A second result set (ours or a "
                                                         "VIBE/TCMR *_output.pkl) rendered "
                                                         "beside the first, same frames."),
    labels: str = typer.Option("MAED,other", "--labels",
                               help="Panel labels with --compare, 'LEFT,RIGHT'."),
    world: bool = typer.Option(False, "--world",
                               help="Add a panel with the world (results with world.npz): "
                                    "the floor grid, every person, their trajectories and "
                                    "foot contacts, the video's camera as a frustum, from a "
                                    "fixed elevated 3/4 view."),
    smooth: bool = typer.Option(False, "--smooth", help=SMOOTH_HELP),
    min_cutoff: float = typer.Option(2.0, "--min-cutoff", help=MIN_CUTOFF_HELP),
    beta: float = typer.Option(1.0, "--beta", help=BETA_HELP),
    d_cutoff: float = typer.Option(1.0, "--d-cutoff", help=D_CUTOFF_HELP),
    smpl: Path = typer.Option(None, "--smpl", help="SMPL model file (for the mesh faces "
                                                   "when the results lack them, and --smooth)."),
) -> None:
    """Render results over their video: each person's mesh in a stable colour, depth-ordered.

    Headless (EGL, else OSMesa; see `maed doctor`). Writes an H.264 mp4 with the input's fps
    and frame size (audio dropped), atomically.
    """
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    from ..body.geometry import check_focal
    from ..render import (image_output_suffix, load_faces, render_image, render_video,
                          require_platform)
    from ..results import load_result_set
    from ..video.io import IMAGE_SUFFIXES
    if camera not in CAMERAS:
        raise InputError(f"--camera must be one of {', '.join(CAMERAS)}, got {camera!r}")
    names = [s.strip() for s in labels.split(",")]
    if len(names) != 2:
        raise InputError("--labels takes two names separated by a comma, e.g. MAED,VIBE")
    check_focal(focal)
    if output is not None:
        # an image is right for the results of one photo (checked once they are read)
        as_image = output.suffix.lower() in (".png", ".jpg", ".jpeg") and compare is None
        if not as_image and output.suffix.lower() != ".mp4":
            raise InputError(f"--output {output}: the overlay is an H.264 .mp4; give a name "
                             f"ending in .mp4")
        check_writable(output, "file", "--output")
    world_frame = None
    if world:
        from ..world.frames import load_world
        world_frame = load_world(results_path) if results_path.is_dir() else None
        if world_frame is None:
            raise InputError(f"--world: {results_path} has no world frame (no world.npz: the "
                             f"demo ran with --no-world or fell back to the camera frame, or "
                             f"these are VIBE results)")
    platform = require_platform()  # fail early, before any reading, when GL is missing
    results = load_result_set(results_path, video=video)
    results = smoothed(results, smooth, min_cutoff, beta, d_cutoff, smpl)
    other = None
    if compare is not None:
        other = load_result_set(compare, video=video or results.video)
        other = smoothed(other, smooth, min_cutoff, beta, d_cutoff, smpl)
    faces = results.faces
    if faces is None and other is not None:
        faces = other.faces
    if faces is None:
        faces = load_faces(smpl)
    base = results_path if results_path.is_dir() else results_path.parent
    image = Path(video or results.video or "")
    if image.suffix.lower() in IMAGE_SUFFIXES and results.summary.get("input", {}).get(
            "kind") == "image" and compare is None:
        # the results of one photo: an image like it, side panel in the same image
        output = output or base / f"render{image_output_suffix(image)}"
        render_image(results, output, faces=faces, image=video, side=side_view,
                     wireframe=wireframe, alpha=alpha, camera=camera, focal=focal,
                     antialias=antialias)
        console.print(f"[green]wrote[/] {escape(str(output))}")
        return
    if output is not None and output.suffix.lower() != ".mp4":
        raise InputError(f"--output {output}: these results are of a video; the overlay is "
                         f"an H.264 .mp4")
    if output is None:
        output = base / ("compare.mp4" if compare is not None else "render.mp4")
    with Progress(TextColumn("[bold]render[/] {task.description}"), BarColumn(),
                  TextColumn("{task.completed} frames"), TimeRemainingColumn(),
                  console=console, transient=True) as progress:
        task = progress.add_task(f"({platform})", total=None)
        render_video(results, output, faces=faces, video=video, side=side_view,
                     wireframe=wireframe, alpha=alpha, camera=camera, focal=focal,
                     compare=other, labels=(names[0], names[1]), antialias=antialias,
                     world=world_frame,
                     progress=lambda done, total: progress.update(task, completed=done,
                                                                  total=total))
    console.print(f"[green]wrote[/] {escape(str(output))}")
