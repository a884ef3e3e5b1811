"""`maed render` / `maed export` end to end on a synthetic video and synthetic results."""
import shutil

import joblib
import numpy as np
import pytest
import torch

from maed_cli.cli import main
from maed_cli.results import TrackResult, load_result_set, save_summary, save_track
from synthetic_video import write_grey_video

W, H, N, FPS = 160, 120, 6, 10.0


def read_video(path):
    import imageio_ffmpeg
    reader = imageio_ffmpeg.read_frames(str(path))
    meta = next(reader)
    w, h = meta["size"]
    frames = [np.frombuffer(b, np.uint8).reshape(h, w, 3) for b in reader]
    return meta, frames


@pytest.fixture(scope="module")
def demo_results(synthetic_body, tmp_path_factory):
    """A 6-frame grey video and results for two people (one present in frames 1..4 only)."""
    folder = tmp_path_factory.mktemp("results")
    video = write_grey_video(folder / "input.mp4", (W, H), N, FPS)
    tracks = []
    for tid, frames, cam in ((1, np.arange(N), [0.5, 0.5 * W / H, -0.5, 0.0]),
                             (4, np.arange(1, 5), [0.45, 0.45 * W / H, 0.6, 0.1])):
        n = len(frames)
        pose = np.zeros((n, 72), np.float32)
        pose[:, 0] = np.pi
        pose[:, 3 * 16 + 2] = np.linspace(-0.2, -1.0, n)
        out = synthetic_body(pose=torch.as_tensor(pose), betas=torch.zeros(n, 10))
        tracks.append(TrackResult(
            track_id=tid, frame_ids=frames, pose=pose, betas=np.zeros((n, 10), np.float32),
            verts=out.vertices.numpy(), joints3d=out.joints49.numpy(),
            orig_cam=np.tile(np.float32(cam), (n, 1))))
    for track in tracks:
        save_track(folder, track)
    save_summary(folder, {"input": {"path": str(video), "fps": FPS, "width": W, "height": H},
                          "settings": {"start": None, "end": None, "fps": None}})
    return folder


@pytest.fixture
def smpl_args(synthetic_assets):
    return ["--smpl", str(synthetic_assets["npz"])]


def test_results_round_trip(demo_results):
    results = load_result_set(demo_results)
    assert sorted(results.tracks) == [1, 4] and results.fps == FPS and results.width == W
    assert results.tracks[4].frame_ids.tolist() == [1, 2, 3, 4]
    assert results.tracks[4].rotmat.shape == (4, 24, 3, 3)  # derived from pose
    assert results.tracks[4].cam_t is None  # not saved: derived when needed
    results.fill_translation()
    assert results.tracks[4].cam_t.shape == (4, 3)


def test_render_writes_the_overlay_video(demo_results, smpl_args):
    out = demo_results / "render.mp4"
    assert main(["render", str(demo_results), *smpl_args]) == 0
    meta, frames = read_video(out)
    assert len(frames) == N and tuple(meta["size"]) == (W, H)
    assert abs(meta["fps"] - FPS) < 1e-3
    changed = [(np.abs(f.astype(int) - 90).max(axis=2) > 40).sum() for f in frames]
    assert all(c > 200 for c in changed)
    assert changed[2] > changed[0] * 1.5  # two people in frame 2, one in frame 0
    assert not list(demo_results.glob(".*part*"))


def test_render_side_view_and_compare_with_a_vibe_pkl(demo_results, tmp_path, smpl_args):
    results = load_result_set(demo_results)
    pkl = tmp_path / "vibe_output.pkl"
    joblib.dump({tid: {"orig_cam": t.orig_cam, "verts": t.verts, "frame_ids": t.frame_ids,
                       "pose": t.pose, "betas": t.betas} for tid, t in results.tracks.items()},
                pkl)
    out = tmp_path / "cmp.mp4"
    assert main(["render", str(demo_results), "--compare", str(pkl), "--labels", "MAED,VIBE",
                 "--side-view", "-o", str(out), *smpl_args]) == 0
    meta, frames = read_video(out)
    assert tuple(meta["size"]) == (3 * W, H) and len(frames) == N
    # identical results: the compared panel equals ours (but for the label corner)
    left, right = frames[2][40:, :W].astype(int), frames[2][40:, 2 * W:].astype(int)
    assert np.abs(left - right).mean() < 2


def test_render_without_opengl_is_one_clear_line(demo_results, monkeypatch, capsys):
    monkeypatch.setenv("MAED_GL_PLATFORM", "no-such-gl")
    assert main(["render", str(demo_results), "-o", str(demo_results / "x.mp4"),
                 "--smpl", "nowhere.npz"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "apt-get install" in err and "libosmesa6" in err
    assert not (demo_results / "x.mp4").exists()


@pytest.mark.parametrize("args, message", [
    (["--focal", "-5", "--camera", "perspective"], "--focal -5.0: must be a positive number"),
    (["-o", "overlay.txt"], "overlay.txt: the overlay is an H.264 .mp4"),
    (["-o", "/proc/x/overlay.mp4"], "/proc/x/overlay.mp4: cannot write in /proc"),
])
def test_render_checks_its_options_first(args, message, tmp_path, capsys):
    assert main(["render", str(tmp_path / "not-read-yet"), *args]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert message in err and "Traceback" not in err, err


def test_export_to_an_unwritable_place_is_one_line(demo_results, tmp_path, capsys):
    a_file = tmp_path / "text.mp4"
    a_file.write_text("x")
    for where, message in ((a_file, "exists and is not a folder"),
                           ("/proc/x", "cannot write in /proc")):
        assert main(["export", str(demo_results), "--format", "csv", "-o", str(where)]) == 2
        err = " ".join(capsys.readouterr().err.split())
        assert f"--output {where}: {message}" in err, err


def test_a_vibe_pkl_needs_its_video_for_size_and_fps(demo_results, tmp_path):
    results = load_result_set(demo_results)
    pkl = tmp_path / "vibe_output.pkl"
    joblib.dump({tid: {"orig_cam": t.orig_cam, "verts": t.verts, "frame_ids": t.frame_ids,
                       "pose": t.pose, "betas": t.betas} for tid, t in results.tracks.items()},
                pkl)
    with pytest.warns(UserWarning, match="without --video the frame rate is taken as 30 fps"):
        assert load_result_set(pkl).width is None
    from maed_cli.errors import InputError
    with pytest.raises(InputError, match="--video .*typo.mp4: no such file"):
        load_result_set(pkl, video=tmp_path / "typo.mp4")
    assert load_result_set(pkl, video=results.video).width == results.width


def test_export_again_leaves_no_files_of_the_earlier_export(demo_results, synthetic_assets,
                                                             tmp_path):
    import os

    from maed_cli.body.smpl import load_body_model
    from maed_cli.export import export_results
    shutil.copy(synthetic_assets["extra"], os.environ["MAED_HOME"])
    body = load_body_model(synthetic_assets["npz"])
    results = load_result_set(demo_results)
    out = tmp_path / "exp"
    export_results(results, out, ["obj", "bvh"], body=body)
    gone = max(results.tracks)
    assert (out / "obj" / f"track_{gone}").is_dir() and (out / f"track_{gone}.bvh").is_file()
    kept = min(results.tracks)
    (out / "obj" / f"track_{kept}" / "frame_999999.obj").write_text("from a longer video")
    del results.tracks[gone]
    written = export_results(results, out, ["obj", "bvh"], body=body)
    assert not (out / "obj" / f"track_{gone}").exists() and not (out / f"track_{gone}.bvh").exists()
    assert not (out / "obj" / f"track_{kept}" / "frame_999999.obj").exists()
    on_disk = {p for p in out.rglob("*") if p.is_file()}
    assert on_disk == set(written) and (out / f"track_{kept}.bvh") in on_disk


def test_export_cli(demo_results, synthetic_assets, tmp_path, monkeypatch):
    import os
    home = os.environ["MAED_HOME"]
    shutil.copy(synthetic_assets["extra"], home)
    out = tmp_path / "exp"
    assert main(["export", str(demo_results), "--format", "glb,bvh,obj,json",
                 "--smpl", str(synthetic_assets["npz"]), "-o", str(out), "--smooth"]) == 0
    assert (out / "track_1.glb").exists() and (out / "track_4.bvh").exists()
    assert len(list((out / "obj" / "track_4").glob("*.obj"))) == 4
    assert main(["export", str(demo_results), "--format", "fbx", "-o", str(out)]) == 2


def test_demo_overlay_hook(demo_results, synthetic_assets, tmp_path):
    """What `maed demo --render` calls: overlay.mp4 from fresh tracks over the same frames."""
    from types import SimpleNamespace
    from maed_cli.render import make_overlay_hook
    results = load_result_set(demo_results)
    options = SimpleNamespace(start="1", end=None, fps=None, focal=None)
    hook = make_overlay_hook(results.video, options, smpl=synthetic_assets["npz"])
    hook(tmp_path, list(results.tracks.values()), results.summary)
    meta, frames = read_video(tmp_path / "overlay.mp4")
    assert len(frames) == N - 1 and tuple(meta["size"]) == (W, H)
