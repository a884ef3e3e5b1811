"""Synthetic world scenes for the world layer's tests and benchmark (no network, no assets).

`make_scene(body, ...)` walks 2-3 synthetic SMPL bodies along known world paths on a floor,
with a walking gait whose stance foot is planted exactly on the floor (y = 0) while the other
swings, films them with a static or a panning/tilting (+-30 deg) camera, and turns what the
camera sees into the camera-frame `TrackResult`s MAED would give: crop boxes from the
projected boxes, a weak-perspective `pred_cam` consistent with that crop, `cam_t` through
`crop_cam_to_translation`, `rotmat`/`verts`/`joints3d` from the body model. Noise goes where
MAED's is: the crop scale `s` (a per-person bias plus a slowly wandering and a per-frame part:
depth 5-10 %) and the global orientation (a few degrees).

World axes are the world layer's own (maed_cli/world/frames.py): y up, floor y = 0, x the
first camera's right, z towards the first camera, origin on the floor under the first
person's first pelvis — so estimates compare with the truth directly.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from maed_cli.body.geometry import (crop_cam_to_full, crop_cam_to_translation, default_focal,
                                    project_perspective, rotmat_to_axis_angle)
from maed_cli.results import TrackResult

PELVIS49 = 8
CAMERA_HEIGHT = 2.0  # a tripod raised a little (the lower, the flatter the rays)


def rot_x(a):
    c, s = np.cos(a), np.sin(a)
    return np.stack([np.stack([np.ones_like(a), 0 * a, 0 * a], -1),
                     np.stack([0 * a, c, -s], -1), np.stack([0 * a, s, c], -1)], -2)


def rot_y(a):
    c, s = np.cos(a), np.sin(a)
    return np.stack([np.stack([c, 0 * a, s], -1), np.stack([0 * a, np.ones_like(a), 0 * a], -1),
                     np.stack([-s, 0 * a, c], -1)], -2)


def exp_so3(w: np.ndarray) -> np.ndarray:
    """Axis-angle (..., 3) -> rotation matrices (..., 3, 3)."""
    angle = np.linalg.norm(w, axis=-1, keepdims=True)[..., None]
    k = np.zeros(w.shape[:-1] + (3, 3))
    k[..., 0, 1], k[..., 0, 2], k[..., 1, 2] = -w[..., 2], w[..., 1], -w[..., 0]
    k = k - np.swapaxes(k, -1, -2)
    safe = np.maximum(angle, 1e-12)
    return (np.eye(3) + np.sin(angle) / safe * k
            + (1 - np.cos(angle)) / (safe * safe) * (k @ k))


@dataclass
class Walk:
    """A person's walk in the layout: start (x, z) on the floor, heading (radians about +y,
    0 = walking towards +z), turn rate (rad/s), gait period (s) and phase."""

    start: tuple[float, float]
    heading: float
    turn: float = 0.0
    period: float = 1.1
    phase: float = 0.0
    hip: float = np.radians(24.0)
    knee: float = np.radians(70.0)
    betas: tuple[float, ...] = ()


# A layout the first camera sees: it stands at (0, height, 6.5) looking along -z.
WALKS = (
    Walk(start=(-1.6, 0.0), heading=np.pi / 2, phase=0.0, betas=(0.5,)),
    Walk(start=(-1.2, -2.5), heading=np.radians(160.0), turn=0.12, period=1.0, phase=1.3,
         betas=(-0.5, 0.3)),
    Walk(start=(1.8, -1.0), heading=np.radians(-135.0), period=1.2, phase=2.1),
)


@dataclass(frozen=True)
class DepthNoise:
    """MAED's scale error, as a factor on s: a per-person bias (scaled by `bias`), a slowly
    wandering part (AR(1): `wander` standard deviation, `rho` per frame) and a per-frame part.
    The default is about 6 % per frame on top of biases of 2-4 %."""

    bias: float = 1.0
    wander: float = 0.03
    rho: float = 0.7
    frame: float = 0.03


@dataclass
class ScenePerson:
    track_id: int
    world_orient: np.ndarray  # (F, 3, 3)
    world_t: np.ndarray  # (F, 3) SMPL transl in the world
    rotmat: np.ndarray  # (F, 24, 3, 3) with the world orientation at the root
    betas: np.ndarray  # (10,)
    world_verts: np.ndarray  # (F, 6890, 3)
    world_joints: np.ndarray  # (F, 49, 3)
    stance: np.ndarray  # (F, 2) bool, (left, right) foot planted
    visible: np.ndarray = field(default=None)  # (F,) bool

    @property
    def root(self) -> np.ndarray:
        """(F, 3) world pelvis."""
        return self.world_joints[:, PELVIS49]

    def distance_walked(self, rows=slice(None)) -> float:
        root = self.root[rows]
        return float(np.linalg.norm(np.diff(root[:, [0, 2]], axis=0), axis=1).sum())


@dataclass
class TrueCameraMotion:
    """Stand-in for maed_cli.world.camera_motion.CameraMotion with the true rotations."""

    frame_ids: np.ndarray
    rotations: np.ndarray  # (F, 3, 3) camera-f-from-camera-0
    static: bool
    focal: float
    image_size: tuple[int, int]

    def summary(self) -> dict:
        return {"mode": "static" if self.static else "moving", "requested": "auto",
                "median_motion_px": 0.0, "inlier_ratio": 1.0,
                "max_rotation_deg": float(np.degrees(np.max(np.arccos(np.clip(
                    (np.trace(self.rotations, axis1=1, axis2=2) - 1) / 2, -1, 1))))),
                "translating_warning": None, "reason_unusable": None}


@dataclass
class WorldScene:
    frame_ids: np.ndarray
    fps: float
    image_size: tuple[int, int]
    focal: float
    camera_R: np.ndarray  # (F, 3, 3) world-from-camera-f
    camera_t: np.ndarray  # (F, 3) camera centre in the world
    people: list[ScenePerson]
    faces: np.ndarray
    tracks: list[TrackResult]  # noisy, MAED-like, camera frame
    clean_tracks: list[TrackResult]

    @property
    def K(self) -> np.ndarray:
        w, h = self.image_size
        return np.array([[self.focal, 0, w / 2], [0, self.focal, h / 2], [0, 0, 1.0]])

    @property
    def rotations(self) -> np.ndarray:
        """(F, 3, 3) camera-f-from-camera-0 (what a camera-motion estimate should give)."""
        return np.swapaxes(self.camera_R, 1, 2) @ self.camera_R[0]

    @property
    def up_cam0(self) -> np.ndarray:
        return self.camera_R[0].T @ np.array([0.0, 1.0, 0.0])

    @property
    def floor_cam0(self) -> np.ndarray:
        """(4,) the true floor in the first camera's frame."""
        return np.append(self.up_cam0, self.camera_t[0, 1])

    def camera_motion(self) -> TrueCameraMotion:
        static = bool(np.allclose(self.rotations, np.eye(3)))
        return TrueCameraMotion(self.frame_ids, self.rotations, static, self.focal,
                                self.image_size)

    def person(self, track_id: int) -> ScenePerson:
        return next(p for p in self.people if p.track_id == track_id)


def _gait_rotmat(walk: Walk, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Local joint rotations (F, 24, 3, 3) (root = heading) and the stance phases (F, 2)."""
    n = len(t)
    omega = 2 * np.pi / walk.period
    phase = omega * t + walk.phase
    rot = np.tile(np.eye(3), (n, 24, 1, 1))
    yaw = walk.heading + walk.turn * t
    rot[:, 0] = rot_y(yaw)
    stance = np.zeros((n, 2), bool)
    for side, (hip_j, knee_j, ankle_j, offset) in enumerate(((1, 4, 7, 0.0), (2, 5, 8, np.pi))):
        # stance (first half cycle): the thigh sweeps back at a constant rate, so the pelvis
        # moves on at a nearly constant speed; swing: the knee bends early and is straight
        # again before the thigh is forward, so the swinging foot clears the floor
        phi = np.mod(phase + offset, 2 * np.pi)
        stance[:, side] = phi < np.pi
        u = np.clip((phi - np.pi) / np.pi, 0.0, 1.0)
        flex = np.where(stance[:, side], walk.hip * (1 - 2 * phi / np.pi),
                        -walk.hip * np.cos(np.pi * np.minimum(u / 0.8, 1.0)))
        knee = np.where(stance[:, side], 0.0,
                        walk.knee * np.sin(np.pi * np.minimum(u / 0.6, 1.0)))
        rot[:, hip_j] = rot_x(-flex)
        rot[:, knee_j] = rot_x(knee)
        rot[:, ankle_j] = rot_x(flex - knee)  # the foot stays level: flat on the floor
    # arms swing against the legs, a little
    rot[:, 16] = rot_x(0.3 * walk.hip * np.sin(phase)) @ rot_y(np.full(n, -1.2))
    rot[:, 17] = rot_x(-0.3 * walk.hip * np.sin(phase)) @ rot_y(np.full(n, 1.2))
    return rot, stance


def _foot_vertices(body, betas: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Vertex ids of the left and right foot (skinned mostly to ankle/foot joints)."""
    weights = body.lbs_weights.cpu().numpy()
    left = np.flatnonzero(weights[:, [7, 10]].sum(1) > 0.5)
    right = np.flatnonzero(weights[:, [8, 11]].sum(1) > 0.5)
    return left, right


@torch.no_grad()
def _pose(body, rotmat: np.ndarray, betas: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    out = body(rotmat=torch.as_tensor(rotmat, dtype=torch.float32),
               betas=torch.as_tensor(np.tile(betas, (len(rotmat), 1)), dtype=torch.float32))
    return out.vertices.numpy().astype(np.float64), out.joints49.numpy().astype(np.float64)


def _walk_person(body, walk: Walk, t: np.ndarray, track_id: int) -> ScenePerson:
    betas = np.zeros(10)
    betas[:len(walk.betas)] = walk.betas
    rotmat, phase_stance = _gait_rotmat(walk, t)
    verts, joints = _pose(body, rotmat, betas)
    left, right = _foot_vertices(body, betas)
    lowest = np.stack([verts[:, left, 1].min(1), verts[:, right, 1].min(1)], 1)  # (F, 2)
    ankles = np.stack([joints[:, 14], joints[:, 11]], 1)  # (F, 2, 3): OP LAnkle, OP RAnkle
    stance_foot = np.where(phase_stance[:, 0], 0, 1)
    transl = np.zeros((len(t), 3))
    root_xz = np.array(walk.start, dtype=np.float64)
    anchor = root_xz + ankles[0, stance_foot[0], [0, 2]]
    for f in range(len(t)):
        s = stance_foot[f]
        if f and s != stance_foot[f - 1]:  # the other foot takes over where it is now
            anchor = (anchor - ankles[f, stance_foot[f - 1], [0, 2]]) + ankles[f, s, [0, 2]]
        root_xz = anchor - ankles[f, s, [0, 2]]
        # the stance foot on the floor (the other one is never more than a few mm lower
        # at the end of its swing: then it is the one touching)
        transl[f] = (root_xz[0], -lowest[f].min(), root_xz[1])
    stance = phase_stance
    return ScenePerson(track_id=track_id, world_orient=rotmat[:, 0].copy(), world_t=transl,
                       rotmat=rotmat, betas=betas, world_verts=verts + transl[:, None],
                       world_joints=joints + transl[:, None], stance=stance)


def _camera_path(kind: str, n: int, pitch0: float) -> np.ndarray:
    """(F, 3, 3) layout-from-camera rotations: looking along -z, pitched by pitch0 (rad);
    "pan": yaw +-30 deg and tilt +-10 deg over the clip."""
    u = np.linspace(0.0, 1.0, n)
    if kind == "static":
        yaw, pitch = np.zeros(n), np.full(n, pitch0)
    elif kind == "pan":
        yaw = np.radians(30.0) * np.sin(2 * np.pi * u)
        pitch = pitch0 + np.radians(10.0) * np.sin(np.pi * u) * np.cos(2 * np.pi * u)
    else:
        raise ValueError(f"camera {kind!r}: static or pan")
    # camera axes in the layout for yaw = pitch = 0: x right, y down, z forward (-z)
    base = np.array([[1.0, 0, 0], [0, -1.0, 0], [0, 0, -1.0]]).T
    return rot_y(yaw) @ base @ rot_x(pitch)


def _noisy_tracks(body, scene_people, camera_R, camera_t, focal, image_size, rng, noise: bool,
                  frame_ids, depth: DepthNoise) -> list[TrackResult]:
    w, h = image_size
    biases = (0.04, -0.035, 0.02)  # per-person scale bias
    leans = (2.0, -1.0, 1.5)  # per-person orientation bias, degrees
    tracks = []
    for k, person in enumerate(scene_people):
        rows = np.flatnonzero(person.visible)
        n = len(rows)
        if n == 0:
            tracks.append(None)
            continue
        cam_R = np.swapaxes(camera_R[rows], 1, 2)  # camera-from-world
        rotmat = person.rotmat[rows].copy()
        rotmat[:, 0] = cam_R @ person.world_orient[rows]
        clean_verts, clean_joints = _pose(body, rotmat, person.betas)
        pelvis = clean_joints[:, PELVIS49]
        pelvis_cam = np.einsum("nij,nj->ni", cam_R, person.root[rows] - camera_t[rows])
        cam_t = pelvis_cam - pelvis
        pixels = project_perspective(torch.as_tensor(clean_verts), torch.as_tensor(cam_t),
                                     focal, w, h).numpy()
        lo, hi = pixels.min(1), pixels.max(1)
        centre, side = (lo + hi) / 2, (hi - lo).max(1)
        bboxes = np.concatenate([centre, side[:, None], side[:, None]], 1)
        crop = np.concatenate([centre, 1.1 * side[:, None], 1.1 * side[:, None]], 1)
        z = cam_t[:, 2]
        s = 2 * focal / (z * crop[:, 2])
        pred_cam = np.stack([s, cam_t[:, 0] - (crop[:, 0] - w / 2) * z / focal,
                             cam_t[:, 1] - (crop[:, 1] - h / 2) * z / focal], 1)
        if noise:
            wander = np.zeros(n)
            for i in range(1, n):
                wander[i] = depth.rho * wander[i - 1] + rng.normal(
                    0, depth.wander * np.sqrt(1 - depth.rho ** 2))
            scale = ((1 + depth.bias * biases[k % 3]) * (1 + wander)
                     * (1 + rng.normal(0, depth.frame, n)))
            pred_cam = pred_cam * np.stack([scale, np.ones(n), np.ones(n)], 1)
            pred_cam[:, 1:] += rng.normal(0, 0.01, (n, 2))
            slow = np.cumsum(rng.normal(0, np.radians(0.3), (n, 3)), 0)
            slow -= slow.mean(0)
            turn = exp_so3(slow + rng.normal(0, np.radians(0.8), (n, 3)))
            lean = rot_x(np.full(n, np.radians(leans[k % 3])))  # a forward lean (body axes)
            rotmat[:, 0] = turn @ rotmat[:, 0] @ lean
        verts, joints = _pose(body, rotmat, person.betas)
        cam_t_est = crop_cam_to_translation(torch.as_tensor(pred_cam), torch.as_tensor(crop),
                                            w, h, focal).numpy()
        orig_cam = crop_cam_to_full(torch.as_tensor(pred_cam), torch.as_tensor(crop), w, h).numpy()
        joints2d = project_perspective(torch.as_tensor(joints), torch.as_tensor(cam_t_est),
                                       focal, w, h).numpy()
        pose = rotmat_to_axis_angle(torch.as_tensor(rotmat)).numpy().reshape(n, 72)
        f32 = np.float32
        tracks.append(TrackResult(
            track_id=person.track_id, frame_ids=np.asarray(frame_ids)[rows].astype(np.int64),
            bboxes=bboxes.astype(f32), crop_boxes=crop.astype(f32), pred_cam=pred_cam.astype(f32),
            orig_cam=orig_cam.astype(f32), cam_t=cam_t_est.astype(f32), pose=pose.astype(f32),
            betas=np.tile(person.betas, (n, 1)).astype(f32), rotmat=rotmat.astype(f32),
            verts=verts.astype(f32), joints3d=joints.astype(f32),
            joints2d_img_coord=joints2d.astype(f32), focal=float(focal)))
    return tracks


def make_scene(body, camera: str = "static", people: int = 2, frames: int = 90,
               fps: float = 30.0, image_size: tuple[int, int] = (640, 360), noise: bool = True,
               seed: int = 0, first_frame: int = 0, frame_step: int = 1,
               camera_height: float = CAMERA_HEIGHT, pitch_deg: float = -12.0,
               depth_noise: DepthNoise = None) -> WorldScene:
    """A scene of `people` (1-3) walkers filmed for `frames` frames (see the module docstring).

    body: a BodyModel (tests: the `synthetic_body` fixture). Frame ids are
    first_frame + frame_step * i (source-video indices, as after --start/--fps). The camera
    stands `camera_height` m above the floor, pitched by `pitch_deg` (negative: down); the
    lower it is, the less the floor says about a person's depth (the rays are flatter)."""
    rng = np.random.default_rng(seed)
    frame_ids = first_frame + frame_step * np.arange(frames)
    t = (frame_ids - frame_ids[0]) / fps
    walkers = [_walk_person(body, walk, t, track_id=k + 1) for k, walk in
               enumerate(WALKS[:people])]
    # shift the layout: origin on the floor under the first person's first pelvis
    shift = np.array([walkers[0].root[0, 0], 0.0, walkers[0].root[0, 2]])
    for p in walkers:
        p.world_t -= shift
        p.world_verts -= shift
        p.world_joints -= shift
    layout_R = _camera_path(camera, frames, np.radians(pitch_deg))
    # level the first camera's heading: the world is the layout already (yaw 0 at frame 0)
    camera_R = layout_R
    camera_t = np.tile(np.array([0.0, camera_height, 6.5]) - shift, (frames, 1))
    focal = default_focal(*image_size)
    w, h = image_size
    for p in walkers:
        cam = np.einsum("fji,fj->fi", camera_R, p.root - camera_t)  # R^T (x - C)
        z = cam[:, 2]
        u = focal * cam[:, 0] / np.maximum(z, 1e-6) + w / 2
        v = focal * cam[:, 1] / np.maximum(z, 1e-6) + h / 2
        p.visible = (z > 1.0) & (u > 0.03 * w) & (u < 0.97 * w) & (v > 0) & (v < h)
    depth_noise = depth_noise or DepthNoise()
    tracks = _noisy_tracks(body, walkers, camera_R, camera_t, focal, image_size, rng, noise,
                           frame_ids, depth_noise)
    clean = _noisy_tracks(body, walkers, camera_R, camera_t, focal, image_size, rng, False,
                          frame_ids, depth_noise)
    return WorldScene(frame_ids=frame_ids, fps=fps, image_size=image_size, focal=focal,
                      camera_R=camera_R, camera_t=camera_t, people=walkers,
                      faces=body.faces, tracks=[t for t in tracks if t is not None],
                      clean_tracks=[t for t in clean if t is not None])


def synthetic_body():
    """A BodyModel on the synthetic SMPL (for scripts; tests use the `synthetic_body` fixture)."""
    import tempfile

    from maed_cli.body.smpl import BodyModel
    from maed_cli.body.smpl_files import read_smpl_file
    from maed_cli.body.synthetic import write_synthetic_assets
    paths = write_synthetic_assets(tempfile.mkdtemp(prefix="maed_world_"))
    return BodyModel(read_smpl_file(paths["npz"]), np.load(paths["extra"]),
                     np.load(paths["h36m"]), source="synthetic")


def angle_between(a: np.ndarray, b: np.ndarray) -> float:
    cos = np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b))
    return float(np.degrees(np.arccos(np.clip(cos, -1.0, 1.0))))


def evaluate_world(scene: WorldScene, build) -> dict:
    """Accuracy of a `build_world` result against the scene's truth (metres, degrees, %).

    up_deg: angle of the estimated up; floor_cm: mean |height| of the true stance-foot points
    above the estimated floor; rte_pct: per person, the mean root error after aligning the
    first frame (translation), in % of the distance walked (worst person); pair_pct: mean
    relative error of the distance between people 1 and 2 over their common frames;
    skating before/after (m/s) and penetration (m) from the build's summary."""
    from maed_cli.world.frames import world_root
    est_up = np.asarray(build.frame.up)
    out = {"up_deg": angle_between(est_up, scene.up_cam0)}
    floor = np.asarray(build.frame.floor)
    heights = []
    for person in scene.people:
        left, right = person.world_joints[:, [21]], person.world_joints[:, [24]]  # heels
        for side, pts in enumerate((left, right)):
            low = pts[person.stance[:, side], 0]
            cam0 = (low - scene.camera_t[0]) @ scene.camera_R[0]  # R0^T (x - C)
            # true floor height of the stance heel point, then the estimated floor there
            true_h = (low[:, 1])
            heights.append(cam0 @ floor[:3] + floor[3] - true_h)
    out["floor_cm"] = float(np.mean(np.abs(np.concatenate(heights)))) * 100
    roots, rte = {}, []
    for track in build.tracks:
        person = scene.person(track.track_id)
        rows = np.searchsorted(scene.frame_ids, track.frame_ids)
        est = world_root(track)
        true = person.root[rows]
        err = np.linalg.norm((est - est[0]) - (true - true[0]), axis=1).mean()
        walked = person.distance_walked(slice(rows[0], rows[-1] + 1))
        rte.append(100 * err / max(walked, 1e-6))
        roots[track.track_id] = dict(zip(rows.tolist(), est))
    out["rte_pct"] = float(max(rte))
    out["rte_pct_each"] = [round(v, 2) for v in rte]
    if 1 in roots and 2 in roots:
        common = sorted(set(roots[1]) & set(roots[2]))
        p1, p2 = scene.person(1).root, scene.person(2).root
        errs = [abs(np.linalg.norm(roots[1][f] - roots[2][f]) / np.linalg.norm(p1[f] - p2[f]) - 1)
                for f in common]
        out["pair_pct"] = 100 * float(np.mean(errs)) if errs else float("nan")
    summary = build.summary
    out["skating_before"] = summary["skating"]["before_m_s"]
    out["skating_after"] = summary["skating"]["after_m_s"]
    out["penetration_cm"] = 100 * summary["penetration_m"]
    out["penetration_max_cm"] = 100 * summary["penetration_max_m"]
    return out
