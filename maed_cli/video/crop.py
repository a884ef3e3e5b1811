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

The warp is the official code's, exactly: `cv2.getAffineTransform` on three float32 points
(the region centre, the centre + half the height down, the centre + half the width right)
onto (112, 112), (112, 224), (224, 112), then `cv2.warpAffine`, bilinear, black border. It
treats the centre as a *pixel index* (pixel i's centre at i): image pixel c lands on crop
pixel 112, i.e. crop index = a·(image index − c) + 112, a = 224 / S. The network's normalised
crop coordinates are u = crop index / 112 − 1, so u = 2 (p − c) / S for an image point p given
in the same convention as c (`crop_to_image` inverts it).

Two conventions for the region, `coords`:
- "index" (the default): the centre is a pixel index, as db boxes (3DPW, training sets) are
  read by the official code; eval and training crop this way, giving its crops bit for bit;
- "continuous": the image spans [0, W] × [0, H] and pixel i covers [i, i+1), as detectors
  report boxes (and as the demo's cameras and overlays are computed); the centre is moved by
  −½ px into a pixel index first, so the box centre still lands on crop pixel 112.
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


COORDS = ("index", "continuous")


def crop_matrix(region: np.ndarray, size: int = CROP_SIZE, coords: str = "index") -> np.ndarray:
    """(2, 3) affine matrix taking image pixel indices to crop pixel indices for one region
    (cx, cy, w, h): the official code's three-point transform (see the module docstring).

    `coords` says how the region's centre is given: "index" or "continuous" (a −½ px shift).
    """
    import cv2

    cx, cy, w, h = (float(v) for v in region)
    if not (w > 0 and h > 0):
        raise ValueError(f"empty crop region {region}")
    if coords not in COORDS:
        raise ValueError(f"coords {coords!r}: one of {COORDS}")
    if coords == "continuous":
        cx, cy = cx - 0.5, cy - 0.5
    centre = np.array([cx, cy], np.float32)
    src = np.stack([centre, centre + np.array([0.0, h * 0.5], np.float32),
                    centre + np.array([w * 0.5, 0.0], np.float32)]).astype(np.float32)
    half = np.float32(size * 0.5)
    dst = np.array([[half, half], [half, size], [size, half]], np.float32)
    return cv2.getAffineTransform(src, dst)


def crop_images(frame: np.ndarray, regions: np.ndarray, size: int = CROP_SIZE,
                coords: str = "index") -> np.ndarray:
    """Cut regions (k, 4) = (cx, cy, S, S) out of one RGB uint8 frame (H, W, 3).

    Returns (k, size, size, 3) uint8; parts of a region outside the frame are black.
    `coords`: the regions' pixel convention, "index" (db boxes) or "continuous" (detectors).
    """
    import cv2

    regions = np.asarray(regions, np.float64).reshape(-1, 4)
    frame = np.ascontiguousarray(frame)  # OpenCV needs it; a no-op for decoded frames
    out = np.zeros((len(regions), size, size, 3), np.uint8)
    for i, region in enumerate(regions):
        cv2.warpAffine(frame, crop_matrix(region, size, coords), (size, size), dst=out[i],
                       flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    return out


def normalize_crops(crops):
    """(..., H, W, 3) uint8 RGB -> (..., 3, H, W) float32, (x/255 − mean) / std (ImageNet),
    in the official order and precision: float32 division by 255, then subtract, then divide.

    A numpy array gives a numpy array; a torch tensor is normalised where it lives (on a GPU,
    move the uint8 crops there first: a quarter of the bytes of float32).
    """
    if isinstance(crops, np.ndarray):
        x = np.asarray(crops, np.float32) / np.float32(255.0)
        x = (x - IMAGENET_MEAN) / IMAGENET_STD
        return np.ascontiguousarray(np.moveaxis(x, -1, -3))
    import torch

    mean = torch.as_tensor(IMAGENET_MEAN, device=crops.device)
    std = torch.as_tensor(IMAGENET_STD, device=crops.device)
    x = (crops.float() / 255.0 - mean) / std
    return x.movedim(-1, -3).contiguous()


def crop_and_normalize(frame: np.ndarray, regions: np.ndarray, size: int = CROP_SIZE,
                       coords: str = "index") -> np.ndarray:
    """One frame's network inputs: (k, 3, size, size) float32."""
    return normalize_crops(crop_images(frame, regions, size, coords))


def crop_to_image(points: np.ndarray, regions: np.ndarray, size: int = CROP_SIZE
                  ) -> np.ndarray:
    """Map points in crop pixel indices (..., P, 2) back to image pixels.

    regions (..., 4) broadcasts against the points' leading dims; the result is in the
    regions' own convention (crop pixel 112 shows the region centre, whichever `coords` cut
    it). MAED's normalised crop coordinates u in [-1, 1] are crop pixel `size / 2 · (u + 1)`.
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
    predicted on a crop refers to its region. Boxes are in continuous image coordinates (as
    detectors and box files give them, and as the cameras are mapped back to the image).
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
        crops = crop_images(frame, regions, self.size, coords="continuous")
        return [(tid, pos, crops[k]) for k, (tid, pos) in enumerate(jobs)]
