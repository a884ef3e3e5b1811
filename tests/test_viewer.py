"""`maed view`: the data files (no browser), the server's range requests, the CLI, and the page
itself in headless Chromium over the DevTools protocol (skipped when Chromium is missing)."""
import json
import threading
import urllib.request
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

from cdp import Browser, find_chromium, save_png
from viewer_scene import FOCAL, SIZE, camera_vertices, write_results

from maed_cli.body.angles import ANGLE_NAMES, angle_table
from maed_cli.body.smpl_files import read_smpl_file
from maed_cli.cli import main

BACKGROUND = np.array([14, 15, 18])  # the page's scene background, 0x0e0f12
FRAMES = 12


@pytest.fixture(scope="module")
def scenes(tmp_path_factory, synthetic_body, synthetic_assets):
    from maed_cli.video.io import VideoWriter
    root = tmp_path_factory.mktemp("viewer")
    video = root / "input.mp4"
    with VideoWriter(video, 24.0) as writer:
        for t in range(FRAMES):
            writer.write(np.full((SIZE[1], SIZE[0], 3), 20 * t, np.uint8))
    camera = write_results(root / "camera", synthetic_body, frames=FRAMES, video=video)
    world = write_results(root / "world", synthetic_body, frames=FRAMES, world=True)
    faces = read_smpl_file(synthetic_assets["npz"])["f"]
    return {"root": root, "camera": camera, "world": world, "faces": faces, "video": video,
            "smpl": synthetic_assets["npz"]}


def viewer_data(scenes, name):
    from maed_cli.viewer.data import ViewerData
    return ViewerData(scenes["root"] / name, faces=scenes["faces"])


def decode_chunk(blob: bytes, vertices: int):
    first, rows = np.frombuffer(blob[:8], np.int32)
    centre = np.frombuffer(blob, np.float32, rows * 3, 8).reshape(rows, 3)
    offsets = np.frombuffer(blob, np.float16, rows * vertices * 3, 8 + rows * 12)
    return first, centre[:, None] + offsets.reshape(rows, vertices, 3).astype(np.float32)


def test_chunks_hold_each_frame_to_a_millimetre_in_both_frames(scenes):
    for name in ("camera", "world"):
        data = viewer_data(scenes, name)
        assert data.frame == name
        info = scenes[name]
        for tid in (1, 2):
            first, verts = decode_chunk(data.data_file(f"tracks/{tid}/chunk_0.bin"), 6890)
            assert first == 0 and len(verts) == FRAMES
            for frame in (0, 7):
                cam = camera_vertices(info["truth"], tid, frame)
                if name == "camera":
                    expected = cam * [1, -1, -1]
                else:
                    expected = cam @ info["camera_R"][frame].T + info["camera_t"][frame]
                np.testing.assert_allclose(verts[frame], expected, atol=2e-3)
        meta = json.loads(data.meta_json())
        assert meta["frame"] == name and meta["first_frame"] == 0
        assert meta["last_frame"] == FRAMES - 1 and [t["id"] for t in meta["tracks"]] == [1, 2]


def test_angles_file_is_body_angles(scenes):
    data = viewer_data(scenes, "camera")
    table = np.frombuffer(data.data_file("tracks/1/angles.bin"), np.float32)
    expected = angle_table(data.tracks[1].track.rotmat)
    np.testing.assert_array_equal(table.reshape(expected.shape), expected)
    knee = expected[:, ANGLE_NAMES.index("left_knee_flexion")]
    frames = np.arange(FRAMES)
    np.testing.assert_allclose(knee, np.degrees(0.8 * (1 + np.sin(2 * np.pi * frames / 24))),
                               atol=0.01)


def serve(data):
    from maed_cli.viewer.server import make_server
    server = make_server(data, 0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/"


def test_video_is_served_with_range_requests(scenes):
    data = viewer_data(scenes, "camera")
    server, url = serve(data)
    try:
        whole = scenes["video"].read_bytes()
        meta = json.loads(urllib.request.urlopen(url + "data/meta.json").read())
        assert meta["video"] == "data/video.mp4"
        request = urllib.request.Request(url + meta["video"], headers={"Range": "bytes=100-199"})
        with urllib.request.urlopen(request) as answer:
            assert answer.status == 206
            assert answer.headers["Content-Range"] == f"bytes 100-199/{len(whole)}"
            assert answer.read() == whole[100:200]
        request = urllib.request.Request(url + meta["video"], headers={"Range": "bytes=-10"})
        assert urllib.request.urlopen(request).read() == whole[-10:]
        with pytest.raises(urllib.error.HTTPError) as missing:
            urllib.request.urlopen(url + "data/tracks/9/chunk_0.bin")
        assert missing.value.code == 404
    finally:
        server.shutdown()
        server.server_close()


def test_cli_out_writes_a_static_folder(scenes, capsys, tmp_path):
    out = tmp_path / "page"
    code = main(["view", str(scenes["root"] / "world"), "--out", str(out), "--smpl",
                 str(scenes["smpl"])])
    assert code == 0, capsys.readouterr()
    for name in ("index.html", "app.js", "vendor/three/three.module.min.js",
                 "vendor/three/OrbitControls.js", "vendor/three/LICENSE", "data/meta.json",
                 "data/faces.bin", "data/camera.bin", "data/tracks/2/chunk_0.bin"):
        assert (out / name).is_file(), name
    again = main(["view", str(scenes["root"] / "world"), "--out", str(out), "--smpl",
                  str(scenes["smpl"])])
    assert again == 0  # an earlier page is replaced
    assert main(["view", str(scenes["root"] / "world"), "--port", "70000"]) == 2
    assert main(["view", str(scenes["root"] / "world"), "--out", str(scenes["root"]),
                 "--smpl", str(scenes["smpl"])]) == 2  # would replace the results
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    assert main(["view", str(scenes["root"] / "world"), "--out", str(tmp_path / "other"),
                 "--smpl", str(scenes["smpl"])]) == 2
    assert (tmp_path / "other" / "notes.txt").read_text() == "mine"


# --- in the browser ---------------------------------------------------------------------------

needs_chromium = pytest.mark.skipif(find_chromium() is None, reason="Chromium is not installed "
                                    "(Debian: apt-get install chromium); CI installs it")


@pytest.fixture(scope="module")
def browser():
    if find_chromium() is None:
        pytest.skip("Chromium is not installed (Debian: apt-get install chromium)")
    with Browser(width=1280, height=800) as b:
        yield b


def open_page(browser, url):
    browser.events.clear()
    browser.navigate(url)
    browser.wait_for("window.maedViewerReady !== undefined", timeout=60)
    browser.evaluate("window.maedViewerReady", timeout=60)
    return browser.evaluate("window.maedViewer.setOverlays(false)")


def shot(browser, info):
    c = info["canvas"]
    return browser.screenshot({"x": c["x"], "y": c["y"], "width": c["width"],
                               "height": c["height"]})


def projected(info, cam_verts):
    """Canvas pixels (V, 2) of camera-frame vertices seen from the page's camera view: the
    input camera's pinhole with the canvas height standing for the image height."""
    w, h = info["canvas"]["width"], info["canvas"]["height"]
    f = FOCAL * h / SIZE[1]
    return np.stack([w / 2 + f * cam_verts[:, 0] / cam_verts[:, 2],
                     h / 2 + f * cam_verts[:, 1] / cam_verts[:, 2]], axis=1)


def foreground(image):
    return np.abs(image.astype(int) - BACKGROUND).sum(axis=2) > 30


def covered(mask, uv):
    """Fraction of the points uv whose 3x3 neighbourhood has a foreground pixel."""
    import cv2
    grown = cv2.dilate(mask.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
    u, v = np.round(uv).astype(int).T
    inside = (u >= 0) & (v >= 0) & (u < mask.shape[1]) & (v < mask.shape[0])
    assert inside.mean() > 0.99
    return grown[v[inside], u[inside]].mean()


def point_mask(shape, uv, grow=1):
    import cv2
    mask = np.zeros(shape, np.uint8)
    u, v = np.round(uv).astype(int).T
    inside = (u >= 0) & (v >= 0) & (u < shape[1]) & (v < shape[0])
    mask[v[inside], u[inside]] = 1
    return cv2.dilate(mask, np.ones((grow, grow), np.uint8)) > 0


def box_mask(shape, uv, margin=6):
    mask = np.zeros(shape, bool)
    (u0, v0), (u1, v1) = np.floor(uv.min(0)).astype(int) - margin, np.ceil(uv.max(0)).astype(int) + margin
    mask[max(v0, 0):v1, max(u0, 0):u1] = True
    return mask


@pytest.fixture(scope="module")
def camera_page(scenes, browser):
    server, url = serve(viewer_data(scenes, "camera"))
    info = open_page(browser, url)
    yield info
    server.shutdown()
    server.server_close()


@needs_chromium
def test_page_shows_each_person_where_the_camera_saw_them(scenes, browser, camera_page):
    info = camera_page
    assert info["frameOfReference"] == "camera" and info["frame"] == 0
    image = shot(browser, info)
    save_png(scenes["root"] / "frame0.png", image)
    mask = foreground(image)
    boxes = np.zeros(mask.shape, bool)
    truth = scenes["camera"]["truth"]
    for tid in (1, 2):
        uv = projected(info, camera_vertices(truth, tid, 0))
        assert covered(mask, uv) > 0.97, f"person {tid} is not where it projects"
        boxes |= box_mask(mask.shape, uv)
    assert mask[~boxes].mean() < 0.002  # nothing drawn away from the people
    assert mask.sum() > 2000
    assert browser.errors() == []


@needs_chromium
def test_seeking_shows_that_frames_pose(scenes, browser, camera_page):
    truth = scenes["camera"]["truth"]
    first = foreground(shot(browser, browser.evaluate("window.maedViewer.seek(0)")))
    info = browser.evaluate("window.maedViewer.seek(6)")
    assert info["frame"] == 6 and {p["shownFrame"] for p in info["people"]} == {6}
    later = foreground(shot(browser, info))
    assert (first ^ later).sum() > 0.1 * first.sum()  # the pose changed
    for tid in (1, 2):  # ... into frame 6's pose, not frame 0's
        assert covered(later, projected(info, camera_vertices(truth, tid, 6))) > 0.97
    # where frame 6's person 1 projects, far from any of frame 0's vertices, was background
    # in frame 0 and is drawn now
    shape = first.shape
    region = (point_mask(shape, projected(info, camera_vertices(truth, 1, 6)))
              & ~point_mask(shape, projected(info, camera_vertices(truth, 1, 0)), 9) & ~first)
    assert region.sum() > 20 and later[region].mean() > 0.9
    again = foreground(shot(browser, browser.evaluate("window.maedViewer.seek(0)")))
    assert (again ^ first).mean() < 1e-4  # back to frame 0: the same picture
    assert browser.errors() == []


@needs_chromium
def test_hiding_a_person(scenes, browser, camera_page):
    truth = scenes["camera"]["truth"]
    info = browser.evaluate("window.maedViewer.seek(3)")
    uv1 = projected(info, camera_vertices(truth, 1, 3))
    uv2 = projected(info, camera_vertices(truth, 2, 3))
    before = foreground(shot(browser, info))
    only2 = box_mask(before.shape, uv2, 0) & ~box_mask(before.shape, uv1)
    assert before[only2].mean() > 0.15
    info = browser.evaluate("window.maedViewer.setVisible(2, false)")
    assert [p["meshVisible"] for p in info["people"]] == [True, False]
    hidden = foreground(shot(browser, info))
    assert hidden[only2].mean() == 0
    assert covered(hidden, uv1) > 0.97
    browser.evaluate("window.maedViewer.setVisible(2, true)")
    assert (foreground(shot(browser, info)) ^ before).mean() < 1e-4
    assert browser.errors() == []


@needs_chromium
def test_world_frame_page_from_the_static_folder(scenes, browser, tmp_path):
    from maed_cli.viewer.server import write_static
    out = write_static(viewer_data(scenes, "world"), tmp_path / "page")
    handler = partial(SimpleHTTPRequestHandler, directory=str(out))
    handler.log_message = lambda *a: None
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        info = open_page(browser, f"http://127.0.0.1:{server.server_address[1]}/")
        assert info["frameOfReference"] == "world"
        mask = foreground(shot(browser, info))
        truth = scenes["world"]["truth"]
        for tid in (1, 2):  # the world camera at frame 0 is the input camera
            assert covered(mask, projected(info, camera_vertices(truth, tid, 0))) > 0.97
        overlays = foreground(shot(browser, browser.evaluate("window.maedViewer.setOverlays(true)")))
        assert overlays.sum() > mask.sum() + 500  # floor grid, frustum, trajectories
        assert browser.errors() == []
    finally:
        server.shutdown()
        server.server_close()


@needs_chromium
def test_playback_draws_the_reduced_mesh_and_a_still_frame_the_full_one(scenes, browser,
                                                                       camera_page):
    """Software WebGL (what these tests run on) plays with about half the triangles over the
    same vertices; pausing or seeking a paused page draws the full mesh again."""
    truth = scenes["camera"]["truth"]
    still = browser.evaluate("window.maedViewer.seek(6)")
    full = still["people"][0]["triangles"]
    assert full == 13776 and {p["triangles"] for p in still["people"]} == {full}
    still_image = foreground(shot(browser, still))
    browser.evaluate("window.maedViewer.setSpeed(0); window.maedViewer.play()")
    try:
        played = browser.evaluate("window.maedViewer.seek(6)")  # playing, standing still
        assert played["playing"] and {p["shownFrame"] for p in played["people"]} == {6}
        reduced = {p["triangles"] for p in played["people"]}
        assert len(reduced) == 1 and 0.4 * full < reduced.pop() < 0.6 * full
        played_image = foreground(shot(browser, played))
        for tid in (1, 2):  # frame 6's pose, not another
            assert covered(played_image, projected(played, camera_vertices(truth, tid, 6))) > 0.97
        assert (played_image ^ still_image).sum() < 0.02 * still_image.sum()
    finally:
        browser.evaluate("window.maedViewer.pause(); window.maedViewer.setSpeed(1)")
    paused = browser.evaluate("window.maedViewer.seek(6)")
    assert {p["triangles"] for p in paused["people"]} == {full}
    assert (foreground(shot(browser, paused)) ^ still_image).mean() < 1e-4
    assert browser.errors() == []


@needs_chromium
def test_vertex_normals_are_three_js_own(scenes, browser, camera_page):
    """The page's one-pass normals equal BufferGeometry.computeVertexNormals on a posed mesh."""
    diff = browser.evaluate("""(async () => {
        const THREE = await import('three');
        const g = window.maedViewer.geometry, faces = g.faces, n = Math.max(...faces) + 1;
        const pos = new Float32Array(3 * n);
        for (let i = 0; i < pos.length; i++) pos[i] = Math.sin(i * 12.9898) * 0.5;
        const geometry = new THREE.BufferGeometry();
        geometry.setAttribute('position', new THREE.BufferAttribute(pos, 3));
        geometry.setIndex(new THREE.BufferAttribute(faces, 1));
        geometry.computeVertexNormals();
        const mine = new Float32Array(3 * n);
        g.vertexNormals(pos, mine);
        let worst = 0;
        for (let i = 0; i < mine.length; i++) {
            worst = Math.max(worst, Math.abs(mine[i] - geometry.attributes.normal.array[i]));
        }
        return [worst, Math.hypot(mine[0], mine[1], mine[2])];
    })()""")
    assert diff[0] < 1e-4 and abs(diff[1] - 1) < 1e-5


@needs_chromium
def test_trajectory_is_simplified_within_its_tolerance(browser, camera_page):
    """A long jittery path keeps at most 4000 points, the ends, and stays close to the path."""
    rng = np.random.default_rng(0)
    t = np.arange(30000) / 30
    path = np.stack([np.cos(t / 20) * 5, 0.9 + 0 * t, np.sin(t / 20) * 5], 1)
    path += rng.normal(0, 0.002, path.shape)  # pelvis jitter below the 1 cm tolerance
    kept = np.asarray(browser.evaluate(
        f"Array.from(window.maedViewer.geometry.simplifyPath(new Float32Array("
        f"{json.dumps(path.astype(np.float32).ravel().tolist())})))")).reshape(-1, 3)
    assert 2 < len(kept) <= 4000
    np.testing.assert_allclose(kept[[0, -1]], path[[0, -1]], atol=1e-6)
    # every path point lies within the 1 cm tolerance of the kept line (not doubled: 662 points)
    a, b = kept[:-1], kept[1:]
    d = b - a
    worst = 0.0
    for s in range(0, len(path), 3000):
        p = path[s:s + 3000, None]
        u = np.clip(((p - a) * d).sum(-1) / np.maximum((d * d).sum(-1), 1e-12), 0, 1)
        worst = max(worst, np.linalg.norm(p - (a + u[..., None] * d), axis=-1).min(1).max())
    assert worst < 0.0101
    short = browser.evaluate("Array.from(window.maedViewer.geometry.simplifyPath("
                             "new Float32Array([0, 0, 0, 1, 0, 0, 2, 0, 0, 2, 1, 0])))")
    assert short == [0, 0, 0, 2, 0, 0, 2, 1, 0]  # the collinear middle point goes


@needs_chromium
def test_angle_plot_arrives_after_the_first_frame(scenes, browser, camera_page):
    """The angle tables load after the first drawn frame; the selected person's plot legend
    then shows frame k's knee angles."""
    data = viewer_data(scenes, "camera")
    table = angle_table(data.tracks[1].track.rotmat)
    browser.evaluate("window.maedViewer.seek(3)")
    legend = browser.evaluate("Array.from(document.getElementById('plotlegend').children)"
                              ".map((e) => e.textContent)")
    for name in ("left_knee_flexion", "right_knee_flexion"):
        value = table[3, ANGLE_NAMES.index(name)]
        assert f"{name.replace('_', ' ')} {value:.1f}°" in legend
    assert browser.errors() == []
