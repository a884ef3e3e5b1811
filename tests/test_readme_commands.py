"""Every command line of README.md's shell blocks is either run here, through the real CLI on
synthetic assets, or skipped with the reason it cannot run offline (issue #19, point 4).

A README command that is in neither list fails `test_every_readme_command_is_listed`, which
says which line to add where. Commands run in-process (`maed_cli.cli.main`), each in its own
working folder holding synthetic stand-ins under the names the README uses (`clip.mov`,
`results/`, `3DPW/`, ...), with `$MAED_HOME` holding a tiny random MAED checkpoint, the
synthetic SMPL model and both regressors. The person detector is replaced by one that
returns two fixed boxes per frame (YOLO weights are licensed assets and a random network
detects no one); everything after it is the real pipeline.
"""
from __future__ import annotations

import json
import re
import shlex
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import torch

from maed_cli.cli import main

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
TINY = dict(num_blocks=1, num_heads=2, hidden_dim=64, embed_dim=96, backbone_layers=(1, 1, 1))
SHELL_LANGUAGES = {"bash", "sh", "shell", "console"}
# in a fence without a language, only lines starting with these are commands (the others
# are file listings and diagrams)
COMMAND_WORDS = {"maed", "python", "python3", "pip", "make", "torchrun", "srun", "export"}


# --- reading the README ---------------------------------------------------------------------

def _strip_comment(line: str) -> str:
    """The line without its trailing `# comment` (a # outside quotes, after a space)."""
    quote = None
    for i, char in enumerate(line):
        if quote:
            quote = None if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == "#" and (i == 0 or line[i - 1].isspace()):
            return line[:i]
    return line


def readme_commands(text: str | None = None) -> list[str]:
    """The command lines of README.md's fenced shell blocks, continuation lines joined,
    comments removed, runs of spaces made one; in README order."""
    text = README.read_text() if text is None else text
    commands, block, language = [], None, None
    for raw in text.splitlines():
        fence = re.match(r"^\s*```\s*([\w-]*)", raw)
        if fence:
            if block is None:
                block, language = [], fence.group(1).lower()
            else:
                commands += _block_commands(block, language)
                block = None
            continue
        if block is not None:
            block.append(raw)
    return commands


def _block_commands(lines: list[str], language: str) -> list[str]:
    if language and language not in SHELL_LANGUAGES:
        return []
    out, pending = [], ""
    for raw in lines:
        line = _strip_comment(raw).rstrip()
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line = " ".join((pending + line).split())
        pending = ""
        if not line:
            continue
        if language or line.split()[0] in COMMAND_WORDS:
            out.append(line)
    return out


# --- what is run and what is not ----------------------------------------------------------------

@dataclass
class Case:
    """How one README line is run. `needs`: stand-ins put in the working folder first (see
    `Workspace.provide`); `replace`: substitutions in the line (e.g. /tmp/synth -> synth);
    `check(folder, output)` asserts what the command made; `home`: "installed" (checkpoint,
    SMPL, regressors) or "empty" (for `maed setup`); `folder`: "own" (a fresh folder) or
    "training" (one folder shared by the training lines, which continue each other)."""
    needs: tuple[str, ...] = ()
    replace: dict[str, str] = field(default_factory=dict)
    check: Callable[[Path, str], None] | None = None
    home: str = "installed"
    folder: str = "own"
    cuda: bool = False
    slow: bool = False
    keeps: str | None = None  # the Workspace stand-in this line's folder can serve as


def _tracks(folder: Path) -> list[int]:
    from maed_cli.results import load_results
    tracks, _ = load_results(folder)
    return [t.track_id for t in tracks]


def _video_frames(path: Path) -> tuple[tuple[int, int], int]:
    import imageio_ffmpeg
    reader = imageio_ffmpeg.read_frames(str(path))
    meta = next(reader)
    return tuple(meta["size"]), sum(1 for _ in reader)


def _check_demo(results: str, interp: int = 1):
    def check(folder: Path, output: str) -> None:
        out = folder / results
        assert _tracks(out) == [1, 2]
        assert json.loads((out / "summary.json").read_text())["settings"]["interp"] == interp
    return check


def _check_render(name: str, width_factor: int):
    def check(folder: Path, output: str) -> None:
        size, frames = _video_frames(folder / name)
        assert size == (VIDEO_SIZE[0] * width_factor, VIDEO_SIZE[1]) and frames == CLIP_FRAMES
    return check


def _check_files(*patterns: str):
    def check(folder: Path, output: str) -> None:
        for pattern in patterns:
            assert list(folder.glob(pattern)), f"{pattern} not written; output: {output}"
    return check


def _check_eval(report: str | None = None, predictions: str | None = None):
    def check(folder: Path, output: str) -> None:
        assert "PA-MPJPE" in output
        if report:
            metrics = json.loads((folder / report).read_text())["metrics"]
            assert all(np.isfinite(metrics[k]) for k in ("mpjpe", "pa_mpjpe"))
        if predictions:
            with np.load(folder / predictions) as data:
                assert data["pose"].shape[1] == 72
    return check


def _check_synthetic_train(folder: Path, output: str) -> None:
    assert (folder / "synth/database/3dpw_val_db.pt").is_file()
    assert (folder / "synth/body/SMPL_NEUTRAL.npz").is_file()
    # it prints exactly the README's next command (with the same folder)
    printed = [line.strip() for line in output.splitlines() if line.strip().startswith("maed ")]
    readme_next = [c for c in readme_commands() if c.startswith("maed train --config cpu-smoke")]
    assert printed == [c.replace("/tmp/synth", "synth") for c in readme_next], (printed,
                                                                                 readme_next)


def _check_smoke_run(folder: Path, output: str) -> None:
    """Issue #19's run: 2 epochs in one process, validation after each, nothing crashed."""
    ckpt = torch.load(folder / "synth/run/checkpoints/last.pt", weights_only=True)
    assert ckpt["train_state"]["epoch"] == 2 and ckpt["train_state"]["global_step"] == 4
    kinds = [r.split(",")[0] for r in
             (folder / "synth/run/metrics.csv").read_text().splitlines()[1:]]
    assert kinds == ["train", "train", "val", "train", "train", "val"]


def _check_resumed(folder: Path, output: str) -> None:
    ckpt = torch.load(folder / "synth/run/checkpoints/last.pt", weights_only=True)
    assert ckpt["train_state"]["epoch"] == 3 and ckpt["train_state"]["global_step"] == 6


def _check_in_output(*words: str):
    def check(folder: Path, output: str) -> None:
        for word in words:
            assert word in output, (word, output[-2000:])
    return check


def _check_home(*names: str):
    """The command installed these files into $MAED_HOME."""
    def check(folder: Path, output: str) -> None:
        import os
        home = Path(os.environ["MAED_HOME"])
        for name in names:
            assert (home / name).is_file(), (name, output)
    return check


def _check_profile_json(folder: Path, output: str) -> None:
    data = json.loads(output)
    assert data  # one JSON object with the counts


SYNTH_TRAIN = "python -m maed_cli.data.training_sets.synthetic_train /tmp/synth"
SMOKE_TRAIN = ("maed train --config cpu-smoke data.data_dir=/tmp/synth "
               "body.smpl=/tmp/synth/body/SMPL_NEUTRAL.npz "
               "body.j_regressor_extra=/tmp/synth/body/J_regressor_extra.npy "
               "body.j_regressor_h36m=/tmp/synth/body/J_regressor_h36m.npy "
               "out_dir=/tmp/synth/run")
TO_SYNTH = {"/tmp/synth": "synth"}

RUN: dict[str, Case] = {
    # install
    "maed --help": Case(check=_check_in_output("demo", "train", "eval")),
    # demo
    "maed demo examples/vtest.mp4": Case(needs=("examples/vtest.mp4",),
                                         check=_check_demo("examples/vtest_maed")),
    "maed demo match.mp4 -o out/ --start 10s --end 40s --device cuda": Case(
        needs=("match.mp4",), check=_check_demo("out"), cuda=True),
    "maed demo clip.mov --boxes boxes.json": Case(needs=("clip.mov", "boxes.json"),
                                                  check=_check_demo("clip_maed")),
    "maed demo long.mp4 --interp 4": Case(needs=("long.mp4",),
                                          check=_check_demo("long_maed", interp=4)),
    "maed demo pan.mp4 --camera moving": Case(needs=("pan.mp4",),
                                              check=_check_demo("pan_maed")),
    # photos
    "maed demo photo.jpg --render": Case(
        needs=("photo.jpg",), check=_check_files("photo_maed/overlay.jpg",
                                                 "photo_maed/tracks/track_0002.npz")),
    "maed demo shoot/ --render --side-view": Case(
        needs=("shoot/",), check=_check_files("shoot_maed/summary.json", "shoot_maed/*/overlay.*")),
    "maed demo 'shoot/**/*.png' picked.txt -o out/": Case(
        needs=("shoot/", "picked.txt"), check=_check_files("out/summary.json",
                                                           "out/*/tracks/*.npz")),
    "maed demo frames/ --images sequence": Case(needs=("frames/",),
                                                check=_check_demo("frames_maed")),
    "maed view results/ --out page/": Case(needs=("results/",),
                                           check=_check_files("page/index.html")),
    # render
    "maed render results/": Case(needs=("results/",), check=_check_render("results/render.mp4",
                                                                          1)),
    "maed render results/ --side-view --alpha 0.8": Case(
        needs=("results/",), check=_check_render("results/render.mp4", 2)),
    "maed render results/ --compare vibe_output.pkl --labels MAED,VIBE": Case(
        needs=("results/", "vibe_output.pkl"), check=_check_render("results/compare.mp4", 2)),
    "maed render vibe_output.pkl --video input.mp4": Case(
        needs=("vibe_output.pkl", "input.mp4"), check=_check_files("render.mp4")),
    # export
    "maed export results/ --format glb,bvh": Case(
        needs=("results/",), check=_check_files("results/export/track_1.glb",
                                                "results/export/track_2.bvh")),
    "maed export results/ --format glb --frame camera": Case(
        needs=("results/",), check=_check_files("results/export/track_1.glb")),
    "maed export results/ --format obj,csv -o out/ --smooth": Case(
        needs=("results/",), check=_check_files("out/obj/track_1/*.obj", "out/*.csv")),
    # batch
    "maed batch clips/ 'more/**/*.mp4' list.txt --output results/": Case(
        needs=("clips/", "more/", "list.txt"),
        check=_check_files("results/a.mp4/summary.json", "results/sub/b.mp4/summary.json",
                           "results/c.mp4/summary.json", "results/summary.json"),
        keeps="batch"),
    "maed batch --summary results/": Case(needs=("batch-results/",),
                                          check=_check_in_output("done")),
    # setup, doctor
    "maed setup weights model_best.pth.tar": Case(
        # the stand-in is in maed's own format, which is installed as maed.pt
        needs=("model_best.pth.tar",), home="empty",
        check=_check_home("maed.pt", "maed.pt.sha256")),
    "maed setup smpl SMPL_NEUTRAL.pkl": Case(needs=("SMPL_NEUTRAL.pkl",), home="empty",
                                             check=_check_home("smpl/SMPL_NEUTRAL.npz")),
    "maed setup regressors data/smpl_data/": Case(
        needs=("data/smpl_data/",), home="empty",
        check=_check_home("J_regressor_extra.npy", "J_regressor_h36m.npy")),
    "maed doctor": Case(check=_check_in_output("OK")),
    # eval
    "maed eval --dataset 3dpw --data-dir 3DPW/": Case(needs=("3DPW/",), check=_check_eval()),
    "maed eval --dataset 3dpw --data-dir 3DPW/ --split val -o val.json --save-predictions "
    "val.npz": Case(needs=("3DPW/",), check=_check_eval("val.json", "val.npz")),
    "maed eval --dataset 3dpw --data-dir 3DPW/ --db 3dpw_test_db.pt": Case(
        needs=("3DPW/", "3dpw_test_db.pt"), check=_check_eval()),
    "maed eval --dataset mpii3d --data-dir data/ --db mpii3d_test_db.pt": Case(
        needs=("data/imageFiles", "mpii3d_test_db.pt"), check=_check_eval()),
    "maed eval --dataset 3dpw --data-dir 3DPW/ --predictions other_method.npz": Case(
        needs=("3DPW/", "other_method.npz"), check=_check_eval()),
    # train: the tiny synthetic run, then a resume of it (one folder, in this order)
    SYNTH_TRAIN: Case(replace=TO_SYNTH, folder="training", check=_check_synthetic_train),
    SMOKE_TRAIN: Case(needs=("synth",), replace=TO_SYNTH, folder="training",
                      check=_check_smoke_run),
    "maed train --resume runs/stage2/checkpoints/last.pt [optim.epochs=120]": Case(
        needs=("synth/run",), folder="training", check=_check_resumed,
        replace={"runs/stage2": "synth/run", "[optim.epochs=120]": "optim.epochs=3"}),
    # profile
    "maed profile": Case(check=_check_in_output("MACs")),
    "maed profile --frames 16 --interp 2": Case(check=_check_in_output("MACs")),
    "maed profile --blocks 1 --compare vibe": Case(check=_check_in_output("VIBE")),
    "maed profile -b 1,4,8 --device cuda --dtype bf16 [--compile]": Case(
        cuda=True, replace={" [--compile]": ""}, check=_check_in_output("frames/s")),
    "maed profile --compare vibe --json": Case(check=_check_profile_json),
}

SKIPPED: dict[str, str] = {
    "maed view results/": "serves the page until Ctrl-C (tests/test_viewer.py drives the "
                          "server and the page in headless Chromium)",
    "python -m http.server -d page/": "Python's own web server, serving until Ctrl-C",
    "maed view results/ --port 0": "serves the page until Ctrl-C (tests/test_viewer.py)",
    "make demo": "creates .venv with pip (network) and needs the official checkpoint",
    "make test": "creates .venv with pip (network) and runs the whole suite",
    "python3 -m venv .venv && . .venv/bin/activate": "sets up a virtual environment (the "
                                                     "tests already run inside one)",
    "pip install torch torchvision": "network (package index)",
    "pip install -e \".[test]\"": "network (package index)",
    "torchrun --nproc_per_node 8 -m maed_cli batch clips/ --output results/":
        "8 GPUs; tests/test_batch.py runs 2 CPU ranks",
    "torchrun --nnodes 4 --nproc_per_node 8 --rdzv-backend c10d --rdzv-endpoint HOST:29500 "
    "-m maed_cli batch clips/ --output results/": "4 nodes of 8 GPUs",
    "export MASTER_ADDR=$(scontrol show hostnames \"$SLURM_JOB_NODELIST\" | head -n 1)":
        "a Slurm allocation",
    "export MASTER_PORT=29500": "part of the Slurm job script",
    "srun maed batch clips/ --output results/": "a Slurm allocation",
    "maed setup weights --download": "network (Google Drive)",
    "maed train --config configs/stage1.yaml data.data_dir=/data/maed":
        "the real training datasets (/data/maed) and the full network; the cpu-smoke line "
        "runs the same trainer",
    "maed train --config configs/stage2.yaml data.data_dir=/data/maed "
    "init.pretrained=runs/stage1/checkpoints/best.pt": "the real training datasets and a "
                                                       "stage-1 run of the full network",
    "torchrun --nproc_per_node 8 -m maed_cli train --config configs/stage2.yaml "
    "data.data_dir=/data/maed": "8 GPUs and the real datasets; tests/test_train.py trains "
                                "2 gloo processes",
}


# --- the list is the README ------------------------------------------------------------------

def test_readme_parser_joins_continuations_and_drops_comments():
    text = ("```bash\n# a comment\nmaed a 'x # y' \\\n    --b 1   # note\n```\n"
            "```\nDIR/summary.json  a listing\nmaed c\n```\n```python\nmaed no\n```\n")
    assert readme_commands(text) == ["maed a 'x # y' --b 1", "maed c"]


def test_every_readme_command_is_listed():
    unknown = [c for c in readme_commands() if c not in RUN and c not in SKIPPED]
    assert not unknown, (
        "README.md shows command lines that tests/test_readme_commands.py neither runs nor "
        "skips. For each, add an entry to RUN (a Case saying which synthetic stand-ins it "
        "needs and what to check) or, if it cannot run offline, to SKIPPED with the reason:\n"
        + "\n".join(f"    {c!r}: Case(...),   # or in SKIPPED: {c!r}: \"why\"," for c in unknown))


def test_every_listed_command_is_in_the_readme():
    shown = set(readme_commands())
    stale = [c for c in [*RUN, *SKIPPED] if c not in shown]
    assert not stale, ("tests/test_readme_commands.py lists command lines README.md no "
                       "longer shows; remove (or update) them in RUN/SKIPPED:\n"
                       + "\n".join(f"    {c!r}" for c in stale))
    assert not set(RUN) & set(SKIPPED)


# --- synthetic stand-ins ------------------------------------------------------------------------

VIDEO_SIZE = (160, 120)
CLIP_FRAMES = 30
FPS = 10.0


def person_boxes(width: int, height: int) -> np.ndarray:
    """Two fixed person boxes (x1, y1, x2, y2) for any frame of a width x height video."""
    return np.array([[0.12 * width, 0.1 * height, 0.42 * width, 0.92 * height],
                     [0.58 * width, 0.12 * height, 0.86 * width, 0.9 * height]], np.float32)


def write_video(path: Path, frames: int, fps: float = FPS, size=VIDEO_SIZE) -> Path:
    """Grey frames with two coloured 'people' inside `person_boxes` that move a little."""
    from maed_cli.video.io import VideoWriter
    width, height = size
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.stem + ".tmp.mp4")  # any container name: written as mp4
    with VideoWriter(tmp, fps) as writer:
        for t in range(frames):
            frame = np.full((height, width, 3), 180, np.uint8)
            for k, (x1, y1, x2, y2) in enumerate(person_boxes(width, height).astype(int)):
                frame[y1:y2, x1:x2] = (60 + 120 * k, 90 + (t * 7) % 60, 200 - 100 * k)
            writer.write(frame)
    tmp.rename(path)
    return path


class BoxDetector:
    """Stands in for the YOLO person detector: `person_boxes` in every frame."""

    def __init__(self, *args, **kwargs):
        pass

    def stream(self, frames):
        from maed_cli.video.detect import Detections
        for index, frame in frames:
            boxes = person_boxes(frame.shape[1], frame.shape[0])
            yield index, frame, Detections(boxes, np.full(len(boxes), 0.9, np.float32))


class Workspace:
    """Synthetic stand-ins built once per module (each on first use) and put into a
    command's working folder under the README's names."""

    def __init__(self, root: Path, body, assets: dict):
        self.root, self.body, self.assets = root, body, assets
        self._built: dict[str, Path] = {}

    def _once(self, key: str, build: Callable[[Path], object]) -> Path:
        if key not in self._built:
            path = self.root / "built" / key
            path.parent.mkdir(parents=True, exist_ok=True)
            build(path)
            self._built[key] = path
        return self._built[key]

    # assets
    def home(self) -> Path:
        def build(home: Path) -> None:
            from maed_cli import assets
            from maed_cli.model import MAED, save_checkpoint
            (home / "smpl").mkdir(parents=True)
            torch.manual_seed(0)
            save_checkpoint(home / "model_best.pth.tar", MAED(**TINY))
            shutil.copy(self.assets["npz"], home / assets.SMPL_NPZ)
            shutil.copy(self.assets["extra"], home / assets.REGRESSOR_EXTRA)
            shutil.copy(self.assets["h36m"], home / assets.REGRESSOR_H36M)
            (home / "yolo11n.pt").write_bytes(b"stand-in: the detector is replaced")
        return self._once("home", build)

    def video(self, name: str, frames: int = CLIP_FRAMES) -> Path:
        return self._once(f"videos/{name}", lambda p: write_video(p, frames))

    def boxes_json(self) -> Path:
        def build(path: Path) -> None:
            records = [{"frame": t, "x1": float(b[0]), "y1": float(b[1]), "x2": float(b[2]),
                        "y2": float(b[3]), "track_id": k + 1}
                       for t in range(CLIP_FRAMES)
                       for k, b in enumerate(person_boxes(*VIDEO_SIZE))]
            path.write_text(json.dumps(records))
        return self._once("boxes.json", build)

    def demo_results(self) -> Path:
        def build(path: Path) -> None:
            assert main(["demo", str(self.video("clip.mp4")), "--boxes", str(self.boxes_json()),
                         "-o", str(path), "--checkpoint", str(self.home() / "model_best.pth.tar"),
                         "--smpl", str(self.assets["npz"]), "--quiet"]) == 0
        return self._once("demo-results", build)

    def vibe_pkl(self) -> Path:
        def build(path: Path) -> None:
            import joblib

            from maed_cli.results import load_result_set
            results = load_result_set(self.demo_results())
            joblib.dump({tid: {"orig_cam": t.orig_cam, "verts": np.asarray(t.verts),
                               "frame_ids": t.frame_ids, "pose": t.pose, "betas": t.betas}
                         for tid, t in results.tracks.items()}, path)
        return self._once("vibe_output.pkl", build)

    def threedpw(self) -> Path:
        def build(path: Path) -> None:
            from eval_fixtures import make_3dpw
            for split in ("test", "val"):
                make_3dpw(path, self.body, split=split, sequences=1, frames=20, people=1)
        return self._once("3DPW", build)

    def db_file(self, dataset: str) -> Path:
        def build(path: Path) -> None:
            import joblib
            from eval_fixtures import gt_joints_fn

            from maed_cli.data.evaluation_sets.threedpw import build_from_sequences
            root = self.threedpw()
            evalset = build_from_sequences(root, "test", gt_joints_fn(self.body))
            n = len(evalset)
            names = np.array([str(Path(p).relative_to(root)) for p in evalset.img_name])
            joints = np.zeros((n, 49, 4))
            db = {"vid_name": evalset.vid_name, "frame_id": evalset.frame_id,
                  "img_name": names, "bbox": evalset.bbox}
            if dataset == "3dpw":
                joints[:, 25:39, :3] = evalset.joints3d
                joints[:, 25:39, 3] = 1
                db.update(pose=evalset.pose, shape=evalset.shape, valid=evalset.valid)
            else:  # MPI-INF-3DHP layout: 17 joints at 25..38 + 39, 41, 43
                rows = list(range(25, 39)) + [39, 41, 43]
                joints[:, rows, :3] = np.random.default_rng(0).normal(0, 0.3, (n, 17, 3))
                joints[:, rows, 3] = 1
                db.update(valid_i=np.ones(n))
            db["joints3D"] = joints
            joblib.dump(db, path)
        return self._once(f"{dataset}_test_db.pt", build)

    def other_predictions(self) -> Path:
        def build(path: Path) -> None:
            from eval_fixtures import gt_joints_fn

            from maed_cli.data.evaluation_sets.threedpw import build_from_sequences
            evalset = build_from_sequences(self.threedpw(), "test", gt_joints_fn(self.body))
            np.savez(path, vid_name=evalset.vid_name, frame_id=evalset.frame_id,
                     pose=evalset.pose + 0.05, betas=evalset.shape)
        return self._once("other_method.npz", build)

    def batch_results(self) -> Path:
        """The README batch line's results when it ran already, else a one-video batch."""
        def build(path: Path) -> None:
            self.provide("clips/", path)
            assert main(["batch", str(path / "clips"), "--output", str(path / "results"),
                         "--interp", "8", "--quiet"]) == 0
        return self._once("batch", build) / "results"

    def provide(self, need: str, folder: Path) -> None:
        """Put the stand-in called `need` (a README name) into `folder`."""
        target = folder / need.rstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        if need in ("examples/vtest.mp4", "long.mp4", "input.mp4", "pan.mp4"):
            target.symlink_to(self.video(need.replace("/", "_")))
        elif need == "clip.mov":
            target.symlink_to(self.video("clip.mp4"))
        elif need == "match.mp4":  # --start 10s --end 40s: a 45 s video at 2 fps
            target.symlink_to(self._once("videos/match.mp4",
                                         lambda p: write_video(p, 90, fps=2.0)))
        elif need in ("photo.jpg", "shoot/", "picked.txt", "frames/"):
            self.provide_images(need, folder)
        elif need == "boxes.json":
            target.symlink_to(self.boxes_json())
        elif need == "results/":
            shutil.copytree(self.demo_results(), target)
        elif need == "vibe_output.pkl":
            target.symlink_to(self.vibe_pkl())
        elif need in ("clips/", "more/", "list.txt"):  # copies: batch runs a file once
            video = {"clips/": "a.mp4", "more/": "sub/b.mp4", "list.txt": "c.mp4"}[need]
            where = (target if need != "list.txt" else folder / "listed") / video
            where.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(self.video("clip.mp4"), where)
            if need == "list.txt":
                target.write_text("# one video per line\nlisted/c.mp4\n")
        elif need == "batch-results/":
            shutil.copytree(self.batch_results(), folder / "results")
        elif need == "model_best.pth.tar":
            target.symlink_to(self.home() / "model_best.pth.tar")
        elif need == "SMPL_NEUTRAL.pkl":
            target.symlink_to(self.assets["pkl"])
        elif need == "data/smpl_data/":
            target.mkdir(parents=True)
            for key in ("extra", "h36m"):
                (target / Path(self.assets[key]).name).symlink_to(self.assets[key])
        elif need == "3DPW/":
            target.symlink_to(self.threedpw())
        elif need == "data/imageFiles":
            target.symlink_to(self.threedpw() / "imageFiles")
        elif need in ("3dpw_test_db.pt", "mpii3d_test_db.pt"):
            target.symlink_to(self.db_file(need.split("_")[0]))
        elif need == "other_method.npz":
            target.symlink_to(self.other_predictions())
        elif need == "synth":
            if not (folder / "synth/database").is_dir():
                run_line(SYNTH_TRAIN, RUN[SYNTH_TRAIN])
        elif need == "synth/run":
            self.provide("synth", folder)
            if not (folder / "synth/run/checkpoints/last.pt").is_file():
                assert run_line(SMOKE_TRAIN, RUN[SMOKE_TRAIN])[0] == 0
        else:
            raise AssertionError(f"no stand-in called {need!r}")


def _frames_of(video: Path) -> list[np.ndarray]:
    """The RGB frames of one of the stand-in videos."""
    import imageio_ffmpeg
    reader = imageio_ffmpeg.read_frames(str(video))
    meta = next(reader)
    width, height = meta["size"]
    return [np.frombuffer(raw, np.uint8).reshape(height, width, 3) for raw in reader]


def _write_image(path: Path, rgb: np.ndarray) -> None:
    import cv2
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))


def _provide_images(self, need: str, folder: Path) -> None:
    """Photos cut from the stand-in video: one photo, a shoot of unrelated photos (two sizes,
    two formats), a list naming one of them, and the numbered frames of a video."""
    import cv2
    frames = _frames_of(self.video("clip.mp4"))
    if need == "photo.jpg":
        _write_image(folder / "photo.jpg", frames[0])
    elif need == "shoot/":
        _write_image(folder / "shoot/day1/a.png", frames[3])
        _write_image(folder / "shoot/b.jpg", cv2.resize(frames[9], (200, 150)))
    elif need == "picked.txt":
        _write_image(folder / "picked/c.jpg", frames[12])
        (folder / "picked.txt").write_text("picked/c.jpg\n")
    else:
        for k, frame in enumerate(frames):
            _write_image(folder / f"frames/frame_{k + 1:04d}.png", frame)


Workspace.provide_images = _provide_images


def run_line(line: str, case: Case) -> tuple[int, str]:
    """Run a README line in-process in the current folder; (exit status, its output)."""
    import contextlib
    import io
    for old, new in case.replace.items():
        line = line.replace(old, new)
    argv = shlex.split(line)
    out = io.StringIO()  # the rich consoles write to whatever sys.stdout/stderr is now
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        if argv[0] == "maed":
            code = main(argv[1:])
        elif argv[:3] == ["python", "-m", "maed_cli.data.training_sets.synthetic_train"]:
            from maed_cli.data.training_sets.synthetic_train import main as synthetic_train
            code = synthetic_train(argv[3:])
        else:
            raise AssertionError(f"no in-process runner for {line!r}")
    return code, out.getvalue()


@pytest.fixture(scope="module")
def workspace(tmp_path_factory, synthetic_body, synthetic_assets) -> Workspace:
    return Workspace(tmp_path_factory.mktemp("readme"), synthetic_body, synthetic_assets)


@pytest.fixture(scope="module")
def training_folder(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("readme_training")


def _params():
    for line, case in RUN.items():
        marks = [pytest.mark.slow] if case.slow else []
        yield pytest.param(line, marks=marks, id=line[:60])


@pytest.mark.parametrize("line", list(_params()))
def test_readme_command_runs(line, workspace, training_folder, tmp_path, monkeypatch,
                             _isolated_asset_home):
    case = RUN[line]
    if case.cuda and not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU (--device cuda)")
    import maed_cli.pipeline as pipeline
    monkeypatch.setattr(pipeline, "PersonDetector", BoxDetector)
    if case.home == "installed":
        monkeypatch.setenv("MAED_HOME", str(workspace.home()))
    folder = training_folder if case.folder == "training" else tmp_path / "cwd"
    folder.mkdir(exist_ok=True)
    for need in case.needs:
        monkeypatch.chdir(folder)
        workspace.provide(need, folder)
    monkeypatch.chdir(folder)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the test machine is shared; one thread is also deterministic
    try:
        code, output = run_line(line, case)
    finally:
        torch.set_num_threads(threads)
    assert code == 0, output[-3000:]
    if case.check is not None:
        case.check(folder, output)
    if case.keeps:  # later lines may start from what this one made
        workspace._built[case.keeps] = folder
