"""Decoding, encoding and cropping (maed_cli.video.io, maed_cli.video.crop)."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

from maed_cli.errors import InputError, MaedError
from maed_cli.video.crop import (CROP_SIZE, DEFAULT_BOX_SCALE, IMAGENET_MEAN, IMAGENET_STD,
                                  crop_and_normalize, crop_images, crop_regions, crop_to_image,
                                  normalize_crops)
from maed_cli.video.io import (FrameSelection, VideoWriter, open_frames, parse_position,
                               read_image)

W, H, FPS = 96, 64, 25


def synthetic_frame(i: int, width: int = W, height: int = H) -> np.ndarray:
    """Frame i: its index as 7 white/black bars in the top rows, a red rectangle moving right
    on a blue background below."""
    f = np.zeros((height, width, 3), np.uint8)
    f[16:, :, 2] = 200                       # blue background
    for b in range(7):
        if (i >> b) & 1:
            f[:14, b * 12:(b + 1) * 12] = 255
    x = (2 * i) % (width - 20)
    f[30:50, x:x + 20] = (230, 20, 20)       # red
    return f


def decode_index(frame: np.ndarray) -> int:
    return sum(int(frame[3:11, b * 12 + 3:(b + 1) * 12 - 3].mean() > 128) << b for b in range(7))


def write_video(path, n: int, fps: float = FPS, size=(W, H)) -> None:
    with VideoWriter(path, fps=fps) as writer:
        for i in range(n):
            writer.write(synthetic_frame(i, *size))


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    path = tmp_path_factory.mktemp("video") / "moving.mp4"
    write_video(path, 100)
    return path


def test_roundtrip_metadata_order_and_colours(video):
    source = open_frames(video)
    assert source.meta.kind == "video"
    assert source.meta.size == (W, H)
    assert source.meta.fps == pytest.approx(FPS)
    assert source.meta.num_frames == 100
    frames = list(source)
    assert [i for i, _ in frames] == list(range(100))
    assert [decode_index(f) for _, f in frames] == list(range(100))
    _, f7 = frames[7]
    assert f7.dtype == np.uint8 and f7.shape == (H, W, 3) and f7.flags.writeable
    red = f7[35:45, 2 * 7 + 5:2 * 7 + 15].reshape(-1, 3).mean(0)
    blue = f7[55:, :].reshape(-1, 3).mean(0)
    assert red[0] > 180 and red[2] < 60        # RGB order, not BGR
    assert blue[2] > 160 and blue[0] < 40


@pytest.mark.parametrize("start,end,expected", [
    ("37", None, range(37, 100)),
    (10, 20, range(10, 20)),
    ("2s", "2.4s", range(50, 60)),
    ("0:01.2", "54", range(30, 54)),
])
def test_start_end_select_exact_frames(video, start, end, expected):
    frames = list(open_frames(video, start=start, end=end))
    assert [i for i, _ in frames] == list(expected)
    assert [decode_index(f) for _, f in frames] == list(expected)  # seeking is frame-exact


def test_fps_subsampling(video):
    source = open_frames(video, fps=10, end=40)
    got = [i for i, _ in source]
    # the first frame at or after each tick of a 10 fps clock (ticks every 2.5 frames)
    assert got == [0, 3, 5, 8, 10, 13, 15, 18, 20, 23, 25, 28, 30, 33, 35, 38]
    assert [decode_index(f) for _, f in open_frames(video, fps=10, end=40)] == got
    assert source.stream_fps == pytest.approx(10)
    assert source.estimated_length == len(got)
    # a target above the source rate keeps every frame, duplicating none
    assert [i for i, _ in open_frames(video, fps=60, end=5)] == [0, 1, 2, 3, 4]


def test_selection_counts_match_keeps():
    for ratio_fps in (7.0, 10.0, 12.5, 29.0):
        sel = FrameSelection(start=3, end=200, source_fps=30.0, target_fps=ratio_fps)
        kept = [i for i in range(250) if sel.keeps(i)]
        assert sel.count(1000) == len(kept)
        assert kept[0] == 3
        # average rate is the target's
        assert len(kept) == pytest.approx(197 * ratio_fps / 30.0, abs=1)


def test_parse_position():
    assert parse_position("75", 30) == 75
    assert parse_position(12, 30) == 12
    assert parse_position("2.5s", 30) == 75
    assert parse_position("1:00", 25) == 1500
    assert parse_position(None, 30) is None
    for bad in ("abc", "-3", "-1s", "2.5", "nans", 1.5):
        with pytest.raises(InputError):
            parse_position(bad, 30)


def test_bad_selection(video):
    with pytest.raises(InputError, match="after"):
        open_frames(video, start=50, end=40)
    with pytest.raises(InputError, match="past the end"):
        open_frames(video, start="10s")
    with pytest.raises(InputError, match="--fps"):
        open_frames(video, fps=0)
    # just past the (estimated) end: decoding finds nothing, and says so
    with pytest.raises(InputError, match="no frames in the selected range"):
        list(open_frames(video, start=100))


def _one_line_input_error(call) -> str:
    with pytest.raises(InputError) as info:
        call()
    message = str(info.value)
    assert "\n" not in message and "Traceback" not in message
    assert isinstance(info.value, MaedError)
    return message


def test_missing_file(tmp_path):
    msg = _one_line_input_error(lambda: open_frames(tmp_path / "nope.mp4"))
    assert "nope.mp4" in msg and "no such file" in msg


def test_text_file_named_mp4(tmp_path):
    path = tmp_path / "notes.mp4"
    path.write_text("this is not a video\n" * 50)
    msg = _one_line_input_error(lambda: open_frames(path))
    assert "notes.mp4" in msg and "not a readable video" in msg


def test_zero_length_file(tmp_path):
    path = tmp_path / "empty.mp4"
    path.write_bytes(b"")
    msg = _one_line_input_error(lambda: open_frames(path))
    assert "empty" in msg


def test_truncated_video(tmp_path, video):
    path = tmp_path / "cut.mp4"
    path.write_bytes(video.read_bytes()[:600])  # header only, no frame data
    msg = _one_line_input_error(lambda: open_frames(path))
    assert "cut.mp4" in msg


def test_video_cut_short_decodes_what_is_there_and_warns(tmp_path, video):
    path = tmp_path / "half.mp4"
    data = video.read_bytes()
    path.write_bytes(data[:len(data) // 2])
    source = open_frames(path)
    assert source.meta.num_frames == 100  # the header still gives the full length
    with pytest.warns(UserWarning, match=r"half.mp4: the video ended after (\d+) frames, "
                                         r"where its duration suggests about 100") as record:
        indices = [index for index, _ in source]
    assert 0 < len(indices) < 95 and indices == list(range(len(indices)))
    ours = [str(w.message) for w in record if w.category is UserWarning]
    assert len(ours) == 1 and f"after {len(indices)} frames" in ours[0]
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # the whole file, or a range inside it
        assert len(list(open_frames(video))) == 100
        assert len(list(open_frames(path, end=str(len(indices) - 1)))) == len(indices) - 1


def test_image_folder_natural_order_and_single_image(tmp_path):
    import cv2

    folder = tmp_path / "frames"
    folder.mkdir()
    for i in (0, 1, 2, 10, 11):  # name order would put 10 before 2
        cv2.imwrite(str(folder / f"img{i}.png"), synthetic_frame(i)[..., ::-1])
    (folder / "notes.txt").write_text("ignored")
    source = open_frames(folder, image_fps=10)
    assert source.meta.kind == "images" and source.meta.num_frames == 5
    frames = list(source)
    assert [decode_index(f) for _, f in frames] == [0, 1, 2, 10, 11]
    assert np.array_equal(frames[3][1], synthetic_frame(10))  # PNG: lossless, RGB
    assert [i for i, _ in open_frames(folder, start="0.1s", image_fps=10)] == [1, 2, 3, 4]

    single = open_frames(folder / "img2.png")
    assert single.meta.kind == "image"
    assert [decode_index(f) for _, f in single] == [2]


def test_image_folder_errors(tmp_path):
    import cv2

    empty = tmp_path / "empty"
    empty.mkdir()
    assert "no images" in _one_line_input_error(lambda: open_frames(empty))
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    cv2.imwrite(str(mixed / "a1.png"), synthetic_frame(1))
    cv2.imwrite(str(mixed / "a2.png"), synthetic_frame(2, 80, 64))
    with pytest.raises(InputError, match="a2.png"):
        list(open_frames(mixed))
    bad = tmp_path / "bad.jpg"
    bad.write_text("not an image")
    with pytest.raises(InputError, match="bad.jpg"):
        read_image(bad)


def test_writer_is_atomic(tmp_path):
    out = tmp_path / "out.mp4"
    with pytest.raises(KeyError):
        with VideoWriter(out, fps=10) as writer:
            writer.write(synthetic_frame(0))
            raise KeyError("render failed")
    assert list(tmp_path.iterdir()) == []        # neither the file nor a temporary
    with pytest.raises(ValueError, match="no frames"):
        with VideoWriter(out, fps=10):
            pass
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ValueError, match="size"):
        with VideoWriter(out, fps=10) as writer:
            writer.write(synthetic_frame(0))
            writer.write(synthetic_frame(1, 80, 64))
    assert list(tmp_path.iterdir()) == []


def test_writer_odd_size_and_rate(tmp_path):
    out = tmp_path / "odd.mp4"
    write_video(out, 12, fps=12.5, size=(W - 1, H - 1))
    source = open_frames(out)
    assert source.meta.size == (W, H)            # padded by one black row and column
    assert source.meta.fps == pytest.approx(12.5)
    frames = list(source)
    assert len(frames) == 12
    # the picture itself is unscaled (only padded): it matches the original pixel for pixel
    for i in (0, 11):
        original = synthetic_frame(i, W - 1, H - 1).astype(float)
        assert np.abs(frames[i][1][:H - 1, :W - 1] - original).mean() < 8


# --------------------------------------------------------------------------------------------
# crops

def test_crop_regions_scale_and_square():
    regions = crop_regions(np.array([[100, 50, 40, 120]]), scale=1.3)
    assert np.allclose(regions, [[100, 50, 156, 156]])
    assert np.allclose(crop_regions(np.array([10, 10, 30, 20])), [10, 10, 30 * DEFAULT_BOX_SCALE,
                                                                 30 * DEFAULT_BOX_SCALE])


def test_box_centre_maps_to_crop_centre():
    frame = np.zeros((300, 400, 3), np.uint8)
    frame[100:140, 200:240] = 255                # a white square centred at (220, 120)
    # in continuous coordinates (a detector's box): its centre lands on crop pixel 112
    crop = crop_images(frame, np.array([[220.0, 120.0, 80.0, 80.0]]), coords="continuous")[0]
    assert crop.shape == (CROP_SIZE, CROP_SIZE, 3) and crop.dtype == np.uint8
    mask = crop[..., 0] > 127
    ys, xs = np.nonzero(mask)
    # the square is the middle half of the region: pixels 56..168, symmetric about 112
    assert (xs.min(), xs.max(), ys.min(), ys.max()) == (56, 168, 56, 168)
    assert (xs.mean(), ys.mean()) == pytest.approx((112, 112), abs=1e-6)


def test_crop_outside_image_is_black():
    frame = np.full((100, 100, 3), 200, np.uint8)
    # region centred on the top-left corner: only the bottom-right quarter sees the image
    crop = crop_images(frame, np.array([[0.0, 0.0, 100.0, 100.0]]))[0]
    assert crop[:100, :100].max() == 0
    assert crop[120:, 120:].min() == 200
    assert crop[:100, 120:].max() == 0 and crop[120:, :100].max() == 0


def test_batched_crops_and_normalisation():
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 256, (120, 160, 3), dtype=np.uint8)
    regions = np.array([[50, 60, 40, 40], [100, 60, 80, 80], [10, 10, 224, 224]], float)
    crops = crop_images(frame, regions)
    assert crops.shape == (3, CROP_SIZE, CROP_SIZE, 3)
    x = crop_and_normalize(frame, regions)
    assert x.shape == (3, 3, CROP_SIZE, CROP_SIZE) and x.dtype == np.float32
    expected = (crops[1, 5, 7] / 255.0 - IMAGENET_MEAN) / IMAGENET_STD
    assert np.allclose(x[1, :, 5, 7], expected, atol=1e-6)
    # a region of the crop size at integer position is an exact copy of the pixels
    exact = crop_images(frame, np.array([[112.0, 112.0, 224.0, 224.0]]))[0]
    assert np.array_equal(exact[:120, :160], frame)
    assert normalize_crops(crops[None]).shape == (1, 3, 3, CROP_SIZE, CROP_SIZE)


def test_crop_to_image_inverts_the_crop():
    regions = np.array([[220.0, 120.0, 80.0, 80.0]])
    # crop centre -> region centre; crop corners -> region corners
    pts = np.array([[[112.0, 112.0], [0.0, 0.0], [224.0, 224.0]]])
    back = crop_to_image(pts, regions)
    assert np.allclose(back, [[[220, 120], [180, 80], [260, 160]]])


def test_track_cropper_follows_the_tracks():
    from types import SimpleNamespace

    from maed_cli.video.crop import TrackCropper

    tracks = {1: SimpleNamespace(frames=np.array([3, 4, 5]),
                                 boxes=np.array([[20, 20, 10, 10]] * 3, float)),
              2: SimpleNamespace(frames=np.array([4, 5, 6, 7]),
                                 boxes=np.array([[60, 30, 20, 40]] * 4, float))}
    cropper = TrackCropper(tracks, scale=1.0, positions={2: [0, 2]})
    assert cropper.last_frame == 6
    assert np.allclose(cropper.regions[2][0], [60, 30, 40, 40])
    frame = np.zeros((64, 96, 3), np.uint8)
    frame[10:30, 10:30] = 255                   # inside track 1's region only
    assert cropper(2, frame) == []
    out = cropper(4, frame)
    assert [(tid, pos) for tid, pos, _ in out] == [(1, 1), (2, 0)]
    assert out[0][2].shape == (CROP_SIZE, CROP_SIZE, 3) and out[0][2].min() == 255
    assert out[1][2].max() == 0
    assert [(t, p) for t, p, _ in cropper(5, frame)] == [(1, 2)]   # position 1 not wanted


def test_decode_boxes_track_crop_clips_end_to_end(tmp_path, video):
    """The red rectangle of the synthetic video, given as boxes, through every stage."""
    from maed_cli.clips import plan_clips
    from maed_cli.video.crop import TrackCropper
    from maed_cli.video.detect import BoxesFile
    from maed_cli.video.track import tracklets_from_boxes

    rows = ["frame,x,y,w,h"] + [f"{i},{(2 * i) % (W - 20)},30,20,20" for i in range(100)]
    (tmp_path / "b.csv").write_text("\n".join(rows))
    source = open_frames(video, start=10, end=30)
    stream = [i for i, _ in source]
    tracks = tracklets_from_boxes(BoxesFile.load(tmp_path / "b.csv"), stream,
                                  source.stream_fps, min_track=5)
    assert list(tracks) and tracks[next(iter(tracks))].frames.tolist() == list(range(10, 30))
    cropper = TrackCropper(tracks, scale=1.0)
    crops = {}
    for index, frame in source:
        for tid, pos, crop in cropper(index, frame):
            crops[pos] = crop
    crops = np.stack([crops[p] for p in range(len(crops))])
    centre = crops[:, 100:124, 100:124].reshape(len(crops), -1, 3).mean(1)
    assert (centre[:, 0] > 180).all() and (centre[:, 2] < 70).all()  # the red box fills it
    plan = plan_clips(len(crops))
    batch = normalize_crops(crops[plan.clips])
    assert batch.shape == (plan.num_clips, 16, 3, CROP_SIZE, CROP_SIZE)
    assert (plan.clip_first <= plan.clip_last).all()
