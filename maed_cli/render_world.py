"""The world view of `maed render --world`: the scene seen from a fixed virtual camera.

A panel beside the overlay: the floor (y = 0) with a metre grid, every person's trajectory on
the floor (the whole path faint, the part walked so far in the person's colour, a dot under
each foot labelled in contact), the people's meshes (the MeshRenderer's perspective camera)
and the video's camera as a frustum, per frame. The virtual camera is fixed for the whole
video: elevated 30° and turned 45° from the first camera's heading, at the distance that
frames every trajectory and the video's camera. Lines are drawn with OpenCV after projecting
(the floor never hides a body from above; the frustum is drawn last, on top).
"""
from __future__ import annotations

import numpy as np

from .render import MeshRenderer, PersonMesh, label, track_color

ELEVATION_DEG = 30.0
AZIMUTH_DEG = 45.0
NEAR_M = 0.05  # segments are clipped to this depth in front of the virtual camera
BACKGROUND = (236, 238, 242)
FLOOR_COLOUR = (206, 210, 214)
GRID_COLOUR = (168, 172, 178)
FRUSTUM_COLOUR = (40, 40, 40)
BODY_HEIGHT_M = 1.8  # the framing includes a person's head above each trajectory point


def _rgb255(rgb01: tuple[float, float, float], scale: float = 1.0) -> tuple[int, int, int]:
    """A track colour in [0, 1] as 0..255 RGB (the frames are RGB throughout)."""
    return tuple(int(round(255 * min(1.0, c * scale))) for c in rgb01)


def look_at(eye: np.ndarray, target: np.ndarray, up=(0.0, 1.0, 0.0)) -> np.ndarray:
    """(3, 3) rows: the OpenCV axes (x right, y down, z forward) of a camera at `eye` looking
    at `target`, in world coordinates (world y up)."""
    z = np.asarray(target, np.float64) - np.asarray(eye, np.float64)
    z /= np.linalg.norm(z)
    up = np.asarray(up, np.float64)
    y = -(up - (up @ z) * z)
    y /= np.linalg.norm(y)
    return np.stack([np.cross(y, z), y, z])


class WorldView:
    """Draws the world panel of a ResultSet with a WorldFrame, frame by frame, through a
    MeshRenderer's perspective camera (its size and focal; the overlay's own renderer can
    serve, since the camera is chosen per call).

        view = WorldView(results, world, MeshRenderer(w, h, faces))
        panel = view.render(frame_index)      # (h, w, 3) uint8 RGB
    """

    def __init__(self, results, world, renderer: MeshRenderer):
        from .body.joints import JOINT49_NAMES
        from .world.frames import world_joints
        self.results, self.world = results, world
        self.renderer = renderer
        self.width, self.height = renderer.width, renderer.height
        self.focal = renderer.focal
        self._feet = [JOINT49_NAMES.index("OP LAnkle"), JOINT49_NAMES.index("OP RAnkle")]
        # trajectories: every track's pelvis on the floor and its feet, in the world
        self.paths: dict[int, np.ndarray] = {}
        self.feet: dict[int, np.ndarray] = {}
        for tid, track in results.tracks.items():
            if track.joints3d is None:
                continue
            joints = world_joints(track, slice(None), world)
            self.paths[tid] = joints[:, 8].astype(np.float64) * [1.0, 0.0, 1.0]
            self.feet[tid] = joints[:, self._feet].astype(np.float64)
        self._frame_camera()

    # -- the virtual camera ----------------------------------------------------------------
    def _frame_camera(self) -> None:
        world = self.world
        points = [p for p in self.paths.values()]
        points += [p + [0.0, BODY_HEIGHT_M, 0.0] for p in self.paths.values()]
        points.append(np.asarray(world.camera_t, np.float64).reshape(-1, 3))
        cloud = np.concatenate(points)
        low, high = cloud.min(axis=0), cloud.max(axis=0)
        centre = (low + high) / 2.0
        radius = max(0.5 * float(np.linalg.norm(high - low)), 1.0)
        # the first camera's heading on the floor, turned and tilted for a 3/4 view
        forward = np.asarray(world.camera_R[0], np.float64) @ [0.0, 0.0, 1.0]
        heading = np.array([forward[0], 0.0, forward[2]])
        heading = heading / np.linalg.norm(heading) if np.linalg.norm(heading) > 1e-6 \
            else np.array([0.0, 0.0, -1.0])
        a, e = np.deg2rad(AZIMUTH_DEG), np.deg2rad(ELEVATION_DEG)
        turned = np.array([np.cos(a) * heading[0] + np.sin(a) * heading[2], 0.0,
                           -np.sin(a) * heading[0] + np.cos(a) * heading[2]])
        direction = np.cos(e) * turned + np.array([0.0, -np.sin(e), 0.0])  # eye -> centre
        # the nearest eye along that direction that keeps every point inside the panel
        # (a 10 % margin): |f x / (D + z)| <= 0.45 W and |f y / (D + z)| <= 0.45 H
        self.rotation = look_at(centre - direction, centre)
        rel = (cloud - centre) @ self.rotation.T
        need = np.maximum(self.focal * np.abs(rel[:, 0]) / (0.45 * self.width),
                          self.focal * np.abs(rel[:, 1]) / (0.45 * self.height)) - rel[:, 2]
        distance = max(float(need.max()), float(-rel[:, 2].min()) + 0.5, 1.0)
        self.eye = centre - distance * direction
        # the floor and its grid: the framed area plus a margin, whole metres
        margin = 1.0
        self.floor_low = np.floor(low[[0, 2]] - margin)
        self.floor_high = np.ceil(high[[0, 2]] + margin)
        span = float((self.floor_high - self.floor_low).max())
        self.grid_step = float(max(1.0, np.ceil(span / 30.0)))
        scale = 0.12 * radius
        self.frustum_depth = float(np.clip(scale, 0.25, 1.0))

    def to_view(self, points: np.ndarray) -> np.ndarray:
        """World points (..., 3) -> the virtual camera's OpenCV frame."""
        return (np.asarray(points, np.float64) - self.eye) @ self.rotation.T

    def project(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """World points (k, 3) -> pixels (k, 2) and whether each is in front."""
        cam = self.to_view(points)
        z = cam[:, 2]
        safe = np.where(z > NEAR_M, z, NEAR_M)
        uv = np.stack([self.focal * cam[:, 0] / safe + self.width / 2.0,
                       self.focal * cam[:, 1] / safe + self.height / 2.0], axis=1)
        return uv, z > NEAR_M

    def _segments(self, a: np.ndarray, b: np.ndarray) -> list[tuple[tuple, tuple]]:
        """World segments a[i]-b[i] (k, 3), clipped to the near plane, as pixel end points."""
        ca, cb = self.to_view(a), self.to_view(b)
        out = []
        for p, q in zip(ca, cb):
            if p[2] < NEAR_M and q[2] < NEAR_M:
                continue
            if p[2] < NEAR_M or q[2] < NEAR_M:
                t = (NEAR_M - p[2]) / (q[2] - p[2])
                cut = p + t * (q - p)
                p, q = (cut, q) if p[2] < NEAR_M else (p, cut)
            ends = [(self.focal * v[0] / v[2] + self.width / 2.0,
                     self.focal * v[1] / v[2] + self.height / 2.0) for v in (p, q)]
            out.append(tuple(tuple(int(round(c * 16)) for c in e) for e in ends))
        return out

    def _lines(self, image, a, b, colour, thickness: int = 1) -> None:
        import cv2
        for p, q in self._segments(np.asarray(a, float), np.asarray(b, float)):
            cv2.line(image, p, q, colour, thickness, cv2.LINE_AA, shift=4)

    # -- drawing ---------------------------------------------------------------------------
    def _floor(self) -> np.ndarray:
        import cv2
        image = np.empty((self.height, self.width, 3), np.uint8)
        image[:] = BACKGROUND
        (x0, z0), (x1, z1) = self.floor_low, self.floor_high
        corners = np.array([[x0, 0, z0], [x1, 0, z0], [x1, 0, z1], [x0, 0, z1]], float)
        uv, front = self.project(corners)
        if front.all():
            cv2.fillPoly(image, [np.round(uv * 16).astype(np.int32)], FLOOR_COLOUR,
                         cv2.LINE_AA, shift=4)
        xs = np.arange(x0, x1 + 1e-9, self.grid_step)
        zs = np.arange(z0, z1 + 1e-9, self.grid_step)
        self._lines(image, np.stack([xs, 0 * xs, np.full_like(xs, z0)], 1),
                    np.stack([xs, 0 * xs, np.full_like(xs, z1)], 1), GRID_COLOUR)
        self._lines(image, np.stack([np.full_like(zs, x0), 0 * zs, zs], 1),
                    np.stack([np.full_like(zs, x1), 0 * zs, zs], 1), GRID_COLOUR)
        return image

    def _trajectories(self, image: np.ndarray, frame: int) -> None:
        import cv2
        for tid, path in self.paths.items():
            track = self.results.tracks[tid]
            colour = _rgb255(track_color(tid))
            faint = tuple(int(0.5 * c + 0.5 * f) for c, f in zip(colour, FLOOR_COLOUR))
            self._lines(image, path[:-1], path[1:], faint, 1)
            walked = int(np.searchsorted(track.frame_ids, frame, side="right"))
            if walked > 1:
                self._lines(image, path[:walked - 1], path[1:walked], colour, 2)
            row = track.index_of(frame)
            if row is not None and track.contacts is not None:
                for side in (0, 1):
                    if track.contacts[row, side]:
                        foot = self.feet[tid][row, side] * [1.0, 0.0, 1.0]
                        uv, front = self.project(foot[None])
                        if front[0]:
                            cv2.circle(image, tuple(int(round(c * 16)) for c in uv[0]),
                                       3 * 16, _rgb255(track_color(tid), 0.7), -1, cv2.LINE_AA,
                                       shift=4)

    def _frustum(self, image: np.ndarray, frame: int) -> None:
        rotation, centre = self.world.camera_pose(frame)
        w, h = self.world.image_size
        f = float(self.world.focal)
        corners = np.array([[-w / 2, -h / 2], [w / 2, -h / 2], [w / 2, h / 2], [-w / 2, h / 2]])
        rays = np.concatenate([corners / f, np.ones((4, 1))], axis=1) * self.frustum_depth
        ends = rays @ np.asarray(rotation).T + centre
        apex = np.tile(centre, (4, 1))
        self._lines(image, apex, ends, FRUSTUM_COLOUR, 1)
        self._lines(image, ends, np.roll(ends, -1, axis=0), FRUSTUM_COLOUR, 2)
        # a small triangle on the image's top edge shows which way is up in the video
        up = np.asarray(rotation) @ [0.0, -1.0, 0.0]
        left, right = 0.65 * ends[0] + 0.35 * ends[1], 0.35 * ends[0] + 0.65 * ends[1]
        tip = 0.5 * (ends[0] + ends[1]) + 0.3 * np.linalg.norm(ends[1] - ends[0]) * up
        self._lines(image, np.stack([left, tip]), np.stack([tip, right]), FRUSTUM_COLOUR, 1)

    def people(self, frame: int) -> list[PersonMesh]:
        from .world.frames import world_vertices
        people = []
        for tid, track in self.results.tracks.items():
            row = track.index_of(frame)
            if row is None or track.verts is None or tid not in self.paths:
                continue
            verts = self.to_view(world_vertices(track, row, self.world))
            people.append(PersonMesh(verts=verts, color=track_color(tid),
                                     cam_t=np.zeros(3)))
        return people

    def render(self, frame: int) -> np.ndarray:
        """The world panel (height, width, 3) uint8 of source frame `frame`."""
        image = self._floor()
        self._trajectories(image, frame)
        image = self.renderer.render(image, self.people(frame), camera="perspective")
        self._frustum(image, frame)
        return label(image, "world")
