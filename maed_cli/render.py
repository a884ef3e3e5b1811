"""Headless mesh rendering: people's meshes over video frames, side views, comparisons.

OpenGL is never touched at import time: the first renderer created picks a headless platform
(maed_cli/gl_platform.py, re-exported here) and only then imports pyrender.

Cameras. `ortho` (default; every result file has it): each person has VIBE's orthographic
full-image camera (sx, sy, tx, ty), so the mesh lands exactly where the network put it. All
people share one orthographic GL camera in pixel units and a common depth axis — person
depth Z = f / (sx W / 2) (the pinhole depth with the same scale) plus the vertex's own depth —
so the depth buffer orders them per pixel, interpenetration included. Normals come from the
undistorted mesh, so lighting is right. `perspective`: the full-perspective translation
`cam_t` with a pinhole of focal f (default: the image diagonal) at the image centre.

The overlay mask is the depth buffer (depth > 0): OSMesa returns RGB only.
"""
from __future__ import annotations

import colorsys
import functools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import InputError
from .gl_platform import (GL_PACKAGES, PLATFORM_ENV, PLATFORMS, RendererUnavailable,  # noqa: F401
                          _load_triton_before_gl, candidate_platforms, choose_platform,
                          probe_platform, require_platform, unavailable_message)


def track_color(track_id: int) -> tuple[float, float, float]:
    """A distinct, stable RGB colour in [0, 1] per track id (golden-ratio hue steps)."""
    hue = (0.58 + 0.618033988749895 * int(track_id)) % 1.0
    return colorsys.hsv_to_rgb(hue, 0.55, 0.95)


def face_incidence(faces: np.ndarray, num_vertices: int):
    """Sparse (V, F) matrix with a 1 where vertex v is a corner of face f."""
    from scipy.sparse import csr_matrix
    rows = np.asarray(faces).reshape(-1)
    cols = np.repeat(np.arange(len(faces)), 3)
    return csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(num_vertices, len(faces)))


def vertex_normals(verts: np.ndarray, faces: np.ndarray, incidence=None) -> np.ndarray:
    """Area-weighted unit vertex normals (V, 3) of a triangle mesh (pass `incidence` from
    `face_incidence` to reuse it across frames)."""
    tri = verts[faces]
    fn = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    incidence = face_incidence(faces, len(verts)) if incidence is None else incidence
    normals = incidence @ fn
    return normals / np.maximum(np.linalg.norm(normals, axis=1, keepdims=True), 1e-12)


@dataclass
class PersonMesh:
    """One person in one frame. verts: (V, 3) metres in the body/camera frame (y down,
    z forward); orig_cam: (4,) for the ortho camera; cam_t: (3,) for the perspective one."""

    verts: np.ndarray
    color: tuple[float, float, float]
    orig_cam: np.ndarray | None = None
    cam_t: np.ndarray | None = None


def side_view(verts: np.ndarray, degrees: float = 90.0) -> np.ndarray:
    """The mesh turned about the vertical (y) axis through its centre."""
    a = np.deg2rad(degrees)
    rot = np.array([[np.cos(a), 0.0, np.sin(a)], [0.0, 1.0, 0.0], [-np.sin(a), 0.0, np.cos(a)]])
    centre = verts.mean(axis=0)
    return (verts - centre) @ rot.T + centre


class MeshRenderer:
    """Renders people into (H, W) frames; the GL context is created on first use.

        r = MeshRenderer(640, 480, faces)
        out = r.render(image, [PersonMesh(verts, track_color(1), orig_cam=cam)])

    camera: "ortho" | "perspective"; focal: pixels (perspective, and ortho depth order);
    wireframe: draw edges only; alpha: mesh opacity over the image in [0, 1]; antialias:
    4x multisampling for smooth outlines — None (default): on with a hardware GL, off with a
    software one (Mesa llvmpipe/OSMesa), where it makes a frame about 2.5x as costly.
    """

    def __init__(self, width: int, height: int, faces: np.ndarray, *, camera: str = "ortho",
                 focal: float | None = None, wireframe: bool = False, alpha: float = 1.0,
                 antialias: bool | None = None):
        _check_camera(camera)
        if not 0.0 <= alpha <= 1.0:
            raise InputError(f"--alpha must be in [0, 1], got {alpha}")
        from .body.geometry import default_focal
        self.width, self.height = int(width), int(height)
        self.faces = np.ascontiguousarray(faces, dtype=np.int64)
        self._faces_u32 = self.faces.astype(np.uint32)
        self._incidence = face_incidence(self.faces, int(self.faces.max()) + 1)
        self.camera = camera
        self.focal = float(focal) if focal else default_focal(width, height)
        self.wireframe = wireframe
        self.alpha = float(alpha)
        self.antialias = antialias
        self.samples = 0
        self.gl_renderer = ""
        self.platform: str | None = None
        self._renderer = None
        self._scene = None
        self._mesh_nodes: list = []

    # -- GL state, created lazily ------------------------------------------------------------
    def _ensure(self) -> None:
        if self._renderer is not None:
            return
        self.platform = require_platform()
        import pyrender  # after the platform is set

        self._pyrender = pyrender
        scene = pyrender.Scene(bg_color=(0.0, 0.0, 0.0, 0.0), ambient_light=(0.3, 0.3, 0.3))
        # both cameras, so one GL context serves every panel (a second OffscreenRenderer's
        # delete would terminate the EGL display the first one still uses)
        self._cameras = {
            "ortho": scene.add(pyrender.OrthographicCamera(
                xmag=self.width / 2.0, ymag=self.height / 2.0, znear=1e-3, zfar=1e4),
                pose=np.eye(4)),
            "perspective": scene.add(pyrender.IntrinsicsCamera(
                fx=self.focal, fy=self.focal, cx=self.width / 2.0, cy=self.height / 2.0,
                znear=1e-2, zfar=1e4), pose=np.eye(4))}
        # Soft light: a key light from above-front, two dimmer fills from the sides.
        for direction, intensity in (((0.0, -0.6, -1.0), 1.8), ((1.0, 0.2, -0.6), 0.7),
                                     ((-1.0, 0.2, -0.6), 0.7)):
            scene.add(pyrender.DirectionalLight(color=np.ones(3), intensity=intensity),
                      pose=_look_along(np.asarray(direction, dtype=np.float64)))
        self._scene = scene
        _load_triton_before_gl()
        try:
            self._renderer = pyrender.OffscreenRenderer(self.width, self.height)
            from OpenGL.GL import GL_RENDERER, glGetString
            self.gl_renderer = (glGetString(GL_RENDERER) or b"").decode(errors="replace")
        except Exception as exc:  # noqa: BLE001 - GL errors come in many types
            raise RendererUnavailable(f"could not create a {self.platform} renderer ({exc}); "
                                      + unavailable_message((self.platform,))) from None
        software = any(name in self.gl_renderer.lower()
                       for name in ("llvmpipe", "softpipe", "swrast", "software"))
        self.samples = 4 if (self.antialias if self.antialias is not None else not software) \
            else 0

    def close(self) -> None:
        if self._renderer is not None:
            self._renderer.delete()
            self._renderer = None

    def __enter__(self) -> "MeshRenderer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- geometry ---------------------------------------------------------------------------
    def _gl_vertices(self, person: PersonMesh, verts: np.ndarray, camera: str) -> np.ndarray:
        """Body-frame vertices -> GL camera coordinates (x right, y up, looking down -z)."""
        if camera == "perspective":
            if person.cam_t is None:
                raise InputError("the perspective camera needs cam_t (full-perspective "
                                 "translation) in the results; use --camera ortho")
            p = verts + person.cam_t
            return p * np.array([1.0, -1.0, -1.0])
        if person.orig_cam is None:
            raise InputError("the ortho camera needs orig_cam in the results")
        sx, sy, tx, ty = (float(v) for v in person.orig_cam)
        px_per_m_x, px_per_m_y = sx * self.width / 2.0, sy * self.height / 2.0
        depth = self.focal / max(px_per_m_x, 1e-9)  # pinhole depth with the same scale
        out = np.empty_like(verts)
        out[:, 0] = px_per_m_x * (verts[:, 0] + tx)
        out[:, 1] = -px_per_m_y * (verts[:, 1] + ty)
        out[:, 2] = -(depth + verts[:, 2])
        return out

    def render_layer(self, people: list[PersonMesh], *, turn: float = 0.0,
                     camera: str | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Colour (H, W, 3) uint8 and depth (H, W) float32 (0 where no mesh); `camera`
        overrides the renderer's for this call."""
        camera = camera or self.camera
        _check_camera(camera)
        self._ensure()
        pyrender = self._pyrender
        self._scene.main_camera_node = self._cameras[camera]
        for node in self._mesh_nodes:
            self._scene.remove_node(node)
        self._mesh_nodes = []
        for person in people:
            verts = np.asarray(person.verts, dtype=np.float64)
            if turn:
                verts = side_view(verts, turn)
            normals = vertex_normals(verts, self.faces, self._incidence) * np.array([1.0, -1.0, -1.0])
            material = pyrender.MetallicRoughnessMaterial(
                baseColorFactor=(*person.color, 1.0), metallicFactor=0.05,
                roughnessFactor=0.75, alphaMode="OPAQUE", wireframe=self.wireframe)
            prim = pyrender.Primitive(positions=self._gl_vertices(person, verts,
                                                                  camera).astype(np.float32),
                                      normals=normals.astype(np.float32),
                                      indices=self._faces_u32, material=material,
                                      mode=pyrender.constants.GLTF.TRIANGLES)
            self._mesh_nodes.append(self._scene.add(pyrender.Mesh([prim])))
        if not self._mesh_nodes:
            return (np.zeros((self.height, self.width, 3), np.uint8),
                    np.zeros((self.height, self.width), np.float32))
        _set_msaa_samples(self.samples)  # the framebuffer is (re)made inside render()
        color, depth = self._renderer.render(self._scene)
        return np.asarray(color)[..., :3], np.asarray(depth)

    def render(self, image: np.ndarray | None, people: list[PersonMesh], *, turn: float = 0.0,
               background: tuple[int, int, int] = (255, 255, 255),
               camera: str | None = None) -> np.ndarray:
        """The people composited over `image` (H, W, 3) uint8 (None: a plain background)."""
        if image is None:
            image = np.empty((self.height, self.width, 3), np.uint8)
            image[:] = background
        elif image.shape[:2] != (self.height, self.width):
            raise InputError(f"frame is {image.shape[1]}x{image.shape[0]}, the renderer "
                             f"{self.width}x{self.height}")
        color, depth = self.render_layer(people, turn=turn, camera=camera)
        mask = depth > 0
        out = image.copy()
        if self.alpha >= 1.0:
            out[mask] = color[mask]
        else:
            blend = self.alpha * color[mask].astype(np.float32) + \
                (1.0 - self.alpha) * image[mask].astype(np.float32)
            out[mask] = np.clip(blend + 0.5, 0, 255).astype(np.uint8)
        return out


def _check_camera(camera: str) -> None:
    if camera not in ("ortho", "perspective"):
        raise InputError(f"camera must be 'ortho' or 'perspective', got {camera!r}")


def _set_msaa_samples(samples: int) -> None:
    """pyrender always allocates 4x multisampled buffers; route its one allocation call
    through the sample count we want (0: none — far cheaper on software GL)."""
    import pyrender.renderer as pr
    original = getattr(pr, "_maed_original_storage", None)
    if original is None:
        original = pr._maed_original_storage = pr.glRenderbufferStorageMultisample
    pr.glRenderbufferStorageMultisample = (
        lambda target, _samples, fmt, width, height: original(target, samples, fmt, width,
                                                              height))


def _look_along(direction: np.ndarray) -> np.ndarray:
    """A light pose whose -z axis points along `direction` (GL camera frame)."""
    z = -direction / np.linalg.norm(direction)
    up = np.array([0.0, 1.0, 0.0]) if abs(z[1]) < 0.99 else np.array([1.0, 0.0, 0.0])
    x = np.cross(up, z)
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    pose = np.eye(4)
    pose[:3, 0], pose[:3, 1], pose[:3, 2] = x, y, z
    return pose


# --- videos -------------------------------------------------------------------------------

def people_in_frame(results, frame: int) -> list[PersonMesh]:
    """PersonMesh for every track of a ResultSet present in source frame `frame`."""
    people = []
    for tid, track in results.tracks.items():
        row = track.index_of(frame)
        if row is None or track.verts is None:
            continue
        people.append(PersonMesh(
            verts=track.verts[row], color=track_color(tid),
            orig_cam=None if track.orig_cam is None else track.orig_cam[row],
            cam_t=None if track.cam_t is None else track.cam_t[row]))
    return people


def label(image: np.ndarray, text: str) -> np.ndarray:
    """`text` in the top-left corner, white on a dark band (readable on any frame)."""
    import cv2
    out = image.copy()
    scale = max(0.4, image.shape[0] / 720.0)
    (w, h), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
    pad = int(6 * scale)
    out[: h + base + 2 * pad, : w + 2 * pad] //= 3
    cv2.putText(out, text, (pad, pad + h), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255),
                max(1, int(round(scale))), cv2.LINE_AA)
    return out


@functools.lru_cache(maxsize=4)  # read once per run, not once per photo of a folder
def _smpl_file_faces(path: str, mtime_ns: int) -> np.ndarray:
    from .body.smpl_files import read_smpl_file
    faces = np.asarray(read_smpl_file(Path(path))["f"], dtype=np.int64)
    faces.flags.writeable = False
    return faces


def load_faces(smpl: str | Path | None = None) -> np.ndarray:
    """SMPL's triangles (13776, 3), from the SMPL file or else the official checkpoint."""
    from . import assets
    from .body.smpl import find_smpl_file
    from .body.smpl_files import smpl_arrays_from_buffers
    from .errors import AssetMissingError
    path = find_smpl_file(smpl)
    if path is not None:
        return _smpl_file_faces(str(path), Path(path).stat().st_mtime_ns)
    checkpoint = assets.find_asset(assets.CHECKPOINT_NAMES)
    if checkpoint is not None:
        from .model.checkpoint import read_smpl_buffers
        buffers = read_smpl_buffers(checkpoint)
        if "faces_tensor" in buffers:
            return np.asarray(smpl_arrays_from_buffers(buffers)["f"], dtype=np.int64)
    raise AssetMissingError("rendering needs the SMPL mesh: install the SMPL model (`maed "
                            "setup smpl SMPL_NEUTRAL.pkl`) or the official checkpoint")


def render_video(results, output: str | Path, *, faces: np.ndarray, video: str | Path | None
                 = None, side: bool = False, wireframe: bool = False, alpha: float = 1.0,
                 camera: str = "ortho", focal: float | None = None, compare=None,
                 labels: tuple[str, str] = ("MAED", "other"), antialias: bool | None = None,
                 world=None, progress: Callable[[int, int | None], None] | None = None) -> Path:
    """Overlay every tracked person on the video and write an H.264 mp4 atomically.

    Decodes the frames the results were made from (their start/end/fps selection), so the
    output has the input's frame size and the processed frame rate (the input's, unless
    the demo subsampled it); audio is dropped. `side` adds a panel with the meshes turned
    90°; `compare` (a second ResultSet of the same video) is rendered beside ours on the same
    frames, both labelled; `world` (a world.frames.WorldFrame) adds the world view
    (render_world.WorldView). `progress(done, total)` is called after each frame.
    """
    from .video.io import VideoWriter, open_frames
    video = Path(video) if video is not None else results.video
    if video is None or not Path(video).exists():
        raise InputError(f"the input video {video} is not there: pass it with --video")
    source = open_frames(video, start=results.start, end=results.end, fps=results.select_fps)
    w, h = source.meta.width, source.meta.height
    renderer = MeshRenderer(w, h, faces, camera=camera, focal=focal, wireframe=wireframe,
                            alpha=alpha, antialias=antialias)
    if camera == "perspective":
        results.fill_translation(focal)
    if compare is not None:
        compare.width, compare.height = compare.width or w, compare.height or h
        if camera == "perspective":
            compare.fill_translation(focal)
    view = None
    if world is not None:
        from .render_world import WorldView
        view = WorldView(results, world, renderer)
    total = source.estimated_length
    output = Path(output)
    try:
        with VideoWriter(output, source.stream_fps) as writer:
            for done, (index, image) in enumerate(source):
                people = people_in_frame(results, index)
                panels = [renderer.render(image, people)]
                if side:
                    panels.append(renderer.render(None, people, turn=90.0))
                if compare is not None:
                    panels[0] = label(panels[0], labels[0])
                    panels.append(label(renderer.render(image, people_in_frame(compare, index)),
                                        labels[1]))
                if view is not None:
                    panels.append(view.render(index))
                writer.write(np.concatenate(panels, axis=1) if len(panels) > 1 else panels[0])
                if progress is not None:
                    progress(done + 1, total)
    finally:
        renderer.close()
    return output


def image_output_suffix(image: str | Path) -> str:
    """The overlay format for an input image: JPEG for a JPEG, PNG (lossless) otherwise."""
    return ".jpg" if Path(image).suffix.lower() in (".jpg", ".jpeg") else ".png"


def render_image(results, output: str | Path, *, faces: np.ndarray,
                 image: str | Path | None = None, side: bool = False, wireframe: bool = False,
                 alpha: float = 1.0, camera: str = "ortho", focal: float | None = None,
                 antialias: bool | None = None) -> Path:
    """Overlay the people of a one-image result (frame 0) on the image and write it (PNG or
    JPEG, by `output`'s suffix) atomically; `side` adds the 90°-turned panel to its right."""
    import cv2

    from .atomic import atomic_path
    from .video.io import read_image
    image = Path(image) if image is not None else results.video
    if image is None or not Path(image).is_file():
        raise InputError(f"the input image {image} is not there: pass it with --video")
    frame = read_image(Path(image))
    h, w = frame.shape[:2]
    if camera == "perspective":
        results.fill_translation(focal)
    people = people_in_frame(results, 0)
    with MeshRenderer(w, h, faces, camera=camera, focal=focal, wireframe=wireframe,
                      alpha=alpha, antialias=antialias) as renderer:
        panels = [renderer.render(frame, people)]
        if side:
            panels.append(renderer.render(None, people, turn=90.0))
    picture = np.concatenate(panels, axis=1) if len(panels) > 1 else panels[0]
    output = Path(output)
    ok, data = cv2.imencode(output.suffix.lower(), np.ascontiguousarray(picture[..., ::-1]))
    if not ok:
        raise InputError(f"{output}: cannot write an image of this type (use .png or .jpg)")
    with atomic_path(output) as tmp:
        tmp.write_bytes(data.tobytes())
    return output


OVERLAY_NAME = "overlay.mp4"


def overlay_name(input_path: str | Path) -> str:
    """overlay.mp4 for a video (or a folder of frames), overlay.png/.jpg for one image."""
    from .video.io import IMAGE_SUFFIXES
    path = Path(input_path)
    if path.suffix.lower() in IMAGE_SUFFIXES and not path.is_dir():
        return "overlay" + image_output_suffix(path)
    return OVERLAY_NAME


def make_overlay_hook(input_path: str | Path, options, *, console=None, quiet: bool = False,
                      smpl: str | Path | None = None, side: bool = False,
                      wireframe: bool = False, alpha: float = 1.0, progress=None):
    """For `maed demo --render`: checks OpenGL now (one clear line when missing, before any
    work) and returns `on_results(folder, tracks, summary)`, which writes folder/overlay.mp4
    from the fresh results over the same frames the demo processed (for one image:
    folder/overlay.png, or .jpg for a JPEG, see `overlay_name`); `progress(stage, advance,
    total)`, when given, hears of each frame as stage "render"."""
    require_platform()
    frame_done = (lambda done, total: progress("render", 1, total)) if progress else None

    def on_results(folder: Path, tracks: list, summary: dict) -> None:
        from .results import result_set_from_demo
        results = result_set_from_demo(input_path, options, tracks, summary)
        name = overlay_name(input_path)
        if name == OVERLAY_NAME:
            render_video(results, Path(folder) / name, faces=load_faces(smpl), side=side,
                         wireframe=wireframe, alpha=alpha, focal=options.focal,
                         progress=frame_done)
        else:
            render_image(results, Path(folder) / name, faces=load_faces(smpl), side=side,
                         wireframe=wireframe, alpha=alpha, focal=options.focal)

    return on_results
