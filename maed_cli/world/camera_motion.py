"""The camera's rotation per decoded frame, as the world layer, the cache and the CLI keep it
(estimated from the video by `maed_cli.world.camera.CameraMotionEstimator`)."""
from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from .vanishing import VanishingDirection

CAMERA_MODES = ("auto", "static", "moving")


@dataclass
class CameraMotion:
    """The camera's rotation per decoded frame.

    frame_ids (F,) int64: source frame indices, as given to the estimator;
    rotations (F, 3, 3): camera-f-from-camera-0 (x_f = R[f] @ x_0, R[0] = I), after the mode
    (exactly the identity when static);
    estimated (F, 3, 3): the estimate whatever the mode (what `with_mode` starts from);
    static: the rotations are the identity (decided, or requested);
    median_motion_px: median per-frame background displacement, full-resolution pixels;
    inlier_ratio: median RANSAC inlier ratio of the rotation-only fits;
    max_rotation_deg: largest angle between the camera of any frame and the first one
    (of the estimate);
    residual_px: median residual of the fits, full-resolution pixels;
    translating_warning / reason_unusable: one line each, or None;
    lines (k, 14): the background's vanishing directions in the first camera's frame, a
    still camera's only (`VanishingDirection.to_array` rows; `vanishing_directions()`).
    """

    frame_ids: np.ndarray
    rotations: np.ndarray
    estimated: np.ndarray
    static: bool
    requested: str
    detected_static: bool
    median_motion_px: float
    inlier_ratio: float
    max_rotation_deg: float
    residual_px: float
    translating_warning: str | None
    reason_unusable: str | None
    focal: float
    image_size: tuple[int, int]
    ms_per_frame: float = 0.0
    keyframes: int = 0
    lines: np.ndarray = field(default_factory=lambda: np.zeros((0, 14)))

    @property
    def mode(self) -> str:
        """The mode in effect: "static" (identity rotations) or "moving"."""
        return "static" if self.static else "moving"

    def __len__(self) -> int:
        return len(self.frame_ids)

    @classmethod
    def static_for(cls, frame_ids, focal: float, image_size: tuple[int, int],
                   requested: str = "static", reason_unusable: str | None = None
                   ) -> CameraMotion:
        """A still camera over `frame_ids` (identity rotations, nothing measured)."""
        frame_ids = np.asarray(frame_ids, np.int64).reshape(-1)
        eye = np.broadcast_to(np.eye(3), (len(frame_ids), 3, 3)).copy()
        return cls(frame_ids, eye, eye.copy(), True, requested, True, 0.0, 1.0, 0.0, 0.0,
                   None, reason_unusable, float(focal),
                   (int(image_size[0]), int(image_size[1])))

    def with_mode(self, mode: str) -> CameraMotion:
        """The same estimate under --camera `mode` (auto: as decided; static: identity;
        moving: the estimated rotations even where the camera looked still)."""
        if mode not in CAMERA_MODES:
            raise ValueError(f"camera mode {mode!r}: expected one of {CAMERA_MODES}")
        static = {"auto": self.detected_static, "static": True,
                  "moving": self.reason_unusable is not None}[mode]
        rotations = (np.broadcast_to(np.eye(3), self.estimated.shape).copy() if static
                     else self.estimated.copy())
        return replace(self, rotations=rotations, static=static, requested=mode)

    def vanishing_directions(self) -> list[VanishingDirection]:
        """The background's vanishing directions (first camera's frame), strongest first."""
        return [VanishingDirection.from_array(row) for row in np.asarray(self.lines)]

    def rotations_for(self, frame_ids) -> np.ndarray:
        """(n, 3, 3) camera-f-from-camera-0 for the given SOURCE frame indices."""
        frame_ids = np.asarray(frame_ids, np.int64).reshape(-1)
        pos = np.searchsorted(self.frame_ids, frame_ids)
        pos = np.clip(pos, 0, max(len(self.frame_ids) - 1, 0))
        if len(self.frame_ids) == 0 or np.any(self.frame_ids[pos] != frame_ids):
            missing = frame_ids[self.frame_ids[pos] != frame_ids] if len(self.frame_ids) \
                else frame_ids
            raise KeyError(f"frames without a camera estimate: {missing[:5].tolist()}")
        return self.rotations[pos]

    def camera_to_first(self, frame_ids=None) -> np.ndarray:
        """(n, 3, 3) camera-0-from-camera-f (R[f].T): x_0 = R[f].T @ x_f."""
        rot = self.rotations if frame_ids is None else self.rotations_for(frame_ids)
        return np.transpose(rot, (0, 2, 1)).copy()

    def summary(self) -> dict:
        """The `summary.json["world"]["camera"]` block."""
        return {"mode": self.mode, "requested": self.requested,
                "median_motion_px": round(float(self.median_motion_px), 3),
                "inlier_ratio": round(float(self.inlier_ratio), 3),
                "max_rotation_deg": round(float(self.max_rotation_deg), 3),
                "residual_px": round(float(self.residual_px), 3),
                "translating_warning": self.translating_warning,
                "reason_unusable": self.reason_unusable,
                "ms_per_frame": round(float(self.ms_per_frame), 2)}

    # --- plain arrays (the tracks cache) ---------------------------------------------------

    def to_arrays(self, prefix: str = "camera_") -> dict[str, np.ndarray]:
        text = {"translating_warning": self.translating_warning or "",
                "reason_unusable": self.reason_unusable or "", "requested": self.requested}
        out = {"frame_ids": self.frame_ids, "estimated": self.estimated,
               "detected_static": np.bool_(self.detected_static),
               "numbers": np.array([self.median_motion_px, self.inlier_ratio,
                                    self.max_rotation_deg, self.residual_px, self.focal,
                                    self.ms_per_frame, self.keyframes], np.float64),
               "image_size": np.array(self.image_size, np.int64),
               "lines": np.asarray(self.lines, np.float64).reshape(-1, 14),
               **{k: np.array(v) for k, v in text.items()}}
        return {prefix + k: v for k, v in out.items()}

    @classmethod
    def from_arrays(cls, data, prefix: str = "camera_") -> CameraMotion:
        """Inverse of `to_arrays` (raises KeyError when the arrays are not there, also the
        lines of a cache written before they were found: the camera pass is then run again)."""
        numbers = np.asarray(data[prefix + "numbers"], np.float64)
        text = {k: str(data[prefix + k]) for k in ("translating_warning", "reason_unusable",
                                                   "requested")}
        size = np.asarray(data[prefix + "image_size"]).tolist()
        estimated = np.asarray(data[prefix + "estimated"], np.float64)
        motion = cls(np.asarray(data[prefix + "frame_ids"], np.int64), estimated.copy(),
                     estimated, False, "auto", bool(data[prefix + "detected_static"]),
                     *(float(x) for x in numbers[:4]), text["translating_warning"] or None,
                     text["reason_unusable"] or None, float(numbers[4]),
                     (int(size[0]), int(size[1])), float(numbers[5]), int(numbers[6]),
                     np.asarray(data[prefix + "lines"], np.float64).reshape(-1, 14))
        return motion.with_mode(text["requested"] or "auto")
