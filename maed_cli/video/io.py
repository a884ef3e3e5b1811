"""Streaming frame sources (a video file, a folder of images, one image) and an H.264 writer.

Video files are decoded by the ffmpeg binary bundled with imageio-ffmpeg, one frame at a time
through a pipe, so memory does not grow with the length of the video. Every source yields
`(frame_index, frame)` pairs: `frame_index` is the frame's position in the *source* (0-based,
so results can always be matched back to the original video, whatever `start`/`fps` select)
and `frame` is an RGB uint8 array of shape (H, W, 3).

Iterating a source twice decodes it twice; that is how a pipeline makes a detection pass and
a cropping pass without keeping frames in memory.

A `start` is reached by ffmpeg's input seek, which is frame-exact for constant-frame-rate
videos; for variable-frame-rate ones the index of the first frame is derived from its time
at the nominal rate, so indices after a seek may differ by a frame or so from a count.
"""
from __future__ import annotations

import contextlib
import math
from array import array
import re
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..atomic import atomic_path
from ..errors import InputError
from .ffmpeg import Decoder

VIDEO_SUFFIXES = frozenset({".mp4", ".m4v", ".avi", ".mov", ".mkv", ".webm", ".mpg", ".mpeg",
                            ".ts", ".wmv", ".flv", ".3gp", ".ogv", ".gif"})
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"})
DEFAULT_IMAGE_FPS = 30.0


# --------------------------------------------------------------------------------------------
# metadata and frame selection

@dataclass(frozen=True)
class VideoMeta:
    """What is known about a source before decoding it.

    fps: frames per second of the source (for images: the rate given by the caller);
    num_frames: frame count — exact for images, an estimate (duration × fps) for videos,
    None when the container does not say; duration: seconds, or None when unknown.
    """

    path: Path
    kind: str                 # "video" | "images" | "image"
    fps: float
    width: int
    height: int
    num_frames: int | None
    duration: float | None
    codec: str | None = None
    fps_known: bool = True    # False when the container gave no rate and `fps` is a guess
    variable_rate: bool = False  # picture times from timestamps; `fps` is their average
    rotation: int = 0         # degrees of the rotation metadata, already applied to frames

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) in pixels."""
        return self.width, self.height


_TIME_RE = re.compile(r"^(?:(\d+):)?(\d+):(\d+(?:\.\d*)?)$")


def parse_position(value: str | int | float | None, fps: float, *, option: str = "--start"
                   ) -> int | None:
    """A user position -> a 0-based frame index (None stays None).

    Accepted: a frame number ("75" or 75), seconds with an "s" suffix ("2.5s"), or a clock time
    ("1:02.5", "0:01:02.5"). Seconds are rounded to the nearest frame at `fps`.
    """
    if value is None:
        return None
    if isinstance(value, bool):
        raise InputError(f"{option}: expected a frame number or seconds, got {value!r}")
    if isinstance(value, int):
        frames = value
    elif isinstance(value, float):
        if not value.is_integer():
            raise InputError(f"{option} {value}: a frame number must be an integer "
                             f"(write '{value}s' for seconds)")
        frames = int(value)
    else:
        text = str(value).strip().lower()
        clock = _TIME_RE.match(text)
        try:
            if text.endswith("s") and not clock:
                seconds = float(text[:-1])
                if not math.isfinite(seconds):
                    raise ValueError(text)
                frames = int(round(seconds * fps))
                if seconds < 0:
                    frames = -1
            elif clock:
                h, m, s = clock.groups()
                seconds = int(h or 0) * 3600 + int(m) * 60 + float(s)
                frames = int(round(seconds * fps))
            else:
                frames = int(text)
        except ValueError:
            raise InputError(f"{option} {value!r}: expected a frame number (75), seconds "
                             f"(2.5s) or a time (0:02.5)") from None
    if frames < 0:
        raise InputError(f"{option} {value!r}: must not be negative")
    return frames


@dataclass(frozen=True)
class FrameSelection:
    """Which source frames a stream yields: [start, end) subsampled to at most `target_fps`.

    Subsampling keeps the first frame of the range and then every frame at which the target
    clock ticks (frame k after start is kept when floor(k·r) > floor((k-1)·r), r =
    target/source), so 30 -> 10 fps keeps every 3rd frame and 30 -> 12 fps alternates 2 and 3.
    A target at or above the source rate keeps every frame (no frame is ever duplicated).
    """

    start: int = 0
    end: int | None = None        # exclusive; None: to the end
    source_fps: float = DEFAULT_IMAGE_FPS
    target_fps: float | None = None

    @property
    def ratio(self) -> float:
        if self.target_fps is None or self.target_fps >= self.source_fps:
            return 1.0
        return self.target_fps / self.source_fps

    @property
    def stream_fps(self) -> float:
        """The average rate of the yielded frames."""
        return self.source_fps * self.ratio

    def keeps(self, index: int) -> bool:
        if index < self.start or (self.end is not None and index >= self.end):
            return False
        r = self.ratio
        if r >= 1.0:
            return True
        k = index - self.start
        # the tiny offset keeps exact ratios (e.g. 1/3) from flickering on rounding
        return k == 0 or math.floor(k * r + 1e-9) > math.floor((k - 1) * r + 1e-9)

    def keeps_at(self, index: int, time: float, prev_time: float | None) -> bool:
        """`keeps` for a frame shown at `time` seconds (the previous frame at `prev_time`):
        kept when a tick of the target clock falls in (prev_time, time], so a
        variable-frame-rate source is resampled by its pictures' real times."""
        if index < self.start or (self.end is not None and index >= self.end):
            return False
        if self.ratio >= 1.0 or index == self.start or prev_time is None:
            return True
        target = self.target_fps
        return math.floor(time * target + 1e-6) > math.floor(prev_time * target + 1e-6)

    def count(self, num_frames: int | None) -> int | None:
        """How many frames are yielded from a source of `num_frames` frames (None: unknown)."""
        stop = self.end if num_frames is None else (
            num_frames if self.end is None else min(self.end, num_frames))
        if stop is None:
            return None
        n = max(stop - self.start, 0)
        if n == 0:
            return 0
        r = self.ratio
        return n if r >= 1.0 else math.floor((n - 1) * r + 1e-9) + 1


def make_selection(meta: VideoMeta, start: str | int | float | None = None,
                   end: str | int | float | None = None, fps: float | None = None
                   ) -> FrameSelection:
    """Validate the user's --start/--end/--fps against a source and return the selection."""
    first = parse_position(start, meta.fps, option="--start") or 0
    stop = parse_position(end, meta.fps, option="--end")
    if stop is not None and stop <= first:
        raise InputError(f"--end {end} must come after --start {start if start is not None else 0}"
                         f" (frames {stop} <= {first})")
    # a video's count is an estimate (duration × fps): only a start clearly past it fails
    # here; one just past the real end fails when decoding yields nothing
    slack = 1 if meta.kind == "video" else 0
    if meta.num_frames is not None and first >= meta.num_frames + slack:
        raise InputError(f"--start {start} is past the end of {meta.path.name} "
                         f"({meta.num_frames} frames, {meta.num_frames / meta.fps:.2f} s)")
    if fps is not None and not (fps > 0 and math.isfinite(fps)):
        raise InputError(f"--fps {fps}: must be a positive number")
    return FrameSelection(first, stop, meta.fps, fps)


# --------------------------------------------------------------------------------------------
# sources

class FrameSource:
    """An iterable of `(frame_index, RGB uint8 (H, W, 3))`; each iteration decodes anew."""

    meta: VideoMeta
    selection: FrameSelection

    @property
    def stream_fps(self) -> float:
        """Frame rate of what the iterator yields (after --fps subsampling)."""
        return self.selection.stream_fps

    @property
    def estimated_length(self) -> int | None:
        """Frames the iterator will yield (exact for images, an estimate for videos)."""
        return self.selection.count(self.meta.num_frames)

    def __iter__(self) -> Iterator[tuple[int, np.ndarray]]:
        yielded = 0
        for index, frame in self._frames():  # already selected
            yielded += 1
            yield index, frame
        if yielded == 0:
            raise InputError(f"{self.meta.path}: no frames in the selected range "
                             f"(start frame {self.selection.start}"
                             + (f", end frame {self.selection.end}" if self.selection.end
                                is not None else "") + ")")

    def frame_time(self, index: int) -> float:
        """Seconds from the first frame to source frame `index`."""
        return index / self.meta.fps

    def _frames(self) -> Iterator[tuple[int, np.ndarray]]:
        """The selected frames, in order."""
        raise NotImplementedError


def _frame_ranges(frames) -> str:
    """[3, 4, 5, 9] -> "3-5, 9" (at most six ranges, then "...")."""
    ranges: list[list[int]] = []
    for f in sorted(frames):
        if ranges and f == ranges[-1][1] + 1:
            ranges[-1][1] = f
        else:
            ranges.append([f, f])
    text = [f"{a}" if a == b else f"{a}-{b}" for a, b in ranges[:6]]
    return ", ".join(text) + (", ..." if len(ranges) > 6 else "")


class VideoFileSource(FrameSource):
    """Frames of a video file, decoded by the bundled ffmpeg in a subprocess (see
    `maed_cli.video.ffmpeg`): upright (rotation metadata applied), every coded picture
    once; for variable-frame-rate files the picture times come from their timestamps."""

    def __init__(self, path: Path, selection_args: tuple = (None, None, None)) -> None:
        self.path = path
        self._t0 = 0.0  # pts_time of the first picture
        self._times = array("d")  # variable rate: seconds of decoded frame n since the first
        self.meta = self._probe()
        self.selection = make_selection(self.meta, *selection_args)

    def _probe(self) -> VideoMeta:
        path = self.path
        decoder = Decoder(path)
        try:
            header = decoder.wait_header()
            first = None
            if header is not None:
                first = decoder.read(header.width * header.height * 3)
                t0 = decoder.time_of(0) if first is not None else None
                self._t0 = t0 or 0.0
        finally:
            decoder.close()
        found = decoder.state.header
        if header is None:
            if not found.has_video and found.has_audio:
                raise InputError(f"{path}: no video stream (an audio-only file); give a "
                                 f"video file")
            if not found.has_video:
                raise InputError(f"{path}: not a readable video ({decoder.reason()})")
        if first is None:
            raise InputError(f"{path}: the video contains no decodable frames "
                             f"(zero-length or corrupt)")
        fps = found.fps or found.tbr
        fps_known = fps > 0 and math.isfinite(fps)
        if not fps_known:
            fps = DEFAULT_IMAGE_FPS
        duration = found.duration
        num = int(round(duration * fps)) if (duration and fps_known) else None
        return VideoMeta(path, "video", fps, found.width, found.height, num, duration,
                         codec=found.codec, fps_known=fps_known,
                         variable_rate=found.variable_rate,
                         rotation=int(round(found.rotation)) % 360)

    def count_frames(self) -> int:
        """The exact number of frames; decodes the whole file (slow for long videos)."""
        import imageio_ffmpeg

        try:
            n, _ = imageio_ffmpeg.count_frames_and_secs(str(self.path))
        except RuntimeError as exc:
            raise InputError(f"{self.path}: could not count frames ({exc})") from None
        return int(n)

    def frame_time(self, index: int) -> float:
        """Seconds from the first picture to source frame `index` (its timestamp for a
        variable-frame-rate file once decoded; index / fps otherwise)."""
        if self.meta.variable_rate and index < len(self._times):
            return self._times[index]
        return index / self.meta.fps

    def _warn_if_cut_short(self, decoded_to: int, damage: str = "") -> bool:
        """ffmpeg ends a truncated file quietly. The expected length is the container's
        duration x fps, an estimate (a soundtrack longer than the video stretches it), so
        only a shortfall of over a tenth is reported, and as what it may be."""
        expected = self.meta.num_frames
        if self.selection.end is not None and expected is not None:
            expected = min(expected, self.selection.end)
        if expected is not None and decoded_to < expected - max(2, expected // 10):
            warnings.warn(f"{self.path}: the video ended after {decoded_to} frames, where its "
                          f"duration suggests about {self.meta.num_frames} (a truncated or "
                          f"damaged file, or a soundtrack longer than the video?); the results "
                          f"cover the frames that were there{damage}", stacklevel=3)
            return True
        return False

    @staticmethod
    def _damage(damaged: dict, start: int, upto: int) -> str:
        """'frames 3-5 (ffmpeg: <first message>)' for the damage seen before `upto`."""
        frames = [start + n for n in damaged if start + n < upto]
        if not frames:
            return ""
        return (f"frame{'s' if len(frames) > 1 else ''} {_frame_ranges(frames)} "
                f"(ffmpeg: {damaged[min(damaged)]})")

    def _frames(self) -> Iterator[tuple[int, np.ndarray]]:
        meta, selection = self.meta, self.selection
        # A variable-rate file is decoded from its start: after a seek its frame numbers
        # would be guesses. Input-side -ss seeks to the keyframe before and decodes up to the
        # requested time (frame-accurate); aiming half a frame early lands on `start`.
        start = selection.start if (meta.fps_known and not meta.variable_rate) else 0
        decoder = Decoder(self.path, (start - 0.5) / meta.fps if start > 0 else None)
        index, reported = start, False
        try:
            if decoder.wait_header() is None:
                decoder.finish()
                raise InputError(f"{self.path}: decoding failed at frame {start} "
                                 f"({decoder.reason()})")
            size = meta.width * meta.height * 3
            prev_time = None
            while True:
                raw = decoder.read(size)
                if raw is None or (selection.end is not None and index >= selection.end):
                    break
                if meta.variable_rate:
                    t = decoder.time_of(index - start)
                    t = t - self._t0 if t is not None else index / meta.fps
                    if len(self._times) == index:
                        self._times.append(t)
                    keep = selection.keeps_at(index, t, prev_time)
                    prev_time = t
                else:
                    keep = selection.keeps(index)
                if keep:
                    # a writable copy: callers may draw on it
                    yield index, np.frombuffer(bytearray(raw), np.uint8).reshape(
                        meta.height, meta.width, 3)
                index += 1
            if raw is None:  # ffmpeg's end, not ours
                code = decoder.finish()
                damage = self._damage(decoder.state.damaged, start, index)
                reported = True
                if code != 0 and index > start:
                    warnings.warn(f"{self.path}: decoding stopped at frame {index} "
                                  f"({decoder.reason()}); the results cover the frames "
                                  f"before it", stacklevel=2)
                elif self._warn_if_cut_short(index, f"; damaged data in {damage}" if damage
                                             else ""):
                    damage = ""
                if damage:
                    warnings.warn(f"{self.path}: damaged data in {damage}: kept as decoded, "
                                  f"they may show artefacts", stacklevel=2)
        finally:
            decoder.close()
            if not reported:  # the caller stopped early: the damage seen so far
                damage = self._damage(decoder.state.damaged, start, index)
                if damage:
                    warnings.warn(f"{self.path}: damaged data in {damage}: kept as decoded, "
                                  f"they may show artefacts", stacklevel=2)


def _natural_key(path: Path) -> list:
    return [int(tok) if tok.isdigit() else tok.lower() for tok in re.split(r"(\d+)", path.name)]


def read_image(path: Path) -> np.ndarray:
    """One image file -> RGB uint8 (H, W, 3); InputError when it cannot be decoded."""
    import cv2

    try:
        data = np.fromfile(str(path), dtype=np.uint8)  # works for any path encoding
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror})") from None
    image = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if image is None:
        raise InputError(f"{path}: not a readable image")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


class ImageFilesSource(FrameSource):
    """Frames from image files (a folder in natural name order, or one image)."""

    def __init__(self, path: Path, files: list[Path], fps: float, kind: str,
                 selection_args: tuple = (None, None, None)) -> None:
        self.path = path
        self.files = files
        first = read_image(files[0])
        h, w = first.shape[:2]
        self.meta = VideoMeta(path, kind, float(fps), w, h, len(files),
                              len(files) / float(fps), codec=None)
        self.selection = make_selection(self.meta, *selection_args)

    def _frames(self) -> Iterator[tuple[int, np.ndarray]]:
        stop = len(self.files) if self.selection.end is None else min(self.selection.end,
                                                                      len(self.files))
        for index in range(self.selection.start, stop):
            if not self.selection.keeps(index):
                continue
            frame = read_image(self.files[index])
            if frame.shape[:2] != (self.meta.height, self.meta.width):
                raise InputError(f"{self.files[index]}: size {frame.shape[1]}x{frame.shape[0]} "
                                 f"differs from the first image's "
                                 f"{self.meta.width}x{self.meta.height}; all frames of a "
                                 f"folder must have one size")
            yield index, frame


def open_frames(path: str | Path, *, start: str | int | None = None,
                end: str | int | None = None, fps: float | None = None,
                image_fps: float = DEFAULT_IMAGE_FPS) -> FrameSource:
    """Open a video file, a folder of images or one image as a streaming FrameSource.

    start/end: first frame and end (exclusive) as frames ("75") or seconds ("2.5s");
    fps: keep at most this many frames per second (None: all); image_fps: the rate assumed
    for image folders (used for seconds in start/end and for the output video).
    Raises InputError for a missing path, an empty or unreadable file, a video without
    decodable frames, or an invalid selection.
    """
    path = Path(path).expanduser()
    if not path.exists():
        raise InputError(f"{path}: no such file or folder")
    if not (image_fps > 0 and math.isfinite(image_fps)):
        raise InputError(f"image frame rate {image_fps}: must be a positive number")
    args = (start, end, fps)
    if path.is_dir():
        files = sorted((p for p in path.iterdir()
                        if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
                        and not p.name.startswith(".")), key=_natural_key)
        if not files:
            raise InputError(f"{path}: the folder contains no images "
                             f"({', '.join(sorted(IMAGE_SUFFIXES))})")
        return ImageFilesSource(path, files, image_fps, "images", args)
    if path.stat().st_size == 0:
        raise InputError(f"{path}: the file is empty (0 bytes)")
    if path.suffix.lower() in IMAGE_SUFFIXES:
        return ImageFilesSource(path, [path], image_fps, "image", args)
    # Anything else goes to ffmpeg, which knows far more containers than any suffix list.
    return VideoFileSource(path, args)


# --------------------------------------------------------------------------------------------
# writing

class VideoWriter:
    """Write RGB uint8 frames to an H.264 (yuv420p) mp4, atomically.

        with VideoWriter("out.mp4", fps=30) as w:
            for frame in frames:
                w.write(frame)

    The file appears under its name only when the block ends without an exception; until then
    ffmpeg writes to a temporary name beside it. Odd frame sizes are padded by one black
    row/column (yuv420p needs even sizes). crf: x264 quality (lower is better; 23 default).
    """

    def __init__(self, path: str | Path, fps: float, *, crf: int = 23,
                 preset: str = "medium") -> None:
        if not (fps > 0 and math.isfinite(fps)):
            raise ValueError(f"fps must be positive, got {fps}")
        self.path = Path(path)
        self.fps = float(fps)
        self.crf = int(crf)
        self.preset = preset
        self.frames_written = 0
        self._stack: contextlib.ExitStack | None = None
        self._tmp: Path | None = None
        self._gen = None
        self._size: tuple[int, int] | None = None

    def __enter__(self) -> VideoWriter:
        self._stack = contextlib.ExitStack()
        self._tmp = self._stack.enter_context(atomic_path(self.path))
        return self

    def _start(self, width: int, height: int) -> None:
        import imageio_ffmpeg
        from fractions import Fraction

        self._size = (width, height)
        params = ["-preset", self.preset, "-crf", str(self.crf), "-movflags", "+faststart"]
        if width % 2 or height % 2:
            params = ["-vf", "pad=ceil(iw/2)*2:ceil(ih/2)*2"] + params
        self._gen = imageio_ffmpeg.write_frames(
            str(self._tmp), (width, height), fps=Fraction(self.fps).limit_denominator(1001),
            codec="libx264", quality=None, macro_block_size=1, pix_fmt_out="yuv420p",
            ffmpeg_log_level="error", output_params=params)
        self._gen.send(None)

    def write(self, frame: np.ndarray) -> None:
        """Append one RGB uint8 (H, W, 3) frame; every frame must have the first one's size."""
        if self._tmp is None:
            raise RuntimeError("VideoWriter.write outside its `with` block")
        frame = np.asarray(frame)
        if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
            raise ValueError(f"expected an RGB uint8 (H, W, 3) frame, got {frame.dtype} "
                             f"{frame.shape}")
        h, w = frame.shape[:2]
        if self._gen is None:
            self._start(w, h)
        elif (w, h) != self._size:
            raise ValueError(f"frame size {w}x{h} differs from the first frame's "
                             f"{self._size[0]}x{self._size[1]}")
        self._gen.send(np.ascontiguousarray(frame))
        self.frames_written += 1

    def __exit__(self, exc_type, exc, tb) -> bool:
        assert self._stack is not None
        stack, gen = self._stack, self._gen
        self._stack, self._gen, self._tmp = None, None, None
        try:
            if gen is not None:
                gen.close()  # flushes and waits for ffmpeg
            if exc_type is None and self.frames_written == 0:
                raise ValueError(f"{self.path}: no frames were written")
        except Exception as err:
            if exc_type is None:  # a failure of our own: drop the temporary file, re-raise
                stack.__exit__(type(err), err, err.__traceback__)
                raise
            # otherwise the body's exception is the one that matters
        return bool(stack.__exit__(exc_type, exc, tb))
