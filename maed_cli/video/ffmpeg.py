"""One ffmpeg process decoding a video file to raw RGB frames, with its log read as it comes.

imageio-ffmpeg's `read_frames` hides ffmpeg's log: decoding damage, per-frame timestamps and
the reason for an early stop are lost, its size check prints a `logging` warning on every
open of a rotated phone clip, and its pipes are left to the garbage collector
(ResourceWarnings). This decoder runs the bundled binary itself:

    ffmpeg -i FILE -map 0:v:0 -vf showinfo -fps_mode passthrough -f rawvideo -pix_fmt rgb24 -

`-fps_mode passthrough` gives every coded picture exactly once (no duplicate or dropped
frames for variable-frame-rate files, whose picture times come from showinfo's `pts_time`).
ffmpeg applies rotation metadata itself (autorotate), so frames are upright and the output
size is the upright size. A thread reads stderr: the header (probe), one `pts_time` per
frame, and decoder errors, each charged to the frame that followed it.
"""
from __future__ import annotations

import re
import subprocess
import threading
from array import array
from dataclasses import dataclass, field
from pathlib import Path

_DURATION_RE = re.compile(r"Duration: (\d+):(\d+):(\d+(?:\.\d+)?)")
_IN_VIDEO_RE = re.compile(r"Stream #0:\d+\S*: Video: (\w+)")
_FPS_RE = re.compile(r", (\d+(?:\.\d+)?) fps")
_TBR_RE = re.compile(r", (\d+(?:\.\d+)?)(k?) tbr")
_OUT_SIZE_RE = re.compile(r"Video: rawvideo.*?, (\d+)x(\d+)")
_ROTATION_RE = re.compile(r"rotation of (-?\d+(?:\.\d+)?) degrees")
_SHOWINFO_RE = re.compile(r"\bn:\s*(\d+)\s+pts:\s*(-?\d+)\s+pts_time:(\S+)")
_LEVEL_RE = re.compile(r"\[(error|fatal|panic)\]\s*(.*)")
# what ffmpeg logs for a picture the decoder flagged as damaged, as it hands that picture on;
# the decoders' own error lines come from threads decoding ahead, so they name no frame
_DAMAGE = "corrupt decoded frame"


@dataclass
class Header:
    """What ffmpeg says about the input before the first frame (sizes in pixels)."""

    codec: str | None = None
    width: int | None = None       # of the frames produced: upright, after rotation
    height: int | None = None
    fps: float = 0.0               # average frame rate the container states (0: unknown)
    tbr: float = 0.0               # ffmpeg's guess of the base rate (differs for VFR)
    duration: float | None = None  # seconds
    rotation: float = 0.0          # degrees counter-clockwise, from the display matrix
    has_video: bool = False
    has_audio: bool = False

    @property
    def variable_rate(self) -> bool:
        """The container's average rate and its base rate disagree (phone videos, screen
        recordings, concatenations): picture times must come from their timestamps."""
        return bool(self.fps and self.tbr and abs(self.fps - self.tbr) > 0.01 * self.tbr)


@dataclass
class LogState:
    header: Header = field(default_factory=Header)
    header_done: bool = False
    times: array = field(default_factory=lambda: array("d"))  # pts_time of frame n
    damaged: dict = field(default_factory=dict)  # frame n -> first damage message
    errors: list = field(default_factory=list)   # the last error lines (without a frame)
    lines: list = field(default_factory=list)    # the header text, for error messages


def ffmpeg_exe() -> str:
    import imageio_ffmpeg
    return imageio_ffmpeg.get_ffmpeg_exe()


class Decoder:
    """Iterate raw frames of one ffmpeg run; `close()` (or the end) stops the process."""

    def __init__(self, path: Path, seek_s: float | None = None) -> None:
        cmd = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-v", "level+info"]
        if seek_s:
            cmd += ["-ss", f"{seek_s:.6f}"]
        cmd += ["-i", str(path), "-map", "0:v:0", "-an", "-sn", "-dn", "-vf", "showinfo",
                "-fps_mode", "passthrough", "-f", "rawvideo", "-pix_fmt", "rgb24", "-"]
        self.state = LogState()
        self._cond = threading.Condition()
        # its own process group: a Ctrl-C in the terminal reaches us, not ffmpeg, so the end
        # of its output always means the end of the video (we stop it ourselves in close())
        self._proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, bufsize=0, process_group=0)
        self._reader = threading.Thread(target=self._read_log, daemon=True)
        self._reader.start()

    # -- stderr ------------------------------------------------------------------------------

    def _read_log(self) -> None:
        state, header = self.state, self.state.header
        section = None
        assert self._proc.stderr is not None
        for raw in iter(self._proc.stderr.readline, b""):
            line = raw.decode("utf-8", "replace").rstrip()
            text = line.split("] ", 1)[1] if line.startswith("[info]") else line
            with self._cond:
                info = _SHOWINFO_RE.search(line)
                if info:
                    state.times.append(float(info.group(3)))
                    self._cond.notify_all()
                    continue
                if not state.header_done:
                    state.lines.append(text)
                    if text.startswith("Input #"):
                        section = "in"
                    elif text.startswith("Output #"):
                        section = "out"
                    if section == "in":
                        self._parse_input(text, header)
                    elif section == "out":
                        size = _OUT_SIZE_RE.search(text)
                        if size:
                            header.width, header.height = int(size.group(1)), int(size.group(2))
                            state.header_done = True
                            self._cond.notify_all()
                error = _LEVEL_RE.search(line)
                if error:
                    state.errors = (state.errors + [error.group(2).strip()])[-5:]
                elif _DAMAGE in line:
                    # the next picture is the one it concerns; the message says why
                    reason = state.errors[-1] if state.errors else _DAMAGE
                    state.damaged.setdefault(len(state.times), reason)
        with self._cond:
            self.state.header_done = True  # nothing more is coming
            self._cond.notify_all()

    @staticmethod
    def _parse_input(text: str, header: Header) -> None:
        duration = _DURATION_RE.search(text)
        if duration:
            h, m, s = duration.groups()
            header.duration = int(h) * 3600 + int(m) * 60 + float(s) or None
        if ": Audio:" in text:
            header.has_audio = True
        video = _IN_VIDEO_RE.search(text)
        if video and not header.has_video:
            header.has_video = True
            header.codec = video.group(1)
            fps = _FPS_RE.search(text)
            tbr = _TBR_RE.search(text)
            header.fps = float(fps.group(1)) if fps else 0.0
            if tbr:
                header.tbr = float(tbr.group(1)) * (1000 if tbr.group(2) else 1)
        rotation = _ROTATION_RE.search(text)
        if rotation:
            header.rotation = float(rotation.group(1))

    # -- the caller's side -------------------------------------------------------------------

    def wait_header(self, timeout: float = 30.0) -> Header | None:
        """The header once the output size is known; None when ffmpeg stopped before."""
        with self._cond:
            self._cond.wait_for(lambda: self.state.header_done, timeout)
            header = self.state.header
            return header if header.width else None

    def read(self, nbytes: int) -> bytes | None:
        """One frame's bytes, or None at the end (a partial frame is dropped)."""
        assert self._proc.stdout is not None
        chunks, got = [], 0
        while got < nbytes:
            chunk = self._proc.stdout.read(nbytes - got)
            if not chunk:
                return None
            chunks.append(chunk)
            got += len(chunk)
        return b"".join(chunks)

    def time_of(self, n: int, timeout: float = 5.0) -> float | None:
        """pts_time of frame n: its showinfo line was written before the frame itself, the
        log thread may only be a little behind."""
        with self._cond:
            self._cond.wait_for(lambda: len(self.state.times) > n or not self._reader.is_alive(),
                                timeout)
            return self.state.times[n] if len(self.state.times) > n else None

    def finish(self) -> int:
        """Wait for ffmpeg to exit after the last frame; its return code."""
        code = self._proc.wait()
        self._reader.join(timeout=5)
        return code

    def close(self) -> None:
        proc = self._proc
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        self._reader.join(timeout=5)  # the log ends with the process
        for pipe in (proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()

    def reason(self) -> str:
        """The most telling line of the log, for an error message."""
        errors = [e for e in self.state.errors if e]
        if errors:
            return errors[-1]
        lines = [ln for ln in self.state.lines if ln.strip()]
        return lines[-1].strip() if lines else "ffmpeg could not read it"
