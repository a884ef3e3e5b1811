"""Exports of per-person results: meshes (obj/ply), animations (glb/bvh), joints (csv/json),
anatomical joint angles (angles: angles.csv and angles.json, see `body.angles`).

Frames. MAED's body frame is the camera's: x right, y down, z forward. Meshes and
animations are written in the usual 3D-tool frame — y up, z towards the viewer — by turning
everything 180° about x (C = diag(1, -1, -1)); with a full-perspective translation (`cam_t`)
each person sits where the camera saw them (camera at the origin looking down -z), so the
people of one video line up with each other. Joint tables (csv/json) stay in the camera
frame (OpenCV: y down), the frame used for analysis and evaluation.

Animations (one file per person):
  glb  the body mesh with the subject's mean shape baked into the rest mesh, a 24-joint skin
       (SMPL's kinematic tree and skinning weights), per-frame joint rotations and root
       translation, and SMPL's 207 pose-corrective blend shapes as morph targets with
       per-frame weights, so the skinned mesh equals the SMPL body layer at every frame.
       Keyframes at frame_id / fps (times match the video); skin influences below 1e-4 are
       dropped (renormalised), in sets of four (JOINTS_0/WEIGHTS_0, _1, ... as needed).
  bvh  the 24 SMPL joints, rest offsets from the subject's mean shape, metres; the root has
       X/Y/Z position then Z/Y/X rotation channels, every other joint Z/Y/X rotations
       (intrinsic: R = Rz Ry Rx, degrees); one frame per video frame from the track's first
       to its last (gaps filled by slerp / linear interpolation).
"""
from __future__ import annotations

import csv
import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .atomic import atomic_dir, atomic_path
from .errors import InputError
from .results import ResultSet, TrackResult

FORMATS = ("obj", "ply", "glb", "bvh", "csv", "json", "angles")
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


def track_animation(track: TrackResult, body, translation: bool = True) -> Animation:
    """Build the y-up animation of `track` with the body model `body` (a BodyModel)."""
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
    transl = track.cam_t.astype(np.float64) if (translation and track.cam_t is not None) \
        else np.zeros((n, 3))
    # SMPL's template is already y-up (an upright T-pose): the rest pose stays as it is and
    # only the root turns from the camera frame into the y-up world (v_world = C v_camera).
    local = rot.copy()
    local[:, 0] = C @ rot[:, 0]
    return Animation(
        rest_verts=rest, rest_joints=joints,
        parents=body.parents.cpu().numpy().astype(np.int64),
        weights=body.lbs_weights.double().cpu().numpy(), faces=body.faces.astype(np.int64),
        local_rot=local, root_pos=(joints[0] + transl) @ C, pose_feature=feature,
        posedirs=posedirs, frame_ids=track.frame_ids.astype(np.int64), betas=betas)


# --- glTF ------------------------------------------------------------------------------------

def _skin_sets(weights: np.ndarray, threshold: float = 1e-4) -> tuple[np.ndarray, np.ndarray]:
    """SMPL's dense (V, 24) weights -> joints (V, 4k) uint8 and weights (V, 4k) float32."""
    order = np.argsort(-weights, axis=1)
    count = int((weights >= threshold).sum(axis=1).max())
    k = 4 * max(1, -(-count // 4))
    idx = order[:, :k]
    w = np.take_along_axis(weights, idx, axis=1)
    w = np.where(w >= threshold, w, 0.0)
    w /= w.sum(axis=1, keepdims=True)
    idx = np.where(w > 0, idx, 0)
    return idx.astype(np.uint8), w.astype(np.float32)


def _rotmat_to_xyzw(rot: np.ndarray) -> np.ndarray:
    from scipy.spatial.transform import Rotation
    shape = rot.shape[:-2]
    q = Rotation.from_matrix(rot.reshape(-1, 3, 3)).as_quat()  # x, y, z, w
    # keep consecutive keys on the same hemisphere so LINEAR (slerp) takes the short way
    q = q.reshape(*shape, 4)
    if q.ndim == 3:
        for t in range(1, q.shape[0]):
            flip = (q[t] * q[t - 1]).sum(-1) < 0
            q[t, flip] *= -1
    return q.astype(np.float32)


def write_glb(anim: Animation, path: str | Path, fps: float, *, pose_correctives: bool = True,
              name: str = "person") -> Path:
    """The animated, skinned body as a binary glTF (.glb), written atomically."""
    import pygltflib as g

    from .body.joints import SMPL_JOINT_NAMES
    from .render import vertex_normals
    blob = bytearray()
    buffer_views: list = []
    accessors: list = []

    def add(array: np.ndarray, acc_type: str, component: int, target: int | None = None,
            minmax: bool = False) -> int:
        array = np.ascontiguousarray(array)
        while len(blob) % 4:
            blob.append(0)
        buffer_views.append(g.BufferView(buffer=0, byteOffset=len(blob),
                                         byteLength=array.nbytes, target=target))
        blob.extend(array.tobytes())
        count = array.shape[0]
        acc = g.Accessor(bufferView=len(buffer_views) - 1, componentType=component,
                         count=count, type=acc_type)
        if minmax:
            flat = array.reshape(count, -1)
            acc.min = flat.min(axis=0).astype(float).tolist()
            acc.max = flat.max(axis=0).astype(float).tolist()
        accessors.append(acc)
        return len(accessors) - 1

    f32, u32, u8 = g.FLOAT, g.UNSIGNED_INT, g.UNSIGNED_BYTE
    positions = anim.rest_verts.astype(np.float32)
    attributes = g.Attributes(
        POSITION=add(positions, g.VEC3, f32, g.ARRAY_BUFFER, minmax=True),
        NORMAL=add(vertex_normals(anim.rest_verts, anim.faces).astype(np.float32), g.VEC3, f32,
                   g.ARRAY_BUFFER))
    joint_sets, weight_sets = _skin_sets(anim.weights)
    for s in range(joint_sets.shape[1] // 4):
        setattr(attributes, f"JOINTS_{s}", add(joint_sets[:, 4 * s:4 * s + 4], g.VEC4, u8,
                                               g.ARRAY_BUFFER))
        setattr(attributes, f"WEIGHTS_{s}", add(weight_sets[:, 4 * s:4 * s + 4], g.VEC4, f32,
                                                g.ARRAY_BUFFER))
    indices = add(anim.faces.astype(np.uint32).reshape(-1), g.SCALAR, u32,
                  g.ELEMENT_ARRAY_BUFFER)
    targets = []
    if pose_correctives:
        for shape in anim.posedirs.astype(np.float32):
            targets.append(g.Attributes(POSITION=add(shape, g.VEC3, f32, g.ARRAY_BUFFER,
                                                     minmax=True)))
    primitive = g.Primitive(attributes=attributes, indices=indices, mode=g.TRIANGLES,
                            targets=targets or None)
    mesh = g.Mesh(name=name, primitives=[primitive],
                  weights=[0.0] * len(targets) if targets else None)

    joints = anim.rest_joints
    nodes = []
    for j in range(24):
        p = anim.parents[j]
        offset = joints[j] - (joints[p] if p >= 0 else 0.0)
        nodes.append(g.Node(name=SMPL_JOINT_NAMES[j], translation=offset.astype(float).tolist(),
                            rotation=[0.0, 0.0, 0.0, 1.0],
                            children=[c for c in range(24) if anim.parents[c] == j] or None))
    # rest pose world transforms are pure translations: inverse bind = translate(-joint)
    ibm = np.tile(np.eye(4, dtype=np.float32), (24, 1, 1))
    ibm[:, :3, 3] = -joints
    ibm_acc = add(ibm.transpose(0, 2, 1).reshape(24, 16), g.MAT4, f32)  # column-major
    mesh_node = len(nodes)
    nodes.append(g.Node(name=name, mesh=0, skin=0))

    times = (anim.frame_ids / float(fps)).astype(np.float32)
    t_acc = add(times, g.SCALAR, f32, minmax=True)
    samplers, channels = [], []

    def channel(node: int, path_: str, values: np.ndarray, acc_type: str) -> None:
        samplers.append(g.AnimationSampler(input=t_acc, output=add(values, acc_type, f32),
                                           interpolation="LINEAR"))
        channels.append(g.AnimationChannel(sampler=len(samplers) - 1,
                                           target=g.AnimationChannelTarget(node=node,
                                                                           path=path_)))

    channel(0, "translation", anim.root_pos.astype(np.float32), g.VEC3)
    quats = _rotmat_to_xyzw(anim.local_rot)
    for j in range(24):
        channel(j, "rotation", quats[:, j], g.VEC4)
    if targets:
        channel(mesh_node, "weights", anim.pose_feature.astype(np.float32).reshape(-1), g.SCALAR)
    nodes[0].translation = anim.root_pos[0].astype(float).tolist()

    gltf = g.GLTF2(
        asset=g.Asset(generator="maed", version="2.0"), scene=0,
        scenes=[g.Scene(nodes=[0, mesh_node])], nodes=nodes, meshes=[mesh],
        skins=[g.Skin(joints=list(range(24)), inverseBindMatrices=ibm_acc, skeleton=0)],
        animations=[g.Animation(name=f"{name}_motion", samplers=samplers, channels=channels)],
        accessors=accessors, bufferViews=buffer_views,
        buffers=[g.Buffer(byteLength=len(blob))])
    gltf.set_binary_blob(bytes(blob))
    path = Path(path)
    with atomic_path(path) as tmp:
        gltf.save_binary(str(tmp))
    return path


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

def scene_vertices(track: TrackResult, row: int) -> np.ndarray:
    """Vertices of one frame in the y-up frame, placed by cam_t when known."""
    verts = track.verts[row].astype(np.float64)
    if track.cam_t is not None:
        verts = verts + track.cam_t[row]
    return verts @ C


def write_meshes(results: ResultSet, folder: Path, fmt: str, faces: np.ndarray) -> list[Path]:
    """<folder>/<fmt>/track_<id>/frame_<frame>.<fmt>, one per frame per person."""
    import trimesh
    written = []
    # the whole <fmt>/ folder at once: no half-written set, and no files of people or frames
    # that an earlier export had and these results do not
    with atomic_dir(folder / fmt) as tmp_root:
        for tid, track in results.tracks.items():
            if track.verts is None:
                raise InputError(f"track {tid} has no vertices to export")
            (tmp_root / f"track_{tid}").mkdir()
            for row, frame in enumerate(track.frame_ids):
                mesh = trimesh.Trimesh(scene_vertices(track, row), faces, process=False)
                name = Path(f"track_{tid}") / f"frame_{int(frame):06d}.{fmt}"
                mesh.export(tmp_root / name, file_type=fmt)
                written.append(folder / fmt / name)
    return written


def _joints_camera(track: TrackResult) -> tuple[np.ndarray, str]:
    if track.joints3d is None:
        raise InputError(f"track {track.track_id} has no joints3d to export")
    if track.cam_t is not None:
        return track.joints3d + track.cam_t[:, None], "camera"
    return track.joints3d, "body"


def write_joint_tables(results: ResultSet, folder: Path, formats: list[str]) -> list[Path]:
    """joints.csv (one row per person, frame and joint) and/or joints.json."""
    from .body.joints import JOINT49_NAMES
    written = []
    if "csv" in formats:
        path = folder / "joints.csv"
        with atomic_path(path) as tmp, open(tmp, "w", newline="") as handle:
            out = csv.writer(handle)
            out.writerow(["track_id", "frame", "time_s", "joint", "name", "x", "y", "z", "u",
                          "v", "frame_of_reference"])
            for tid, track in results.tracks.items():
                joints, ref = _joints_camera(track)
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
               "axes": "x right, y down, z forward (camera frame)",
               "joint_names": list(JOINT49_NAMES), "tracks": {}}
        for tid, track in results.tracks.items():
            joints, ref = _joints_camera(track)
            entry = {"frame_of_reference": ref, "frame_ids": track.frame_ids.tolist(),
                     "joints3d": np.round(joints, 5).tolist()}
            if track.joints2d_img_coord is not None:
                entry["joints2d"] = np.round(track.joints2d_img_coord, 2).tolist()
            doc["tracks"][str(tid)] = entry
        with atomic_path(path) as tmp:
            tmp.write_text(json.dumps(doc))
        written.append(path)
    return written


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
                   body=None, faces: np.ndarray | None = None, pose_correctives: bool = True
                   ) -> list[Path]:
    """Write every requested format under `folder`; returns the files written.

    obj/ply need `faces` (or `body`); glb/bvh need `body` (a BodyModel: rest shape, skinning
    weights, joint regressor, pose correctives)."""
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
            written += write_meshes(results, folder, fmt, faces)
    if "glb" in formats or "bvh" in formats:
        if body is None:
            raise InputError("glb/bvh export needs the SMPL body model")
        for tid, track in results.tracks.items():
            anim = track_animation(track, body)
            if "glb" in formats:
                written.append(write_glb(anim, folder / f"track_{tid}.glb", results.fps,
                                         pose_correctives=pose_correctives,
                                         name=f"track_{tid}"))
            if "bvh" in formats:
                written.append(write_bvh(anim, folder / f"track_{tid}.bvh", results.fps))
        for ext in ("glb", "bvh"):  # people an earlier export into this folder had
            if ext in formats:
                for stale in set(folder.glob(f"track_*.{ext}")) - set(written):
                    stale.unlink()
    written += write_joint_tables(results, folder, formats)
    if "angles" in formats:
        written += write_angle_tables(results, folder)
    return written


EXPORT_DIR = "export"


def make_export_hook(input_path: str | Path, options, formats: list[str], body):
    """For `maed demo --export`: `on_results(folder, tracks, summary)` writing folder/export/."""
    def on_results(folder: Path, tracks: list, summary: dict) -> None:
        from .results import result_set_from_demo
        results = result_set_from_demo(input_path, options, tracks, summary)
        export_results(results, Path(folder) / EXPORT_DIR, formats, body=body)
    return on_results
