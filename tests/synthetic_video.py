"""Synthetic test videos: people drawn from the synthetic SMPL body, with known boxes."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from maed_cli.body.geometry import axis_angle_to_rotmat


def draw_body(frame: np.ndarray, vertices_px: np.ndarray, depth: np.ndarray, faces: np.ndarray,
              colour: tuple[int, int, int]) -> None:
    """Flat-shaded painter's rasterisation with OpenCV (no OpenGL needed)."""
    import cv2
    tri = vertices_px[faces]  # (F, 3, 2)
    order = np.argsort(-depth[faces].mean(1))  # far to near
    e1 = np.concatenate([tri[:, 1] - tri[:, 0], np.zeros((len(tri), 1))], 1)
    shade = 0.55 + 0.45 * np.abs(np.tanh(e1[:, 0] / (np.abs(e1[:, 1]) + 1e-3)))
    for f in order:
        c = tuple(int(v * shade[f]) for v in colour)
        cv2.fillConvexPoly(frame, np.round(tri[f] * 4).astype(np.int32), c, lineType=cv2.LINE_8,
                           shift=2)


def make_walkers_video(path: Path, body, num_frames: int = 24, size=(320, 240), fps=24.0,
                       people: int = 2) -> dict:
    """Write a video of `people` synthetic bodies walking sideways; return their boxes."""
    from maed_cli.video.io import VideoWriter
    w, h = size
    boxes = []
    focal = 400.0
    with VideoWriter(path, fps) as writer:
        for t in range(num_frames):
            frame = np.full((h, w, 3), 200, np.uint8)
            for p in range(people):
                pose = torch.zeros(1, 72)
                pose[0, 0] = np.pi  # SMPL y-up -> image y-down
                swing = 0.5 * np.sin(2 * np.pi * t / 12 + p)
                pose[0, 3 * 1] = swing
                pose[0, 3 * 2] = -swing
                pose[0, 3 * 16 + 2] = -1.2
                pose[0, 3 * 17 + 2] = 1.2
                with torch.no_grad():
                    out = body(rotmat=axis_angle_to_rotmat(pose.reshape(1, 24, 3)))
                v = out.vertices[0].numpy().astype(np.float64)
                x_off = -0.9 + 1.8 * p + 0.02 * t * (1 if p == 0 else -1)
                trans = np.array([x_off, 0.0, 5.0 + p])
                cam = v + trans
                px = focal * cam[:, :2] / cam[:, 2:3] + [w / 2, h / 2]
                draw_body(frame, px, cam[:, 2], body.faces, (60 + 120 * p, 90, 200 - 100 * p))
                x1, y1 = px.min(0)
                x2, y2 = px.max(0)
                boxes.append({"frame": t, "x1": float(x1), "y1": float(y1), "x2": float(x2),
                              "y2": float(y2), "track_id": p + 1})
            writer.write(frame)
    return {"boxes": boxes, "num_frames": num_frames, "size": size, "fps": fps}


def write_grey_video(path: Path, size: tuple[int, int], frames: int, fps: float,
                     level: int = 90) -> Path:
    """A video of `frames` plain grey frames of `size` (W, H)."""
    import imageio_ffmpeg
    width, height = size
    gen = imageio_ffmpeg.write_frames(str(path), (width, height), fps=fps, macro_block_size=1,
                                      ffmpeg_log_level="error")
    gen.send(None)
    for _ in range(frames):
        gen.send(np.full((height, width, 3), level, np.uint8))
    gen.close()
    return Path(path)


def write_boxes(path: Path, boxes: list[dict]) -> Path:
    path.write_text(json.dumps(boxes))
    return path
