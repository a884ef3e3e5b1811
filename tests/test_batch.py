"""`maed batch` on CPU: 2 ranks over 6 tiny synthetic videos, kill + resume, a corrupt file."""
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from maed_cli.batch import (VideoItem, collect_videos, latest_records, rank_info,
                            read_manifests, remove_stale_parts, shard, terminate_as_exit)
from maed_cli.cli import main
from maed_cli.errors import InputError
from maed_cli.model import MAED, save_checkpoint
from maed_cli.results import ARRAY_KEYS, load_results
from maed_cli.video.io import VideoWriter, open_frames

from synthetic_video import make_walkers_video, write_boxes

ROOT = Path(__file__).resolve().parents[1]
TINY = dict(num_blocks=1, num_heads=2, hidden_dim=64, embed_dim=96, backbone_layers=(1, 1, 1))
NAMES = ["a.mp4", "b.mp4", "c.mp4", "sub/d.mp4", "sub/e.mp4", "sub/f.mp4"]
# fast settings: one person, ~10 frames, the network on every 8th frame only
FAST = ["--min-track", "5", "--interp", "8", "--batch-size", "2", "--device", "cpu"]


@pytest.fixture(scope="module")
def videos(tmp_path_factory, synthetic_body, synthetic_assets):
    root = tmp_path_factory.mktemp("batch")
    torch.manual_seed(0)
    ckpt = save_checkpoint(root / "tiny.pt", MAED(**TINY))
    # one person rendered once; the six videos are different stretches of it
    info = make_walkers_video(root / "source.mp4", synthetic_body, num_frames=11, people=1)
    frames = [frame for _, frame in open_frames(root / "source.mp4")]
    folder = root / "videos"
    for i, name in enumerate(NAMES):
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        first, count = i % 3, 8 + i % 3
        with VideoWriter(path, info["fps"]) as writer:
            for frame in frames[first:first + count]:
                writer.write(frame)
        boxes = [dict(b, frame=b["frame"] - first) for b in info["boxes"]
                 if first <= b["frame"] < first + count]
        write_boxes(path.with_name(path.name + ".boxes.json"), boxes)
    return {"root": root, "ckpt": ckpt, "folder": folder, "smpl": synthetic_assets["npz"],
            "extra": synthetic_assets["extra"]}


@pytest.fixture
def home(videos, _isolated_asset_home):
    shutil.copy(videos["extra"], _isolated_asset_home / "J_regressor_extra.npy")
    return _isolated_asset_home


def batch_args(videos, inputs, out):
    return ["batch", *map(str, inputs), "--output", str(out), "--checkpoint",
            str(videos["ckpt"]), "--smpl", str(videos["smpl"]), *FAST, "--quiet"]


def child_env(**extra):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), str(ROOT / "tests")]),
               OMP_NUM_THREADS="1", **extra)
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT",
                 "SLURM_PROCID", "SLURM_NTASKS"):
        if name not in extra:
            env.pop(name, None)
    return env


def plain_rank(videos, inputs, out, rank, world):
    """One rank as Slurm would start it (no MASTER_ADDR: nobody waits at the end)."""
    return subprocess.Popen([sys.executable, "-m", "maed_cli", *batch_args(videos, inputs, out)],
                            env=child_env(SLURM_PROCID=str(rank), SLURM_NTASKS=str(world),
                                          SLURM_LOCALID=str(rank)),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def records_of(out):
    """Every manifest record, oldest first (so a slice is what one run appended)."""
    return sorted(read_manifests(out), key=lambda r: r["time"])


# --- pure parts ----------------------------------------------------------------------------

def test_shard_is_deterministic_balanced_and_complete():
    rng = np.random.default_rng(0)
    items = [VideoItem(Path(f"v{i}.mp4"), f"v{i}.mp4", int(s))
             for i, s in enumerate(rng.integers(1, 1000, 37))]
    for world in (1, 2, 3, 8):
        shares = shard(items, world)
        assert shard(list(reversed(items)), world) == shares  # order of the inputs is irrelevant
        names = [v.name for share in shares for v in share]
        assert sorted(names) == sorted(v.name for v in items)  # everything exactly once
        loads = [sum(v.size for v in share) for share in shares]
        assert max(loads) - min(loads) <= max(v.size for v in items)


def test_rank_info_from_torchrun_and_slurm():
    assert rank_info({}).world_size == 1
    info = rank_info({"RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "1"})
    assert (info.rank, info.world_size, info.local_rank, info.launcher) == (3, 4, 1, "torchrun")
    info = rank_info({"SLURM_PROCID": "5", "SLURM_NTASKS": "8", "SLURM_LOCALID": "1"})
    assert (info.rank, info.world_size, info.local_rank, info.launcher) == (5, 8, 1, "slurm")
    with pytest.raises(Exception, match="out of range"):
        rank_info({"RANK": "2", "WORLD_SIZE": "2"})


def test_collect_folder_glob_and_list(videos, tmp_path):
    by_folder = collect_videos([videos["folder"]])
    assert [v.name for v in by_folder] == NAMES
    by_glob = collect_videos([str(videos["folder"] / "sub" / "*.mp4")])
    assert [v.name for v in by_glob] == ["d.mp4", "e.mp4", "f.mp4"]
    listing = tmp_path / "list.txt"
    listing.write_text(f"# my videos\n{videos['folder'] / 'a.mp4'}\n\n"
                       f"{videos['folder'] / 'sub' / 'd.mp4'}\n")
    assert [v.name for v in collect_videos([listing])] == ["a.mp4", "sub/d.mp4"]
    assert collect_videos([listing])[0].boxes_file().name == "a.mp4.boxes.json"
    # the output folder inside an input folder is never taken for input
    assert collect_videos([videos["folder"]], exclude=videos["folder"] / "sub") == \
        by_folder[:3]


def test_only_list_files_are_read_as_lists(videos, tmp_path, capsys):
    table = tmp_path / "b_bad.csv"
    table.write_text("a,b,c\n1,2,3\n")
    with pytest.raises(InputError, match="b_bad.csv: not a video, a folder or a list of videos"):
        collect_videos([table])
    with pytest.raises(InputError, match="a.mp4.boxes.json: a boxes file"):
        collect_videos([videos["folder"] / "a.mp4.boxes.json"])
    listing = tmp_path / "videos.lst"
    listing.write_text("a.mp4\n")
    shutil.copy(videos["folder"] / "a.mp4", tmp_path / "a.mp4")
    assert [v.name for v in collect_videos([listing])] == ["a.mp4"]
    out = tmp_path / "out"
    assert main(["batch", str(table), "--output", str(out), "--quiet"]) == 2
    assert "not a video, a folder or a list of videos" in capsys.readouterr().err
    assert not out.exists()


def test_stale_temporary_folders_removed_and_sigterm_exits(tmp_path):
    out = tmp_path / "sub" / "a.mp4"
    stale = [tmp_path / "sub" / ".a.mp4.x1y2.part", tmp_path / "sub" / ".a.mp4.old"]
    other = tmp_path / "sub" / ".b.mp4.x1y2.part"  # another video's: not ours to remove
    for folder in (*stale, other):
        (folder / "tracks").mkdir(parents=True)
    remove_stale_parts(out)
    assert not any(f.exists() for f in stale) and other.is_dir()
    with pytest.raises(SystemExit) as exit_info, terminate_as_exit():
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)  # the handler interrupts this
    assert exit_info.value.code == 128 + signal.SIGTERM
    assert signal.getsignal(signal.SIGTERM) is not terminate_as_exit._handler


def test_next_video_first_pass_overlaps_current_network(monkeypatch, tmp_path):
    import maed_cli.batch as batch
    from maed_cli.errors import InputError
    from maed_cli.demo_options import DemoOptions
    events = []

    def fake_prepare(path, output, options, detector=None):
        events.append(("prepare", path.name))
        if path.name == "bad.mp4":
            raise InputError("bad.mp4: the video is corrupt")
        return SimpleNamespace(name=path.name, started=time.perf_counter())

    def fake_finish(prepared, model, body, checkpoint_info=None, on_results=None):
        events.append(("network", prepared.name))
        time.sleep(0.5)
        events.append(("finished", prepared.name))
        return SimpleNamespace(summary={"input": {"num_frames": 3}, "timings_s": {"total": 1}},
                               tracks=[None])

    monkeypatch.setattr(batch, "prepare_demo", fake_prepare)
    monkeypatch.setattr(batch, "finish_demo", fake_finish)
    jobs = [batch._Job(VideoItem(tmp_path / n, n, 1), DemoOptions(), "h", None, tmp_path / n)
            for n in ("a.mp4", "bad.mp4", "c.mp4", "d.mp4")]
    records = []
    batch._process(jobs, SimpleNamespace(model=None, body=None, checkpoint_info={}), None,
                   lambda job, status, **kw: records.append((job.item.name, status,
                                                             kw.get("error"))))
    assert records == [("a.mp4", "done", None),
                       ("bad.mp4", "failed", "bad.mp4: the video is corrupt"),
                       ("c.mp4", "done", None), ("d.mp4", "done", None)]
    # each first pass starts before the previous video leaves the network
    assert events.index(("prepare", "bad.mp4")) < events.index(("finished", "a.mp4"))
    assert events.index(("prepare", "d.mp4")) < events.index(("finished", "c.mp4"))


def test_start_and_end_checked_once_only_where_no_frame_rate_matters():
    from maed_cli.batch import check_options
    from maed_cli.demo_options import DemoOptions
    with pytest.raises(InputError, match="--end 2s must come after --start 5s"):
        check_options(DemoOptions(start="5s", end="2s"))
    with pytest.raises(InputError, match="--end 50 must come after --start 100"):
        check_options(DemoOptions(start="100", end="50"))
    # frames against seconds: right or wrong depending on each video's rate
    check_options(DemoOptions(start="100", end="4s"))
    check_options(DemoOptions(start="2s", end="30"))


@pytest.mark.parametrize("bad, message", [
    (["--device", "tpu"], "--device 'tpu'"),
    (["--device", "cuda:99"], "--device cuda:99"),
    (["--device", "mps"], "--device 'mps'"),
    (["--dtype", "fp8"], "--dtype 'fp8'"),
    (["--interp", "3"], "--interp 3"),
    (["--start", "abc"], "--start 'abc'"),
    (["--end", "2s", "--start", "5s"], "--end 2s must come after --start 5s"),
    (["--fps", "-1"], "--fps -1"),
    (["--tracker", "foo"], "--tracker 'foo'"),
    (["--detect-size", "33"], "must be a multiple of 32"),
    (["--crop-scale", "0"], "--crop-scale 0"),
])
def test_bad_options_refused_before_any_work(videos, tmp_path, monkeypatch, capsys, bad,
                                             message):
    import maed_cli.runner as runner

    def no_loading(*args, **kwargs):
        raise AssertionError("the model was loaded for settings that cannot run")

    monkeypatch.setattr(runner, "load_model_and_body", no_loading)
    out = tmp_path / "out"
    assert main(batch_args(videos, [videos["folder"]], out) + bad) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1, err
    assert not out.exists()  # no batch.json, no manifest: no video marked failed


def test_detect_size_reaches_the_detector(videos, tmp_path, monkeypatch):
    import maed_cli.runner as runner
    import maed_cli.pipeline as pipeline
    seen = {}

    class Detector:
        def __init__(self, weights, **kwargs):
            seen.update(kwargs)
            raise InputError("stop: the detector's settings are what this test is about")

    # a video without a boxes file needs the detector; no YOLO weights are installed here
    monkeypatch.setattr(runner, "preflight_demo", lambda *args, **kwargs: None)
    monkeypatch.setattr(runner, "load_model_and_body", lambda *args: None)
    monkeypatch.setattr(pipeline, "PersonDetector", Detector)
    folder = tmp_path / "unboxed"
    folder.mkdir()
    shutil.copy(videos["folder"] / "a.mp4", folder / "a.mp4")
    out = tmp_path / "out"
    assert main(batch_args(videos, [folder], out) + ["--detect-size", "320"]) == 2
    assert seen["imgsz"] == 320
    assert json.loads((out / "batch.json").read_text())["settings"]["detect_size"] == 320


# --- end to end ----------------------------------------------------------------------------

def test_two_ranks_torchrun_each_video_once_same_as_demo(videos, home, tmp_path, capsys):
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nnodes", "1",
           "--nproc_per_node", "2", "-m", "maed_cli",
           *batch_args(videos, [videos["folder"]], out)]
    proc = subprocess.run(cmd, env=child_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for rank in (0, 1):
        lines = (out / f"manifest-rank{rank}.jsonl").read_text().splitlines()
        assert lines, f"rank {rank} processed nothing"
        assert all(json.loads(line)["rank"] == rank for line in lines)
    records = records_of(out)
    assert sorted(r["video"] for r in records) == NAMES  # every video exactly once
    assert {r["status"] for r in records} == {"done"}
    assert all(r["people"] == 1 and r["frames"] >= 8 and r["error"] is None for r in records)
    summary = json.loads((out / "summary.json").read_text())  # rank 0, after the barrier
    assert summary["counts"]["done"] == 6 and summary["complete"] == 6

    # the same results as `maed demo`, bit for bit (same thread count), on the first video
    # of each rank
    first_of_rank: dict[int, str] = {}
    for record in records:
        first_of_rank.setdefault(record["rank"], record["video"])
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for name in first_of_rank.values():
            video = videos["folder"] / name
            single = tmp_path / "demo" / name
            code = main(["demo", str(video), "--boxes", str(video) + ".boxes.json",
                         "--output", str(single), "--checkpoint", str(videos["ckpt"]),
                         "--smpl", str(videos["smpl"]), *FAST, "--quiet"])
            assert code == 0, capsys.readouterr()
            want, _ = load_results(single)
            got, got_summary = load_results(out / name)
            assert len(got) == len(want) == 1
            for key in ARRAY_KEYS:
                np.testing.assert_array_equal(getattr(got[0], key), getattr(want[0], key),
                                              err_msg=f"{name}: {key}")
            hashes = {r["settings_hash"] for r in records if r["video"] == name}
            assert hashes == {got_summary["batch"]["settings_hash"]}
    finally:
        torch.set_num_threads(threads)

    # the same command again, in one process: everything is skipped, nothing recomputed
    capsys.readouterr()
    assert main(batch_args(videos, [videos["folder"]], out)) == 0
    again = records_of(out)[len(records):]
    assert sorted(r["video"] for r in again) == NAMES
    assert {r["status"] for r in again} == {"skipped"}
    assert main(["batch", "--summary", str(out)]) == 0
    text = capsys.readouterr().out
    assert "6 of 6 complete" in text and "sub/f.mp4" in text

    # asking for more files (--export) changes the settings: that video is done again
    assert main(batch_args(videos, [videos["folder"] / "a.mp4"], out) + ["--export", "json"]) \
        == 0
    last = records_of(out)[-1]
    assert (last["video"], last["status"]) == ("a.mp4", "done")
    assert last["settings_hash"] != records[0]["settings_hash"]
    assert (out / "a.mp4" / "export" / "joints.json").is_file()


def test_kill_resume_corrupt_and_retry(videos, home, tmp_path, capsys):
    broken = tmp_path / "broken.mp4"
    broken.write_text("not a video at all\n" * 20)
    shutil.copy(videos["folder"] / "a.mp4.boxes.json", tmp_path / "broken.mp4.boxes.json")
    listing = tmp_path / "videos.txt"
    listing.write_text("".join(f"{videos['folder'] / n}\n" for n in NAMES) + f"{broken}\n")
    out = tmp_path / "out"
    paths = [videos["folder"] / n for n in NAMES]
    # list entries in two folders: names are relative to their common folder
    items = collect_videos([listing])
    name_of = {Path(v.path): v.name for v in items}
    good = {name_of[p] for p in paths}
    bad_name = name_of[broken]
    assert len(items) == 7

    ranks = [plain_rank(videos, [listing], out, k, 2) for k in (0, 1)]
    manifest1 = out / "manifest-rank1.jsonl"
    deadline = time.monotonic() + 240
    while not (manifest1.is_file() and manifest1.read_text().count("\n") >= 1):
        assert time.monotonic() < deadline and ranks[1].poll() is None, ranks[1].stdout.read()
        time.sleep(0.05)
    ranks[1].send_signal(signal.SIGKILL)  # mid-run: rank 1 has more videos
    ranks[1].wait()
    ranks[0].wait(timeout=240)
    assert ranks[0].returncode in (0, 1), ranks[0].stdout.read()
    first = records_of(out)
    done_first = {r["video"] for r in first if r["status"] == "done"}
    assert len(done_first) < 6  # rank 1 did not finish its share
    # no visible results folder is partial; only hidden temporary folders may remain
    for summary in out.rglob("*.mp4"):
        assert summary.is_dir() and (summary / "summary.json").is_file()
    # the summary names the videos nobody has attempted yet
    capsys.readouterr()
    assert main(["batch", "--summary", str(out)]) == 1
    merged = json.loads((out / "summary.json").read_text())
    assert merged["counts"]["missing"] == 7 - len(latest_records(first)) >= 1
    assert merged["complete"] == len(done_first)

    # the same command again completes exactly the missing videos
    ranks = [plain_rank(videos, [listing], out, k, 2) for k in (0, 1)]
    for proc in ranks:
        proc.wait(timeout=240)
    second = records_of(out)[len(first):]
    done_second = Counter(r["video"] for r in second if r["status"] == "done")
    missing = good - done_first
    assert set(done_second) == missing and max(done_second.values()) == 1
    assert {r["video"] for r in second if r["status"] == "skipped"} == done_first
    latest = latest_records(records_of(out))
    assert len(latest) == 7
    bad = latest[bad_name]
    assert bad["status"] == "failed" and "broken.mp4" in bad["error"], bad
    assert all(latest[n]["status"] in ("done", "skipped") for n in good)
    assert not list(out.rglob("*.part")), "a temporary folder was left behind"
    assert not (out / bad_name).exists()

    # --retry-failed retries only the failed video (which fails again)
    capsys.readouterr()
    code = main(batch_args(videos, [listing], out) + ["--retry-failed"])
    assert code == 1  # a video is still failed
    third = records_of(out)[len(first) + len(second):]
    assert [(r["video"], r["status"]) for r in third] == [(bad_name, "failed")]
    assert main(["batch", "--summary", str(out)]) == 1
    assert "6 of 7 complete" in capsys.readouterr().out
