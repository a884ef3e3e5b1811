"""Exports: the GLB and BVH re-read independently and compared with the body layer."""
import csv
import json
import struct

import numpy as np
import pytest
import torch

from maed_cli.results import ResultSet, TrackResult

FPS = 25.0
C = np.diag([1.0, -1.0, -1.0])


def make_track(body, n=5, track_id=3, frame_start=10, seed=0):
    rng = np.random.default_rng(seed)
    pose = rng.normal(scale=0.3, size=(n, 72))
    pose[:, :3] = [np.pi, 0.0, 0.0] + rng.normal(scale=0.2, size=(n, 3))
    betas = rng.normal(scale=0.8, size=(1, 10)) + rng.normal(scale=0.05, size=(n, 10))
    cam_t = np.array([0.3, 0.2, 6.0]) + rng.normal(scale=0.1, size=(n, 3))
    out = body(pose=torch.tensor(pose, dtype=torch.float32),
               betas=torch.tensor(betas, dtype=torch.float32))
    from maed_cli.body.geometry import axis_angle_to_rotmat
    rotmat = axis_angle_to_rotmat(torch.tensor(pose).reshape(n, 24, 3)).numpy()
    return TrackResult(track_id=track_id, frame_ids=np.arange(frame_start, frame_start + n),
                       pose=pose.astype(np.float32), betas=betas.astype(np.float32),
                       rotmat=rotmat.astype(np.float32), verts=out.vertices.numpy(),
                       joints3d=out.joints49.numpy(), cam_t=cam_t.astype(np.float32),
                       joints2d_img_coord=rng.uniform(0, 100, (n, 49, 2)).astype(np.float32))


def mean_shape_body(body, track):
    """The body layer with the track's mean shape: vertices and SMPL joints, y-up frame."""
    n = len(track)
    betas = torch.tensor(track.betas.astype(np.float64).mean(0), dtype=torch.float32)
    out = body(rotmat=torch.tensor(track.rotmat), betas=betas.expand(n, 10),
               transl=torch.tensor(track.cam_t))
    return out.vertices.double().numpy() @ C, out.smpl24.double().numpy() @ C


@pytest.fixture(scope="module")
def exported(synthetic_body, tmp_path_factory):
    from maed_cli.export import export_results
    track = make_track(synthetic_body)
    folder = tmp_path_factory.mktemp("export")
    results = ResultSet(tracks={track.track_id: track}, fps=FPS, width=320, height=240)
    files = export_results(results, folder, "glb,bvh,obj,ply,csv,json", body=synthetic_body)
    return track, folder, files


# --- an independent glTF reader ------------------------------------------------------------

def read_accessor(gltf, blob, index):
    acc = gltf.accessors[index]
    view = gltf.bufferViews[acc.bufferView]
    dtype = {5126: np.float32, 5125: np.uint32, 5123: np.uint16, 5121: np.uint8}[acc.componentType]
    width = {"SCALAR": 1, "VEC3": 3, "VEC4": 4, "MAT4": 16}[acc.type]
    start = view.byteOffset + (acc.byteOffset or 0)
    data = np.frombuffer(blob, dtype=dtype, count=acc.count * width, offset=start)
    return data.reshape(acc.count, width) if width > 1 else data


def quat_xyzw_to_matrix(q):
    x, y, z, w = q / np.linalg.norm(q)
    return np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
                     [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
                     [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)]])


def skinned_glb_vertices(path, k):
    """Vertices at keyframe k from the file alone: morphs, node TRS, inverse binds, weights."""
    import pygltflib
    gltf = pygltflib.GLTF2().load(str(path))
    blob = gltf.binary_blob()
    prim = gltf.meshes[0].primitives[0]
    rest = read_accessor(gltf, blob, prim.attributes.POSITION).astype(np.float64)
    anim = gltf.animations[0]
    trs = {i: {"translation": np.array(node.translation or [0, 0, 0], float),
               "rotation": np.array(node.rotation or [0, 0, 0, 1], float)}
           for i, node in enumerate(gltf.nodes)}
    morph_w = None
    times = None
    for ch in anim.channels:
        sampler = anim.samplers[ch.sampler]
        times = read_accessor(gltf, blob, sampler.input)
        out = read_accessor(gltf, blob, sampler.output).astype(np.float64)
        if ch.target.path == "weights":
            morph_w = out.reshape(len(times), -1)[k]
        else:
            trs[ch.target.node][ch.target.path] = out[k]
    if prim.targets:
        for w, target in zip(morph_w, prim.targets):
            index = target["POSITION"] if isinstance(target, dict) else target.POSITION
            rest = rest + w * read_accessor(gltf, blob, index)
    parent = {c: i for i, node in enumerate(gltf.nodes) for c in (node.children or [])}
    local = {}
    for i, t in trs.items():
        m = np.eye(4)
        m[:3, :3] = quat_xyzw_to_matrix(t["rotation"])
        m[:3, 3] = t["translation"]
        local[i] = m

    def world(i):
        return local[i] if i not in parent else world(parent[i]) @ local[i]
    skin = gltf.skins[0]
    ibm = read_accessor(gltf, blob, skin.inverseBindMatrices).reshape(-1, 4, 4).transpose(0, 2, 1)
    mats = np.stack([world(j) @ ibm[n] for n, j in enumerate(skin.joints)])
    out = np.zeros_like(rest)
    rest_h = np.concatenate([rest, np.ones((len(rest), 1))], axis=1)
    s = 0
    while getattr(prim.attributes, f"JOINTS_{s}", None) is not None:
        joints = read_accessor(gltf, blob, getattr(prim.attributes, f"JOINTS_{s}")).astype(int)
        weights = read_accessor(gltf, blob, getattr(prim.attributes, f"WEIGHTS_{s}"))
        for c in range(4):
            moved = np.einsum("vij,vj->vi", mats[joints[:, c]], rest_h)[:, :3]
            out += weights[:, c, None] * moved
        s += 1
    return out, gltf, times


def test_glb_reimports_and_matches_body_layer(synthetic_body, exported):
    track, folder, _ = exported
    path = folder / f"track_{track.track_id}.glb"
    verts_ref, _ = mean_shape_body(synthetic_body, track)
    for k in (0, 2, len(track) - 1):
        verts, gltf, times = skinned_glb_vertices(path, k)
        assert verts.shape == (6890, 3)
        assert len(gltf.skins[0].joints) == 24
        assert len(times) == len(track)
        np.testing.assert_allclose(times, track.frame_ids / FPS, atol=1e-6)
        assert np.abs(verts - verts_ref[k]).max() < 1e-3  # within 1 mm


def test_glb_loads_in_trimesh(exported):
    import trimesh
    track, folder, _ = exported
    scene = trimesh.load(folder / f"track_{track.track_id}.glb")
    meshes = list(scene.geometry.values()) if hasattr(scene, "geometry") else [scene]
    assert meshes[0].vertices.shape == (6890, 3)
    assert len(meshes[0].faces) == 13776


# --- an independent BVH reader -------------------------------------------------------------

def parse_bvh(text):
    lines = iter(text.splitlines())
    joints, stack, channels = [], [], []
    for line in lines:
        tok = line.split()
        if not tok:
            continue
        if tok[0] in ("ROOT", "JOINT"):
            joints.append({"name": tok[1], "parent": stack[-1] if stack else -1})
            pending = len(joints) - 1
        elif tok[0] == "End":
            pending = None
        elif tok[0] == "{":
            stack.append(pending) if pending is not None else stack.append(stack[-1])
            if pending is None:
                stack[-1] = ("end", stack[-2])
        elif tok[0] == "}":
            stack.pop()
        elif tok[0] == "OFFSET" and pending is not None:
            joints[pending]["offset"] = np.array(tok[1:4], float)
        elif tok[0] == "CHANNELS":
            joints[pending]["channels"] = tok[2:]
        elif tok[0] == "MOTION":
            break
    frames = int(next(lines).split()[1])
    frame_time = float(next(lines).split()[2])
    motion = np.array([[float(v) for v in next(lines).split()] for _ in range(frames)])
    return joints, motion, frame_time


def axis_rot(axis, deg):
    a = np.deg2rad(deg)
    c, s = np.cos(a), np.sin(a)
    return {"X": np.array([[1, 0, 0], [0, c, -s], [0, s, c]]),
            "Y": np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]]),
            "Z": np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])}[axis]


def bvh_positions(joints, row):
    pos, rot, col = {}, {}, 0
    for j, joint in enumerate(joints):
        r, t = np.eye(3), np.zeros(3)
        for ch in joint["channels"]:
            if ch.endswith("position"):
                t["XYZ".index(ch[0])] = row[col]
            else:
                r = r @ axis_rot(ch[0], row[col])
            col += 1
        p = joint["parent"]
        if p == -1:
            pos[j], rot[j] = joint["offset"] + t, r
        else:
            pos[j] = pos[p] + rot[p] @ joint["offset"]
            rot[j] = rot[p] @ r
    return np.stack([pos[j] for j in range(len(joints))])


def test_bvh_parses_and_matches_body_layer(synthetic_body, exported):
    from maed_cli.body.joints import SMPL_JOINT_NAMES
    track, folder, _ = exported
    text = (folder / f"track_{track.track_id}.bvh").read_text()
    joints, motion, frame_time = parse_bvh(text)
    assert [j["name"] for j in joints] != []
    assert sorted(j["name"] for j in joints) == sorted(SMPL_JOINT_NAMES)
    assert joints[0]["channels"][3:] == ["Zrotation", "Yrotation", "Xrotation"]
    assert motion.shape == (len(track), 6 + 3 * 23)
    assert frame_time == pytest.approx(1 / FPS)
    _, joints_ref = mean_shape_body(synthetic_body, track)
    order = [SMPL_JOINT_NAMES.index(j["name"]) for j in joints]
    for k in range(len(track)):
        assert np.abs(bvh_positions(joints, motion[k]) - joints_ref[k][order]).max() < 1e-3


def test_bvh_fills_gaps(synthetic_body, tmp_path):
    from maed_cli.body.joints import SMPL_JOINT_NAMES
    from maed_cli.export import track_animation, write_bvh
    track = make_track(synthetic_body, n=4)
    track.frame_ids = np.array([0, 1, 4, 5])
    write_bvh(track_animation(track, synthetic_body), tmp_path / "t.bvh", FPS)
    joints, motion, _ = parse_bvh((tmp_path / "t.bvh").read_text())
    assert motion.shape[0] == 6
    _, joints_ref = mean_shape_body(synthetic_body, track)
    # frame 4 of the file is source frame 4 = row 2 of the track
    order = [SMPL_JOINT_NAMES.index(j["name"]) for j in joints]
    assert np.abs(bvh_positions(joints, motion[4]) - joints_ref[2][order]).max() < 1e-3
    # the filled frames lie between their neighbours
    root = motion[:, :3]
    assert np.all(np.minimum(root[1], root[4]) - 1e-9 <= root[2]) and \
        np.all(root[2] <= np.maximum(root[1], root[4]) + 1e-9)


def test_meshes_and_joint_tables(exported):
    import trimesh
    track, folder, files = exported
    for fmt in ("obj", "ply"):
        paths = sorted((folder / fmt / f"track_{track.track_id}").glob(f"*.{fmt}"))
        assert [p.name for p in paths] == [f"frame_{f:06d}.{fmt}" for f in track.frame_ids]
        mesh = trimesh.load(paths[1], process=False)
        expected = (track.verts[1] + track.cam_t[1]) @ C
        assert np.abs(mesh.vertices - expected).max() < 1e-4
    rows = list(csv.DictReader(open(folder / "joints.csv")))
    assert len(rows) == len(track) * 49
    r = rows[49 * 2 + 5]
    assert int(r["frame"]) == track.frame_ids[2] and int(r["joint"]) == 5
    np.testing.assert_allclose([float(r[a]) for a in "xyz"],
                               track.joints3d[2, 5] + track.cam_t[2], atol=1e-4)
    doc = json.loads((folder / "joints.json").read_text())
    entry = doc["tracks"][str(track.track_id)]
    assert entry["frame_ids"] == track.frame_ids.tolist()
    np.testing.assert_allclose(entry["joints3d"][3], track.joints3d[3] + track.cam_t[3],
                               atol=1e-4)
    assert all(p.exists() for p in files)
    assert not list(folder.rglob("*.part*"))  # atomic writes leave nothing behind


def test_unknown_format_is_a_clear_error(tmp_path):
    from maed_cli.errors import InputError
    from maed_cli.export import export_results
    with pytest.raises(InputError, match="unknown export format 'fbx'"):
        export_results(ResultSet(tracks={}), tmp_path, "glb,fbx")
