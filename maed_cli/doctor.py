"""`maed doctor`: what works, what is missing, and the exact command that fixes it."""
from __future__ import annotations

import os
import platform
import sys
from dataclasses import dataclass
from pathlib import Path

from . import assets
from .errors import MaedError


@dataclass
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""
    required: bool = True  # the demo cannot run without it
    broken: bool = False  # there, but unusable (detail says why)


def run_checks(render_probe: bool = True) -> list[Check]:
    checks: list[Check] = []
    checks.append(Check("python", True, f"{platform.python_version()} ({sys.executable})"))
    try:
        import torch
        checks.append(Check("torch", True, torch.__version__))
        if torch.cuda.is_available():
            checks.append(Check("GPU", True, f"{torch.cuda.get_device_name(0)} (CUDA "
                                             f"{torch.version.cuda})", required=False))
        else:
            checks.append(Check("GPU", False, "none: inference runs on the CPU (slower)",
                                "optional: a CUDA GPU and a CUDA build of torch",
                                required=False))
    except ImportError:
        checks.append(Check("torch", False, "not installed", "pip install torch torchvision"))
    try:
        import imageio_ffmpeg
        checks.append(Check("ffmpeg", True, imageio_ffmpeg.get_ffmpeg_exe()))
    except Exception as exc:  # noqa: BLE001 - any failure means no ffmpeg
        checks.append(Check("ffmpeg", False, str(exc)[:80], "pip install imageio-ffmpeg"))
    if render_probe:
        from .render import GL_PACKAGES, candidate_platforms, choose_platform
        backend = choose_platform()  # the very choice `--render` makes
        tried = ", ".join(candidate_platforms())
        checks.append(Check(
            "renderer", backend is not None,
            f"pyrender headless via {backend.upper()} (chosen from {tried})" if backend
            else f"no OpenGL platform works (tried {tried}); needed only for --render",
            f"sudo apt-get install {GL_PACKAGES}   (Debian/Ubuntu)", required=False))
    detector = assets.find_asset(("yolo11n.pt",))
    checks.append(Check("detector weights", detector is not None,
                        str(detector) if detector else "yolo11n.pt not found",
                        f"online: downloaded on first use; offline: put yolo11n.pt in "
                        f"{assets.asset_home()} (or use --boxes)", required=False))
    checks.extend(_asset_checks())
    return checks


def _asset_checks() -> list[Check]:
    """Each asset is read with the loader the demo uses (the checkpoint without building the
    network, which would cost seconds), so a file that is there but unusable shows as broken
    instead of OK. The demo prefers installed files to what the checkpoint carries, so a
    broken file is broken even when the checkpoint could stand in for it."""
    from .body.smpl import check_regressor, find_smpl_file, load_regressor
    from .body.smpl_files import read_smpl_file
    from .installer import install_target
    from .model.checkpoint import read_checkpoint

    checks: list[Check] = []
    weights_fix = ("maed setup weights model_best.pth.tar   (or: maed setup weights "
                   "--download)")
    checkpoint = assets.find_asset(assets.CHECKPOINT_NAMES)
    carried: dict = {}  # the SMPL buffers the checkpoint holds
    if checkpoint is None:
        checks.append(Check("checkpoint", False, "not found", weights_fix))
    else:
        try:
            carried = read_checkpoint(checkpoint).smpl_buffers
            checks.append(Check("checkpoint", True, str(checkpoint)))
        except Exception as exc:  # noqa: BLE001 - see _problem
            checks.append(Check("checkpoint", False, _problem(checkpoint, exc),
                                "replace it: " + weights_fix, broken=True))

    smpl_fix = ("maed setup smpl SMPL_NEUTRAL.pkl   (or install the official checkpoint, "
                "which carries one)")
    smpl = find_smpl_file()
    if smpl is not None:
        checks.append(_loads("SMPL model", smpl, lambda: read_smpl_file(smpl),
                             "replace it: maed setup smpl SMPL_NEUTRAL.pkl"))
    elif "v_template" in carried:
        checks.append(Check("SMPL model", True, f"neutral SMPL inside {checkpoint.name}"))
    else:
        checks.append(Check("SMPL model", False, "not found", smpl_fix))

    regressor_fix = "maed setup regressors DIR"
    for name, rows, required, absent in (
            (assets.REGRESSOR_EXTRA, 9, True, "not found"),
            (assets.REGRESSOR_H36M, 17, False, "not found (needed by maed eval only)")):
        label = Path(name).stem
        path = assets.find_asset(name)
        if path is not None:
            def load(name=name, rows=rows, label=label) -> None:
                check_regressor(load_regressor(name), rows, label)
            checks.append(_loads(label, path, load, "replace it: " + regressor_fix, required))
        elif name == assets.REGRESSOR_EXTRA and "J_regressor_extra" in carried:
            checks.append(Check(label, True, f"inside {checkpoint.name}"))
        else:
            checks.append(Check(label, False, absent, regressor_fix, required))

    home = str(assets.asset_home()) + (" ($MAED_HOME)" if os.environ.get("MAED_HOME") else "")
    try:
        install_target(assets.SMPL_NPZ)  # can `maed setup` write there?
        checks.append(Check("asset home", True, home, required=False))
    except MaedError as exc:
        checks.append(Check("asset home", False, str(exc), "set MAED_HOME to a folder you can "
                            "write (or unset it)", required=False, broken=True))
    return checks


def _loads(name: str, path: Path, load, fix: str, required: bool = True) -> Check:
    try:
        load()
    except Exception as exc:  # noqa: BLE001 - see _problem
        return Check(name, False, _problem(path, exc), fix, required, broken=True)
    return Check(name, True, str(path), required=required)


def _problem(path: Path, exc: Exception) -> str:
    """Why a file is unusable. Any exception counts, not only the loaders' own errors: an
    unforeseen one means the demo fails on the file too, and the doctor must not crash."""
    text = str(exc) if isinstance(exc, MaedError) else f"{type(exc).__name__}: {exc}"
    return text if str(path) in text else f"{path}: {text}"
