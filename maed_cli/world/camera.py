"""Camera rotation per frame from the video itself (issue #15, point 1).

Background corners (Shi-Tomasi) are tracked with pyramidal Lucas-Kanade optical flow on
downscaled grey frames, with the person boxes (dilated) masked out, and kept only when the
backward flow returns them to where they started. Each frame is matched against a keyframe
(not only the previous frame), so the rotation error does not add up frame by frame but only
when the keyframe is replaced (when too few of its corners are still in view). The flow
starts where the last frame's rotation, kept up, puts each corner, so a steady pan may move
the image further per frame than the pyramid alone can follow. When the keyframe is lost all
the same (a pan starting fast, a jerk, the corners covered), the step from the previous frame
is tried once more from fresh corners there, started at the whole image's shift (phase
correlation), before the rotation is held: a held rotation leaves that frame's motion out of
every later frame. Per frame the rotation-only model x_f = R x_k is fitted on the corners'
bearing vectors (K^-1 [u, v, 1], normalised): 3-point Kabsch hypotheses inside RANSAC, then
least squares on the inliers.

Decisions, stored with the result:
- static: the median background displacement is under STATIC_MEDIAN_PX per frame and the
  estimated rotations never move the image by more than a few pixels; the rotations are then
  exactly the identity;
- translating_warning: the rotation-only model leaves residuals a rotating camera does not
  (parallax of a walking camera, or a focal length far from the true one);
- reason_unusable: too little background texture to track; the rotations are the identity.

Knows nothing of video decoding, the detector or the CLI: it gets frames and boxes.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import cv2
import numpy as np

from .camera_motion import CAMERA_MODES, CameraMotion
from .rotation_fit import fit_rotation, rotation_angle_deg
from .vanishing import StillBackground

WORK_WIDTH = 480            # frames are downscaled to at most this width (pixels)
STATIC_MEDIAN_PX = 0.5      # full-resolution pixels per frame
STATIC_MAX_PX = 2.0         # largest image shift (full-res px) a static camera's estimate may show
MAX_CORNERS = 200
MIN_TRACKED = 25            # corners a fit needs
REFRESH_FRACTION = 0.5      # new keyframe when fewer of its corners than this are still tracked
LK_WINDOW = (21, 21)
LK_LEVELS = 3
FB_MAX_PX = 0.7             # forward-backward flow error allowed (work pixels)
INLIER_PX = 1.0             # RANSAC threshold (work pixels)
TRANSLATING_RESIDUAL_PX = 0.2   # median fit residual (work px) above which the model is doubted
# (a rotating camera leaves ~0.05-0.1 px, also with noise and JPEG artefacts; 0.3 m of
# sideways motion in a room leaves ~0.3 px)
TRANSLATING_INLIERS = 0.75      # median inlier ratio below which the model is doubted
UNUSABLE_FRACTION = 0.5     # more frames than this without a fit: the motion is not usable


# --- the estimator -------------------------------------------------------------------------

@dataclass
class _Keyframe:
    grey: np.ndarray
    points: np.ndarray          # (n, 2) work pixels in the keyframe
    bearings: np.ndarray        # (n, 3) unit
    rotation: np.ndarray        # camera-k-from-camera-0
    count: int                  # corners it started with


@dataclass
class CameraMotionEstimator:
    """Feed every decoded frame in order with `add`, then `finish` (see the module doc).

    focal: pixels at full resolution (the run's focal); image_size: (W, H) full resolution.
    """

    focal: float
    image_size: tuple[int, int]
    mode: str = "auto"
    work_width: int = WORK_WIDTH
    seed: int = 0
    _ids: list = field(default_factory=list, init=False, repr=False)
    _rots: list = field(default_factory=list, init=False, repr=False)
    _motion: list = field(default_factory=list, init=False, repr=False)
    _inliers: list = field(default_factory=list, init=False, repr=False)
    _residuals: list = field(default_factory=list, init=False, repr=False)
    _failed: int = field(default=0, init=False, repr=False)
    _keyframes: int = field(default=0, init=False, repr=False)
    _seconds: float = field(default=0.0, init=False, repr=False)
    _most_corners: int = field(default=0, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.mode not in CAMERA_MODES:
            raise ValueError(f"camera mode {self.mode!r}: expected one of {CAMERA_MODES}")
        width, height = int(self.image_size[0]), int(self.image_size[1])
        self.image_size = (width, height)
        self.scale = min(1.0, self.work_width / width)
        self.work_size = (max(1, round(width * self.scale)), max(1, round(height * self.scale)))
        f = float(self.focal) * self.scale
        cx, cy = self.work_size[0] / 2.0, self.work_size[1] / 2.0
        self._k_inv = np.array([[1 / f, 0, -cx / f], [0, 1 / f, -cy / f], [0, 0, 1]])
        self._k = np.array([[f, 0, cx], [0, f, cy], [0, 0, 1]])
        self._f_work = f
        self._rng = np.random.default_rng(self.seed)
        self._key: _Keyframe | None = None
        self._prev_grey: np.ndarray | None = None
        self._prev_points: np.ndarray | None = None   # keyframe corners' positions last frame
        self._rotation = np.eye(3)
        self._velocity = np.eye(3)    # the last frame-to-frame rotation (the motion prior)
        self._prev_mask: np.ndarray | None = None
        self._hann: np.ndarray | None = None
        self._fit_stats: tuple[float, float, float] | None = None
        self._lost = False            # the previous frame could not be fitted
        self._broken: str | None = None
        self._background = StillBackground(self.image_size)  # for the lines of a still view

    # -- per frame --

    def add(self, frame_index: int, frame_rgb: np.ndarray, boxes=None) -> None:
        """One decoded frame (H, W, 3) uint8 RGB and its person boxes (k, 4) xyxy pixels."""
        t = time.perf_counter()
        if self._broken is None:
            try:
                self._add(frame_rgb, boxes)
                self._background.add(frame_rgb, boxes)
            except (cv2.error, ValueError, np.linalg.LinAlgError) as exc:
                # the detection pass it runs in must go on: the motion is then unusable
                self._broken = f"the camera motion could not be estimated ({exc})".replace(
                    "\n", " ")
        self._ids.append(int(frame_index))
        self._rots.append(self._rotation.copy())
        self._seconds += time.perf_counter() - t

    def _add(self, frame_rgb: np.ndarray, boxes) -> None:
        frame = np.ascontiguousarray(frame_rgb)
        grey = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY) if frame.ndim == 3 else frame
        if grey.shape[1] != self.work_size[0] or grey.shape[0] != self.work_size[1]:
            grey = cv2.resize(grey, self.work_size, interpolation=cv2.INTER_AREA)
        mask = self._background_mask(boxes)
        if self._key is None:
            self._rotation = np.eye(3)
            self._new_keyframe(grey, mask)
        else:
            self._track(grey, mask)
        self._prev_grey, self._prev_mask = grey, mask

    def _background_mask(self, boxes) -> np.ndarray:
        """uint8 (h, w) work-size mask: 255 on the background, 0 in the dilated person boxes."""
        w, h = self.work_size
        mask = np.full((h, w), 255, np.uint8)
        if boxes is None:
            return mask
        boxes = np.asarray(boxes, np.float64).reshape(-1, 4) * self.scale
        for x1, y1, x2, y2 in boxes:
            if not np.all(np.isfinite([x1, y1, x2, y2])):
                continue
            pad = 0.15 * max(x2 - x1, y2 - y1) + 4
            mask[max(0, int(y1 - pad)):max(0, int(math.ceil(y2 + pad))),
                 max(0, int(x1 - pad)):max(0, int(math.ceil(x2 + pad)))] = 0
        return mask

    def _bearings(self, points: np.ndarray) -> np.ndarray:
        rays = np.c_[points, np.ones(len(points))] @ self._k_inv.T
        return rays / np.linalg.norm(rays, axis=1, keepdims=True)

    def _new_keyframe(self, grey: np.ndarray, mask: np.ndarray) -> None:
        min_distance = max(4.0, self.work_size[0] / 60.0)
        corners = cv2.goodFeaturesToTrack(grey, MAX_CORNERS, 0.01, min_distance, mask=mask,
                                          blockSize=5)
        points = (corners.reshape(-1, 2).astype(np.float64) if corners is not None
                  else np.zeros((0, 2)))
        self._most_corners = max(self._most_corners, len(points))
        self._key = _Keyframe(grey, points, self._bearings(points), self._rotation.copy(),
                              len(points))
        self._prev_points = points.astype(np.float32)
        self._keyframes += 1

    def _track(self, grey: np.ndarray, mask: np.ndarray) -> None:
        self._fit_stats = None
        done = self._fit_to_key(grey, mask, self._predicted_flow())
        if not done and not self._lost:
            # The keyframe was lost: most often the image moved further in one frame than
            # the pyramid reaches (a fast pan on a small frame, or the first frames of a pan,
            # before there is a rate to predict from), or its corners were covered. Holding
            # the last rotation would leave this frame's motion out of every later frame, so
            # the step from the previous frame (whose rotation is known) is tried once more:
            # from fresh corners there, started at the whole image's shift. Not when the
            # previous frame was lost too: then there is no background to follow here
            # (textureless, covered, blurred) and a second try would only double the cost
            # of every such frame.
            if self._key.grey is not self._prev_grey:  # (else it is that frame already)
                self._new_keyframe(self._prev_grey, self._prev_mask)
            if len(self._key.points) >= MIN_TRACKED:
                done = self._fit_to_key(grey, mask, self._image_shift(grey, mask))
        if self._fit_stats is not None:  # the fit this frame ended with, kept or not
            motion, inlier_ratio, residual = self._fit_stats
            self._motion.append(motion)
            self._inliers.append(inlier_ratio)
            self._residuals.append(residual)
        self._lost = not done
        if not done:
            # lost: hold the last rotation and start again from this frame
            self._failed += 1
            self._velocity = np.eye(3)
            self._new_keyframe(grey, mask)

    def _predicted_flow(self) -> np.ndarray:
        """(n, 2) expected image motion of the tracked corners since the previous frame,
        from the last frame's rotation (a camera turning at a steady rate)."""
        points = self._prev_points.astype(np.float64)
        proj = self._bearings(points) @ (self._k @ self._velocity).T
        z = proj[:, 2]
        flow = np.zeros_like(points)
        ahead = z > 1e-6
        flow[ahead] = proj[ahead, :2] / z[ahead, None] - points[ahead]
        return flow

    def _image_shift(self, grey: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """(n, 2) the background's shift since the previous frame for every tracked corner:
        one phase correlation of the two frames with the person boxes filled flat."""
        def flat(img, m):
            bg = m > 0
            img = img.astype(np.float32)
            img[~bg] = img[bg].mean() if bg.any() else img.mean()
            return img
        if self._hann is None:
            self._hann = cv2.createHanningWindow(self.work_size, cv2.CV_32F)
        (dx, dy), _ = cv2.phaseCorrelate(flat(self._prev_grey, self._prev_mask),
                                         flat(grey, mask), self._hann)
        return np.tile([dx, dy], (len(self._prev_points), 1))

    def _fit_to_key(self, grey: np.ndarray, mask: np.ndarray, guess: np.ndarray) -> bool:
        """Track the keyframe's corners from the previous frame into `grey` (LK started at
        their positions there plus `guess`), fit the rotation; False when too few held."""
        key = self._key
        assert key is not None and self._prev_grey is not None
        if len(key.points) < MIN_TRACKED:
            return False
        lk = dict(winSize=LK_WINDOW, maxLevel=LK_LEVELS, flags=cv2.OPTFLOW_USE_INITIAL_FLOW,
                  criteria=(cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 20, 0.03))
        prev = self._prev_points.reshape(-1, 1, 2)
        start = (prev + guess.reshape(-1, 1, 2)).astype(np.float32)
        # (the Python binding takes no prebuilt pyramids: each call builds its own)
        cur, status, _ = cv2.calcOpticalFlowPyrLK(self._prev_grey, grey, prev, start, **lk)
        # the way back starts from the same guess, so that it checks rather than echoes it
        back_start = (cur - guess.reshape(-1, 1, 2)).astype(np.float32)
        back, status_b, _ = cv2.calcOpticalFlowPyrLK(grey, self._prev_grey, cur, back_start,
                                                     **lk)
        cur, back, prev = cur.reshape(-1, 2), back.reshape(-1, 2), prev.reshape(-1, 2)
        w, h = self.work_size
        inside = (cur[:, 0] >= 0) & (cur[:, 1] >= 0) & (cur[:, 0] <= w - 1) & \
                 (cur[:, 1] <= h - 1)
        ok = (status.ravel() == 1) & (status_b.ravel() == 1) & inside & \
             (np.linalg.norm(back - prev, axis=1) < FB_MAX_PX)
        xi = np.clip(np.round(cur[:, 0]).astype(int), 0, w - 1)
        yi = np.clip(np.round(cur[:, 1]).astype(int), 0, h - 1)
        ok &= mask[yi, xi] > 0
        if ok.sum() < MIN_TRACKED:
            return False
        rel, inliers, residuals = fit_rotation(key.bearings[ok], self._bearings(cur[ok]),
                                               INLIER_PX / self._f_work, self._rng)
        self._fit_stats = (float(np.median(np.linalg.norm(cur[ok] - prev[ok], axis=1)))
                           / self.scale, float(inliers.mean()),
                           float(np.median(residuals)) * self._f_work)
        if inliers.sum() < MIN_TRACKED:
            return False
        rotation = rel @ key.rotation
        self._velocity = rotation @ self._rotation.T
        self._rotation = rotation
        keep = np.flatnonzero(ok)[inliers]
        if len(keep) < REFRESH_FRACTION * key.count:
            self._new_keyframe(grey, mask)
            return True
        key.points, key.bearings = key.points[keep], key.bearings[keep]
        self._prev_points = cur[keep].astype(np.float32)
        return True

    # -- the result --

    def finish(self) -> CameraMotion:
        """The rotations and the decisions (never raises on an unusable video)."""
        ids = np.asarray(self._ids, np.int64)
        n = len(ids)
        ms = 1000.0 * self._seconds / max(n, 1)
        if n == 0:
            return CameraMotion.static_for(ids, self.focal, self.image_size, self.mode,
                                           "no frames").with_mode(self.mode)
        estimated = np.asarray(self._rots, np.float64).reshape(n, 3, 3)
        median_motion = float(np.median(self._motion)) if self._motion else 0.0
        inlier_ratio = float(np.median(self._inliers)) if self._inliers else 0.0
        residual = float(np.median(self._residuals)) if self._residuals else 0.0
        reason = self._broken
        if reason is not None:
            pass
        elif n > 1 and self._failed > UNUSABLE_FRACTION * (n - 1):
            reason = (f"too little background texture to follow the camera ({self._failed} "
                      f"of {n - 1} frames could not be matched outside the person boxes)")
        elif n > 1 and self._most_corners < MIN_TRACKED:
            reason = (f"no background texture to follow the camera ({self._most_corners} "
                      f"corners outside the person boxes)")
        if reason is not None:
            estimated = np.broadcast_to(np.eye(3), (n, 3, 3)).copy()
        max_rot = float(rotation_angle_deg(estimated).max())
        max_shift_px = math.radians(max_rot) * self.focal
        detected_static = reason is not None or (
            median_motion < STATIC_MEDIAN_PX
            and max_shift_px < max(STATIC_MAX_PX, 1.0 / self.scale))
        warning = None
        if reason is None and not detected_static and (
                residual > TRANSLATING_RESIDUAL_PX or inlier_ratio < TRANSLATING_INLIERS):
            warning = (f"the background does not move like a rotating camera's (median "
                       f"residual {residual / self.scale:.1f} px, {100 * inlier_ratio:.0f} % "
                       f"inliers): the camera probably moves (or the focal length is far "
                       f"off); the rotations are approximate")
        lines = np.zeros((0, 14))
        if reason is None and detected_static:  # a still view: its median is the background
            try:
                lines = np.array([v.to_array() for v in self._background.directions(
                    self.focal, self.seed)]).reshape(-1, 14)
            except (cv2.error, ValueError, np.linalg.LinAlgError):
                pass  # no lines: the floor comes from the people alone
        motion = CameraMotion(ids, estimated.copy(), estimated, detected_static, "auto",
                              detected_static, median_motion, inlier_ratio, max_rot,
                              residual / self.scale, warning, reason, float(self.focal),
                              self.image_size, ms, self._keyframes, lines)
        return motion.with_mode(self.mode)
