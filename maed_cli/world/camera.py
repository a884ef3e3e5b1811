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
from dataclasses import dataclass, field, replace

import cv2
import numpy as np

CAMERA_MODES = ("auto", "static", "moving")

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
RANSAC_ITERATIONS = 64
TRANSLATING_RESIDUAL_PX = 0.2   # median fit residual (work px) above which the model is doubted
# (a rotating camera leaves ~0.05-0.1 px, also with noise and JPEG artefacts; 0.3 m of
# sideways motion in a room leaves ~0.3 px)
TRANSLATING_INLIERS = 0.75      # median inlier ratio below which the model is doubted
UNUSABLE_FRACTION = 0.5     # more frames than this without a fit: the motion is not usable


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
    translating_warning / reason_unusable: one line each, or None.
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
               **{k: np.array(v) for k, v in text.items()}}
        return {prefix + k: v for k, v in out.items()}

    @classmethod
    def from_arrays(cls, data, prefix: str = "camera_") -> CameraMotion:
        """Inverse of `to_arrays` (raises KeyError when the arrays are not there)."""
        numbers = np.asarray(data[prefix + "numbers"], np.float64)
        text = {k: str(data[prefix + k]) for k in ("translating_warning", "reason_unusable",
                                                   "requested")}
        size = np.asarray(data[prefix + "image_size"]).tolist()
        estimated = np.asarray(data[prefix + "estimated"], np.float64)
        motion = cls(np.asarray(data[prefix + "frame_ids"], np.int64), estimated.copy(),
                     estimated, False, "auto", bool(data[prefix + "detected_static"]),
                     *(float(x) for x in numbers[:4]), text["translating_warning"] or None,
                     text["reason_unusable"] or None, float(numbers[4]),
                     (int(size[0]), int(size[1])), float(numbers[5]), int(numbers[6]))
        return motion.with_mode(text["requested"] or "auto")


# --- rotation fits on bearing vectors ------------------------------------------------------

def kabsch(a: np.ndarray, b: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """Rotations R minimising sum |b - R a|^2: a, b (..., n, 3) -> (..., 3, 3)."""
    if weights is not None:
        a = a * weights[..., None]
    m = np.einsum("...ni,...nj->...ij", b, a)
    u, _, vt = np.linalg.svd(m)
    d = np.sign(np.linalg.det(u @ vt))
    d = np.where(d == 0, 1.0, d)
    u = u.copy()
    u[..., :, 2] *= d[..., None]
    return u @ vt


def fit_rotation(a: np.ndarray, b: np.ndarray, threshold: float, rng: np.random.Generator,
                 iterations: int = RANSAC_ITERATIONS) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Robust R with b ~ R a for unit bearings a, b (n, 3).

    Returns (R (3, 3), inlier mask (n,), residuals (n,) as chord lengths |b - R a|, which are
    angles in radians for small errors). `threshold` is in the same unit.
    """
    n = len(a)
    samples = np.argsort(rng.random((iterations, n)), axis=1)[:, :3]
    hyps = kabsch(a[samples], b[samples])                               # (it, 3, 3)
    diff = b.T[None] - hyps @ a.T                                        # (it, 3, n)
    err = np.sqrt(np.einsum("kin,kin->kn", diff, diff))
    best = int(np.argmax((err < threshold).sum(axis=1)))
    inliers = err[best] < threshold
    rot = hyps[best]
    for _ in range(3):
        if inliers.sum() < 3:
            break
        rot = kabsch(a[inliers], b[inliers])
        residuals = np.linalg.norm(b - a @ rot.T, axis=1)
        new = residuals < threshold
        if np.array_equal(new, inliers):
            break
        inliers = new
    residuals = np.linalg.norm(b - a @ rot.T, axis=1)
    return rot, residuals < threshold, residuals


def rotation_angle_deg(rot: np.ndarray) -> np.ndarray:
    """Angle of rotation matrices (..., 3, 3) in degrees."""
    cos = (np.trace(rot, axis1=-2, axis2=-1) - 1.0) / 2.0
    return np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))


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

    # -- per frame --

    def add(self, frame_index: int, frame_rgb: np.ndarray, boxes=None) -> None:
        """One decoded frame (H, W, 3) uint8 RGB and its person boxes (k, 4) xyxy pixels."""
        t = time.perf_counter()
        if self._broken is None:
            try:
                self._add(frame_rgb, boxes)
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
        motion = CameraMotion(ids, estimated.copy(), estimated, detected_static, "auto",
                              detected_static, median_motion, inlier_ratio, max_rot,
                              residual / self.scale, warning, reason, float(self.focal),
                              self.image_size, ms, self._keyframes)
        return motion.with_mode(self.mode)
