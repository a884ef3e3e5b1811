"""`maed view`: the results in a browser page — video, 3D scene, joint angles."""
from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape

from ..atomic import check_writable
from ..errors import InputError
from ._app import app, console


def check_out_folder(out: Path, results_path: Path) -> None:
    """--out is replaced as a whole: only a new folder, an empty one or an earlier page."""
    check_writable(out, "folder", "--out")
    out_r, results_r = out.expanduser().resolve(), results_path.expanduser().resolve()
    if out_r == results_r or out_r in results_r.parents:
        raise InputError(f"--out {out}: would replace the results themselves; choose another "
                         f"folder")
    if out_r.is_dir() and any(out_r.iterdir()) and not (
            (out_r / "index.html").is_file() and (out_r / "data" / "meta.json").is_file()):
        raise InputError(f"--out {out}: exists and is not an earlier `maed view` page; it would "
                         f"be replaced as a whole, so choose a new or empty folder")


@app.command("view")
def view(
    results_path: Path = typer.Argument(..., metavar="RESULTS",
                                        help="A `maed demo` results folder "
                                             "or a VIBE/TCMR *_output.pkl."),
    port: int = typer.Option(8765, "--port", "-p",
                             help="Port on 127.0.0.1 to serve the page on (0: any free port)."),
    out: Path = typer.Option(None, "--out", help="Write a self-contained static folder (page, "
                                                 "data, a copy of the video) instead of "
                                                 "serving; serve it with any static web "
                                                 "server, e.g. `python -m http.server -d DIR`."),
    video: Path = typer.Option(None, "--video", help="The input video, if it is not where "
                                                     "summary.json says (or for a pkl)."),
    no_video: bool = typer.Option(False, "--no-video", help="--out: do not copy the video."),
    smpl: Path = typer.Option(None, "--smpl", help="SMPL model file for the mesh triangles "
                                                   "(default: the installed one)."),
) -> None:
    """Look at results in the browser: the input video beside a 3D scene of every person (the
    world frame when the run has one, else the camera's), one timeline for both, and the
    selected person's joint angles. Keys: space, arrows, [ ], 1-9, c, g, h (help)."""
    from ..render import load_faces
    from ..viewer.data import ViewerData
    from ..viewer.server import make_server, write_static
    if not 0 <= port <= 65535:
        raise InputError(f"--port {port}: must be 0..65535")
    if out is not None:
        check_out_folder(out, results_path)
    with console.status("reading results"):
        data = ViewerData(results_path, faces=load_faces(smpl), video=video)
    if out is not None:
        from rich.progress import Progress
        with Progress(console=console, transient=True) as progress:
            task = progress.add_task("writing the page", total=None)
            write_static(data, out, lambda done, total: progress.update(task, completed=done,
                                                                       total=total),
                         copy_video=not no_video)
        console.print(f"[green]wrote[/] {escape(str(out))} (serve it: python -m http.server "
                      f"-d {escape(str(out))})")
        return
    try:
        server = make_server(data, port)
    except OSError as exc:
        raise InputError(f"--port {port}: cannot listen on 127.0.0.1 ({exc.strerror}); choose "
                         f"another port (0: any free one)") from None
    host, bound = server.server_address[:2]
    console.print(f"maed view: [bold]http://{host}:{bound}/[/]  ({len(data.tracks)} people, "
                  f"{data.frame} frame{'' if data.video else ', no video'}); Ctrl-C stops")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        console.print("stopped")
    finally:
        server.server_close()
