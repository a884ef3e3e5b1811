"""The crop is the official code's transform, and every coordinate mapping agrees with it
(issue #16): keypoints into the crop (training), crop points back to the image, and the crop
camera to the full image (demo)."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from maed_cli.body.geometry import crop_cam_to_full, project_full_orthographic
from maed_cli.data.training_sets import augment as A
from maed_cli.video.crop import (CROP_SIZE, IMAGENET_MEAN, IMAGENET_STD, TrackCropper,
                                  crop_images, crop_matrix, crop_to_image, normalize_crops)


def official_matrix(cx: float, cy: float, w: float, h: float) -> np.ndarray:
    """Built here as the official code does: three float32 points (centre, centre + half the
    height down, centre + half the width right) onto (112, 112), (112, 224), (224, 112)."""
    src = np.zeros((3, 2), np.float32)
    src[0, :] = np.array([cx, cy], np.float32)
    src[1, :] = np.array([cx, cy], np.float32) + np.array([0, h * 0.5], np.float32)
    src[2, :] = np.array([cx, cy], np.float32) + np.array([w * 0.5, 0], np.float32)
    dst = np.zeros((3, 2), np.float32)
    dst[0, :] = [224 * 0.5, 224 * 0.5]
    dst[1, :] = np.array([224 * 0.5, 224 * 0.5], np.float32) + np.array([0, 224 * 0.5],
                                                                         np.float32)
    dst[2, :] = np.array([224 * 0.5, 224 * 0.5], np.float32) + np.array([224 * 0.5, 0],
                                                                         np.float32)
    return cv2.getAffineTransform(np.float32(src), np.float32(dst))


def official_crop(image: np.ndarray, cx, cy, w, h) -> np.ndarray:
    return cv2.warpAffine(image, official_matrix(cx, cy, w, h), (224, 224),
                          flags=cv2.INTER_LINEAR)


def _random_regions(rng, n, width, height):
    side = rng.uniform(20, 2.5 * max(width, height), n)
    return np.stack([rng.uniform(-40, width + 40, n), rng.uniform(-40, height + 40, n),
                     side, side], axis=1)


def test_crops_equal_the_official_transform_pixel_for_pixel():
    rng = np.random.default_rng(3)
    image = rng.integers(0, 256, (180, 260, 3), dtype=np.uint8)
    regions = _random_regions(rng, 40, 260, 180)
    regions[:4] = [[130, 90, 224, 224], [130.37, 89.81, 301.3, 301.3], [0, 0, 57, 57],
                   [259.5, 179.5, 1000, 1000]]
    crops = crop_images(image, regions)
    for region, crop in zip(regions, crops):
        np.testing.assert_array_equal(crop_matrix(region), official_matrix(*region))
        np.testing.assert_array_equal(crop, official_crop(image, *region))


def test_old_half_pixel_crop_differed_from_the_official_one():
    """The convention this replaces (issue #16): pixel centres at i + ½ on both sides shift
    the crop by a/2 − 1/2 crop pixels, so its crops are not the official ones."""
    rng = np.random.default_rng(4)
    image = rng.integers(0, 256, (120, 160, 3), dtype=np.uint8)
    cx, cy, side = 80.3, 61.7, 150.0
    a = 224 / side
    old = np.array([[a, 0, a * (0.5 - (cx - side / 2)) - 0.5],
                    [0, a, a * (0.5 - (cy - side / 2)) - 0.5]])
    shift = old[0, 2] - crop_matrix([cx, cy, side, side])[0, 2]
    assert shift == pytest.approx(a / 2 - 0.5, abs=1e-4)  # up to the official float32 points
    old_crop = cv2.warpAffine(image, old, (224, 224), flags=cv2.INTER_LINEAR)
    assert not np.array_equal(old_crop, crop_images(image, [[cx, cy, side, side]])[0])


@pytest.mark.parametrize("side", [224.0, 112.0, 56.0])
def test_region_centre_pixel_lands_on_crop_pixel_112(side):
    image = np.zeros((100, 120, 3), np.uint8)
    image[40, 70] = 255
    crop = crop_images(image, [[70.0, 40.0, side, side]])[0]
    assert crop[112, 112, 0] == 255
    # continuous coordinates: the same pixel's centre is at (70.5, 40.5)
    crop_c = crop_images(image, [[70.5, 40.5, side, side]], coords="continuous")[0]
    np.testing.assert_array_equal(crop_c, crop)


def _dot_image(x: int, y: int, shape=(200, 240)) -> np.ndarray:
    image = np.zeros((*shape, 3), np.uint8)
    image[y, x] = 255
    return image


def test_training_keypoints_land_on_the_pixel_the_crop_shows_them():
    """A keypoint at image pixel p, mapped by keypoints_to_crop, is where the training crop
    (augment.warp_crop) shows that pixel: crop index 112 (u + 1), exactly."""
    # a = 224 / 56 = 4 and offsets in quarter pixels: every mapped point is a whole crop pixel
    region = np.array([100.25, 80.75, 56.0])
    for p in [(100, 80), (90, 70), (111, 92), (105, 77)]:
        image = _dot_image(*p)
        crop = A.warp_crop(image, region)
        u = A.keypoints_to_crop(np.array([[p[0], p[1], 1.0]]), region)[0, :2]
        col, row = 112 * (u + 1)
        assert float(col).is_integer() and float(row).is_integer()
        assert crop[int(row), int(col), 0] == 255
        assert np.count_nonzero(crop[..., 0] == 255) == 1
    # and back: crop_to_image takes the crop pixel to the image pixel
    back = crop_to_image(np.array([[[112 * (u[0] + 1), 112 * (u[1] + 1)]]]),
                         np.array([region[0], region[1], region[2], region[2]]))
    np.testing.assert_allclose(back[0, 0], p, atol=1e-9)


def test_demo_crop_and_crop_camera_agree_to_the_pixel():
    """The demo crops detector boxes (continuous coordinates); a point the network places at
    normalised crop position u is drawn by the full-image camera exactly where the crop showed
    it."""
    region = np.array([120.5, 90.5, 56.0, 56.0])  # continuous: centre of pixel (120, 90)
    cam = torch.tensor([0.8, 0.05, -0.1], dtype=torch.float64)
    for crop_px in [(132, 100), (112, 112), (60, 148)]:  # a = 4: whole image pixels
        u = np.array(crop_px, float) / 112 - 1
        xy = u / 0.8 - cam[1:].numpy()  # a 3D point with s (X + t) = u
        point = torch.tensor([[xy[0], xy[1], 0.3]], dtype=torch.float64)
        orig_cam = crop_cam_to_full(cam, torch.as_tensor(region), 240.0, 200.0)
        drawn = project_full_orthographic(point, orig_cam, 240.0, 200.0)[0].numpy()
        pixel = drawn - 0.5  # continuous -> pixel index
        np.testing.assert_allclose(pixel, np.round(pixel), atol=1e-9)
        image = _dot_image(int(round(pixel[0])), int(round(pixel[1])))
        tracklet = type("T", (), {"frames": np.array([0]), "boxes": region[None]})
        cropper = TrackCropper({7: tracklet}, scale=1.0)
        [(_, _, crop)] = cropper(0, image)
        assert crop[crop_px[1], crop_px[0], 0] == 255
        assert np.count_nonzero(crop[..., 0] == 255) == 1


def test_tensor_conversion_in_the_official_order():
    """to_tensor (float32 division by 255), then Normalize ((x − mean) / std, float32)."""
    rng = np.random.default_rng(0)
    crops = rng.integers(0, 256, (2, 224, 224, 3), dtype=np.uint8)
    t = torch.from_numpy(crops).permute(0, 3, 1, 2).float().div(255)
    mean = torch.tensor(IMAGENET_MEAN)[:, None, None]
    std = torch.tensor(IMAGENET_STD)[:, None, None]
    expected = ((t - mean) / std).numpy()
    np.testing.assert_array_equal(normalize_crops(crops), expected)
    np.testing.assert_array_equal(normalize_crops(torch.from_numpy(crops)).numpy(), expected)
    assert CROP_SIZE == 224
