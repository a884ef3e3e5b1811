"""Person crops as MAED was trained on them: a square region warped to 224², ImageNet-normalised.

Crop factor. MAED's training crops are 1.3 × the db box (§3.1 of the reference), and a 3DPW
db box is 1.1 × the diagonal of the visible-keypoint extent (Appendix A). Keypoints (ankles to
eyes/ears) span about 0.9 of a tight person box's height, and the extent's diagonal is about
1.03–1.08 × its height for an upright person, so the training crop is about
1.3 × 1.1 × 0.9 × 1.05 ≈ 1.35 × the height of a tight detector box. We therefore crop
`DEFAULT_BOX_SCALE = 1.35` × the square box side (max(w, h)). VIBE's demo used 1.1, which
gives MAED tighter crops than it ever saw. The crop *region* — (cx, cy, S, S) with
S = scale × side — is what a weak-perspective camera predicted on the crop refers to, so
`crop_regions` returns it for the caller to record.

Pixel convention: boxes and regions are in continuous image coordinates (the image spans
[0, W] × [0, H]; pixel i covers [i, i+1)), as detectors report them. The region is mapped
onto the [0, 224]² crop exactly: its centre lands on the crop's centre (112, 112), i.e.
between pixels 111 and 112. Outside the image the crop is black (constant border 0), as in
training; sampling is bilinear (cv2.warpAffine, INTER_LINEAR).
"""
from __future__ import annotations

import numpy as np

CROP_SIZE = 224
DEFAULT_BOX_SCALE = 1.35
IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], np.float32)


def crop_regions(boxes: np.ndarray, scale: float = DEFAULT_BOX_SCALE) -> np.ndarray:
    """(..., 4) boxes (cx, cy, w, h) -> (..., 4) square crop regions (cx, cy, S, S),
    S = scale × max(w, h), pixels."""
    boxes = np.asarray(boxes, np.float64)
    side = scale * np.maximum(boxes[..., 2], boxes[..., 3])
    return np.stack([boxes[..., 0], boxes[..., 1], side, side], axis=-1)


def crop_matrix(region: np.ndarray, size: int = CROP_SIZE) -> np.ndarray:
    """(2, 3) affine matrix taking image pixel indices to crop pixel indices for one region.

    In continuous coordinates crop = a·(image − corner), a = size / S; pixel index = continuous
    − 0.5 on both sides, hence the offset a·(0.5 − corner) − 0.5.
    """
    cx, cy, w, h = (float(v) for v in region)
    side = max(w, h)
    if not side > 0:
        raise ValueError(f"empty crop region {region}")
    a = size / side
    x0, y0 = cx - side / 2, cy - side / 2
    return np.array([[a, 0.0, a * (0.5 - x0) - 0.5],
                     [0.0, a, a * (0.5 - y0) - 0.5]], np.float64)


def crop_images(frame: np.ndarray, regions: np.ndarray, size: int = CROP_SIZE) -> np.ndarray:
    """Cut square regions (k, 4) = (cx, cy, S, S) out of one RGB uint8 frame (H, W, 3).

    Returns (k, size, size, 3) uint8; parts of a region outside the frame are black.
    """
    import cv2

    regions = np.asarray(regions, np.float64).reshape(-1, 4)
    frame = np.ascontiguousarray(frame)  # OpenCV needs it; a no-op for decoded frames
    out = np.zeros((len(regions), size, size, 3), np.uint8)
    for i, region in enumerate(regions):
        cv2.warpAffine(frame, crop_matrix(region, size), (size, size), dst=out[i],
                       flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    return out


def normalize_crops(crops):
    """(..., H, W, 3) uint8 RGB -> (..., 3, H, W) float32, (x/255 − mean) / std (ImageNet).

    A numpy array gives a numpy array; a torch tensor is normalised where it lives (on a GPU,
    move the uint8 crops there first: a quarter of the bytes of float32).
    """
    if isinstance(crops, np.ndarray):
        x = np.asarray(crops, np.float32) * np.float32(1.0 / 255.0)
        x = (x - IMAGENET_MEAN) / IMAGENET_STD
        return np.ascontiguousarray(np.moveaxis(x, -1, -3))
    import torch

    mean = torch.as_tensor(IMAGENET_MEAN, device=crops.device)
    std = torch.as_tensor(IMAGENET_STD, device=crops.device)
    x = (crops.float() * (1.0 / 255.0) - mean) / std
    return x.movedim(-1, -3).contiguous()


def crop_and_normalize(frame: np.ndarray, regions: np.ndarray, size: int = CROP_SIZE
                       ) -> np.ndarray:
    """One frame's network inputs: (k, 3, size, size) float32."""
    return normalize_crops(crop_images(frame, regions, size))


def crop_to_image(points: np.ndarray, regions: np.ndarray, size: int = CROP_SIZE
                  ) -> np.ndarray:
    """Map points in crop pixels (continuous, (..., P, 2)) back to image pixels.

    regions (..., 4) broadcasts against the points' leading dims. Crop coordinates in MAED's
    normalised [-1, 1] convention are `size / 2 · (u + 1)` pixels.
    """
    regions = np.asarray(regions, np.float64)
    points = np.asarray(points, np.float64)
    side = np.maximum(regions[..., 2], regions[..., 3])[..., None, None]
    centre = regions[..., None, :2]
    return centre + (points - size / 2.0) * side / size


class TrackCropper:
    """The crops of every tracklet, cut frame by frame during a (second) decoding pass.

        cropper = TrackCropper(tracklets)                 # {id: obj with .frames, .boxes}
        for index, frame in source:
            for track_id, position, crop in cropper(index, frame):
                ...                                       # crop: (224, 224, 3) uint8

    tracklets: {track_id: tracklet} where tracklet.frames (n,) are source frame indices and
    tracklet.boxes (n, 4) are (cx, cy, w, h); positions: optionally {track_id: positions}
    to crop only some of a track's frames (e.g. `ClipPlan.sample` with --interp).
    `regions[track_id]` (n, 4) are the crop regions, to be kept with the results: a camera
    predicted on a crop refers to its region.
    """

    def __init__(self, tracklets: dict, scale: float = DEFAULT_BOX_SCALE,
                 size: int = CROP_SIZE, positions: dict | None = None) -> None:
        self.size = size
        self.regions = {tid: crop_regions(t.boxes, scale) for tid, t in tracklets.items()}
        self._by_frame: dict[int, list[tuple[int, int]]] = {}
        for tid, t in tracklets.items():
            wanted = (range(len(t.frames)) if positions is None or tid not in positions
                      else positions[tid])
            for pos in wanted:
                self._by_frame.setdefault(int(t.frames[pos]), []).append((tid, int(pos)))

    @property
    def last_frame(self) -> int | None:
        """The last source frame any crop comes from (decoding can stop after it)."""
        return max(self._by_frame, default=None)

    def __call__(self, frame_index: int, frame: np.ndarray) -> list[tuple[int, int, np.ndarray]]:
        """[(track_id, position in the track, crop (size, size, 3) uint8)] for this frame."""
        jobs = self._by_frame.get(int(frame_index), [])
        if not jobs:
            return []
        regions = np.stack([self.regions[tid][pos] for tid, pos in jobs])
        crops = crop_images(frame, regions, self.size)
        return [(tid, pos, crops[k]) for k, (tid, pos) in enumerate(jobs)]
