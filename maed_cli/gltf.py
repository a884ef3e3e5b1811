"""Binary glTF (.glb) of animated SMPL bodies: one person per file, or a whole scene.

A person is its mesh (the subject's mean shape baked into the rest mesh), a 24-joint skin
(SMPL's kinematic tree and skinning weights), per-frame joint rotations and root translation,
and optionally SMPL's 207 pose-corrective blend shapes as morph targets with per-frame
weights, so the skinned mesh equals the SMPL body layer at every frame. Keyframes at
frame_id / fps (times match the video); skin influences below 1e-4 are dropped
(renormalised), in sets of four (JOINTS_0/WEIGHTS_0, _1, ... as needed).

A scene (`write_scene_glb`) holds every person of a video in one coordinate system, each with
its own skeleton, all driven by one animation, plus the video's camera (a glTF camera node,
animated when the camera turns) and, in the world frame, a floor: a checkered quad mesh
named "floor" at y = 0.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .atomic import atomic_path

FLOOR_MARGIN_M = 2.0  # floor beyond the outermost root position / camera, metres
FLOOR_MAX_TILES = 80  # tiles per side; larger floors get larger tiles
C = np.diag([1.0, -1.0, -1.0])  # OpenCV camera axes (y down, z forward) <-> glTF camera axes


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
    if q.ndim >= 2:  # (n, 4) or (n, joints, 4): continuity along the frames
        for t in range(1, q.shape[0]):
            flip = (q[t] * q[t - 1]).sum(-1) < 0
            q[t] *= np.where(flip, -1.0, 1.0)[..., None]
    return q.astype(np.float32)


class GlbBuilder:
    """Accumulates buffers, nodes, meshes, skins and one animation; `save` writes the .glb."""

    def __init__(self) -> None:
        import pygltflib as g
        self.g = g
        self.blob = bytearray()
        self.buffer_views: list = []
        self.accessors: list = []
        self.nodes: list = []
        self.meshes: list = []
        self.skins: list = []
        self.materials: list = []
        self.cameras: list = []
        self.samplers: list = []
        self.channels: list = []
        self.scene_nodes: list[int] = []

    def add(self, array: np.ndarray, acc_type: str, component: int, target: int | None = None,
            minmax: bool = False) -> int:
        """`array` as a buffer view and accessor; returns the accessor's index."""
        g = self.g
        array = np.ascontiguousarray(array)
        while len(self.blob) % 4:
            self.blob.append(0)
        self.buffer_views.append(g.BufferView(buffer=0, byteOffset=len(self.blob),
                                              byteLength=array.nbytes, target=target))
        self.blob.extend(array.tobytes())
        count = array.shape[0]
        acc = g.Accessor(bufferView=len(self.buffer_views) - 1, componentType=component,
                         count=count, type=acc_type)
        if minmax:
            flat = array.reshape(count, -1)
            acc.min = flat.min(axis=0).astype(float).tolist()
            acc.max = flat.max(axis=0).astype(float).tolist()
        self.accessors.append(acc)
        return len(self.accessors) - 1

    def _channel(self, times: int, node: int, path: str, values: np.ndarray,
                 acc_type: str) -> None:
        g = self.g
        self.samplers.append(g.AnimationSampler(
            input=times, output=self.add(values.astype(np.float32), acc_type, g.FLOAT),
            interpolation="LINEAR"))
        self.channels.append(g.AnimationChannel(
            sampler=len(self.samplers) - 1, target=g.AnimationChannelTarget(node=node,
                                                                            path=path)))

    def add_person(self, anim, fps: float, name: str, pose_correctives: bool = True,
                   joint_prefix: str = "") -> None:
        """One animated, skinned body (an export.Animation) with its own 24-joint skeleton,
        its joints named `joint_prefix` + SMPL's joint name."""
        from .body.joints import SMPL_JOINT_NAMES
        from .render import vertex_normals
        g = self.g
        f32, u32, u8 = g.FLOAT, g.UNSIGNED_INT, g.UNSIGNED_BYTE
        attributes = g.Attributes(
            POSITION=self.add(anim.rest_verts.astype(np.float32), g.VEC3, f32, g.ARRAY_BUFFER,
                              minmax=True),
            NORMAL=self.add(vertex_normals(anim.rest_verts, anim.faces).astype(np.float32),
                            g.VEC3, f32, g.ARRAY_BUFFER))
        joint_sets, weight_sets = _skin_sets(anim.weights)
        for s in range(joint_sets.shape[1] // 4):
            setattr(attributes, f"JOINTS_{s}", self.add(joint_sets[:, 4 * s:4 * s + 4], g.VEC4,
                                                        u8, g.ARRAY_BUFFER))
            setattr(attributes, f"WEIGHTS_{s}", self.add(weight_sets[:, 4 * s:4 * s + 4],
                                                         g.VEC4, f32, g.ARRAY_BUFFER))
        indices = self.add(anim.faces.astype(np.uint32).reshape(-1), g.SCALAR, u32,
                           g.ELEMENT_ARRAY_BUFFER)
        targets = []
        if pose_correctives:
            for shape in anim.posedirs.astype(np.float32):
                targets.append(g.Attributes(POSITION=self.add(shape, g.VEC3, f32,
                                                              g.ARRAY_BUFFER, minmax=True)))
        primitive = g.Primitive(attributes=attributes, indices=indices, mode=g.TRIANGLES,
                                targets=targets or None)
        self.meshes.append(g.Mesh(name=name, primitives=[primitive],
                                  weights=[0.0] * len(targets) if targets else None))

        first = len(self.nodes)  # this person's joints are nodes first .. first + 23
        joints = anim.rest_joints
        for j in range(24):
            p = anim.parents[j]
            offset = joints[j] - (joints[p] if p >= 0 else 0.0)
            children = [first + c for c in range(24) if anim.parents[c] == j]
            self.nodes.append(g.Node(name=joint_prefix + SMPL_JOINT_NAMES[j],
                                     translation=offset.astype(float).tolist(),
                                     rotation=[0.0, 0.0, 0.0, 1.0], children=children or None))
        # rest pose world transforms are pure translations: inverse bind = translate(-joint)
        ibm = np.tile(np.eye(4, dtype=np.float32), (24, 1, 1))
        ibm[:, :3, 3] = -joints
        ibm_acc = self.add(ibm.transpose(0, 2, 1).reshape(24, 16), g.MAT4, f32)  # column-major
        self.skins.append(g.Skin(joints=list(range(first, first + 24)),
                                 inverseBindMatrices=ibm_acc, skeleton=first))
        mesh_node = len(self.nodes)
        self.nodes.append(g.Node(name=name, mesh=len(self.meshes) - 1,
                                 skin=len(self.skins) - 1))
        self.scene_nodes += [first, mesh_node]

        times = self.add((anim.frame_ids / float(fps)).astype(np.float32), g.SCALAR, f32,
                         minmax=True)
        self._channel(times, first, "translation", anim.root_pos, g.VEC3)
        quats = _rotmat_to_xyzw(anim.local_rot)
        for j in range(24):
            self._channel(times, first + j, "rotation", quats[:, j], g.VEC4)
        if targets:
            self._channel(times, mesh_node, "weights", anim.pose_feature.reshape(-1), g.SCALAR)
        self.nodes[first].translation = anim.root_pos[0].astype(float).tolist()

    def add_floor(self, points_xz: np.ndarray, name: str = "floor") -> None:
        """A checkered quad mesh at y = 0 covering `points_xz` (k, 2) plus a margin."""
        g = self.g
        points_xz = np.asarray(points_xz, dtype=np.float64).reshape(-1, 2)
        low = np.floor(points_xz.min(axis=0) - FLOOR_MARGIN_M)
        high = np.ceil(points_xz.max(axis=0) + FLOOR_MARGIN_M)
        tile = max(1.0, float(np.ceil((high - low).max() / FLOOR_MAX_TILES)))
        nx, nz = (np.ceil((high - low) / tile)).astype(int)
        ix, iz = np.meshgrid(np.arange(nx), np.arange(nz), indexing="ij")
        ix, iz = ix.reshape(-1), iz.reshape(-1)
        corners = np.array([[0, 0], [1, 0], [1, 1], [0, 1]], np.float64)
        xz = low + tile * (np.stack([ix, iz], axis=1)[:, None] + corners)  # (tiles, 4, 2)
        positions = np.zeros((len(ix), 4, 3), np.float32)
        positions[..., 0], positions[..., 2] = xz[..., 0], xz[..., 1]
        shade = np.where((ix + iz) % 2 == 0, 0.78, 0.62).astype(np.float32)
        colors = np.repeat(np.repeat(shade[:, None, None], 4, axis=1), 3, axis=2)
        base = 4 * np.arange(len(ix), dtype=np.uint32)[:, None]
        # counter-clockwise seen from above (+y), so the front face points up
        faces = (base + np.array([0, 3, 2, 0, 2, 1], np.uint32)).reshape(-1)
        normals = np.tile(np.float32([0.0, 1.0, 0.0]), (positions.size // 3, 1))
        attributes = g.Attributes(
            POSITION=self.add(positions.reshape(-1, 3), g.VEC3, g.FLOAT, g.ARRAY_BUFFER,
                              minmax=True),
            NORMAL=self.add(normals, g.VEC3, g.FLOAT, g.ARRAY_BUFFER),
            COLOR_0=self.add(colors.reshape(-1, 3), g.VEC3, g.FLOAT, g.ARRAY_BUFFER))
        self.materials.append(g.Material(
            name=name, doubleSided=True,
            pbrMetallicRoughness=g.PbrMetallicRoughness(baseColorFactor=[1.0, 1.0, 1.0, 1.0],
                                                        metallicFactor=0.0,
                                                        roughnessFactor=1.0)))
        primitive = g.Primitive(attributes=attributes, mode=g.TRIANGLES,
                                indices=self.add(faces, g.SCALAR, g.UNSIGNED_INT,
                                                 g.ELEMENT_ARRAY_BUFFER),
                                material=len(self.materials) - 1)
        self.meshes.append(g.Mesh(name=name, primitives=[primitive]))
        self.nodes.append(g.Node(name=name, mesh=len(self.meshes) - 1))
        self.scene_nodes.append(len(self.nodes) - 1)

    def add_camera(self, rotations: np.ndarray, centres: np.ndarray, times: np.ndarray,
                   focal: float, image_size: tuple[int, int], name: str = "camera") -> None:
        """The video's camera: `rotations` (F, 3, 3) take OpenCV camera axes into the scene,
        `centres` (F, 3) its position, keyed at `times` (F,) seconds when it moves."""
        g = self.g
        w, h = (float(v) for v in image_size)
        self.cameras.append(g.Camera(name=name, type="perspective", perspective=g.Perspective(
            yfov=float(2.0 * np.arctan(h / (2.0 * focal))), aspectRatio=w / h, znear=0.01)))
        pose = np.asarray(rotations, np.float64) @ C  # glTF cameras look down -z, y up
        quats = _rotmat_to_xyzw(pose)
        centres = np.asarray(centres, np.float64).reshape(-1, 3)
        self.nodes.append(g.Node(name=name, camera=len(self.cameras) - 1,
                                 translation=centres[0].astype(float).tolist(),
                                 rotation=quats[0].astype(float).tolist()))
        node = len(self.nodes) - 1
        self.scene_nodes.append(node)
        moving = len(quats) > 1 and (np.abs(quats - quats[0]).max() > 1e-7 or
                                     np.abs(centres - centres[0]).max() > 1e-7)
        if moving:
            acc = self.add(np.asarray(times, np.float32), g.SCALAR, g.FLOAT, minmax=True)
            self._channel(acc, node, "rotation", quats, g.VEC4)
            self._channel(acc, node, "translation", centres, g.VEC3)

    def save(self, path: str | Path, animation_name: str) -> Path:
        """Write the .glb atomically."""
        g = self.g
        animations = [g.Animation(name=animation_name, samplers=self.samplers,
                                  channels=self.channels)] if self.channels else []
        gltf = g.GLTF2(
            asset=g.Asset(generator="maed", version="2.0"), scene=0,
            scenes=[g.Scene(nodes=self.scene_nodes)], nodes=self.nodes, meshes=self.meshes,
            skins=self.skins, materials=self.materials, cameras=self.cameras,
            animations=animations, accessors=self.accessors, bufferViews=self.buffer_views,
            buffers=[g.Buffer(byteLength=len(self.blob))])
        gltf.set_binary_blob(bytes(self.blob))
        path = Path(path)
        with atomic_path(path) as tmp:
            gltf.save_binary(str(tmp))
        return path


def write_glb(anim, path: str | Path, fps: float, *, pose_correctives: bool = True,
              name: str = "person") -> Path:
    """One person's animated, skinned body as a .glb, written atomically."""
    builder = GlbBuilder()
    builder.add_person(anim, fps, name, pose_correctives)
    return builder.save(path, f"{name}_motion")


def write_scene_glb(people: dict[str, object], path: str | Path, fps: float, *,
                    pose_correctives: bool = True, floor: bool = False,
                    camera: dict | None = None) -> Path:
    """Every person (name -> export.Animation, all in one coordinate system) in one .glb,
    one animation driving them all; `floor`: a floor at y = 0 under everyone (and the camera);
    `camera`: the add_camera arguments (rotations, centres, times, focal, image_size)."""
    builder = GlbBuilder()
    for name, anim in people.items():
        builder.add_person(anim, fps, name, pose_correctives, joint_prefix=f"{name}_")
    if floor:
        points = [anim.root_pos[:, [0, 2]] for anim in people.values()]
        if camera is not None:
            points.append(np.asarray(camera["centres"]).reshape(-1, 3)[:, [0, 2]])
        builder.add_floor(np.concatenate(points) if points else np.zeros((1, 2)))
    if camera is not None:
        builder.add_camera(**camera)
    return builder.save(path, "motion")
