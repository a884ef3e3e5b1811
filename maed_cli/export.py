"""Exports of per-person results: meshes (obj/ply), animations (glb/bvh), joints (csv/json),
anatomical joint angles (angles: angles.csv and angles.json, see `body.angles`).

Frames (`--frame`). "world" (the default when the results have one, see maed_cli.world):
y up, metres, the floor at y = 0, everyone in one world coordinate system that stays put when
the camera turns; positions come from `world.frames.world_vertices` / `world_joints`, the
animation root from each track's `world_orient` / `world_t`. "camera": MAED's body frame is
the camera's (x right, y down, z forward); meshes and animations are turned into the usual
3D-tool frame — y up, z towards the viewer — by turning everything 180° about x
(C = diag(1, -1, -1)); with a full-perspective translation (`cam_t`) each person sits where
the camera saw them (camera at the origin looking down -z), so the people of one video line
up with each other. Joint tables (csv/json) are in the world frame, or else in the camera
frame (OpenCV: y down), the frame used for analysis and evaluation.

Animations: glb (see maed_cli.gltf) one file per person and scene.glb with every person, the
camera and (world frame) a floor; bvh one file per person: the 24 SMPL joints, rest offsets
from the subject's mean shape, metres; the root has X/Y/Z position then Z/Y/X rotation
channels, every other joint Z/Y/X rotations (intrinsic: R = Rz Ry Rx, degrees); one frame per
video frame from the track's first to its last (gaps filled by slerp / linear interpolation).
"""
from __future__ import annotations

import csv
import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import warnings

import numpy as np

from .atomic import atomic_dir, atomic_path
from .errors import InputError
from .gltf import write_glb, write_scene_glb
from .results import ResultSet, TrackResult

FORMATS = ("obj", "ply", "glb", "bvh", "csv", "json", "angles")
FRAMES = ("world", "camera")
SCENE_GLB = "scene.glb"
C = np.diag([1.0, -1.0, -1.0])  # camera/body frame (y down) <-> y-up frame; C = C^-1


def parse_formats(formats: str | Iterable[str]) -> list[str]:
    items = formats.split(",") if isinstance(formats, str) else list(formats)
    out = []
    for item in (i.strip().lower().lstrip(".") for i in items):
        if not item:
            continue
        if item not in FORMATS:
            raise InputError(f"unknown export format {item!r}: choose from {', '.join(FORMATS)}")
        if item not in out:
            out.append(item)
    if not out:
        raise InputError(f"no export format given: choose from {', '.join(FORMATS)}")
    return out


def parse_frame(frame: str | None) -> str | None:
    """A --frame value, checked (None: not given)."""
    if frame is None:
        return None
    value = frame.strip().lower()
    if value not in FRAMES:
        raise InputError(f"--frame {frame!r}: expected one of {', '.join(FRAMES)}")
    return value


def resolve_frame(frame: str | None, world) -> str:
    """--frame: the one asked for, else "world" when the results have a world frame (a
    `world.frames.WorldFrame`, None when absent), else "camera"."""
    frame = parse_frame(frame)
    if frame is None:
        return "world" if world is not None else "camera"
    if frame == "world" and world is None:
        raise InputError("--frame world: these results have no world frame (no world.npz: "
                         "the demo ran with --no-world, fell back to the camera frame, or "
                         "they are VIBE results); use --frame camera")
    return frame


def world_tracks(results: ResultSet) -> dict[int, TrackResult]:
    """The tracks placed in the world (world_orient and world_t); the others are named in a
    warning, since a world export cannot place them."""
    placed = {tid: t for tid, t in results.tracks.items()
              if t.world_t is not None and t.world_orient is not None}
    missing = sorted(set(results.tracks) - set(placed))
    if missing:
        warnings.warn(f"tracks {', '.join(map(str, missing))} have no world placement and are "
                      f"left out of the world-frame export (--frame camera has them)")
    return placed


# --- the animation of one person -------------------------------------------------------------

@dataclass
class Animation:
    """One person's motion in the y-up frame, ready for glTF/BVH.

    rest_verts (V, 3) and rest_joints (24, 3): the mean shape in the zero pose (SMPL's
    upright T-pose, y up, facing +z);
    local_rot (n, 24, 3, 3): each joint's rotation relative to its parent; root_pos (n, 3):
    the pelvis position per frame; pose_feature (n, 207): SMPL's pose-corrective weights
    (R_j - I for joints 1..23); posedirs (207, V, 3): the corrective shapes; frame_ids (n,).
    """

    rest_verts: np.ndarray
    rest_joints: np.ndarray
    parents: np.ndarray
    weights: np.ndarray
    faces: np.ndarray
    local_rot: np.ndarray
    root_pos: np.ndarray
    pose_feature: np.ndarray
    posedirs: np.ndarray
    frame_ids: np.ndarray
    betas: np.ndarray


def track_animation(track: TrackResult, body, translation: bool = True,
                    world: bool = False) -> Animation:
    """Build the y-up animation of `track` with the body model `body` (a BodyModel): in the
    camera frame (turned by C, placed by `cam_t` when `translation`), or with `world` from the
    track's world_orient/world_t (SMPL's global orientation and transl in the world)."""
    if track.rotmat is None or track.betas is None:
        raise InputError(f"track {track.track_id}: needs pose (or rotmat) and betas to export "
                         f"an animation")
    betas = track.betas.astype(np.float64).mean(axis=0)
    v_template = body.v_template.double().cpu().numpy()
    shapedirs = body.shapedirs.double().cpu().numpy()
    rest = v_template + shapedirs @ betas
    joints = body.J_regressor.double().cpu().numpy() @ rest
    rot = track.rotmat.astype(np.float64)
    n = len(rot)
    feature = (rot[:, 1:] - np.eye(3)).reshape(n, 207)
    posedirs = body.posedirs.double().cpu().numpy().reshape(207, -1, 3)
    local = rot.copy()
    if world:
        if track.world_orient is None or track.world_t is None:
            raise InputError(f"track {track.track_id}: no world placement to export")
        # the world is y up already: SMPL's transl convention, the root turns about the
        # rest pelvis, which world_t then moves
        local[:, 0] = track.world_orient.astype(np.float64)
        root_pos = joints[0] + track.world_t.astype(np.float64)
    else:
        transl = track.cam_t.astype(np.float64) if (translation and track.cam_t is not None) \
            else np.zeros((n, 3))
        # SMPL's template is already y-up (an upright T-pose): the rest pose stays as it is
        # and only the root turns from the camera frame into the y-up frame (v = C v_camera).
        local[:, 0] = C @ rot[:, 0]
        root_pos = (joints[0] + transl) @ C
    return Animation(
        rest_verts=rest, rest_joints=joints,
        parents=body.parents.cpu().numpy().astype(np.int64),
        weights=body.lbs_weights.double().cpu().numpy(), faces=body.faces.astype(np.int64),
        local_rot=local, root_pos=root_pos, pose_feature=feature,
        posedirs=posedirs, frame_ids=track.frame_ids.astype(np.int64), betas=betas)


# --- BVH -------------------------------------------------------------------------------------

END_SITE = {10: (0.0, 0.0, 0.08), 11: (0.0, 0.0, 0.08), 15: (0.0, 0.15, 0.0),
            22: (0.08, 0.0, 0.0), 23: (-0.08, 0.0, 0.0)}  # y-up frame, metres


def _contiguous(anim: Animation) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Frames first..last of the track: local rotations and root positions, gaps filled."""
    from scipy.spatial.transform import Rotation, Slerp
    ids = anim.frame_ids
    frames = np.arange(ids[0], ids[-1] + 1)
    if len(frames) == len(ids):
        return frames, anim.local_rot, anim.root_pos
    rot = np.empty((len(frames), 24, 3, 3))
    for j in range(24):
        rot[:, j] = Slerp(ids, Rotation.from_matrix(anim.local_rot[:, j]))(frames).as_matrix()
    pos = np.stack([np.interp(frames, ids, anim.root_pos[:, k]) for k in range(3)], axis=1)
    return frames, rot, pos


def write_bvh(anim: Animation, path: str | Path, fps: float) -> Path:
    """The 24-joint skeleton and its motion as BVH (metres, ZYX Euler degrees), atomically."""
    from scipy.spatial.transform import Rotation

    from .body.joints import SMPL_JOINT_NAMES
    lines = ["HIERARCHY"]
    order: list[int] = []

    def emit(j: int, depth: int) -> None:
        pad = "  " * depth
        p = anim.parents[j]
        offset = np.zeros(3) if p < 0 else anim.rest_joints[j] - anim.rest_joints[p]
        lines.append(f"{pad}{'ROOT' if p < 0 else 'JOINT'} {SMPL_JOINT_NAMES[j]}")
        lines.append(f"{pad}{{")
        lines.append(f"{pad}  OFFSET {offset[0]:.6f} {offset[1]:.6f} {offset[2]:.6f}")
        if p < 0:
            lines.append(f"{pad}  CHANNELS 6 Xposition Yposition Zposition "
                         f"Zrotation Yrotation Xrotation")
        else:
            lines.append(f"{pad}  CHANNELS 3 Zrotation Yrotation Xrotation")
        order.append(j)
        children = [c for c in range(24) if anim.parents[c] == j]
        for c in children:
            emit(c, depth + 1)
        if not children:
            e = END_SITE.get(j, (0.0, 0.05, 0.0))
            lines.extend([f"{pad}  End Site", f"{pad}  {{",
                          f"{pad}    OFFSET {e[0]:.6f} {e[1]:.6f} {e[2]:.6f}", f"{pad}  }}"])
        lines.append(f"{pad}}}")

    emit(0, 0)
    frames, rot, pos = _contiguous(anim)
    euler = Rotation.from_matrix(rot[:, order].reshape(-1, 3, 3)).as_euler("ZYX", degrees=True)
    euler = euler.reshape(len(frames), 24 * 3)
    lines += ["MOTION", f"Frames: {len(frames)}", f"Frame Time: {1.0 / fps:.8f}"]
    for t in range(len(frames)):
        values = np.concatenate([pos[t], euler[t]])
        lines.append(" ".join(f"{v:.6f}" for v in values))
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_text("\n".join(lines) + "\n")
    return path


# --- meshes and joint tables -----------------------------------------------------------------

def scene_vertices(track: TrackResult, rows, world=None) -> np.ndarray:
    """Vertices (k, V, 3) of track rows `rows` (an index array or slice): in the world frame
    when `world` (a WorldFrame) is given, else in the y-up camera frame placed by cam_t."""
    if world is not None:
        from .world.frames import world_vertices
        return np.asarray(world_vertices(track, rows, world), dtype=np.float64)
    verts = np.asarray(track.verts[rows], dtype=np.float64)
    if track.cam_t is not None:
        verts = verts + np.asarray(track.cam_t[rows], dtype=np.float64)[:, None]
    return verts @ C


MESH_CHUNK = 64  # frames of vertices placed at once


def write_meshes(results: ResultSet, folder: Path, fmt: str, faces: np.ndarray,
                 world=None) -> list[Path]:
    """<folder>/<fmt>/track_<id>/frame_<frame>.<fmt>, one per frame per person."""
    import trimesh
    written = []
    tracks = world_tracks(results) if world is not None else results.tracks
    # the whole <fmt>/ folder at once: no half-written set, and no files of people or frames
    # that an earlier export had and these results do not
    with atomic_dir(folder / fmt) as tmp_root:
        for tid, track in tracks.items():
            if track.verts is None:
                raise InputError(f"track {tid} has no vertices to export")
            (tmp_root / f"track_{tid}").mkdir()
            for first in range(0, len(track), MESH_CHUNK):
                rows = np.arange(first, min(first + MESH_CHUNK, len(track)))
                for row, verts in zip(rows, scene_vertices(track, rows, world)):
                    mesh = trimesh.Trimesh(verts, faces, process=False)
                    name = Path(f"track_{tid}") / f"frame_{int(track.frame_ids[row]):06d}.{fmt}"
                    mesh.export(tmp_root / name, file_type=fmt)
                    written.append(folder / fmt / name)
    return written


def placed_joints(track: TrackResult, world=None) -> tuple[np.ndarray, str]:
    """The 49 joints (n, 49, 3) and their frame of reference: "world" (with `world`), else
    "camera" (placed by cam_t) or "body" (no translation known)."""
    if track.joints3d is None:
        raise InputError(f"track {track.track_id} has no joints3d to export")
    if world is not None:
        from .world.frames import world_joints
        return np.asarray(world_joints(track, np.arange(len(track)), world)), "world"
    if track.cam_t is not None:
        return track.joints3d + track.cam_t[:, None], "camera"
    return track.joints3d, "body"


AXES = {"world": "x, z on the floor, y up, the floor at y = 0 (world frame)",
        "camera": "x right, y down, z forward (camera frame)"}


def write_joint_tables(results: ResultSet, folder: Path, formats: list[str],
                       world=None) -> list[Path]:
    """joints.csv (one row per person, frame and joint) and/or joints.json."""
    from .body.joints import JOINT49_NAMES
    written = []
    tracks = world_tracks(results) if world is not None else results.tracks
    if "csv" in formats:
        path = folder / "joints.csv"
        with atomic_path(path) as tmp, open(tmp, "w", newline="") as handle:
            out = csv.writer(handle)
            out.writerow(["track_id", "frame", "time_s", "joint", "name", "x", "y", "z", "u",
                          "v", "frame_of_reference"])
            for tid, track in tracks.items():
                joints, ref = placed_joints(track, world)
                j2d = track.joints2d_img_coord
                for row, frame in enumerate(track.frame_ids):
                    t = frame / results.fps
                    for j, name in enumerate(JOINT49_NAMES[:joints.shape[1]]):
                        uv = ("", "") if j2d is None else (f"{j2d[row, j, 0]:.2f}",
                                                          f"{j2d[row, j, 1]:.2f}")
                        x, y, z = joints[row, j]
                        out.writerow([tid, int(frame), f"{t:.4f}", j, name, f"{x:.5f}",
                                      f"{y:.5f}", f"{z:.5f}", *uv, ref])
        written.append(path)
    if "json" in formats:
        path = folder / "joints.json"
        doc = {"fps": results.fps, "units": "metres (3D), pixels (2D)",
               "axes": AXES["world" if world is not None else "camera"],
               "joint_names": list(JOINT49_NAMES), "tracks": {}}
        for tid, track in tracks.items():
            joints, ref = placed_joints(track, world)
            entry = {"frame_of_reference": ref, "frame_ids": track.frame_ids.tolist(),
                     "joints3d": np.round(joints, 5).tolist()}
            if track.joints2d_img_coord is not None:
                entry["joints2d"] = np.round(track.joints2d_img_coord, 2).tolist()
            if world is not None and track.contacts is not None:
                entry["contacts"] = np.asarray(track.contacts).astype(int).tolist()
            doc["tracks"][str(tid)] = entry
        with atomic_path(path) as tmp:
            tmp.write_text(json.dumps(doc))
        written.append(path)
    return written


def _scene_camera(results: ResultSet, world) -> dict | None:
    """The video's camera for scene.glb: its world pose per frame, or the origin of the
    camera frame (the y-up camera frame is the glTF camera's own)."""
    from .body.geometry import default_focal
    if world is not None:
        ids = np.asarray(world.frame_ids)
        return {"rotations": np.asarray(world.camera_R), "centres": np.asarray(world.camera_t),
                "times": ids / results.fps, "focal": float(world.focal),
                "image_size": tuple(int(v) for v in world.image_size)}
    if results.width is None or results.height is None:
        return None
    focal = next((t.focal for t in results.tracks.values() if t.focal), None) or \
        default_focal(results.width, results.height)
    return {"rotations": C[None], "centres": np.zeros((1, 3)), "times": np.zeros(1),
            "focal": float(focal), "image_size": (int(results.width), int(results.height))}


def track_angles(track: TrackResult) -> tuple[np.ndarray, str]:
    """(n, len(ANGLE_NAMES)) degrees for one track, and the frame its trunk lean is against."""
    from .body.angles import angle_table
    if track.rotmat is None:
        raise InputError(f"track {track.track_id} has no joint rotations to measure angles from")
    world_orient = getattr(track, "world_orient", None)  # the world layer's, when it ran
    if world_orient is not None:
        return angle_table(track.rotmat, global_orient=world_orient), "world"
    return angle_table(track.rotmat), "camera"


def write_angle_tables(results: ResultSet, folder: Path) -> list[Path]:
    """angles.csv (one row per person and frame, one column per angle) and angles.json."""
    from .body.angles import ANGLE_NAMES
    tables = {tid: track_angles(track) for tid, track in results.tracks.items()}
    csv_path, json_path = folder / "angles.csv", folder / "angles.json"
    with atomic_path(csv_path) as tmp, open(tmp, "w", newline="") as handle:
        out = csv.writer(handle)
        out.writerow(["track_id", "frame", "time_s", *ANGLE_NAMES, "trunk_lean_up"])
        for tid, (table, up) in tables.items():
            for frame, row in zip(results.tracks[tid].frame_ids, table):
                out.writerow([tid, int(frame), f"{frame / results.fps:.4f}",
                              *(f"{v:.2f}" for v in row), up])
    doc = {"fps": results.fps, "units": "degrees", "angle_names": list(ANGLE_NAMES),
           "definition": "maed_cli/body/angles.py; README 'Joint angles'", "tracks": {
               str(tid): {"frame_ids": results.tracks[tid].frame_ids.tolist(),
                          "trunk_lean_up": up,
                          "angles": {name: np.round(table[:, k].astype(float), 2).tolist()
                                     for k, name in enumerate(ANGLE_NAMES)}}
               for tid, (table, up) in tables.items()}}
    with atomic_path(json_path) as tmp:
        tmp.write_text(json.dumps(doc))
    return [csv_path, json_path]


def export_results(results: ResultSet, folder: str | Path, formats: str | Iterable[str], *,
                   body=None, faces: np.ndarray | None = None, pose_correctives: bool = True,
                   world=None) -> list[Path]:
    """Write every requested format under `folder`; returns the files written.

    `world` (a world.frames.WorldFrame): everything in the world frame, a floor in scene.glb;
    None: the camera frame. obj/ply need `faces` (or `body`); glb/bvh need `body` (a
    BodyModel: rest shape, skinning weights, joint regressor, pose correctives)."""
    formats = parse_formats(formats)
    folder = Path(folder)
    if faces is None and body is not None:
        faces = body.faces
    if faces is None:
        faces = results.faces
    results.fill_translation()
    written: list[Path] = []
    for fmt in ("obj", "ply"):
        if fmt in formats:
            if faces is None:
                raise InputError(f"{fmt} export needs the mesh faces: install the SMPL model "
                                 f"(maed setup smpl) or use results that store them")
            written += write_meshes(results, folder, fmt, faces, world)
    if "glb" in formats or "bvh" in formats:
        if body is None:
            raise InputError("glb/bvh export needs the SMPL body model")
        tracks = world_tracks(results) if world is not None else results.tracks
        people = {}
        for tid, track in tracks.items():
            anim = track_animation(track, body, world=world is not None)
            if "glb" in formats:
                people[f"track_{tid}"] = anim
                written.append(write_glb(anim, folder / f"track_{tid}.glb", results.fps,
                                         pose_correctives=pose_correctives,
                                         name=f"track_{tid}"))
            if "bvh" in formats:
                written.append(write_bvh(anim, folder / f"track_{tid}.bvh", results.fps))
        if "glb" in formats:
            written.append(write_scene_glb(people, folder / SCENE_GLB, results.fps,
                                           pose_correctives=pose_correctives,
                                           floor=world is not None,
                                           camera=_scene_camera(results, world)))
        for ext in ("glb", "bvh"):  # people an earlier export into this folder had
            if ext in formats:
                for stale in set(folder.glob(f"track_*.{ext}")) - set(written):
                    stale.unlink()
    written += write_joint_tables(results, folder, formats, world)
    if "angles" in formats:
        written += write_angle_tables(results, folder)
    return written


EXPORT_DIR = "export"


def make_export_hook(input_path: str | Path, options, formats: list[str], body,
                     frame: str | None = None):
    """For `maed demo --export`: `on_results(folder, tracks, summary)` writing folder/export/
    (in the world frame when the run has one, unless `frame` says otherwise)."""
    def on_results(folder: Path, tracks: list, summary: dict) -> None:
        from .results import result_set_from_demo
        from .world.frames import load_world
        results = result_set_from_demo(input_path, options, tracks, summary)
        world = load_world(folder) if frame != "camera" else None
        export_results(results, Path(folder) / EXPORT_DIR, formats, body=body,
                       world=world if resolve_frame(frame, world) == "world" else None)
    return on_results
