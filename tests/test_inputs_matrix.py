"""Real footage, real faults: each kind of input a user brings, made here with the bundled ffmpeg.

Files are tiny (64x48, 10-20 frames) so the whole matrix takes seconds. Each frame carries
its index as bars (see test_video.synthetic_frame's idea) or a quadrant pattern that shows
which way is up.
"""
from __future__ import annotations

import gc
import subprocess
import warnings
from pathlib import Path

import numpy as np
import pytest

from maed_cli.errors import InputError
from maed_cli.video.ffmpeg import ffmpeg_exe
from maed_cli.video.io import VideoWriter, open_frames

from test_demo import demo_setup, installed_regressor  # noqa: F401 - fixtures

W, H = 64, 48


def index_frame(i: int, width: int = W, height: int = H) -> np.ndarray:
    """Frame i: its index as 5 white bars in the top rows over a dark-blue background."""
    f = np.zeros((height, width, 3), np.uint8)
    f[..., 2] = 120
    bar = width // 5
    for b in range(5):
        if (i >> b) & 1:
            f[:16, b * bar:(b + 1) * bar] = 255
    return f


def read_index(frame: np.ndarray) -> int:
    bar = frame.shape[1] // 5
    return sum(int(frame[4:12, b * bar + 2:(b + 1) * bar - 2].mean() > 160) << b
               for b in range(5))


QUADRANTS = ((230, 30, 30), (30, 200, 30), (30, 30, 230), (240, 240, 240))  # TL TR BL BR


def upright_frame(width: int, height: int) -> np.ndarray:
    """Red top-left, green top-right, blue bottom-left, white bottom-right."""
    f = np.zeros((height, width, 3), np.uint8)
    h2, w2 = height // 2, width // 2
    f[:h2, :w2], f[:h2, w2:], f[h2:, :w2], f[h2:, w2:] = QUADRANTS
    return f


def quadrant_colours(frame: np.ndarray) -> list[tuple[int, ...]]:
    h, w = frame.shape[:2]
    q = [frame[:h // 2, :w // 2], frame[:h // 2, w // 2:], frame[h // 2:, :w // 2],
         frame[h // 2:, w // 2:]]
    return [tuple(int(v) for v in np.median(x.reshape(-1, 3), 0)) for x in q]


def ffmpeg(*args) -> None:
    subprocess.run([ffmpeg_exe(), "-v", "error", "-y", *map(str, args)], check=True,
                   stdin=subprocess.DEVNULL)


def encode(path: Path, frames: list[np.ndarray], *, fps: float = 10, before=(), after=()
           ) -> Path:
    """Raw RGB frames through ffmpeg's stdin into `path` with the given encoder options."""
    h, w = frames[0].shape[:2]
    cmd = [ffmpeg_exe(), "-v", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24",
           "-s", f"{w}x{h}", "-r", str(fps), *map(str, before), "-i", "-", *map(str, after),
           str(path)]
    subprocess.run(cmd, input=b"".join(np.ascontiguousarray(f).tobytes() for f in frames),
                   check=True)
    return path


def assert_close(a, b, tol=40):
    assert np.abs(np.asarray(a, int) - np.asarray(b, int)).max() <= tol, (a, b)


@pytest.fixture
def no_stray_output(capfd):
    """Nothing from a library on stderr (imageio's size warning, ffmpeg's log) and no
    ResourceWarning: what the user sees is our one-line warnings or nothing."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield caught
        gc.collect()
    out, err = capfd.readouterr()
    assert err == "" and out == "", (out, err)
    assert not [w for w in caught if issubclass(w.category, ResourceWarning)], caught


# --- rotation metadata ----------------------------------------------------------------------

@pytest.mark.parametrize("rotation", [90, 180, 270])
def test_rotated_phone_clip_decodes_upright(tmp_path, rotation, no_stray_output):
    upright = upright_frame(48, 64)  # a portrait picture, as the phone showed it
    # the sensor stored it turned; the display matrix says to turn it back (counter-clockwise)
    stored = np.ascontiguousarray(np.rot90(upright, k=-rotation // 90))
    plain = encode(tmp_path / "plain.mp4", [stored] * 10, after=["-pix_fmt", "yuv444p"])
    path = tmp_path / f"rot{rotation}.mp4"
    ffmpeg("-display_rotation:v:0", rotation, "-i", plain, "-c", "copy", path)
    for _ in range(2):  # each pass (detect, crops, render) opens and decodes anew
        source = open_frames(path)
        assert source.meta.rotation == rotation
        assert source.meta.size == (48, 64)
        frames = [f for _, f in source]
        assert len(frames) == 10 and frames[0].shape == (64, 48, 3)
        for got, want in zip(quadrant_colours(frames[-1]), QUADRANTS):
            assert_close(got, want)
    assert not [w for w in no_stray_output if w.category is UserWarning]


# --- variable frame rate --------------------------------------------------------------------

@pytest.fixture
def vfr_video(tmp_path) -> tuple[Path, list[float]]:
    """20 frames: 10 at 10 fps, then 10 at 20 fps (a phone's frame rate changing)."""
    times = [i * 0.1 for i in range(10)] + [1.0 + i * 0.05 for i in range(10)]
    path = encode(tmp_path / "vfr.mp4", [index_frame(i) for i in range(20)], fps=10,
                  after=["-vf", "settb=1/100,setpts='if(lt(N,10),N*10,100+(N-10)*5)'",
                         "-fps_mode", "passthrough", "-enc_time_base:v", "1/100",
                         "-pix_fmt", "yuv444p"])
    return path, times


def test_variable_frame_rate_ids_and_times(vfr_video, no_stray_output):
    path, times = vfr_video
    source = open_frames(path)
    assert source.meta.variable_rate
    got = list(source)
    # every coded picture once, numbered in order: no duplicates to fill a constant rate
    assert [i for i, _ in got] == list(range(20))
    assert [read_index(f) for _, f in got] == list(range(20))
    np.testing.assert_allclose([source.frame_time(i) for i, _ in got], times, atol=1e-3)


def test_variable_frame_rate_fps_resampling_uses_real_times(vfr_video):
    path, times = vfr_video
    source = open_frames(path, fps=10)
    kept = [i for i, _ in source]
    # at 10 fps: every frame of the slow half, every second one of the fast half
    assert kept == list(range(11)) + [12, 14, 16, 18]
    gaps = np.diff([source.frame_time(i) for i in kept])
    np.testing.assert_allclose(gaps, 0.1, atol=1e-3)
    assert source.stream_fps == pytest.approx(10.0)


def test_constant_frame_rate_is_not_taken_for_variable(tmp_path):
    path = encode(tmp_path / "cfr.mp4", [index_frame(i) for i in range(12)], fps=25)
    source = open_frames(path, start=3, fps=12.5)
    assert not source.meta.variable_rate
    assert [i for i, _ in source] == [3, 5, 7, 9, 11]
    assert source.frame_time(5) == pytest.approx(0.2)


# --- pixel formats and sizes ----------------------------------------------------------------

@pytest.mark.parametrize("name, options", [
    ("10bit", ["-c:v", "libx264", "-pix_fmt", "yuv420p10le"]),
    ("444", ["-c:v", "libx264", "-pix_fmt", "yuv444p"]),
    ("gray", ["-c:v", "libx264", "-pix_fmt", "gray"]),
    ("hevc10", ["-c:v", "libx265", "-pix_fmt", "yuv420p10le", "-x265-params", "log-level=none"]),
])
def test_pixel_formats_decode_to_rgb8(tmp_path, name, options, no_stray_output):
    frames = [index_frame(i) for i in range(12)]
    if name == "gray":
        frames = [np.repeat(f.mean(2, keepdims=True).astype(np.uint8), 3, 2) for f in frames]
    try:
        path = encode(tmp_path / f"{name}.mkv", frames, after=options)
    except subprocess.CalledProcessError:
        pytest.skip(f"this ffmpeg build cannot encode {name}")
    source = open_frames(path)
    got = list(source)
    assert source.meta.size == (W, H) and len(got) == 12
    assert all(f.dtype == np.uint8 and f.shape == (H, W, 3) for _, f in got)
    assert [read_index(f) for _, f in got] == list(range(12)) or name == "gray"
    assert_close(got[5][1][30, 30], frames[5][30, 30])
    if name == "gray":
        f = got[5][1].astype(int)
        assert np.abs(f[..., 0] - f[..., 1]).max() <= 2 and np.abs(f[..., 1] - f[..., 2]).max() <= 2


def test_odd_width_and_height(tmp_path, no_stray_output):
    frames = [index_frame(i, 65, 47) for i in range(10)]
    path = encode(tmp_path / "odd.mkv", frames, after=["-c:v", "libx264", "-pix_fmt", "yuv444p"])
    source = open_frames(path)
    got = [f for _, f in source]
    assert source.meta.size == (65, 47) and got[0].shape == (47, 65, 3)
    assert [read_index(f) for f in got] == list(range(10))
    out = tmp_path / "odd_out.mp4"  # the overlay writer pads to even sizes for yuv420p
    with VideoWriter(out, fps=10) as writer:
        for f in got:
            writer.write(f)
    assert open_frames(out).meta.size == (66, 48)


# --- not a video, or not quite --------------------------------------------------------------

def test_audio_only_file_is_refused_in_one_line(tmp_path):
    path = tmp_path / "voice.m4a"
    ffmpeg("-f", "lavfi", "-i", "sine=duration=1", "-c:a", "aac", path)
    with pytest.raises(InputError) as err:
        open_frames(path)
    message = str(err.value)
    assert "no video stream" in message and "audio" in message and "\n" not in message


def test_animated_gif(tmp_path, no_stray_output):
    frames = [index_frame(i) for i in range(10)]
    path = encode(tmp_path / "anim.gif", frames, fps=10)
    source = open_frames(path)
    got = list(source)
    assert source.meta.size == (W, H) and source.meta.fps == pytest.approx(10)
    assert [read_index(f) for _, f in got] == list(range(10))


def test_image_folder_mixed_formats_and_sizes(tmp_path):
    import cv2

    folder = tmp_path / "shots"
    folder.mkdir()
    for i, ext in enumerate(["png", "jpg", "bmp", "webp", "tif"]):
        cv2.imwrite(str(folder / f"f{i}.{ext}"), index_frame(i)[..., ::-1])
    got = list(open_frames(folder))  # formats may mix: each is decoded by its own reader
    assert [read_index(f) for _, f in got] == list(range(5))
    cv2.imwrite(str(folder / "f9.png"), index_frame(9, 80, 60))
    with pytest.raises(InputError) as err:
        list(open_frames(folder))
    message = str(err.value)
    assert "f9.png" in message and "80x60" in message and f"{W}x{H}" in message


def test_corrupt_middle_keeps_the_good_part_and_names_the_frames(tmp_path):
    # MPEG-4 part 2 in AVI, a keyframe every 4 frames: damage stays local; noise below the
    # bars makes every frame's data large, so the middle of the file is inside a frame
    rng = np.random.default_rng(0)
    frames = [index_frame(i) for i in range(16)]
    for f in frames:
        f[20:] = rng.integers(0, 255, f[20:].shape)
    path = encode(tmp_path / "clip.avi", frames, after=["-c:v", "mpeg4", "-g", "4", "-q:v", "2"])
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle:middle + 200] = np.random.default_rng(1).integers(0, 256, 200, np.uint8).tobytes()
    damaged = tmp_path / "damaged.avi"
    damaged.write_bytes(bytes(data))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        got = list(open_frames(damaged))
    indices = [read_index(f) for _, f in got]
    # the frames before and after the damage are there and intact
    assert indices[:4] == [0, 1, 2, 3] and indices[-4:] == [12, 13, 14, 15]
    ours = [str(w.message) for w in caught if w.category is UserWarning]
    assert len(ours) == 1 and "damaged.avi: damaged data in frame" in ours[0], ours
    named = ours[0].split("damaged data in frame")[1].split("(")[0].strip(" s")
    first = int(named.split("-")[0].split(",")[0])
    assert 4 <= first <= 11, ours[0]  # a frame in the middle, where the bytes were broken


def test_path_with_spaces_and_non_ascii(tmp_path, no_stray_output):
    import cv2

    folder = tmp_path / "Fußball Übung 2024 — été"
    folder.mkdir()
    path = encode(folder / "clip (1) ü.mp4", [index_frame(i) for i in range(10)])
    assert [i for i, _ in open_frames(path, start="0.3s")] == list(range(3, 10))
    out = folder / "résultat vidéo.mp4"
    with VideoWriter(out, fps=10) as writer:
        writer.write(index_frame(3))
    assert read_index(next(iter(open_frames(out)))[1]) == 3
    cv2.imencode(".png", index_frame(4))[1].tofile(str(folder / "bild ß.png"))
    assert read_index(next(iter(open_frames(folder / "bild ß.png")))[1]) == 4


# --- the demo on a rotated clip: boxes, sizes and the overlay in the upright frame ---------

@pytest.mark.slow  # about 45 s on 2 cores: the demo with --render
def test_demo_on_rotated_clip_is_upright_end_to_end(tmp_path, capsys, demo_setup,
                                                    installed_regressor):
    from maed_cli.results import load_results
    from test_demo import run

    upright = [f.copy() for _, f in open_frames(demo_setup["video"], end=10)]
    for f in upright:
        f[:30, :40] = (230, 30, 30)  # a red mark: top-left when upright
    stored = [np.ascontiguousarray(np.rot90(f, k=-1)) for f in upright]  # as a sensor saw it
    plain = encode(tmp_path / "stored.mp4", stored, fps=24, after=["-pix_fmt", "yuv444p"])
    path = tmp_path / "phone clip.mp4"
    ffmpeg("-display_rotation:v:0", 90, "-i", plain, "-c", "copy", path)
    out = tmp_path / "out"
    # the boxes of the upright video are the boxes of the rotated file's upright frames
    code, text = run(capsys, "demo", path, "--boxes", demo_setup["boxes"], "--checkpoint",
                     demo_setup["ckpt"], "--smpl", demo_setup["smpl"], "--output", out,
                     "--min-track", 5, "--quiet", "--render")
    assert code == 0, text
    assert "warning" not in text and "different from the source" not in text, text
    tracks, summary = load_results(out)
    assert (summary["input"]["width"], summary["input"]["height"]) == (320, 240)
    assert summary["input"]["rotation"] == 90
    for t in tracks:
        cx, cy = t.bboxes[:, 0], t.bboxes[:, 1]
        assert (0 <= cx).all() and (cx < 320).all() and (0 <= cy).all() and (cy < 240).all()
    overlay = [f for _, f in open_frames(out / "overlay.mp4")]
    assert overlay[0].shape == (240, 320, 3)
    assert_close(np.median(overlay[0][5:25, 5:35].reshape(-1, 3), 0), (230, 30, 30))
    assert_close(np.median(overlay[0][-25:, -35:].reshape(-1, 3), 0), upright[0][-10, -10])
