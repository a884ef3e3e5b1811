"""Headless OpenGL for the renderer: which platform works here, chosen before GL is loaded.

The first renderer created picks a headless platform (`choose_platform`: EGL — a GPU's or
Mesa's — then OSMesa), tried in child processes because a failing GL import can abort the
interpreter and PyOpenGL binds its platform once per process; only then is pyrender imported.
When no platform works, `RendererUnavailable` names the Debian packages to install.
"""
from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from collections.abc import Iterable

from .errors import MaedError

PLATFORMS = ("egl", "osmesa")
GL_PACKAGES = "libegl1 libegl-mesa0 libgl1-mesa-dri libosmesa6"
PLATFORM_ENV = "MAED_GL_PLATFORM"  # comma-separated platforms to try instead of PLATFORMS


class RendererUnavailable(MaedError):
    """No headless OpenGL platform works on this machine."""


def unavailable_message(tried: Iterable[str]) -> str:
    return (f"rendering needs headless OpenGL and none works here (tried "
            f"{', '.join(tried)}): install the system packages {GL_PACKAGES} "
            f"(Debian/Ubuntu: sudo apt-get install {GL_PACKAGES}), then check with `maed doctor`")


_PROBE = ("import os, sys; os.environ['PYOPENGL_PLATFORM'] = sys.argv[1]; "
          "import pyrender; s = pyrender.Scene(); "
          "s.add(pyrender.OrthographicCamera(xmag=1.0, ymag=1.0)); "
          "r = pyrender.OffscreenRenderer(8, 8); r.render(s); r.delete(); print('ok')")
_chosen: dict[tuple[str, ...], str | None] = {}


def candidate_platforms() -> tuple[str, ...]:
    """$MAED_GL_PLATFORM, else a user's $PYOPENGL_PLATFORM, else EGL then OSMesa."""
    forced = os.environ.get(PLATFORM_ENV, "").strip()
    if forced:
        return tuple(p.strip().lower() for p in forced.split(",") if p.strip())
    user = os.environ.get("PYOPENGL_PLATFORM", "").strip().lower()
    return (user,) if user else PLATFORMS


def probe_platform(name: str, timeout: float = 60.0) -> bool:
    """Whether pyrender renders offscreen on `name`, tried in a child process."""
    try:
        out = subprocess.run([sys.executable, "-c", _PROBE, name], capture_output=True,
                             text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return out.returncode == 0 and "ok" in out.stdout


def choose_platform(platforms: tuple[str, ...] | None = None) -> str | None:
    """The first working headless platform (cached per process), or None.

    `maed doctor` reports this same choice."""
    platforms = candidate_platforms() if platforms is None else platforms
    if platforms not in _chosen:
        if "OpenGL" in sys.modules:  # already bound in this process: that platform or nothing
            bound = os.environ.get("PYOPENGL_PLATFORM", "").lower()
            _chosen[platforms] = bound if bound in platforms else None
        else:
            _chosen[platforms] = next((p for p in platforms if probe_platform(p)), None)
    return _chosen[platforms]


def require_platform() -> str:
    """Select the platform for this process (before OpenGL is imported), or fail clearly."""
    platforms = candidate_platforms()
    name = choose_platform(platforms)
    if name is None:
        raise RendererUnavailable(unavailable_message(platforms))
    os.environ["PYOPENGL_PLATFORM"] = name
    return name


def _load_triton_before_gl() -> None:
    """Software GL (Mesa's llvmpipe) brings the system's LLVM into the process; Triton's
    libtriton carries its own, and loading it after Mesa's crashes the process (a segfault
    in `import triton`, which torch.compile, torchvision and so ultralytics pull in, e.g. a
    detector built after a render in one process). The other order works, so Triton is
    loaded first when it is installed."""
    if importlib.util.find_spec("triton") is None:
        return
    try:
        import triton._C.libtriton  # noqa: F401
    except Exception:  # noqa: BLE001 - a broken Triton is torch's concern, not the renderer's
        pass
