"""Image inputs of `maed demo`: which images, and whether they are one video or separate photos.

An input is an image input when it is one image file, a folder, a glob pattern, a list file
(.txt/.lst/.list, see maed_cli.video.inputs) or several paths; a single video file is not.
Two modes:
    sequence     the images are the frames of one video (today's video path: detection,
                 tracking, 16-frame clips); only a whole folder can be one;
    independent  every image is a photo of its own: people are detected in it and each is
                 run through the network once, as one frame (MAED's image mode, T = 1).
`choose_mode` picks `sequence` for a folder whose names look like numbered frames (one
prefix and suffix around a number, the numbers evenly spaced) of one image size, and
`independent` otherwise, with a reason that can be shown to the user.
"""
from __future__ import annotations

import glob
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..errors import InputError
from .inputs import expand_inputs, is_list_file
from .io import IMAGE_SUFFIXES, VIDEO_SUFFIXES, read_image

SEQUENCE, INDEPENDENT, AUTO = "sequence", "independent", "auto"
IMAGE_MODES = (AUTO, SEQUENCE, INDEPENDENT)
_NUMBERED = re.compile(r"^(.*?)(\d+)(\D*)$")


def is_image(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES and \
        not path.name.startswith(".")


def natural_key(path: Path) -> list:
    """Name order with numbers compared as numbers (frame_2 before frame_10)."""
    return [int(tok) if tok.isdigit() else tok.lower()
            for tok in re.split(r"(\d+)", Path(path).as_posix())]


@dataclass(frozen=True)
class ImageSet:
    """The images of an input in natural name order.

    files: the image paths; names: each one's name relative to the input (POSIX; where its
    results go in independent mode); folder: the folder when the input is one folder (its
    images, top level only), else None; single: the input is one image file;
    inputs: the paths as the user wrote them.
    """

    files: tuple[Path, ...]
    names: tuple[str, ...]
    folder: Path | None
    single: bool
    inputs: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.files)

    @property
    def given(self) -> str:
        """The input in words (for messages and the summary)."""
        return " ".join(self.inputs)

    @property
    def one_path(self) -> Path | None:
        """The input when it is one image, folder or list file (not a glob), else None."""
        if len(self.inputs) != 1 or glob.has_magic(self.inputs[0]):
            return None
        return Path(self.inputs[0]).expanduser()


@dataclass(frozen=True)
class ModeChoice:
    """mode: 'sequence' | 'independent'; requested: what --images said; reason: why, in
    words."""

    mode: str
    requested: str
    reason: str

    def to_dict(self) -> dict:
        return {"mode": self.mode, "requested": self.requested, "reason": self.reason}


def is_image_input(inputs: Sequence[str | Path]) -> bool:
    """Whether `maed demo` takes the image route: anything but one video file."""
    if len(inputs) != 1:
        return True
    text = str(inputs[0])
    path = Path(text).expanduser()
    if glob.has_magic(text) and not path.exists():
        return True
    if path.is_dir() or is_list_file(path):
        return True
    return path.suffix.lower() in IMAGE_SUFFIXES


def collect_images(inputs: Sequence[str | Path], exclude: Path | None = None) -> ImageSet:
    """The images of `inputs`: one image, a folder (top level), globs, list files, or several
    of these. InputError when there is none, or a path is not an image/folder/glob/list."""
    inputs = [str(i) for i in inputs]
    if not inputs:
        raise InputError("give an image, a folder of images, a glob or a list file")
    for text in inputs:
        if Path(text).suffix.lower() in VIDEO_SUFFIXES and Path(text).expanduser().is_file():
            raise InputError(f"{text}: a video among several inputs; `maed demo` takes one "
                             f"video at a time (`maed batch` runs many)")
    suffixes = sorted(IMAGE_SUFFIXES)
    found = expand_inputs(inputs, is_image, noun="image", suffixes=suffixes, recursive=False,
                          exclude=exclude, sort_key=natural_key)
    found.sort(key=lambda item: natural_key(Path(item[1])))
    files = tuple(path for path, _ in found)
    names = tuple(name for _, name in found)
    first = Path(inputs[0]).expanduser()
    one_path = len(inputs) == 1 and not glob.has_magic(inputs[0])
    folder = first if one_path and first.is_dir() else None
    single = one_path and first.is_file() and is_image(first)
    return ImageSet(files, names, folder, single, tuple(inputs))


def image_size(path: Path) -> tuple[int, int]:
    """(width, height) in pixels, from the file's header when PIL can read it."""
    try:
        from PIL import Image
        with Image.open(path) as image:
            return image.size
    except Exception:  # noqa: BLE001 - PIL missing or the format unknown to it: decode
        h, w = read_image(path).shape[:2]
        return w, h


def numbered_frames(names: Sequence[str]) -> str | None:
    """None when the names look like numbered frames of one video (one prefix and suffix
    around a number, evenly spaced numbers), else why not (in words)."""
    if len(names) < 2:
        return "a single image"
    parts = [_NUMBERED.match(Path(name).name) for name in names]
    if not all(parts):
        return "not every name carries a frame number"
    prefixes = {(m.group(1), m.group(3).lower()) for m in parts}
    if len(prefixes) != 1:
        return "the names do not share one pattern around their numbers"
    numbers = sorted(int(m.group(2)) for m in parts)
    steps = {b - a for a, b in zip(numbers, numbers[1:])}
    if len(steps) != 1 or 0 in steps:
        return "the numbers are not evenly spaced (missing or repeated frames)"
    return None


def choose_mode(images: ImageSet, requested: str = AUTO) -> ModeChoice:
    """Sequence or independent for `images` (see the module docstring); InputError for a
    sequence that cannot be one."""
    if requested not in IMAGE_MODES:
        raise InputError(f"--images {requested!r}: expected one of {', '.join(IMAGE_MODES)}")
    if images.single:
        return ModeChoice(INDEPENDENT, requested, "one image")
    if requested == SEQUENCE:
        if images.folder is None:
            raise InputError(f"--images sequence: the frames of a video are read from one "
                             f"folder; give the folder instead of {images.given}")
        return ModeChoice(SEQUENCE, requested, "--images sequence")
    if requested == INDEPENDENT:
        return ModeChoice(INDEPENDENT, requested, "--images independent")
    if images.folder is None:
        return ModeChoice(INDEPENDENT, requested,
                          "a glob, list or several paths (only a folder can be a sequence)")
    why_not = numbered_frames(images.names)
    if why_not is None:
        sizes = {image_size(path) for path in images.files}
        if len(sizes) > 1:
            why_not = f"the images have {len(sizes)} different sizes"
    if why_not is not None:
        return ModeChoice(INDEPENDENT, requested, why_not)
    return ModeChoice(SEQUENCE, requested, "numbered frames of one size")
