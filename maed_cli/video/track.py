"""Link per-frame person boxes into tracklets, fill short gaps, smooth the boxes.

The association itself is ultralytics' ByteTrack (default) or BoT-SORT (adds camera-motion
compensation from the frames), fed with our detections; a lost person keeps its id when it
reappears within `buffer_seconds`. What MAED needs from a tracklet is a box in *every* frame
of a contiguous run, so after tracking:

1. each track's observations are placed on the stream's timeline (the frames the decoder
   yielded, after --start/--end/--fps); gaps of at most `max_gap` stream frames (occlusions,
   missed detections) are filled by linear interpolation and flagged `detected = False`;
   longer gaps split the track (the later part gets a new id, `source_id` keeps the old);
2. boxes are made square — side = max(w, h), as VIBE's tracker and MAED's dbs do — and
   (cx, cy, side) are smoothed over time: a median filter (5 frames) removes single-frame
   outliers, then a Gaussian (sigma `smooth_seconds`) removes jitter without lag;
3. tracklets shorter than `min_track` frames are dropped.

Output: {track_id: Tracklet} with boxes (n, 4) = (cx, cy, side, side) in full-frame pixels.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from ..errors import InputError
from .detect import DEFAULT_CONF, DEFAULT_LOW_CONF, BoxesFile, Detections, import_ultralytics

TRACKERS = ("bytetrack", "botsort")
DEFAULT_MIN_TRACK = 25   # frames, as VIBE's MIN_NUM_FRAMES


@dataclass
class Tracklet:
    """One person over a contiguous run of stream frames.

    frames (n,) int64: source frame indices, increasing, consecutive in the stream;
    boxes (n, 4) float32: square (cx, cy, side, side), pixels, smoothed;
    detected (n,) bool: False where the box was interpolated over a gap;
    source_id: the tracker's or the boxes file's id (equal to track_id unless split).
    """

    track_id: int
    frames: np.ndarray
    boxes: np.ndarray
    detected: np.ndarray
    source_id: int

    def __len__(self) -> int:
        return len(self.frames)


@dataclass
class TrackerConfig:
    """method: 'bytetrack' | 'botsort'; high_conf: boxes above it start and continue tracks;
    low_conf: boxes above it only continue tracks (ByteTrack's second association);
    match_thresh: IoU-cost threshold of the first association; buffer_seconds: how long a
    lost track can be re-found with its id; gmc: BoT-SORT's camera-motion compensation
    ('sparseOptFlow', 'orb', 'sift', 'ecc' or 'none')."""

    method: str = "bytetrack"
    high_conf: float = DEFAULT_CONF
    low_conf: float = DEFAULT_LOW_CONF
    match_thresh: float = 0.8
    buffer_seconds: float = 1.0
    gmc: str = "sparseOptFlow"

    def __post_init__(self) -> None:
        if self.method not in TRACKERS:
            raise InputError(f"--tracker {self.method!r}: expected one of {', '.join(TRACKERS)}")


@dataclass
class _Observations:
    frames: list[int] = field(default_factory=list)
    xyxy: list[np.ndarray] = field(default_factory=list)


class _TrackerInput:
    """The slice of ultralytics' `Boxes` interface its trackers read (numpy, class 0)."""

    def __init__(self, xyxy: np.ndarray, conf: np.ndarray) -> None:
        self.xyxy = np.asarray(xyxy, np.float32).reshape(-1, 4)
        self.conf = np.asarray(conf, np.float32).reshape(-1)
        self.cls = np.zeros_like(self.conf)
        wh = self.xyxy[:, 2:] - self.xyxy[:, :2]
        self.xywh = np.concatenate([self.xyxy[:, :2] + wh / 2, wh], axis=1)

    def __len__(self) -> int:
        return len(self.conf)

    def __getitem__(self, mask) -> _TrackerInput:
        return _TrackerInput(self.xyxy[mask], self.conf[mask])


class PersonTracker:
    """Online multi-person tracking: call `update` for every stream frame, in order, even
    frames without detections (that is how it knows time passes), then `tracklets()`."""

    def __init__(self, config: TrackerConfig | None = None, fps: float = 30.0) -> None:
        self.config = config or TrackerConfig()
        self.fps = float(fps)
        self._tracker = self._build()
        self._obs: dict[int, _Observations] = {}
        self._pending: dict[int, tuple[int, np.ndarray]] = {}
        self.stream_frames: list[int] = []

    def _build(self):
        import_ultralytics()
        from types import SimpleNamespace

        c = self.config
        args = SimpleNamespace(
            tracker_type=c.method, track_high_thresh=c.high_conf,
            track_low_thresh=min(c.low_conf, c.high_conf), new_track_thresh=c.high_conf,
            track_buffer=max(1, int(round(c.buffer_seconds * self.fps))),
            match_thresh=c.match_thresh, fuse_score=True,
            gmc_method=None if c.gmc == "none" else c.gmc, proximity_thresh=0.5,
            appearance_thresh=0.8, with_reid=False, model="auto")
        if c.method == "botsort":
            from ultralytics.trackers.bot_sort import BOTSORT

            return BOTSORT(args)
        from ultralytics.trackers.byte_tracker import BYTETracker

        return BYTETracker(args)

    def update(self, frame_index: int, detections: Detections,
               frame: np.ndarray | None = None) -> np.ndarray:
        """Feed one frame's detections; frame (RGB) is used by BoT-SORT's motion compensation.

        Returns the ids (k,) int64 assigned to the detections this frame (-1: untracked).
        """
        if self.stream_frames and frame_index <= self.stream_frames[-1]:
            raise ValueError(f"frames must be fed in increasing order ({frame_index} after "
                             f"{self.stream_frames[-1]})")
        self.stream_frames.append(int(frame_index))
        ids = np.full(len(detections), -1, np.int64)
        image = None
        if frame is not None and self.config.method == "botsort":
            image = np.ascontiguousarray(frame[..., ::-1])  # the trackers expect BGR
        rows = self._tracker.update(_TrackerInput(detections.xyxy, detections.scores), image)
        for row in np.asarray(rows).reshape(-1, 8) if len(rows) else ():
            tid, det = int(row[4]), int(row[7])
            obs = self._obs.get(tid)
            if obs is None:
                obs = self._obs[tid] = _Observations()
                if tid in self._pending:  # the detection that started this track
                    f, box = self._pending[tid]
                    obs.frames.append(f)
                    obs.xyxy.append(box)
            obs.frames.append(int(frame_index))
            obs.xyxy.append(detections.xyxy[det])  # the detector's box, not the Kalman state
            ids[det] = tid
        # A track born after the first frame is reported only once a second detection
        # confirms it; keep its first detection so the tracklet starts where the person does.
        self._pending = {}
        for s in self._tracker.tracked_stracks:
            idx = getattr(s, "idx", None)
            if (not s.is_activated and s.frame_id == self._tracker.frame_id
                    and idx is not None and 0 <= int(idx) < len(detections)):
                self._pending[int(s.track_id)] = (int(frame_index), detections.xyxy[int(idx)])
        return ids

    def observations(self) -> dict[int, tuple[np.ndarray, np.ndarray]]:
        """{id: (frames (m,), xyxy (m, 4))}: the raw detections each track was matched to."""
        return {tid: (np.asarray(o.frames, np.int64), np.asarray(o.xyxy, np.float32))
                for tid, o in sorted(self._obs.items())}

    def tracklets(self, *, min_track: int = DEFAULT_MIN_TRACK, max_gap: int | None = None,
                  smooth_seconds: float = 0.1) -> dict[int, Tracklet]:
        """The finished tracklets (see the module docstring). max_gap defaults to the
        tracker's re-identification window (buffer_seconds, in stream frames)."""
        if max_gap is None:
            max_gap = max(1, int(round(self.config.buffer_seconds * self.fps)))
        return build_tracklets(self.observations(), np.asarray(self.stream_frames, np.int64),
                               min_track=min_track, max_gap=max_gap,
                               smooth_sigma=smooth_seconds * self.fps)


def track_detections(per_frame: Iterable[tuple[int, Detections]], fps: float,
                     config: TrackerConfig | None = None, **kwargs) -> dict[int, Tracklet]:
    """Run the tracker over (frame_index, Detections) pairs of every stream frame in order;
    keyword arguments go to `PersonTracker.tracklets`."""
    tracker = PersonTracker(config, fps)
    for index, dets in per_frame:
        tracker.update(index, dets)
    return tracker.tracklets(**kwargs)


def tracklets_from_boxes(boxes: BoxesFile, stream_frames: Iterable[int] | None, fps: float,
                         config: TrackerConfig | None = None, *,
                         min_track: int = DEFAULT_MIN_TRACK, max_gap: int | None = None,
                         smooth_seconds: float = 0.1) -> dict[int, Tracklet]:
    """Tracklets from a --boxes file: its ids when it has them, else the tracker's.

    stream_frames: the source frame indices the stream yields (boxes on other frames are
    ignored); None means every frame from the file's first to its last box.
    """
    if stream_frames is None:
        stream = np.arange(int(boxes.frames.min()), int(boxes.frames.max()) + 1, dtype=np.int64)
    else:
        stream = np.asarray(sorted(set(int(f) for f in stream_frames)), np.int64)
    in_stream = np.isin(boxes.frames, stream)
    if not in_stream.any():
        raise InputError(f"--boxes {boxes.path}: none of its boxes falls on a processed frame "
                         f"(its frames {int(boxes.frames.min())}..{int(boxes.frames.max())}, "
                         f"processed {int(stream[0])}..{int(stream[-1])})")
    if max_gap is None:
        max_gap = max(1, int(round((config or TrackerConfig()).buffer_seconds * fps)))
    if boxes.has_tracks:
        obs: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        for tid in np.unique(boxes.track_ids[in_stream]):
            sel = in_stream & (boxes.track_ids == tid)
            order = np.argsort(boxes.frames[sel], kind="stable")
            obs[int(tid)] = (boxes.frames[sel][order], boxes.xyxy[sel][order])
        return build_tracklets(obs, stream, min_track=min_track, max_gap=max_gap,
                               smooth_sigma=smooth_seconds * fps)
    per_frame = boxes.detections()
    tracker = PersonTracker(config, fps)
    for f in stream:
        tracker.update(int(f), per_frame.get(int(f), Detections()))
    return tracker.tracklets(min_track=min_track, max_gap=max_gap,
                             smooth_seconds=smooth_seconds)


# --------------------------------------------------------------------------------------------
# post-processing, independent of the tracker

def square_boxes(xyxy: np.ndarray) -> np.ndarray:
    """(n, 4) corners -> (n, 3) (cx, cy, side) with side = max(w, h)."""
    xyxy = np.asarray(xyxy, np.float64)
    wh = xyxy[:, 2:] - xyxy[:, :2]
    return np.concatenate([xyxy[:, :2] + wh / 2, wh.max(axis=1, keepdims=True)], axis=1)


def smooth_series(values: np.ndarray, sigma: float, median: int = 5) -> np.ndarray:
    """Smooth (n, d) along time: median filter (`median` frames, odd) then Gaussian (sigma in
    frames). Both leave a linear motion unchanged, ends included: the Gaussian runs over the
    series extended by point reflection (2·x[0] − x[k]), so a moving box is not pulled back
    towards standing still at the first and last frames, and there is no lag."""
    from scipy.ndimage import gaussian_filter1d, median_filter

    out = np.asarray(values, np.float64)
    n = len(out)
    size = min(median, n if n % 2 else n - 1)
    if size >= 3:
        out = median_filter(out, size=(size, 1), mode="nearest")
    if sigma > 0.3 and n > 1:  # below ~0.3 frames a Gaussian is the identity
        pad = int(4 * sigma) + 1  # scipy's truncation radius: the filter sees no further
        ext = np.pad(out, ((pad, pad), (0, 0)), mode="reflect", reflect_type="odd")
        out = gaussian_filter1d(ext, sigma, axis=0, mode="nearest")[pad:pad + n]
    return out


def build_tracklets(observations: dict[int, tuple[np.ndarray, np.ndarray]],
                    stream_frames: np.ndarray, *, min_track: int = DEFAULT_MIN_TRACK,
                    max_gap: int = 30, smooth_sigma: float = 3.0) -> dict[int, Tracklet]:
    """Observed boxes per id -> gap-filled, square, smoothed tracklets (module docstring).

    observations: {id: (frames (m,), xyxy (m, 4))}, frames increasing, each in stream_frames;
    stream_frames (s,): the stream's source frame indices, increasing;
    max_gap: the longest run of missing stream frames that is interpolated over;
    smooth_sigma: Gaussian sigma in stream frames (0: only the median filter).
    """
    if min_track < 1:
        raise InputError(f"--min-track {min_track}: must be at least 1")
    stream_frames = np.asarray(stream_frames, np.int64)
    segments: list[tuple[int, np.ndarray, np.ndarray, np.ndarray]] = []
    for tid, (frames, xyxy) in sorted(observations.items()):
        frames = np.asarray(frames, np.int64)
        if len(frames) == 0:
            continue
        pos = np.searchsorted(stream_frames, frames)
        ok = (pos < len(stream_frames)) & (stream_frames[np.minimum(pos, len(stream_frames) - 1)]
                                           == frames)
        pos, boxes = pos[ok], square_boxes(np.asarray(xyxy)[ok])
        if len(pos) == 0:
            continue
        breaks = np.flatnonzero(np.diff(pos) - 1 > max_gap) + 1
        for p, b in zip(np.split(pos, breaks), np.split(boxes, breaks)):
            full = np.arange(p[0], p[-1] + 1)
            filled = np.stack([np.interp(full, p, b[:, k]) for k in range(3)], axis=1)
            detected = np.zeros(len(full), bool)
            detected[p - p[0]] = True
            segments.append((tid, full, filled, detected))
    next_id = max(observations, default=0) + 1
    seen: set[int] = set()
    out: dict[int, Tracklet] = {}
    for source_id, pos, cxcys, detected in segments:
        if source_id in seen:            # a later piece of a split track
            track_id, next_id = next_id, next_id + 1
        else:
            track_id = source_id
            seen.add(source_id)
        if len(pos) < min_track:
            continue
        sm = smooth_series(cxcys, smooth_sigma)
        boxes = np.concatenate([sm, sm[:, 2:3]], axis=1).astype(np.float32)
        out[track_id] = Tracklet(track_id, stream_frames[pos], boxes, detected, source_id)
    return dict(sorted(out.items()))
