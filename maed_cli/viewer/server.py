"""The local server of `maed view` (127.0.0.1 only) and the `--out` static folder.

Both give the page the same paths: the page itself (static/), data/* from `ViewerData`, and
data/video.<ext>, the input video, served with HTTP range requests so the browser can seek.
"""
from __future__ import annotations

import mimetypes
import re
import shutil
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlparse

from ..atomic import atomic_dir
from .data import VIDEO_TYPES, ViewerData

STATIC = Path(__file__).parent / "static"
_RANGE = re.compile(r"bytes=(\d*)-(\d*)$")
_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
          ".css": "text/css; charset=utf-8", ".json": "application/json",
          ".bin": "application/octet-stream", ".md": "text/plain; charset=utf-8"}


def static_files() -> list[Path]:
    """The page's files, relative to STATIC."""
    return sorted(p.relative_to(STATIC) for p in STATIC.rglob("*") if p.is_file()
                  and "__pycache__" not in p.parts)


def _content_type(name: str) -> str:
    suffix = Path(name).suffix.lower()
    return _TYPES.get(suffix) or VIDEO_TYPES.get(suffix) or mimetypes.guess_type(name)[0] \
        or "application/octet-stream"


def make_handler(data: ViewerData, log: Callable[[str], None] | None = None):
    page = {str(p): STATIC / p for p in static_files()}
    video_name = data.video_name()

    class Handler(BaseHTTPRequestHandler):
        server_version = "maed-view"

        def log_message(self, format: str, *args) -> None:  # noqa: A002 - the base's name
            if log is not None:
                log(format % args)

        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            path = unquote(urlparse(self.path).path).lstrip("/") or "index.html"
            try:
                if path in page:
                    self._send(page[path].read_bytes(), _content_type(path))
                elif path == "data/meta.json":
                    self._send(data.meta_json(), _content_type(path))
                elif video_name and path == f"data/{video_name}":
                    self._send_file(data.video, _content_type(video_name))
                elif path.startswith("data/"):
                    self._send(data.data_file(path[5:]), _content_type(path))
                else:
                    self.send_error(404)
            except KeyError:
                self.send_error(404)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the page went away mid-answer (a seek cancels a video request)

        def _send(self, body: bytes, content_type: str) -> None:
            self.send_response(200)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-cache")
            self.end_headers()
            self.wfile.write(body)

        def _send_file(self, file: Path, content_type: str) -> None:
            size = file.stat().st_size
            start, end = 0, size - 1
            match = _RANGE.match(self.headers.get("Range", "").strip())
            if match and (match.group(1) or match.group(2)):
                if match.group(1):
                    start = int(match.group(1))
                    end = min(int(match.group(2)), size - 1) if match.group(2) else size - 1
                else:  # bytes=-N: the last N bytes
                    start = max(0, size - int(match.group(2)))
                if start >= size or start > end:
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{size}")
                    self.end_headers()
                    return
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
            else:
                self.send_response(200)
            self.send_header("Accept-Ranges", "bytes")
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(end - start + 1))
            self.end_headers()
            with open(file, "rb") as handle:
                handle.seek(start)
                left = end - start + 1
                while left > 0:
                    block = handle.read(min(left, 1 << 20))
                    if not block:
                        break
                    self.wfile.write(block)
                    left -= len(block)

    return Handler


def make_server(data: ViewerData, port: int = 0, log=None) -> ThreadingHTTPServer:
    """A server on 127.0.0.1:`port` (0: any free port); call serve_forever()."""
    server = ThreadingHTTPServer(("127.0.0.1", port), make_handler(data, log))
    server.daemon_threads = True
    return server


def write_static(data: ViewerData, out: str | Path, progress: Callable[[int, int], None]
                 | None = None, copy_video: bool = True) -> Path:
    """The page and every data file under `out` (replaced as a whole), ready to be served by
    any static web server. `progress(done, total)` is called after each data file."""
    out = Path(out)
    files = data.files()
    with atomic_dir(out) as tmp:
        for rel in static_files():
            (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(STATIC / rel, tmp / rel)
        (tmp / "data").mkdir()
        (tmp / "data" / "meta.json").write_bytes(
            data.meta_json() if copy_video else _without_video(data))
        for done, (name, make) in enumerate(files.items(), 1):
            target = tmp / "data" / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(make())
            if progress is not None:
                progress(done, len(files))
        if copy_video and data.video is not None:
            shutil.copyfile(data.video, tmp / "data" / data.video_name())
    return out


def _without_video(data: ViewerData) -> bytes:
    import json
    return json.dumps(data.meta(None)).encode()
