"""`DemoOptions`: the settings of one `maed demo` run (the CLI's maed_cli.cli._demo_options
builds them from the command line; `maed batch` and the photo pipeline take the same). A
module of its own because both passes of the pipeline and the photo pipeline read them, and
those sit below pipeline.py.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from .body.geometry import check_focal
from .devices import resolve_device, resolve_dtype
from .errors import InputError
from .tracks_cache import CACHE_VERSION, file_digest
from .video.crop import DEFAULT_BOX_SCALE
from .video.detect import DEFAULT_CONF, DEFAULT_MIN_SIZE, check_detector_settings
from .video.track import DEFAULT_MIN_TRACK, TrackerConfig
from .world.camera_motion import CAMERA_MODES


@dataclass
class DemoOptions:
    """Everything that changes the result of `maed demo` (documented on the CLI)."""

    start: str | None = None
    end: str | None = None
    fps: float | None = None
    device: str = "auto"
    dtype: str = "auto"  # auto (fp16 on CUDA, fp32 on CPU) | fp32 | bf16 | fp16 (CUDA only)
    batch_size: int | None = None  # clips per forward pass; None: from free memory
    interp: int = 1
    crop_scale: float = DEFAULT_BOX_SCALE
    min_track: int = DEFAULT_MIN_TRACK
    tracker: str = "bytetrack"
    conf: float = DEFAULT_CONF
    min_size: float = DEFAULT_MIN_SIZE
    detect_size: int = 640  # the detector's input size (pixels, longer side)
    detector_weights: str | None = None
    boxes: str | None = None
    focal: float | None = None
    use_cache: bool = True
    compile: bool = False  # torch.compile the network (speed only; results the same)
    world: bool = True  # the world layer (maed_cli.world): world.npz and world arrays per track
    camera: str = "auto"  # the camera's motion: auto (decided from the video) | static | moving

    def check(self) -> None:
        """Refuse values no run can use, in one line, before any long work."""
        if self.camera not in CAMERA_MODES:
            raise InputError(f"--camera {self.camera!r}: expected one of "
                             f"{', '.join(CAMERA_MODES)}")
        if self.interp < 1 or 8 % self.interp:
            raise InputError(f"--interp {self.interp}: must divide 8 (1, 2, 4 or 8)")
        if not 0 < self.crop_scale < float("inf"):
            raise InputError(f"--crop-scale {self.crop_scale}: must be a positive number "
                             f"({DEFAULT_BOX_SCALE} matches MAED's training crops)")
        check_focal(self.focal)
        if self.boxes:
            boxes = Path(self.boxes).expanduser()
            if not boxes.is_file():
                raise InputError(f"--boxes {boxes}: "
                                 f"{'is a folder' if boxes.is_dir() else 'no such file'}")
        resolve_dtype(self.dtype, resolve_device(self.device))
        TrackerConfig(method=self.tracker, high_conf=self.conf)
        if not self.boxes:
            check_detector_settings(self.conf, self.min_size, self.detect_size)

    def tracking_key(self, video_digest: str) -> str:
        """What the cached detections/tracks depend on."""
        keys = {k: getattr(self, k) for k in ("start", "end", "fps", "min_track", "tracker",
                                               "conf", "min_size", "detector_weights",
                                               "detect_size")}
        if self.boxes:
            keys["boxes"] = file_digest(Path(self.boxes))
        blob = json.dumps({"video": video_digest, "v": CACHE_VERSION, **keys}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]
