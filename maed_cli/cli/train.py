from __future__ import annotations

from pathlib import Path

import typer

from ._app import app, console


@app.command("train", context_settings={"allow_extra_args": False})
def train(
    overrides: list[str] = typer.Argument(
        None, metavar="[KEY=VALUE]...",
        help="Config overrides, dotted keys, YAML values: optim.lr=5e-5 model.num_blocks=3 "
             "data.video_3d=[3dpw,mpii3d] out_dir=runs/x."),
    config: Path = typer.Option(None, "--config", "-c",
                                help="Training YAML, or the name of one in configs/: stage1 "
                                     "(images, vanilla), stage2 (hybrid video+images), "
                                     "presets/{hmr,spin,vibe,meva,maed} (dataset mixes), "
                                     "cpu-smoke (tiny CPU run)."),
    resume: Path = typer.Option(None, "--resume",
                                help="A training checkpoint (<out_dir>/checkpoints/last.pt) to "
                                     "continue exactly where it stopped, with the config "
                                     "stored in it; KEY=VALUE overrides apply on top (e.g. "
                                     "optim.epochs=120); --config is ignored."),
    skip_bad_samples: bool = typer.Option(False, "--skip-bad-samples",
                                          help="Drop db rows/clips that cannot be used (missing "
                                               "image, non-finite values, video shorter than "
                                               "a clip) and report the count, instead of "
                                               "stopping at the first."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No live progress display."),
) -> None:
    """Train MAED: stage 1 (images, vanilla), stage 2 (hybrid video + images).

    One process: [bold]maed train --config configs/stage2.yaml[/]. Several GPUs/processes:
    [bold]torchrun --nproc_per_node N -m maed_cli train --config ...[/] (DDP; rank 0 logs and
    writes checkpoints). Checkpoints, metrics.csv and config.yaml go to out_dir.
    """
    from ..errors import InputError
    from ..train.config import load_config
    from ..train.trainer import Trainer

    overrides = list(overrides or [])
    if resume is None and config is None:
        raise InputError("give --config FILE (e.g. configs/stage2.yaml) or --resume CHECKPOINT")
    if skip_bad_samples:
        overrides.append("data.skip_bad_samples=true")
    cfg = load_config(config, overrides) if resume is None else None
    if resume is not None and config is not None and not quiet:
        console.print("[yellow]--resume continues with the configuration stored in the "
                      "checkpoint; --config is ignored[/]")
    trainer = Trainer(cfg, resume=resume, console=console, quiet=quiet,
                      resume_overrides=overrides if resume is not None else ())
    try:
        if trainer.info.is_main and not quiet:
            for name, count in trainer.skipped.items():
                if count:
                    console.print(f"[yellow]skipped {count} bad samples in the {name} "
                                  f"datasets[/]")
            for name, report in trainer.init_report.items():
                console.print(f"init from {name}: {report}")
        summary = trainer.fit()
        if trainer.info.is_main and not quiet:
            for name, count in summary["replaced"].items():
                if count:
                    console.print(f"[yellow]{count} unreadable {name} samples were replaced "
                                  f"by the next readable one[/]")
            best = summary["best_pa_mpjpe"]
            console.print(f"done: {summary['epochs']} epochs, {summary['global_step']} steps"
                          + (f", best val PA-MPJPE {best:.1f} mm" if best is not None else "")
                          + f"; checkpoints in {Path(summary['out_dir']) / 'checkpoints'}")
    finally:
        trainer.close()
