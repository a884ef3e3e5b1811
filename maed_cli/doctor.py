"""`maed doctor`: what works, what is missing, and the exact command that fixes it."""
from __future__ import annotations

import os
import platform
import sys
from dataclasses import dataclass

from . import assets


@dataclass
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""
    required: bool = True  # the demo cannot run without it


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
    checkpoint = assets.find_asset(assets.CHECKPOINT_NAMES)
    checks.append(Check("checkpoint", checkpoint is not None,
                        str(checkpoint) if checkpoint else "not found",
                        "maed setup weights model_best.pth.tar   (or: maed setup weights "
                        "--download)"))
    from .body.smpl import find_smpl_file
    smpl = find_smpl_file()
    if smpl is not None:
        checks.append(Check("SMPL model", True, str(smpl)))
    elif checkpoint is not None and checkpoint.name == assets.CHECKPOINT_NAMES[0]:
        checks.append(Check("SMPL model", True, f"neutral SMPL inside {checkpoint.name}"))
    else:
        checks.append(Check("SMPL model", False, "not found",
                            "maed setup smpl SMPL_NEUTRAL.pkl   (or install the official "
                            "checkpoint, which carries one)"))
    extra = assets.find_asset(assets.REGRESSOR_EXTRA)
    official = checkpoint is not None and checkpoint.name == assets.CHECKPOINT_NAMES[0]
    checks.append(Check("J_regressor_extra", extra is not None or official,
                        str(extra) if extra else ("inside the official checkpoint" if official
                                                  else "not found"),
                        "maed setup regressors DIR"))
    h36m = assets.find_asset(assets.REGRESSOR_H36M)
    checks.append(Check("J_regressor_h36m", h36m is not None,
                        str(h36m) if h36m else "not found (needed by maed eval only)",
                        "maed setup regressors DIR", required=False))
    checks.append(Check("asset home", True, str(assets.asset_home()) +
                        (" ($MAED_HOME)" if os.environ.get("MAED_HOME") else ""),
                        required=False))
    return checks
