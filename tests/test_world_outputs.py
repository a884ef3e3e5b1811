"""World-frame outputs: `maed export --frame world` (scene.glb with everyone and a floor,
per-person glb/bvh, obj, joints) and `maed render --world`, on hand-made world results."""
import json

import numpy as np
import pytest
import torch

from maed_cli.cli import main
from maed_cli.results import ResultSet, TrackResult, save_summary, save_track
from maed_cli.world.frames import WorldFrame, save_world, world_joints, world_root, world_vertices

import synthetic_video
from test_export import quat_xyzw_to_matrix, read_accessor, skinned_glb_vertices

W, H, FPS, N = 96, 72, 10.0, 6
LEVEL = np.diag([1.0, -1.0, -1.0])  # a level camera's axes in the world (y up, z backwards)


def yaw(deg):
    a = np.deg2rad(deg)
    return np.array([[np.cos(a), 0.0, np.sin(a)], [0.0, 1.0, 0.0], [-np.sin(a), 0.0, np.cos(a)]])


def make_world(frames=N, pan_deg=12.0):
    """A camera 1.5 m above the floor, 4 m back, panning by `pan_deg` over the clip."""
    rotations = np.stack([yaw(pan_deg * f / max(frames - 1, 1)) for f in range(frames)])
    camera_R = LEVEL[None] @ np.swapaxes(rotations, 1, 2)  # world-from-camera-f
    return WorldFrame(frame_ids=np.arange(frames), camera_R=camera_R,
                      camera_t=np.tile([0.0, 1.5, 4.0], (frames, 1)), up=np.array([0, -1.0, 0]),
                      floor=np.array([0, -1.0, 0, 1.5]), focal=100.0, image_size=(W, H))


def make_world_track(body, world, track_id, frames, cam_t, seed):
    """A camera-frame track (constant shape) and its world arrays by the contract's formula."""
    rng = np.random.default_rng(seed)
    n = len(frames)
    pose = rng.normal(scale=0.2, size=(n, 72))
    pose[:, :3] = [np.pi, 0.0, 0.0]
    betas = np.tile(rng.normal(scale=0.5, size=(1, 10)), (n, 1))
    out = body(pose=torch.tensor(pose, dtype=torch.float32),
               betas=torch.tensor(betas, dtype=torch.float32))
    from maed_cli.body.geometry import axis_angle_to_rotmat
    rotmat = axis_angle_to_rotmat(torch.tensor(pose).reshape(n, 24, 3)).numpy()
    cam_t = np.asarray(cam_t, float) + np.linspace(0, 1, n)[:, None] * [0.4, 0.0, -0.3]
    joints = out.joints49.numpy()
    rot = world.camera_R[frames]
    pelvis = joints[:, 8].astype(np.float64)
    world_t = np.einsum("nij,nj->ni", rot, pelvis + cam_t) + world.camera_t[frames] - pelvis
    return TrackResult(
        track_id=track_id, frame_ids=np.asarray(frames), pose=pose.astype(np.float32),
        betas=betas.astype(np.float32), rotmat=rotmat.astype(np.float32),
        verts=out.vertices.numpy(), joints3d=joints, cam_t=cam_t.astype(np.float32),
        joints2d_img_coord=rng.uniform(0, 60, (n, 49, 2)).astype(np.float32),
        world_orient=(rot @ rotmat[:, 0]).astype(np.float32), world_t=world_t.astype(np.float32),
        contacts=rng.integers(0, 2, (n, 2)).astype(np.uint8), focal=world.focal)


@pytest.fixture(scope="module")
def world_results(synthetic_body, tmp_path_factory):
    """A results folder (no video) with two people, world arrays and world.npz."""
    folder = tmp_path_factory.mktemp("world_results")
    world = make_world()
    tracks = [make_world_track(synthetic_body, world, 1, np.arange(N), [-0.6, 0.3, 5.0], 0),
              make_world_track(synthetic_body, world, 2, np.arange(1, 5), [0.7, 0.35, 6.0], 1)]
    for track in tracks:
        save_track(folder, track)
    save_world(folder, world)
    save_summary(folder, {"input": {"path": str(folder / "missing.mp4"), "fps": FPS,
                                    "width": W, "height": H},
                          "settings": {"start": None, "end": None, "fps": None},
                          "world": {"frame": "world", "reason": None}})
    return folder, world, {t.track_id: t for t in tracks}


def test_world_vertices_follow_the_camera_formula(world_results):
    # the fabricated world arrays mean what the contract says: x_w = R (x_cam) + t
    _, world, tracks = world_results
    track = tracks[2]
    rows = np.arange(len(track))
    ids = track.frame_ids
    expected = np.einsum("kij,kpj->kpi", world.camera_R[ids],
                         track.verts + track.cam_t[:, None]) + world.camera_t[ids][:, None]
    np.testing.assert_allclose(world_vertices(track, rows, world), expected, atol=1e-4)


def export_world(synthetic_body, world_results, folder, formats, world=True,
                 pose_correctives=False):
    from maed_cli.export import export_results
    _, frame, tracks = world_results
    results = ResultSet(tracks=dict(tracks), fps=FPS, width=W, height=H)
    return export_results(results, folder, formats, body=synthetic_body,
                          pose_correctives=pose_correctives, world=frame if world else None)


def scene_people(gltf):
    """{mesh node name: (mesh node index, skin)} of a scene file."""
    return {node.name: (i, gltf.skins[node.skin]) for i, node in enumerate(gltf.nodes)
            if node.skin is not None}


def reskinned(gltf, blob, mesh_node, k):
    """Vertices of one skinned mesh of a multi-person file at its keyframe k, from the file."""
    node = gltf.nodes[mesh_node]
    skin = gltf.skins[node.skin]
    prim = gltf.meshes[node.mesh].primitives[0]
    rest = read_accessor(gltf, blob, prim.attributes.POSITION).astype(np.float64)
    trs = {i: {"translation": np.array(n.translation or [0, 0, 0], float),
               "rotation": np.array(n.rotation or [0, 0, 0, 1], float)}
           for i, n in enumerate(gltf.nodes)}
    joints = set(skin.joints)
    anim = gltf.animations[0]
    for ch in anim.channels:
        sampler = anim.samplers[ch.sampler]
        out = read_accessor(gltf, blob, sampler.output).astype(np.float64)
        if ch.target.node in joints:
            trs[ch.target.node][ch.target.path] = out[k]
        elif ch.target.node == mesh_node and ch.target.path == "weights":
            weights = out.reshape(len(read_accessor(gltf, blob, sampler.input)), -1)[k]
            for w, target in zip(weights, prim.targets):
                index = target["POSITION"] if isinstance(target, dict) else target.POSITION
                rest = rest + w * read_accessor(gltf, blob, index)
    parent = {c: i for i, n in enumerate(gltf.nodes) for c in (n.children or [])}

    def world(i):
        m = np.eye(4)
        m[:3, :3] = quat_xyzw_to_matrix(trs[i]["rotation"])
        m[:3, 3] = trs[i]["translation"]
        return m if i not in parent else world(parent[i]) @ m
    ibm = read_accessor(gltf, blob, skin.inverseBindMatrices).reshape(-1, 4, 4).transpose(0, 2, 1)
    mats = np.stack([world(j) @ ibm[n] for n, j in enumerate(skin.joints)])
    rest_h = np.concatenate([rest, np.ones((len(rest), 1))], axis=1)
    out = np.zeros_like(rest)
    s = 0
    while getattr(prim.attributes, f"JOINTS_{s}", None) is not None:
        idx = read_accessor(gltf, blob, getattr(prim.attributes, f"JOINTS_{s}")).astype(int)
        wts = read_accessor(gltf, blob, getattr(prim.attributes, f"WEIGHTS_{s}"))
        for c in range(4):
            out += wts[:, c, None] * np.einsum("vij,vj->vi", mats[idx[:, c]], rest_h)[:, :3]
        s += 1
    return out


def test_world_scene_glb_has_everyone_a_floor_and_the_camera(synthetic_body, world_results,
                                                             tmp_path):
    import pygltflib
    import trimesh
    _, world, tracks = world_results
    # with the pose correctives the skinned file is the body layer exactly
    files = export_world(synthetic_body, world_results, tmp_path, "glb", pose_correctives=True)
    assert {p.name for p in files} == {"track_1.glb", "track_2.glb", "scene.glb"}
    gltf = pygltflib.GLTF2().load(str(tmp_path / "scene.glb"))
    blob = gltf.binary_blob()
    people = scene_people(gltf)
    assert set(people) == {"track_1", "track_2"} and len(gltf.animations) == 1
    for name, (mesh_node, _) in people.items():
        track = tracks[int(name.split("_")[1])]
        for k in (0, len(track) - 1):
            # the people's world positions in the one scene are the world arrays'
            expected = world_vertices(track, k, world)
            assert np.abs(reskinned(gltf, blob, mesh_node, k) - expected).max() < 1e-3
    floor = next(n for n in gltf.nodes if n.name == "floor")
    floor_xyz = read_accessor(gltf, blob, gltf.meshes[floor.mesh].primitives[0].attributes.POSITION)
    assert np.all(floor_xyz[:, 1] == 0.0)
    roots = np.concatenate([world_root(t) for t in tracks.values()])
    assert (floor_xyz[:, [0, 2]].min(0) < roots[:, [0, 2]].min(0) - 1).all()
    assert (floor_xyz[:, [0, 2]].max(0) > roots[:, [0, 2]].max(0) + 1).all()
    camera = next(n for n in gltf.nodes if n.camera is not None)
    np.testing.assert_allclose(camera.translation, world.camera_t[0], atol=1e-6)
    # a glTF camera looks down its -z: the first camera's forward in the world
    forward = quat_xyzw_to_matrix(np.array(camera.rotation)) @ [0, 0, -1.0]
    np.testing.assert_allclose(forward, world.camera_R[0] @ [0, 0, 1.0], atol=1e-6)
    # trimesh (another reader) sees both people and the floor in one scene
    scene = trimesh.load(tmp_path / "scene.glb")
    names = set(scene.geometry)
    assert "floor" in names and sum(g.vertices.shape == (6890, 3)
                                    for g in scene.geometry.values()) == 2
    # and each person's own file is in the same world
    for tid, track in tracks.items():
        verts, _, _ = skinned_glb_vertices(tmp_path / f"track_{tid}.glb", 1)
        assert np.abs(verts - world_vertices(track, 1, world)).max() < 1e-3


def test_camera_frame_scene_has_no_floor_and_a_camera_at_the_origin(synthetic_body,
                                                                    world_results, tmp_path):
    import pygltflib
    export_world(synthetic_body, world_results, tmp_path, "glb", world=False)
    gltf = pygltflib.GLTF2().load(str(tmp_path / "scene.glb"))
    assert not any(n.name == "floor" for n in gltf.nodes)
    camera = next(n for n in gltf.nodes if n.camera is not None)
    np.testing.assert_allclose(camera.rotation, [0, 0, 0, 1], atol=1e-7)
    assert set(scene_people(gltf)) == {"track_1", "track_2"}


def read_bvh_root(path):
    lines = path.read_text().splitlines()
    start = lines.index("MOTION") + 3
    return np.array([[float(v) for v in line.split()[:3]] for line in lines[start:]])


def test_world_bvh_obj_and_joint_tables(synthetic_body, world_results, tmp_path):
    import trimesh
    _, world, tracks = world_results
    export_world(synthetic_body, world_results, tmp_path, "bvh,obj,csv,json")
    for tid, track in tracks.items():
        np.testing.assert_allclose(read_bvh_root(tmp_path / f"track_{tid}.bvh"),
                                   world_root(track), atol=1e-4)
    track = tracks[2]
    mesh = trimesh.load(tmp_path / "obj" / "track_2" / f"frame_{track.frame_ids[2]:06d}.obj",
                        process=False)
    np.testing.assert_allclose(mesh.vertices, world_vertices(track, 2, world), atol=1e-5)
    doc = json.loads((tmp_path / "joints.json").read_text())
    assert "y up" in doc["axes"]
    entry = doc["tracks"]["2"]
    assert entry["frame_of_reference"] == "world"
    np.testing.assert_allclose(entry["joints3d"], world_joints(track, slice(None), world),
                               atol=1e-4)
    assert entry["contacts"] == track.contacts.astype(int).tolist()
    import csv
    rows = [r for r in csv.DictReader(open(tmp_path / "joints.csv")) if r["track_id"] == "1"]
    assert {r["frame_of_reference"] for r in rows} == {"world"}
    first = world_joints(tracks[1], 0, world)
    np.testing.assert_allclose([float(rows[8][k]) for k in "xyz"], first[8], atol=1e-4)


def test_a_track_without_world_arrays_is_left_out_with_a_warning(synthetic_body, world_results,
                                                                 tmp_path):
    from maed_cli.export import export_results
    _, world, tracks = world_results
    bare = tracks[2].with_arrays(world_orient=None, world_t=None, contacts=None)
    results = ResultSet(tracks={1: tracks[1], 2: bare}, fps=FPS, width=W, height=H)
    with pytest.warns(UserWarning, match="tracks 2 have no world placement"):
        files = export_results(results, tmp_path, "bvh", body=synthetic_body, world=world)
    assert [p.name for p in files] == ["track_1.bvh"]


def run(capsys, *args):
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def flat(text):
    return " ".join(text.split())


@pytest.fixture
def installed_regressor(synthetic_assets, _isolated_asset_home):
    import shutil
    shutil.copy(synthetic_assets["extra"], _isolated_asset_home / "J_regressor_extra.npy")


def test_export_cli_frames(world_results, synthetic_assets, installed_regressor, tmp_path,
                           capsys):
    folder, _, _ = world_results
    smpl = synthetic_assets["npz"]
    code, text = run(capsys, "export", folder, "--format", "bvh", "-o", tmp_path / "w",
                     "--smpl", smpl)
    assert code == 0 and "world frame" in text, text
    world_root_0 = read_bvh_root(tmp_path / "w" / "track_1.bvh")[0]
    code, text = run(capsys, "export", folder, "--format", "bvh", "-o", tmp_path / "c",
                     "--smpl", smpl, "--frame", "camera")
    assert code == 0 and "camera frame" in text, text
    assert np.abs(read_bvh_root(tmp_path / "c" / "track_1.bvh")[0] - world_root_0).max() > 0.1
    code, text = run(capsys, "export", folder, "--format", "bvh", "--frame", "up")
    assert code == 2 and "--frame 'up'" in text and len(text.strip().splitlines()) == 1


def test_export_cli_world_without_a_world_is_one_line(world_results, tmp_path, capsys):
    folder, _, _ = world_results
    plain = tmp_path / "plain"
    (plain / "tracks").mkdir(parents=True)
    for p in (folder / "tracks").iterdir():
        (plain / "tracks" / p.name).write_bytes(p.read_bytes())
    (plain / "summary.json").write_text((folder / "summary.json").read_text())
    code, text = run(capsys, "export", plain, "--format", "csv", "--frame", "world")
    assert code == 2 and "no world frame" in text and "--frame camera" in text, text
    code, text = run(capsys, "export", plain, "--format", "csv")
    assert code == 0 and "camera frame" in text, text


# --- maed render --world -------------------------------------------------------------------

def test_world_view_frames_everyone_and_draws_people_and_the_camera(synthetic_body,
                                                                    world_results):
    from maed_cli.render import MeshRenderer
    from maed_cli.render_world import BACKGROUND, FLOOR_COLOUR, WorldView
    _, world, tracks = world_results
    results = ResultSet(tracks=dict(tracks), fps=FPS, width=W, height=H)
    renderer = MeshRenderer(2 * W, 2 * H, synthetic_body.faces)  # an ortho overlay's renderer
    view = WorldView(results, world, renderer)
    try:
        # the fixed view frames every trajectory, each person's head and the video's camera
        for track in tracks.values():
            for height in (0.0, 1.6):
                uv, front = view.project(world_root(track) * [1, 0, 1] + [0, height, 0])
                assert front.all() and (uv >= 0).all() and (uv < [2 * W, 2 * H]).all()
        panel = view.render(3)
        assert panel.shape == (2 * H, 2 * W, 3)
        # each person is drawn where their world pelvis projects (a body colour, not the
        # floor's or the background's)
        for track in tracks.values():
            uv, _ = view.project(world_root(track, [track.index_of(3)]))
            u, v = np.round(uv[0]).astype(int)
            pixel = panel[v, u].astype(int)
            assert np.abs(pixel - FLOOR_COLOUR).sum() > 30 and np.abs(pixel - BACKGROUND).sum() > 30
        # the frustum's apex is the video camera's centre: dark lines meet there
        uv, _ = view.project(world.camera_t[3][None])
        u, v = np.round(uv[0]).astype(int)
        assert panel[v - 1:v + 2, u - 1:u + 2].min() < 110
        # the walked part of a trajectory grows with the frame
        assert not np.array_equal(view.render(0), view.render(5))
    finally:
        renderer.close()


def write_grey_video(path, frames=N):
    return synthetic_video.write_grey_video(path, (W, H), frames, FPS)


def test_render_cli_world_panel(world_results, synthetic_assets, tmp_path, capsys):
    import imageio_ffmpeg
    folder, _, _ = world_results
    video = tmp_path / "input.mp4"
    write_grey_video(video)
    out = tmp_path / "world.mp4"
    code, text = run(capsys, "render", folder, "--video", video, "--world", "-o", out,
                     "--camera", "perspective",
                     "--smpl", synthetic_assets["npz"])
    assert code == 0, text
    reader = imageio_ffmpeg.read_frames(str(out))
    meta = next(reader)
    frames = [np.frombuffer(b, np.uint8).reshape(H, 2 * W, 3) for b in reader]
    assert meta["size"] == (2 * W, H) and len(frames) == N
    # the world panel is its own picture, beside the overlay
    assert np.abs(frames[2][:, W:].astype(int) - frames[2][:, :W]).mean() > 10


def test_render_world_without_a_world_is_one_line(world_results, tmp_path, capsys):
    code, text = run(capsys, "render", tmp_path, "--world")
    assert code == 2 and "no world frame" in text and len(text.strip().splitlines()) == 1


# --- end to end: `maed demo` writes the world, `maed export` uses it -------------------------

def _stub_network(scene, crop_scale):
    """run_network's stand-in: the scene's MAED-like outputs (rotations, shape, and the crop
    camera that gives the scene's cam_t for the demo's own crop regions)."""
    from maed_cli.video.crop import crop_regions

    def run_network(source, tracklets, model, options, device, progress, clock=None,
                    stats=None, finished=None, on_track=None):
        out = dict(finished or {})
        for tid, tracklet in tracklets.items():
            if tid in out:
                continue
            truth = next(t for t in scene.tracks if t.track_id == tid)
            rows = [truth.index_of(f) for f in tracklet.frames]
            regions = crop_regions(tracklet.boxes, crop_scale).astype(np.float64)
            w, h = scene.image_size
            x, y, z = np.asarray(truth.cam_t[rows], np.float64).T
            s = 2 * scene.focal / (z * regions[:, 2])
            cam = np.stack([s, x - (regions[:, 0] - w / 2) * z / scene.focal,
                            y - (regions[:, 1] - h / 2) * z / scene.focal], 1)
            out[tid] = {"rotmat": torch.as_tensor(truth.rotmat[rows]),
                        "betas": torch.as_tensor(truth.betas[rows]),
                        "cam": torch.as_tensor(cam, dtype=torch.float32)}
            if on_track is not None:
                on_track(tid, out[tid])
        if stats is not None:
            stats.update(dtype="float32", fp32_reruns=0)
        return out
    return run_network


@pytest.fixture(scope="module")
def world_scene_video(synthetic_body, tmp_path_factory):
    """A static camera filming two walkers over a textured background: the video, the
    walkers' boxes and the scene (its MAED-like tracks stand in for the network)."""
    import imageio_ffmpeg
    from maed_cli.model import MAED, save_checkpoint
    from world_render import noise_texture
    from world_scene import make_scene
    root = tmp_path_factory.mktemp("world_demo")
    size, frames = (320, 180), 30
    scene = make_scene(synthetic_body, camera="static", people=2, frames=frames, fps=30.0,
                       image_size=size, seed=3)
    background = noise_texture(5, 512)[:size[1], :size[0]]
    video = root / "walkers.mp4"
    gen = imageio_ffmpeg.write_frames(str(video), size, fps=30.0, macro_block_size=1,
                                      ffmpeg_log_level="error")
    gen.send(None)
    for _ in range(frames):
        gen.send(np.ascontiguousarray(background))
    gen.close()
    boxes = []
    for track in scene.tracks:
        for frame, (cx, cy, bw, bh) in zip(track.frame_ids, track.bboxes):
            boxes.append({"frame": int(frame), "x1": float(cx - bw / 2), "y1": float(cy - bh / 2),
                          "x2": float(cx + bw / 2), "y2": float(cy + bh / 2),
                          "track_id": int(track.track_id)})
    (root / "boxes.json").write_text(json.dumps(boxes))
    torch.manual_seed(0)
    tiny = dict(num_blocks=1, num_heads=2, hidden_dim=64, embed_dim=96, backbone_layers=(1, 1, 1))
    ckpt = save_checkpoint(root / "tiny.pt", MAED(**tiny))
    return {"root": root, "video": video, "boxes": root / "boxes.json", "scene": scene,
            "ckpt": ckpt}


def test_demo_writes_the_world_and_export_uses_it(world_scene_video, synthetic_assets,
                                                  installed_regressor, monkeypatch, capsys):
    import pygltflib
    from maed_cli import pipeline
    from maed_cli.results import load_results
    from maed_cli.world.frames import load_world
    setup = world_scene_video
    scene = setup["scene"]
    monkeypatch.setattr(pipeline, "run_network", _stub_network(scene, 1.35))
    out = setup["root"] / "out"
    code, text = run(capsys, "demo", setup["video"], "--boxes", setup["boxes"], "--checkpoint",
                     setup["ckpt"], "--smpl", synthetic_assets["npz"], "--output", out,
                     "--min-track", 5, "--quiet", "--export", "bvh")
    assert code == 0, text
    assert "warning" not in text, text
    tracks, summary = load_results(out)
    block = summary["world"]
    assert block["frame"] == "world" and block["reason"] is None, block
    assert block["camera"]["mode"] == "static" and block["camera"]["requested"] == "auto"
    assert summary["settings"]["world"] is True and summary["settings"]["camera"] == "auto"
    world = load_world(out)
    assert world is not None and list(world.frame_ids) == list(scene.frame_ids)
    assert world.image_size == scene.image_size and world.focal == pytest.approx(scene.focal)
    assert [t.track_id for t in tracks] == [t.track_id for t in scene.tracks]
    for track in tracks:
        n = len(track)
        assert track.world_orient.shape == (n, 3, 3) and track.world_t.shape == (n, 3)
        assert track.contacts.shape == (n, 2) and track.contacts.dtype == np.uint8
        # the wiring is right (focal, frame ids, image size reach the world layer): the
        # people walk on the floor the world found
        toes_heels = slice(19, 25)  # OP LBigToe .. OP RHeel
        lowest = world_joints(track, slice(None), world)[:, toes_heels, 1].min(axis=1)
        truth = scene.person(track.track_id).world_joints[track.frame_ids, toes_heels, 1]
        assert abs(np.median(lowest) - np.median(truth.min(axis=1))) < 0.03
    # the same world as the world layer gives on the scene's own tracks: the demo hands it
    # the right tracks, focal, image size, fps and (static) camera
    from maed_cli.world import build_world
    direct = build_world(scene.tracks, scene.camera_motion(), scene.focal, scene.image_size,
                         fps=scene.fps)
    for track, expected in zip(tracks, direct.tracks):
        np.testing.assert_allclose(world_root(track), world_root(expected), atol=0.01)
    # so does the demo's own --export, and maed export takes the world frame by default
    np.testing.assert_allclose(read_bvh_root(out / "export" / "track_2.bvh"),
                               world_root(tracks[1]), atol=1e-4)
    code, text = run(capsys, "export", out, "--format", "glb,bvh", "--no-pose-correctives",
                     "--smpl", synthetic_assets["npz"])
    assert code == 0 and "world frame" in flat(text), text
    gltf = pygltflib.GLTF2().load(str(out / "export" / "scene.glb"))
    assert {n.name for n in gltf.nodes} >= {"floor", "track_1", "track_2", "camera"}
    np.testing.assert_allclose(read_bvh_root(out / "export" / "track_1.bvh")[0],
                               world_root(tracks[0], [0])[0], atol=1e-4)


@pytest.fixture
def demo_args(synthetic_assets):
    from test_demo import TINY
    from maed_cli.model import MAED, save_checkpoint

    def args(setup, out, *extra):
        torch.manual_seed(0)
        ckpt = save_checkpoint(setup["root"] / "tiny_fallback.pt", MAED(**TINY))
        return ("demo", setup["video"], "--boxes", setup["boxes"], "--checkpoint", ckpt,
                "--smpl", synthetic_assets["npz"], "--output", out, "--min-track", 5,
                "--quiet", *extra)
    return args


def test_a_run_too_short_for_a_world_says_why_in_one_line(world_scene_video, demo_args,
                                                          installed_regressor, monkeypatch,
                                                          capsys):
    from maed_cli import pipeline
    from maed_cli.results import load_results
    setup = world_scene_video
    monkeypatch.setattr(pipeline, "run_network", _stub_network(setup["scene"], 1.35))
    out = setup["root"] / "short"
    code, text = run(capsys, *demo_args(setup, out, "--end", 6))
    assert code == 0, text
    lines = [line for line in text.splitlines() if "warning" in line]
    assert len(lines) == 1 and "camera frame" in lines[0] and "too short" in lines[0], text
    tracks, summary = load_results(out)
    assert summary["world"]["frame"] == "camera" and "too short" in summary["world"]["reason"]
    assert not (out / "world.npz").exists() and all(t.world_t is None for t in tracks)
    code, text = run(capsys, "export", out, "--format", "csv")
    assert code == 0 and "camera frame" in text


def test_no_world_and_a_failing_world_layer_keep_the_camera_frame(world_scene_video, demo_args,
                                                                  installed_regressor,
                                                                  monkeypatch, capsys):
    from maed_cli import pipeline
    from maed_cli.results import load_results
    setup = world_scene_video
    monkeypatch.setattr(pipeline, "run_network", _stub_network(setup["scene"], 1.35))
    out = setup["root"] / "off"
    code, text = run(capsys, *demo_args(setup, out, "--no-world", "--end", 10))
    assert code == 0 and "warning" not in text, text
    _, summary = load_results(out)
    assert summary["world"] == {"frame": "camera", "reason": "turned off (--no-world)"}
    assert not (out / "world.npz").exists()

    import maed_cli.world as world_layer

    def broken(*args, **kwargs):
        raise RuntimeError("boom")
    monkeypatch.setattr(world_layer, "build_world", broken)
    code, text = run(capsys, *demo_args(setup, out, "--end", 10))
    assert code == 0, text
    lines = [line for line in text.splitlines() if "warning" in line]
    assert len(lines) == 1 and "RuntimeError: boom" in lines[0], text
    _, summary = load_results(out)
    assert summary["world"]["frame"] == "camera" and "boom" in summary["world"]["reason"]


def test_a_focal_the_lines_disagree_with_is_named_in_one_line(world_scene_video, demo_args,
                                                             installed_regressor, monkeypatch,
                                                             capsys):
    """When the background's vertical and horizontal lines say another focal length
    (summary floor.focal_from_lines_px), the demo says which and how to use it."""
    from maed_cli import pipeline
    from maed_cli.results import load_results
    import maed_cli.world as world_layer
    setup = world_scene_video
    monkeypatch.setattr(pipeline, "run_network", _stub_network(setup["scene"], 1.35))
    real = world_layer.build_world

    def with_hint(*args, **kwargs):
        build = real(*args, **kwargs)
        build.summary["floor"]["focal_from_lines_px"] = 512.5
        return build
    monkeypatch.setattr(world_layer, "build_world", with_hint)
    out = setup["root"] / "hint"
    code, text = run(capsys, *demo_args(setup, out))
    assert code == 0, text
    lines = [line for line in flat(text).split("warning") if "--focal" in line]
    assert len(lines) == 1 and "--focal 512" in lines[0] and "367 px" in lines[0], text
    _, summary = load_results(out)
    assert summary["world"]["floor"]["focal_from_lines_px"] == 512.5


def test_bad_camera_mode_is_refused_before_any_work(world_scene_video, tmp_path, capsys):
    # no checkpoint, no detector: the value is checked before those are looked for
    code, text = run(capsys, "demo", world_scene_video["video"], "--camera", "tripod",
                     "--output", tmp_path / "out")
    assert code == 2 and "--camera 'tripod'" in text, text
    assert not (tmp_path / "out").exists()


def test_batch_takes_the_world_options(world_scene_video, tmp_path, capsys):
    video = world_scene_video["video"]
    code, text = run(capsys, "batch", video, "--output", tmp_path / "b", "--camera", "tripod")
    assert code == 2 and "--camera 'tripod'" in text, text
    code, text = run(capsys, "batch", "--help")
    assert "--no-world" in text and "--camera" in text


def test_a_track_the_world_layer_skips_stays_in_the_camera_frame(world_scene_video, demo_args,
                                                                 installed_regressor,
                                                                 monkeypatch, capsys):
    import maed_cli.world as world_layer
    from maed_cli import pipeline
    from maed_cli.results import load_results
    setup = world_scene_video
    monkeypatch.setattr(pipeline, "run_network", _stub_network(setup["scene"], 1.35))
    real = world_layer.build_world

    def skipping_the_second(*args, **kwargs):
        build = real(*args, **kwargs)
        build.tracks[1] = build.tracks[1].with_arrays(world_orient=None, world_t=None,
                                                      contacts=None)
        return build
    monkeypatch.setattr(world_layer, "build_world", skipping_the_second)
    out = setup["root"] / "skip"
    code, text = run(capsys, *demo_args(setup, out))
    assert code == 0, text
    tracks, summary = load_results(out)
    assert summary["world"]["frame"] == "world"
    assert tracks[0].world_t is not None and tracks[1].world_t is None
    code, text = run(capsys, "export", out, "--format", "csv")
    assert code == 0 and "left out of the world-frame export" in flat(text), text
