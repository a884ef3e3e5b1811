"""`maed profile`: parameters, multiply-accumulates (supplementary Table 3) and measured speed."""
from __future__ import annotations

import json
from typing import Optional

import torch
import typer
from rich.table import Table

from ..errors import InputError
from ._app import app, console, err_console

COMPARE_CHOICES = ("vibe",)


def _parse_batch_sizes(text: Optional[str]) -> list[int]:
    if text is None:
        return []
    sizes = []
    for piece in text.replace(" ", "").split(","):
        if not piece:
            continue
        if not piece.isdigit() or int(piece) < 1:
            raise InputError(f"--batch-size takes positive integers separated by commas "
                             f"(e.g. 1 or 1,4,8), got {text!r}")
        sizes.append(int(piece))
    if not sizes:
        raise InputError("--batch-size is empty; give e.g. 1 or 1,4,8")
    return sizes


def _counts_table(count, title: str) -> Table:
    table = Table(title=title, title_justify="left", show_edge=False, pad_edge=False)
    table.add_column("part")
    table.add_column("params", justify="right")
    table.add_column("GMACs / clip", justify="right")
    table.add_column("GMACs / frame", justify="right")
    table.add_column("share", justify="right")
    for part in count.parts:
        if part.params == 0 and part.macs == 0:
            continue
        share = part.macs / count.macs_per_clip if count.macs_per_clip else 0.0
        table.add_row(part.name, f"{part.params / 1e6:.3f} M", f"{part.macs / 1e9:.2f}",
                      f"{part.macs / 1e9 / count.frames:.3f}", f"{share:.1%}")
    if any(part.name == "embed+head" for part in count.parts):
        table.caption = "embed+head: cls/pos/temp embeddings, final LayerNorm, pre_logits"
        table.caption_justify = "left"
    table.add_section()
    table.add_row("[bold]total[/]", f"[bold]{count.params / 1e6:.3f} M[/]",
                  f"[bold]{count.gmacs_per_clip:.2f}[/]", f"[bold]{count.gmacs_per_frame:.3f}[/]",
                  "100%")
    return table


def _clip_words(count) -> str:
    if count.interp == 1:
        return f"{count.frames} frames"
    return (f"{count.frames} frames, 1 in {count.interp} through the network "
            f"({count.network_frames} network frames)")


def _speed_table(results) -> Table:
    table = Table(title="Speed (median after warm-up)", title_justify="left", show_edge=False,
                  pad_edge=False)
    for name, justify in (("network", "left"), ("batch", "right"), ("frames/s", "right"),
                          ("clips/s", "right"), ("latency / batch", "right"),
                          ("GMACs/s", "right"), ("peak memory", "right")):
        table.add_column(name, justify=justify)
    for r in results:
        memory = "—" if r.peak_memory_mb is None else (
            f"{r.peak_memory_mb:,.0f} MiB" + (" (process RSS)" if r.memory_kind ==
                                              "process_peak_rss" else ""))
        table.add_row(r.name, str(r.batch_size), f"{r.frames_per_s:.2f}",
                      f"{r.clips_per_s:.3f}", f"{r.latency_ms:,.1f} ms",
                      "—" if r.gmacs_per_s is None else f"{r.gmacs_per_s:.1f}", memory)
    return table


@app.command("profile")
def profile(
    blocks: int = typer.Option(6, "--blocks", min=1, max=12,
                               help="Number of STE blocks (the paper's model has 6)."),
    frames: int = typer.Option(16, "--frames", min=1,
                               help="Frames per clip (sequence frames; see --interp)."),
    interp: int = typer.Option(
        1, "--interp", min=1,
        help="Run every K-th frame through the network and interpolate the others: "
             "--frames 16 --interp 2 is Table 3's '8f' (8 network frames per 16-frame "
             "sequence). At most 16 frames go through the network."),
    st_mode: str = typer.Option("parallel", "--st-mode",
                                help="Attention variant: parallel (the paper's), series, "
                                     "coupling, vanilla."),
    compare: Optional[str] = typer.Option(
        None, "--compare",
        help="Also profile another network side by side. 'vibe': ResNet-50 features + "
             "2-layer GRU(1024) + iterative regressor, built locally with random weights; it "
             "runs every frame (VIBE has no interpolation)."),
    batch_size: Optional[str] = typer.Option(
        None, "--batch-size", "-b",
        help="Measure speed with this many clips per forward; a comma list sweeps "
             "(e.g. 1,4,8). Without it only the counts are printed."),
    device: str = typer.Option("auto", "--device",
                               help="Where to measure speed: auto (CUDA if present), cpu, "
                                    "cuda, cuda:N."),
    dtype: str = typer.Option("fp32", "--dtype",
                              help="fp32, or bf16/fp16 autocast (fp16: CUDA only)."),
    channels_last: Optional[bool] = typer.Option(
        None, "--channels-last/--no-channels-last",
        help="Channels-last convolutions. Default: on CPU (oneDNN runs them fastest); on CUDA "
             "off for MAED (PyTorch's GroupNorm copies channels-last activations to NCHW and "
             "back) and on for the VIBE-shaped network (BatchNorm)."),
    compile_model: bool = typer.Option(
        False, "--compile",
        help="torch.compile the network first (the first call compiles: minutes on CPU)."),
    warmup: int = typer.Option(2, "--warmup", min=0, help="Untimed forwards before timing."),
    iters: int = typer.Option(5, "--iters", min=1, help="Timed forwards (the median is "
                                                        "reported)."),
    threads: Optional[int] = typer.Option(None, "--threads", min=1,
                                          help="CPU threads for torch (default: torch's)."),
    as_json: bool = typer.Option(False, "--json",
                                 help="Print one JSON object instead of tables."),
) -> None:
    """Parameters, multiply-accumulates (the supplementary's Table 3) and measured speed.

    Counts come from tracing the real network (no weights needed, about a second); speed is
    measured only with --batch-size, on random weights and random input.

    MACs = multiply-accumulates of convolutions, linear layers and attention matmuls
    (torch's flop counter / 2); norms and elementwise work are not counted. The paper's
    "GFLOPs" are GMACs in this sense.
    """
    from ..model.encoder import ST_MODES
    from ..profiling import CONVENTION, count_maed, count_vibe

    if st_mode not in ST_MODES:
        raise InputError(f"--st-mode must be one of {', '.join(ST_MODES)}, got {st_mode!r}")
    if compare is not None and compare not in COMPARE_CHOICES:
        raise InputError(f"--compare takes {', '.join(COMPARE_CHOICES)}, got {compare!r}")
    sizes = _parse_batch_sizes(batch_size)
    if threads is not None:
        torch.set_num_threads(threads)

    maed = count_maed(blocks=blocks, frames=frames, interp=interp, st_mode=st_mode)  # type: ignore[arg-type]
    executed = count_maed(blocks=blocks, frames=frames, interp=interp, st_mode=st_mode,  # type: ignore[arg-type]
                          executed=True)
    vibe = count_vibe(frames=frames) if compare == "vibe" else None
    speed = _measure(sizes, blocks, st_mode, maed, vibe, device, dtype, channels_last,
                     compile_model, warmup, iters, quiet=as_json) if sizes else []

    if as_json:
        out = maed.to_dict()
        out["convention"] = CONVENTION
        out["gmacs_executed_per_clip"] = round(executed.gmacs_per_clip, 4)
        if vibe is not None:
            out["vibe"] = vibe.to_dict()
            out["vibe"]["speed"] = [r.to_dict() for r in speed if r.name == "VIBE"]
            out["macs_ratio_maed_vibe"] = round(maed.macs_per_clip / vibe.macs_per_clip, 4)
        out["speed"] = [r.to_dict() for r in speed if r.name != "VIBE"]
        out["torch"] = torch.__version__
        out["threads"] = torch.get_num_threads()
        print(json.dumps(out, indent=2))
        return

    console.print(_counts_table(maed, f"{maed.name} ({st_mode}), one clip of "
                                      f"{_clip_words(maed)}"))
    if maed.paper_gmacs is not None:
        console.print(f"paper (supplementary Table 3): {maed.paper_gmacs:.1f} G — here "
                      f"{maed.gmacs_per_clip:.1f} G ({maed.gmacs_per_clip / maed.paper_gmacs - 1:+.1%})")
    console.print(f"executed by this implementation: {executed.gmacs_per_clip:.1f} G (the "
                  f"last block's projection and MLP run for the cls token alone, the only "
                  f"one that leaves the encoder; same outputs)")
    if vibe is not None:
        console.print()
        console.print(_counts_table(vibe, f"VIBE-shaped network, one clip of {_clip_words(vibe)}"))
        if vibe.paper_gmacs is not None:
            console.print(f"paper (supplementary Table 3): {vibe.paper_gmacs:.1f} G — here "
                          f"{vibe.gmacs_per_clip:.1f} G "
                          f"({vibe.gmacs_per_clip / vibe.paper_gmacs - 1:+.1%})")
        console.print(f"MAED / VIBE: {maed.macs_per_clip / vibe.macs_per_clip:.2f}× the MACs, "
                      f"{maed.params / vibe.params:.2f}× the parameters")
    console.print(f"[dim]{CONVENTION}[/]")
    if speed:
        console.print()
        console.print(_speed_table(speed))
        device_words = f"{speed[0].device}, {speed[0].dtype}, torch {torch.__version__}"
        if speed[0].device == "cpu":
            device_words += f", {torch.get_num_threads()} threads"
        console.print(f"[dim]{device_words}; random weights and input; frames/s counts "
                      f"sequence frames (interpolated ones included)[/]")
        names = {r.name for r in speed}
        if "VIBE" in names and len(names) == 2:
            for r in speed:
                twin = next((v for v in speed if v.name == "VIBE"
                             and v.batch_size == r.batch_size), None)
                if r.name != "VIBE" and twin is not None:
                    console.print(f"batch {r.batch_size}: MAED takes "
                                  f"{r.latency_ms / twin.latency_ms:.2f}× VIBE's time")


def _measure(sizes, blocks, st_mode, maed, vibe, device_name, dtype_name, channels_last,
             compile_model, warmup, iters, quiet):
    from rich.progress import Progress

    from ..model import MAED
    from ..devices import resolve_device, resolve_dtype
    from ..model.inference import prepare_for_inference
    from ..model.vibe import VIBELike
    from ..profiling import measure_speed

    device = resolve_device(device_name)
    dtype = resolve_dtype(dtype_name, device)
    networks = [(maed.name, lambda: MAED(num_blocks=blocks, st_mode=st_mode), maed)]
    if vibe is not None:
        networks.append(("VIBE", VIBELike, vibe))
    results = []
    with Progress(console=err_console, transient=True, disable=quiet) as progress:
        task = progress.add_task("measuring speed", total=len(networks) * len(sizes))
        for name, build, count in networks:
            model = prepare_for_inference(build(), device, channels_last=channels_last,
                                          compile=compile_model)
            for size in sizes:
                progress.update(task, description=f"{name}, batch {size}")
                try:
                    results.append(measure_speed(
                        model, name, batch_size=size, frames=count.frames, interp=count.interp,
                        device=device, dtype=dtype, warmup=warmup, iters=iters,
                        macs_per_clip=count.macs_per_clip))
                except torch.OutOfMemoryError:
                    raise InputError(f"{name} at batch size {size} does not fit in "
                                     f"{device}'s memory; try a smaller --batch-size") from None
                progress.advance(task)
            del model
    return results
