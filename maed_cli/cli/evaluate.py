from __future__ import annotations

from pathlib import Path

import typer

from ._app import app
from ._demo_options import CompileOpt, DeviceOpt
from .setup import NoDownloadOpt

DATASETS = ("3dpw", "mpii3d", "h36m")
SPLITS = ("test", "val")


@app.command("eval")
def evaluate(
    dataset: str = typer.Option("3dpw", "--dataset", help="3dpw | mpii3d | h36m. 3DPW is read "
                                "from the official release or a 3dpw_<split>_db.pt; MPI-INF-3DHP "
                                "and Human3.6M from their VIBE/MAED db files."),
    data_dir: Path = typer.Option(None, "--data-dir", help="Dataset root: for 3DPW the folder "
                                  "holding sequenceFiles/ and imageFiles/ (or a "
                                  "3dpw_<split>_db.pt); for the others the folder the db's "
                                  "image paths live under."),
    split: str = typer.Option("test", "--split", help="test | val (3DPW: sequenceFiles/test "
                              "or sequenceFiles/validation)."),
    db: Path = typer.Option(None, "--db", help="A preprocessed <dataset>_<split>_db.pt (joblib, "
                            "as VIBE/MAED ship them) instead of the official release. Default: "
                            "looked up in --data-dir and --data-dir/database."),
    checkpoint: Path = typer.Option(None, "--checkpoint", help="Checkpoint to evaluate "
                                    "(default: the installed one)."),
    smpl: Path = typer.Option(None, "--smpl", help="Neutral SMPL model file (default: the "
                              "installed one, else the SMPL inside the official checkpoint)."),
    predictions: Path = typer.Option(None, "--predictions", help="Score saved predictions "
                                     "(.npz with vid_name, frame_id, pose (N,72) or rotmat, "
                                     "betas — e.g. from --save-predictions) instead of running "
                                     "the network."),
    interp: int = typer.Option(1, "--interp", min=1, help="Run the network on every K-th "
                               "frame only and interpolate the others (slerp on rotations), "
                               "as MAED's EVAL.INTERPOLATION (1, 2, 4 or 8; 1 = every frame)."),
    limit: int = typer.Option(None, "--limit", min=1, help="Evaluate only the first N frames "
                              "of the set (quick checks; the last track is cut)."),
    batch_pools: int = typer.Option(8, "--batch-pools", min=1, help="128-frame pools per "
                                    "network batch (8 as in MAED: 64 clips of 16 frames)."),
    workers: int = typer.Option(None, "--workers", min=0, help="Image-loading processes "
                                "(default: up to 4)."),
    device: DeviceOpt = "auto",
    amp: bool = typer.Option(True, "--amp/--no-amp", help="Mixed precision for the network on "
                             "a GPU (fp16, with an fp32 rerun of any batch that overflows; "
                             "ignored on CPU)."),
    compile_model: CompileOpt = False,
    output: Path = typer.Option(None, "--output", "-o", help="Write the full report (summary, "
                                "per-sequence breakdown, settings) as JSON."),
    save_predictions: Path = typer.Option(None, "--save-predictions", help="Write per-frame "
                                          "predictions and errors (.npz, no pickle)."),
    cache_dir: Path = typer.Option(None, "--cache-dir", help="Where the 3DPW set built from "
                                   "the release is cached (default: $MAED_HOME/cache or the "
                                   "user cache folder)."),
    rebuild_cache: bool = typer.Option(False, "--rebuild-cache", help="Rebuild the 3DPW set "
                                       "from the release even when a cached one is current."),
    json_out: bool = typer.Option(False, "--json", help="Print the report as JSON instead of "
                                  "a table."),
    sequence_order: str = typer.Option("listdir", "--sequence-order", help="listdir | sorted: "
                                       "the order the tracks are concatenated in for the "
                                       "'concatenated' accel and accel error (one frame triple "
                                       "spans each boundary, so they depend on it; nothing "
                                       "else does). listdir, as the official code: os.listdir "
                                       "of the 3DPW sequence folder (machine-dependent), or a "
                                       "db file's own row order; sorted: by sequence name, "
                                       "the same everywhere."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars."),
    no_download: NoDownloadOpt = False,
) -> None:
    """Evaluate MAED with the paper's protocol: MPJPE, PA-MPJPE, PVE, accel, accel error.

    Every frame of every person track is predicted once: tracks are cut into 128-frame pools,
    each pool into 8 interleaved 16-frame clips at stride 8 (padded tail frames are not
    scored). Errors are in mm after centring both skeletons on the hip midpoint; accel and
    accel error are given over all frames concatenated (as the MAED/VIBE code, in
    --sequence-order) and inside each track (TCMR style). Crops are the official code's.
    """
    from ..evaluate.report import print_report
    from ..evaluate.runner import EvalOptions, run_evaluation
    from ._app import console, err_console

    options = EvalOptions(
        dataset=dataset, data_dir=data_dir, split=split, db=db, checkpoint=checkpoint,
        smpl=smpl, predictions=predictions, interp=interp, limit=limit,
        batch_pools=batch_pools, workers=workers, device=device, amp=amp, compile=compile_model,
        output=output,
        save_predictions=save_predictions, cache_dir=cache_dir, rebuild_cache=rebuild_cache,
        quiet=quiet, download=not no_download, sequence_order=sequence_order)
    report = run_evaluation(options, console=err_console)
    print_report(report, console, as_json=json_out)
