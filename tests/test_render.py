"""Rendering: silhouettes against an independent rasterisation, depth order, headless setup."""
import os
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch

from maed_cli.body.geometry import (crop_cam_to_translation, default_focal,
                                    project_full_orthographic, project_perspective)

W, H = 160, 120


def posed_body(body, seed=0, betas_scale=0.5):
    """Vertices (6890, 3) of the synthetic body upright in the camera frame, arms bent."""
    pose = torch.zeros(1, 72, dtype=torch.float64)
    pose[0, 0] = np.pi  # SMPL's y-up template -> the camera's y-down frame
    pose[0, 3 * 16 + 2] = -0.9  # left shoulder down
    pose[0, 3 * 18 + 1] = 0.8  # left elbow
    pose[0, 3 * 17 + 2] = 0.4
    pose[0, 3 * 4] = 0.6  # left knee... bent hip/knee
    betas = torch.as_tensor(np.random.default_rng(seed).normal(size=(1, 10)) * betas_scale)
    out = body(pose=pose.float(), betas=betas.float())
    return out.vertices[0].double().numpy()


def silhouette(pixels: np.ndarray, faces: np.ndarray, k: int = 8) -> np.ndarray:
    """Ground truth: the projected triangles filled on a k-times finer grid, then sampled at
    each pixel's centre (what a rasteriser covers), independently of OpenGL."""
    mask = np.zeros((H * k, W * k), np.uint8)
    pts = np.round((pixels[faces] * k - 0.5) * 16).astype(np.int32)
    for tri in pts:  # one call per triangle: fillPoly with many contours would XOR overlaps
        cv2.fillConvexPoly(mask, tri, 1, lineType=cv2.LINE_8, shift=4)
    return mask[k // 2::k, k // 2::k].astype(bool)


def iou(a, b):
    return (a & b).sum() / max((a | b).sum(), 1)


@pytest.fixture(scope="module")
def faces(synthetic_body):
    return synthetic_body.faces


def test_ortho_silhouette_matches_projection(synthetic_body, faces):
    from maed_cli.render import MeshRenderer, PersonMesh
    verts = posed_body(synthetic_body)
    orig_cam = np.array([0.7, 0.7 * W / H, 0.1, -0.05])
    with MeshRenderer(W, H, faces) as r:
        _, depth = r.render_layer([PersonMesh(verts, (1.0, 0.2, 0.2), orig_cam=orig_cam)])
    pix = project_full_orthographic(torch.as_tensor(verts), torch.as_tensor(orig_cam), W, H)
    truth = silhouette(pix.numpy(), faces)
    assert truth.sum() > 500  # a real body, well inside the frame
    assert iou(depth > 0, truth) >= 0.9


def test_perspective_silhouette_matches_projection(synthetic_body, faces):
    from maed_cli.render import MeshRenderer, PersonMesh
    verts = posed_body(synthetic_body, seed=1)
    cam = torch.tensor([0.9, 0.05, 0.1], dtype=torch.float64)
    bbox = torch.tensor([70.0, 65.0, 100.0, 100.0], dtype=torch.float64)
    cam_t = crop_cam_to_translation(cam, bbox, W, H).numpy()
    with MeshRenderer(W, H, faces, camera="perspective") as r:
        _, depth = r.render_layer([PersonMesh(verts, (0.2, 0.9, 0.2), cam_t=cam_t)])
    pix = project_perspective(torch.as_tensor(verts), torch.as_tensor(cam_t),
                              default_focal(W, H), W, H)
    truth = silhouette(pix.numpy(), faces)
    assert truth.sum() > 500
    assert iou(depth > 0, truth) >= 0.9


@pytest.mark.parametrize("camera", ["ortho", "perspective"])
def test_depth_order_two_bodies(synthetic_body, faces, camera):
    """The nearer person covers the farther one where they overlap, whatever the input order."""
    from maed_cli.render import MeshRenderer, PersonMesh
    from maed_cli.body.geometry import orig_cam_to_translation
    verts = posed_body(synthetic_body)
    near_cam = np.array([0.6, 0.6 * W / H, 0.15, 0.0])
    far_cam = np.array([0.45, 0.45 * W / H, -0.05, 0.05])  # smaller: farther away
    def person(cam, color):
        cam_t = orig_cam_to_translation(torch.as_tensor(cam), W, H).numpy()
        return PersonMesh(verts, color, orig_cam=cam, cam_t=cam_t)
    near, far = person(near_cam, (1.0, 0.1, 0.1)), person(far_cam, (0.1, 0.1, 1.0))
    bg = np.full((H, W, 3), 128, np.uint8)
    with MeshRenderer(W, H, faces, camera=camera) as r:
        near_alone = r.render(bg, [near])
        far_alone = r.render(bg, [far])
        _, d_near = r.render_layer([near])
        _, d_far = r.render_layer([far])
        both = [r.render(bg, [near, far]), r.render(bg, [far, near])]
    # away from the near body's outline, where antialiasing blends it with what lies behind
    inner_near = cv2.erode((d_near > 0).astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
    overlap = inner_near & (d_far > 0)
    assert overlap.sum() > 100
    for out in both:
        diff_near = np.abs(out[overlap].astype(int) - near_alone[overlap]).max(axis=1)
        diff_far = np.abs(out[overlap].astype(int) - far_alone[overlap]).max(axis=1)
        assert (diff_near <= 2).mean() > 0.97
        assert (diff_far > 20).mean() > 0.9
        # outside the near body, the far one shows as when alone
        away = cv2.dilate((d_near > 0).astype(np.uint8), np.ones((3, 3), np.uint8)) == 0
        only_far = (d_far > 0) & away
        assert only_far.sum() > 50
        assert np.abs(out[only_far].astype(int) - far_alone[only_far]).max() <= 2


def test_alpha_and_wireframe(synthetic_body, faces):
    from maed_cli.render import MeshRenderer, PersonMesh
    verts = posed_body(synthetic_body)
    cam = np.array([0.5, 0.5 * W / H, 0.0, 0.0])
    bg = np.full((H, W, 3), 200, np.uint8)
    with MeshRenderer(W, H, faces) as r:
        solid = r.render(bg, [PersonMesh(verts, (1.0, 0.0, 0.0), orig_cam=cam)])
        _, depth = r.render_layer([PersonMesh(verts, (1.0, 0.0, 0.0), orig_cam=cam)])
    with MeshRenderer(W, H, faces, alpha=0.5) as r:
        half = r.render(bg, [PersonMesh(verts, (1.0, 0.0, 0.0), orig_cam=cam)])
    mask = depth > 0
    expected = (solid[mask].astype(float) + 200) / 2
    assert np.abs(half[mask] - expected).max() <= 1
    assert (half[~mask] == 200).all()
    big = np.array([0.8, 0.8 * 4 / 3, 0.0, 0.0])  # lines need room to leave gaps
    areas = []
    for wireframe in (False, True):
        with MeshRenderer(640, 480, faces, wireframe=wireframe) as r:
            _, d = r.render_layer([PersonMesh(verts, (1.0, 0.0, 0.0), orig_cam=big)])
        areas.append((d > 0).sum())
    assert 0 < areas[1] < 0.9 * areas[0]


def test_track_colours_distinct_and_stable():
    from maed_cli.render import track_color
    colours = [track_color(i) for i in range(12)]
    assert colours == [track_color(i) for i in range(12)]
    d = min(np.abs(np.subtract(a, b)).max() for i, a in enumerate(colours)
            for b in colours[i + 1:])
    assert d > 0.04


def test_no_gl_import_without_rendering():
    """Importing the CLI and the render module touches no OpenGL."""
    code = ("import sys, maed_cli.cli, maed_cli.render, maed_cli.export; "
            "print(any(m == 'OpenGL' or m.startswith(('OpenGL.', 'pyrender')) for m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": os.getcwd()})
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


def test_torch_libraries_load_after_a_render():
    """Software GL's LLVM and Triton's clash when Triton comes second: a detector (ultralytics
    -> torchvision -> triton) built after a render in one process used to segfault."""
    code = ("import numpy as np\n"
            "from maed_cli.render import MeshRenderer, PersonMesh, track_color\n"
            "faces = np.array([[0, 1, 2], [0, 2, 3]])\n"
            "verts = np.array([[0, 0, 0], [.3, 0, 0], [.3, .3, 0], [0, .3, 0]], np.float32)\n"
            "MeshRenderer(64, 64, faces).render(None, [PersonMesh(\n"
            "    verts, track_color(1), orig_cam=np.array([1.0, 1.0, 0.0, 0.0]))])\n"
            "import torchvision.extension\n"
            "print('ok')\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": os.getcwd()}, timeout=300)
    assert out.returncode == 0 and out.stdout.strip().endswith("ok"), out.stderr[-2000:]


def test_no_opengl_fails_with_one_clear_line(synthetic_body, faces, monkeypatch):
    from maed_cli import render
    monkeypatch.setenv(render.PLATFORM_ENV, "no-such-gl")
    r = render.MeshRenderer(W, H, faces)  # creating it needs no GL
    with pytest.raises(render.RendererUnavailable) as info:
        r.render_layer([render.PersonMesh(posed_body(synthetic_body), (1, 0, 0),
                                          orig_cam=np.array([0.5, 0.6, 0, 0]))])
    message = str(info.value)
    assert "\n" not in message
    assert "libegl1" in message and "libosmesa6" in message and "apt-get install" in message


@pytest.mark.parametrize("forced, expected", [("osmesa", "via OSMESA"),
                                              ("no-such-gl", "no OpenGL platform works")])
def test_doctor_reports_the_renderers_choice(forced, expected):
    """`maed doctor` shows the platform `maed render` would use (fresh process: no GL yet)."""
    env = {**os.environ, "PYTHONPATH": os.getcwd(), "MAED_GL_PLATFORM": forced,
           "COLUMNS": "250"}
    out = subprocess.run([sys.executable, "-m", "maed_cli", "doctor"], capture_output=True,
                         text=True, env=env, timeout=300)
    line = next(l for l in out.stdout.splitlines() if "renderer" in l)
    assert expected in line
    if forced == "no-such-gl":
        assert "libosmesa6" in line


def test_crop_camera_places_joints_where_the_render_draws_them(synthetic_body, faces):
    """MAED's crop camera, converted to the full image, projects the 49 joints onto the body
    as the renderer draws it (issue #3: within 2 px)."""
    from maed_cli.body.geometry import crop_cam_to_full
    from maed_cli.render import MeshRenderer, PersonMesh
    pose = torch.zeros(1, 72)
    pose[0, 0] = np.pi
    pose[0, 3 * 16 + 2] = -0.9
    pose[0, 3 * 17 + 2] = 0.9
    out = synthetic_body(pose=pose)
    verts = out.vertices[0].double()
    joints = out.joints49[0].double()
    cam = torch.tensor([0.8, 0.02, 0.05], dtype=torch.float64)  # predicted in the crop
    region = torch.tensor([85.0, 58.0, 110.0, 110.0], dtype=torch.float64)  # crop region
    orig_cam = crop_cam_to_full(cam, region, W, H)
    with MeshRenderer(W, H, faces) as r:
        _, depth = r.render_layer([PersonMesh(verts.numpy(), (0.8, 0.8, 0.8),
                                              orig_cam=orig_cam.numpy())])
    drawn = depth > 0
    ys, xs = np.nonzero(drawn)
    pix_v = project_full_orthographic(verts, orig_cam, W, H).numpy()
    # the drawn extent is the projected extent (pixel centres at i + 0.5)
    assert abs(xs.min() + 0.5 - pix_v[:, 0].min()) <= 2 and abs(xs.max() + 0.5 -
                                                              pix_v[:, 0].max()) <= 2
    assert abs(ys.min() + 0.5 - pix_v[:, 1].min()) <= 2 and abs(ys.max() + 0.5 -
                                                              pix_v[:, 1].max()) <= 2
    # every joint lands on the drawn body (within 2 px)
    near = cv2.dilate(drawn.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
    pix_j = project_full_orthographic(joints, orig_cam, W, H).numpy()
    cols = np.clip(np.floor(pix_j[:, 0]).astype(int), 0, W - 1)
    rows = np.clip(np.floor(pix_j[:, 1]).astype(int), 0, H - 1)
    assert near[rows, cols].all()
    # and the crop itself: the crop-normalised projection mapped through the region agrees
    crop_xy = cam[0] * (joints[:, :2] + cam[1:])
    np.testing.assert_allclose(pix_j, (region[:2] + crop_xy * region[2:] / 2).numpy(),
                               atol=1e-9)
