"""`maed demo --render/--export`, and the demo without any OpenGL."""
import numpy as np

from test_demo import demo_setup, installed_regressor, run  # noqa: F401 - fixtures

NO_GL = "no-such-gl"


def test_demo_render_and_export(capsys, demo_setup, installed_regressor):  # noqa: F811
    out = demo_setup["root"] / "out_render"
    code, text = run(capsys, "demo", demo_setup["video"], "--boxes", demo_setup["boxes"],
                     "--checkpoint", demo_setup["ckpt"], "--smpl", demo_setup["smpl"],
                     "--output", out, "--min-track", 5, "--quiet", "--render",
                     "--export", "glb,csv", "--end", "8")
    assert code == 0, text
    import imageio_ffmpeg
    reader = imageio_ffmpeg.read_frames(str(out / "overlay.mp4"))
    meta = next(reader)
    frames = [np.frombuffer(b, np.uint8) for b in reader]
    assert len(frames) == 8 and meta["size"][0] == 320
    assert (out / "export" / "track_1.glb").stat().st_size > 0
    assert (out / "export" / "joints.csv").exists()


def test_demo_without_opengl(capsys, demo_setup, installed_regressor, monkeypatch):  # noqa: F811
    monkeypatch.setenv("MAED_GL_PLATFORM", NO_GL)
    out = demo_setup["root"] / "out_nogl"
    args = ("demo", demo_setup["video"], "--boxes", demo_setup["boxes"], "--checkpoint",
            demo_setup["ckpt"], "--smpl", demo_setup["smpl"], "--output", out, "--min-track",
            5, "--quiet", "--end", "6")
    code, text = run(capsys, *args, "--render")
    assert code == 2
    lines = [l for l in text.strip().splitlines() if l.strip()]
    assert len(lines) == 1 and "apt-get install" in lines[0] and "libegl1" in lines[0]
    assert not out.exists()
    code, text = run(capsys, *args)  # without --render it does not need OpenGL
    assert code == 0, text
    assert (out / "summary.json").exists()
