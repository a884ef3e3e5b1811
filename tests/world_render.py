"""Rendered test scenes for the camera-motion estimator: a textured room seen from a known
camera path, with people as moving textured occluders whose boxes are known.

Pure numpy/OpenCV ray casting (fast: a 320x240 frame in a few ms): every pixel's ray, turned
into the first camera's frame, hits the room (a box: floor, ceiling, four walls, each with a
periodic procedural noise texture) on exactly one face, seen from inside. People are
billboards (0.5 m x 1.7 m, their own texture moving with them) standing on the floor, so the
estimator must ignore what moves inside their boxes.

Coordinates: the room frame (OpenCV-like: x right, y down, z forward, metres) is the first
camera's frame levelled (camera 0 looks down by the path's pitch0); the camera centre starts
at the origin, the floor is y = +CAMERA_HEIGHT. `CameraPath.absolute[f]` is camera-f-from-room
(what is rendered), `CameraPath.rotations[f]` camera-f-from-camera-0 (x_f = R[f] @ x_0), the
estimator's convention.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

CAMERA_HEIGHT = 1.6
ROOM = {"x": 4.0, "z_front": 7.0, "z_back": -7.0, "ceiling": 1.6}  # half width, depths, metres
TEXTURE_PERIOD_M = 3.0
TEXTURE_PX = 512


def noise_texture(seed: int, size: int = TEXTURE_PX, finest: float = 0.12) -> np.ndarray:
    """(size, size, 3) uint8 periodic multi-scale noise (FFT-filtered, so it tiles seamlessly)."""
    rng = np.random.default_rng(seed)
    freq = np.fft.fftfreq(size)
    radius = np.hypot(*np.meshgrid(freq, freq, indexing="ij"))
    spectrum = np.where(radius > 1.0 / size, 1.0 / np.maximum(radius, 1e-9), 0.0)
    spectrum *= np.exp(-(radius / finest) ** 2)  # no detail finer than 1/finest texels
    out = np.empty((size, size, 3), np.uint8)
    for c in range(3):
        field = np.fft.ifft2(np.fft.fft2(rng.standard_normal((size, size))) * spectrum).real
        field = (field - field.mean()) / (field.std() + 1e-9)
        out[..., c] = np.clip(128 + 45 * field, 0, 255).astype(np.uint8)
    return out


def yaw_pitch(yaw_deg: float, pitch_deg: float) -> np.ndarray:
    """Camera-from-reference rotation of a camera turned by yaw (right) then pitch (down)."""
    y, p = np.radians(yaw_deg), np.radians(pitch_deg)
    ry = np.array([[np.cos(y), 0, -np.sin(y)], [0, 1, 0], [np.sin(y), 0, np.cos(y)]])
    rx = np.array([[1, 0, 0], [0, np.cos(p), np.sin(p)], [0, -np.sin(p), np.cos(p)]])
    return rx @ ry


@dataclass
class CameraPath:
    """rotations (F, 3, 3) camera-f-from-camera-0; centres (F, 3) in the first camera's frame."""

    rotations: np.ndarray
    centres: np.ndarray
    absolute: np.ndarray | None = None  # (F, 3, 3) camera-f-from-room (rendering); None: rotations

    def __len__(self) -> int:
        return len(self.rotations)


def static_path(frames: int, pitch_deg: float = 8.0) -> CameraPath:
    return camera_path(frames, yaw_amp=0.0, pitch_amp=0.0, pitch0=pitch_deg)


def camera_path(frames: int, yaw_amp: float = 30.0, pitch_amp: float = 10.0,
                pitch0: float = 8.0, shift_m: float = 0.0) -> CameraPath:
    """A pan sweeping -yaw_amp..+yaw_amp and a tilt of +-pitch_amp over the clip (degrees),
    the camera looking down by pitch0; `shift_m` moves the centre sideways (parallax)."""
    s = np.linspace(0.0, 1.0, frames)
    yaw = -yaw_amp * np.cos(np.pi * s)
    pitch = pitch0 + pitch_amp * np.sin(2 * np.pi * s)
    absolute = np.stack([yaw_pitch(a, b) for a, b in zip(yaw, pitch)])
    rotations = absolute @ absolute[0].T
    centres = np.zeros((frames, 3))
    centres[:, 0] = shift_m * s
    centres[:, 2] = 0.5 * shift_m * s
    return CameraPath(rotations, centres, absolute)



def steady_pan(frames: int, deg_per_frame: float, pitch0: float = 8.0) -> CameraPath:
    """A pan already turning at `deg_per_frame` on the first frame (no easing in, as when a
    clip starts mid-pan), with a small tilt so that the rotation is not about one axis."""
    yaw = deg_per_frame * np.arange(frames)
    pitch = pitch0 + 0.3 * deg_per_frame * np.sin(np.linspace(0.0, np.pi, frames))
    absolute = np.stack([yaw_pitch(a, b) for a, b in zip(yaw, pitch)])
    return CameraPath(absolute @ absolute[0].T, np.zeros((frames, 3)), absolute)

@dataclass
class Walker:
    """A billboard person: feet at `start` + t * `velocity` on the floor (first-camera frame)."""

    start: tuple[float, float]       # (x, z) metres
    velocity: tuple[float, float]    # metres per frame
    seed: int = 7
    width: float = 0.5
    height: float = 1.7

    def feet(self, frame: int) -> np.ndarray:
        return np.array([self.start[0] + frame * self.velocity[0], CAMERA_HEIGHT,
                         self.start[1] + frame * self.velocity[1]])


DEFAULT_WALKERS = (Walker((-1.0, 4.0), (0.03, -0.01), seed=11),
                   Walker((1.2, 5.0), (-0.025, 0.0), seed=12))


class RoomRenderer:
    """Renders frames of the room for a camera path (see the module doc)."""

    def __init__(self, width: int = 320, height: int = 240, focal: float | None = None,
                 supersample: int = 1, seed: int = 3, room: dict | None = None,
                 lighting: tuple[float, ...] | None = None, contrast: float = 1.0,
                 tiles: bool = False):
        """lighting: a brightness gain per face (floor, ceiling, front, back, +x, -x walls),
        None for none; contrast scales the textures' variation. With both, the room's edges
        are what a lit room's are: steps in brightness between faces (lines to find);
        tiles: grout lines on the floor, a metre apart."""
        self.width, self.height = width, height
        # floor (y, down), ceiling (y), front/back walls (z), side walls (+-x): room frame
        self.room = {"floor": CAMERA_HEIGHT, **ROOM, **(room or {})}
        self.focal = float(focal if focal is not None else np.hypot(width, height))
        self.supersample = supersample
        # coarser texture without supersampling: no aliasing shimmer on the far floor
        finest = 0.12 if supersample > 1 else 0.05
        self.textures = [noise_texture(seed + i, finest=finest) for i in range(6)]
        gains = lighting or (1.0,) * 6
        if lighting is not None or contrast != 1.0:
            self.textures = [np.clip((128 + contrast * (t.astype(np.float32) - 128)) * g, 0, 255)
                             .astype(np.uint8) for t, g in zip(self.textures, gains)]
        if tiles:  # grout lines on the floor every metre, both ways (a tiled floor)
            floor = self.textures[0].copy()
            for k in range(int(TEXTURE_PERIOD_M)):
                at = int(round(k * TEXTURE_PX / TEXTURE_PERIOD_M))
                floor[max(at - 1, 0):at + 2] = 40
                floor[:, max(at - 1, 0):at + 2] = 40
            self.textures[0] = floor
        s = supersample
        u, v = np.meshgrid((np.arange(width * s) + 0.5) / s - 0.5,
                           (np.arange(height * s) + 0.5) / s - 0.5)
        rays = np.stack([(u - width / 2) / self.focal, (v - height / 2) / self.focal,
                         np.ones_like(u)], axis=-1)
        self._rays = rays.reshape(-1, 3).astype(np.float32)

    def project(self, rotation: np.ndarray, centre: np.ndarray, points: np.ndarray) -> np.ndarray:
        """(n, 3) first-camera-frame points -> (n, 2) pixels, and depth (n,)."""
        cam = (points - centre) @ rotation.T
        return np.c_[self.focal * cam[:, 0] / cam[:, 2] + self.width / 2,
                     self.focal * cam[:, 1] / cam[:, 2] + self.height / 2], cam[:, 2]

    def render(self, rotation: np.ndarray, centre: np.ndarray, walkers=(), frame: int = 0
               ) -> tuple[np.ndarray, np.ndarray]:
        """One frame (H, W, 3) uint8 RGB and the walkers' boxes (len(walkers), 4) xyxy
        pixels, in the walkers' order, NaN for one out of view."""
        dirs = self._rays @ rotation.astype(np.float32)  # R.T per ray: into the first frame
        c = np.asarray(centre, np.float32)
        # faces: (axis, value, texture axes); from inside the box a ray leaves, per axis,
        # through the face its direction's sign points at, and overall through the nearest
        room = self.room
        faces = [(1, room["floor"], (0, 2)), (1, -room["ceiling"], (0, 2)),
                 (2, room["z_front"], (0, 1)), (2, room["z_back"], (0, 1)),
                 (0, room["x"], (2, 1)), (0, -room["x"], (2, 1))]
        face_of = {1: (0, 1), 2: (2, 3), 0: (4, 5)}  # axis -> (positive face, negative face)
        ts, ids = [], []
        for axis, (pos, neg) in face_of.items():
            d = dirs[:, axis]
            positive = d > 0
            bound = np.where(positive, faces[pos][1], faces[neg][1]).astype(np.float32)
            with np.errstate(divide="ignore", invalid="ignore"):
                t = (bound - c[axis]) / d
            ts.append(np.where(d == 0, np.inf, t))
            ids.append(np.where(positive, pos, neg))
        ts, ids = np.stack(ts), np.stack(ids)
        nearest = ts.argmin(axis=0)
        cols = np.arange(len(dirs))
        best_t, best_face = ts[nearest, cols], ids[nearest, cols]
        hit = c + dirs * best_t[:, None]
        big_h, big_w = self.height * self.supersample, self.width * self.supersample
        image = np.zeros((len(dirs), 3), np.uint8)
        scale = TEXTURE_PX / TEXTURE_PERIOD_M
        for i, (_, _, (a, b)) in enumerate(faces):
            sel = np.flatnonzero(best_face == i)
            if not len(sel):
                continue
            # remap wants 2D maps under 32767 a side: the face's pixels as rows of 1024
            rows = -(-len(sel) // 1024)
            maps = np.zeros((2, rows * 1024), np.float32)
            maps[0, :len(sel)] = np.mod(hit[sel, a] * scale, TEXTURE_PX)
            maps[1, :len(sel)] = np.mod(hit[sel, b] * scale, TEXTURE_PX)
            face = cv2.remap(self.textures[i], maps[0].reshape(rows, 1024),
                             maps[1].reshape(rows, 1024), cv2.INTER_LINEAR,
                             borderMode=cv2.BORDER_WRAP)
            image[sel] = face.reshape(-1, 3)[:len(sel)]
        image = image.reshape(big_h, big_w, 3)
        image = cv2.resize(image, (self.width, self.height), interpolation=cv2.INTER_AREA)
        boxes = np.full((len(walkers), 4), np.nan, np.float32)
        # far people first, so nearer ones cover them
        order = sorted(range(len(walkers)),
                       key=lambda i: -((walkers[i].feet(frame) - c) @ rotation.T)[2])
        for i in order:
            box = self._draw_walker(image, walkers[i], frame, rotation, c)
            if box is not None:
                boxes[i] = box
        return image, boxes

    def _draw_walker(self, image, walker: Walker, frame: int, rotation, centre):
        feet = walker.feet(frame)
        right = rotation[0]  # the camera's x axis in the first frame: the billboard faces it
        right = right - right[1] * np.array([0, 1, 0])
        right /= np.linalg.norm(right) + 1e-12
        half = 0.5 * walker.width * right
        up = np.array([0.0, -walker.height, 0.0])
        corners = np.stack([feet - half + up, feet + half + up, feet + half, feet - half])
        pix, depth = self.project(rotation, centre, corners)
        if np.any(depth <= 0.1):
            return None
        # the billboard's own texture, moving with it (a person's clothes)
        th, tw = 192, 64
        patch = noise_texture(walker.seed, 256, finest=0.15)[:th, :tw]
        src = np.float32([[0, 0], [tw, 0], [tw, th], [0, th]])
        warp = cv2.getPerspectiveTransform(src, pix.astype(np.float32))
        layer = cv2.warpPerspective(patch, warp, (self.width, self.height),
                                    flags=cv2.INTER_LINEAR)
        cover = cv2.warpPerspective(np.full((th, tw), 255, np.uint8), warp,
                                    (self.width, self.height), flags=cv2.INTER_LINEAR)
        alpha = cover[..., None].astype(np.float32) / 255.0
        image[:] = (image * (1 - alpha) + layer * alpha).astype(np.uint8)
        x1, y1 = pix.min(axis=0)
        x2, y2 = pix.max(axis=0)
        if x2 < 0 or y2 < 0 or x1 > self.width or y1 > self.height:
            return None
        return [x1, y1, x2, y2]

    def render_path(self, path: CameraPath, walkers=DEFAULT_WALKERS
                    ) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """All frames of a path: (frames, boxes) lists."""
        frames, boxes = [], []
        for f in range(len(path)):
            rotation = path.rotations[f] if path.absolute is None else path.absolute[f]
            image, b = self.render(rotation, path.centres[f], walkers, f)
            frames.append(image)
            boxes.append(b)
        return frames, boxes


def textureless_frames(frames: int, width: int = 320, height: int = 240, seed: int = 0
                       ) -> list[np.ndarray]:
    """A flat grey video (with a little sensor noise): nothing to track."""
    rng = np.random.default_rng(seed)
    return [np.clip(128 + rng.normal(0, 1.0, (height, width, 3)), 0, 255).astype(np.uint8)
            for _ in range(frames)]


def rotation_errors_deg(estimated: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """(F,) angle between estimated and true rotations, degrees."""
    rel = np.einsum("fij,fkj->fik", estimated, truth)
    cos = (np.trace(rel, axis1=1, axis2=2) - 1) / 2
    return np.degrees(np.arccos(np.clip(cos, -1, 1)))


# --- the world layer's synthetic scenes (tests/world_scene.py) -------------------------------

ROOM_FROM_WORLD = np.diag([1.0, -1.0, -1.0])  # world (y up, z backwards) -> room (y down, z on)


LIT_ROOM = {"lighting": (0.55, 1.25, 0.95, 1.0, 0.8, 1.15), "contrast": 0.35, "tiles": True}


def render_world_scene(scene, supersample: int = 1, seed: int = 3, lit: bool = False
                       ) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Frames of a `tests/world_scene.py` scene: its camera path in a textured room built
    around the walkers, the bodies as textured silhouettes of their meshes. lit: the faces
    lit differently and less busy textures (LIT_ROOM), so that the room's edges show as
    lines, as in most real rooms, and a tiled floor; otherwise every face is the same loud
    noise and nothing in the room is a straight line but its edges.

    Returns (frames (H, W, 3) uint8 RGB, boxes (people, 4) xyxy per frame, NaN out of view)."""
    centre = scene.camera_t[0]
    to_room = lambda x: (x - centre) @ ROOM_FROM_WORLD.T  # noqa: E731
    roots = np.concatenate([to_room(p.root) for p in scene.people])
    room = {"floor": float(centre[1]), "x": float(np.abs(roots[:, 0]).max() + 3.0),
            "z_front": float(roots[:, 2].max() + 3.0), "z_back": -4.0,
            "ceiling": float(3.0 - centre[1])}
    width, height = scene.image_size
    renderer = RoomRenderer(width, height, scene.focal, supersample, seed, room,
                            **(LIT_ROOM if lit else {}))
    absolute = np.swapaxes(scene.camera_R, 1, 2) @ ROOM_FROM_WORLD  # camera-f-from-room
    textures = [noise_texture(100 + p.track_id, 256, finest=0.15) for p in scene.people]
    faces = np.asarray(scene.faces, np.int64)
    frames, boxes = [], []
    for f in range(len(scene.frame_ids)):
        image, _ = renderer.render(absolute[f], np.zeros(3))
        found = np.full((len(scene.people), 4), np.nan, np.float32)
        cams = [(to_room(p.world_verts[f]) @ absolute[f].T) for p in scene.people]
        for k in np.argsort([-c[:, 2].mean() for c in cams]):  # far people first
            cam = cams[k]
            if cam[:, 2].min() <= 0.1:
                continue
            pix = scene.focal * cam[:, :2] / cam[:, 2:] + [width / 2, height / 2]
            x1, y1 = pix.min(axis=0)
            x2, y2 = pix.max(axis=0)
            if x2 < 0 or y2 < 0 or x1 >= width or y1 >= height:
                continue
            mask = np.zeros((height, width), np.uint8)
            cv2.fillPoly(mask, np.round(pix[faces]).astype(np.int32), 255)
            bw, bh = max(1, int(x2 - x1) + 1), max(1, int(y2 - y1) + 1)
            layer = np.zeros_like(image)
            patch = cv2.resize(textures[k], (bw, bh), interpolation=cv2.INTER_LINEAR)
            ox, oy = int(np.floor(x1)), int(np.floor(y1))
            sx, sy = max(0, -ox), max(0, -oy)
            ex, ey = min(bw, width - ox), min(bh, height - oy)
            layer[oy + sy:oy + ey, ox + sx:ox + ex] = patch[sy:ey, sx:ex]
            image[mask > 0] = layer[mask > 0]
            found[k] = [x1, y1, x2, y2]
        frames.append(image)
        boxes.append(found)
    return frames, boxes
