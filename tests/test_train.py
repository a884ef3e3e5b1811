"""Losses and the trainer: smoke training of both stages with a resume, overfitting, DDP with
two gloo processes, kill-and-resume equals an uninterrupted run, NaN stop."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from maed_cli.body.geometry import axis_angle_to_rotmat
from maed_cli.data.training_sets.synthetic_train import write_synthetic_train_data
from maed_cli.train.config import load_config
from maed_cli.train.losses import MAEDLoss

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable


@pytest.fixture(scope="module")
def synth(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("train_data")
    write_synthetic_train_data(folder)
    return folder


@pytest.fixture
def one_thread():
    """The machine is shared: one intra-op thread keeps CPU training fast and deterministic."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def overrides(synth: Path, assets: dict, out: Path, *extra: str) -> list[str]:
    return [f"data.data_dir={synth}", f"body.smpl={assets['npz']}",
            f"body.j_regressor_extra={assets['extra']}",
            f"body.j_regressor_h36m={assets['h36m']}", f"out_dir={out}", *extra]


# --- losses ---------------------------------------------------------------------------------

def _pred(n: int, t: int, seed: int = 0, requires_grad: bool = False) -> dict:
    g = torch.Generator().manual_seed(seed)
    pose = torch.randn(n, t, 72, generator=g) * 0.2
    betas = torch.randn(n, t, 10, generator=g) * 0.5
    if requires_grad:
        pose.requires_grad_(True)
        betas.requires_grad_(True)
    rotmat = axis_angle_to_rotmat(pose.reshape(n, t, 24, 3))
    cam = torch.tensor([0.9, 0.0, 0.1]).expand(n, t, 3)
    return {"pose": pose, "betas": betas, "rotmat": rotmat, "cam": cam}


def _batch(n: int, t: int, w_smpl: float, w_3d: float, seed: int = 1) -> dict:
    g = torch.Generator().manual_seed(seed)
    kp2d = torch.rand(n, t, 49, 3, generator=g) * 2 - 1
    kp2d[..., 2] = 1
    kp3d = torch.randn(n, t, 49, 4, generator=g) * 0.3
    kp3d[..., 3] = 0
    kp3d[..., 25:39, 3] = 1
    return {"kp2d": kp2d, "kp3d": kp3d, "pose": torch.randn(n, t, 72, generator=g) * 0.2,
            "shape": torch.randn(n, t, 10, generator=g), "w_smpl": torch.full((n, t), w_smpl),
            "w_3d": torch.full((n, t), w_3d)}


def test_images_without_smpl_get_no_pose_or_shape_loss(synthetic_body):
    loss = MAEDLoss(synthetic_body)
    pred = _pred(3, 1, requires_grad=True)
    total, terms = loss(pred, _batch(3, 1, w_smpl=0.0, w_3d=0.0))
    assert terms["pose"] == 0 and terms["shape"] == 0 and terms["kp_3d"] == 0
    assert terms["kp_2d"] > 0
    total.backward()
    grad_without = pred["betas"].grad.clone()
    pred2 = _pred(3, 1, requires_grad=True)
    _, terms_with = loss(pred2, _batch(3, 1, w_smpl=1.0, w_3d=1.0))
    assert terms_with["pose"] > 0 and terms_with["shape"] > 0 and terms_with["kp_3d"] > 0
    # the shape label does not act on an image without a fit
    b = _batch(3, 1, w_smpl=0.0, w_3d=0.0)
    b["shape"] = b["shape"] + 5
    pred3 = _pred(3, 1, requires_grad=True)
    loss(pred3, b)[0].backward()
    assert torch.allclose(pred3["betas"].grad, grad_without)


def test_loss_terms_match_their_definitions(synthetic_body):
    loss = MAEDLoss(synthetic_body)
    pred, batch = _pred(2, 3), _batch(2, 3, 1.0, 1.0)
    total, terms = loss(pred, batch)
    flat = torch.cat([pred["pose"].reshape(6, 72), pred["betas"].reshape(6, 10)], 1)
    assert terms["norm"] == pytest.approx(float(torch.linalg.norm(flat) / 6), rel=1e-5)
    gt_rot = axis_angle_to_rotmat(batch["pose"].reshape(6, 24, 3))
    pred_rot = axis_angle_to_rotmat(pred["pose"].reshape(6, 24, 3))
    assert terms["pose"] == pytest.approx(float(((pred_rot - gt_rot) ** 2).mean()), rel=1e-5)
    assert terms["loss"] == pytest.approx(300 * terms["kp_2d"] + 600 * terms["kp_3d"]
                                          + 60 * terms["pose"] + 0.06 * terms["shape"]
                                          + terms["norm"], rel=1e-5)
    # L3D is centred on the LSP hips: moving the label does not change it
    moved = dict(batch, kp3d=batch["kp3d"] + torch.tensor([1.0, -2.0, 3.0, 0.0]))
    assert loss(pred, moved)[1]["kp_3d"] == pytest.approx(terms["kp_3d"], rel=1e-5)


# --- the trainer ----------------------------------------------------------------------------

def _stage1(synth, assets, out, *extra):
    return load_config(ROOT / "configs/cpu-smoke-stage1.yaml",
                       overrides(synth, assets, out, "data.batch_img=1", *extra))


def test_nan_loss_stops_with_step_and_batch(synth, synthetic_assets, tmp_path, one_thread):
    from maed_cli.train.trainer import Trainer, TrainingDiverged
    trainer = Trainer(_stage1(synth, synthetic_assets, tmp_path / "run"), quiet=True)
    batch = trainer.streams["images"].next()
    batch["kp2d"][..., 0] = float("nan")
    trainer.streams["images"].next = lambda: batch
    with pytest.raises(TrainingDiverged, match=r"step 1 \(global step 1\).*coco2014-all_train"
                                               r"_db\.pt:\d+"):
        trainer.fit()
    assert not (tmp_path / "run/checkpoints/last.pt").exists()


def test_overfit_fixed_batch_loss_goes_down(synth, synthetic_assets, tmp_path, one_thread):
    from maed_cli.train.trainer import Trainer
    cfg = _stage1(synth, synthetic_assets, tmp_path / "run", "val.enabled=false")
    trainer = Trainer(cfg, quiet=True)
    batch = trainer.streams["images"].next()
    trainer.streams["images"].next = lambda: batch
    trainer.model.train()
    losses = [trainer.train_step()["loss"] for _ in range(50)]
    first, last = sum(losses[:5]) / 5, sum(losses[-5:]) / 5
    assert last < 0.8 * first, losses  # KTD dropout (0.5) makes single steps noisy


def test_smoke_both_stages_with_resume(synth, synthetic_assets, tmp_path):
    """The CPU smoke configuration through the CLI: stage 1, stage 2 from its weights,
    stopped after 2 steps and resumed to the end, with 3DPW validation each epoch."""
    from maed_cli.cli import main
    env_threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        s1 = tmp_path / "s1"
        base = overrides(synth, synthetic_assets, s1, "data.batch_img=1")
        assert main(["train", "-q", "--config", str(ROOT / "configs/cpu-smoke-stage1.yaml"),
                     *base]) == 0
        assert (s1 / "checkpoints/last.pt").is_file() and (s1 / "config.yaml").is_file()
        s2 = tmp_path / "s2"
        args = overrides(synth, synthetic_assets, s2,
                         f"init.pretrained={s1 / 'checkpoints/last.pt'}", "max_steps=2")
        assert main(["train", "-q", "--config", str(ROOT / "configs/cpu-smoke.yaml"),
                     *args]) == 0
        mid = torch.load(s2 / "checkpoints/last.pt", weights_only=True)
        assert mid["train_state"]["global_step"] == 2 and mid["train_state"]["epoch"] == 1
        # a second start without --resume refuses to overwrite the run
        assert main(["train", "-q", "--config", str(ROOT / "configs/cpu-smoke.yaml"),
                     *args]) == 2
        assert main(["train", "-q", "--resume", str(s2 / "checkpoints/last.pt"),
                     "max_steps=null"]) == 0
        end = torch.load(s2 / "checkpoints/last.pt", weights_only=True)
        assert end["train_state"]["global_step"] == 4 and end["train_state"]["epoch"] == 2
        assert end["meta"]["stage"] == 2 and end["config"]["st_mode"] == "parallel"
        assert (s2 / "checkpoints/best.pt").is_file()
        rows = (s2 / "metrics.csv").read_text().splitlines()
        train_steps = [int(r.split(",")[2]) for r in rows[1:] if r.startswith("train")]
        assert train_steps == [1, 2, 3, 4]
        assert sum(r.startswith("val") for r in rows) == 2
        # the trained network loads with the ordinary checkpoint loader
        from maed_cli.model import load_checkpoint
        assert load_checkpoint(s2 / "checkpoints/best.pt").config.num_blocks == 1
    finally:
        torch.set_num_threads(env_threads)


def _ddp_worker(rank: int, world: int, port: int, synth: str, assets: dict, out: str,
                result: str) -> None:
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    from maed_cli.train.trainer import Trainer
    # stage 2: video fwd/bwd without gradient sync, image fwd/bwd with it, one step
    cfg = load_config(ROOT / "configs/cpu-smoke.yaml",
                      overrides(Path(synth), assets, Path(out), "max_steps=2",
                                "val.enabled=false"))
    trainer = Trainer(cfg, quiet=True)
    assert trainer.info.world_size == 2 and trainer.info.rank == rank
    trainer.fit()
    torch.save(trainer.model.state_dict(), Path(result) / f"rank{rank}.pt")
    trainer.close()


def test_two_gloo_processes_hold_identical_weights(synth, synthetic_assets, tmp_path):
    import socket

    import torch.multiprocessing as mp
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(_ddp_worker, args=(2, port, str(synth), synthetic_assets, str(tmp_path / "run"),
                                str(tmp_path)), nprocs=2, join=True)
    w0 = torch.load(tmp_path / "rank0.pt", weights_only=True)
    w1 = torch.load(tmp_path / "rank1.pt", weights_only=True)
    assert all(torch.equal(w0[k], w1[k]) for k in w0)
    from maed_cli.model import MAED
    torch.manual_seed(0)
    init = MAED(1, 12, "parallel", 64).state_dict()
    assert not torch.equal(init["decoder.fc1.weight"], w0["decoder.fc1.weight"])  # it trained
    # only rank 0 wrote the checkpoint and the metrics
    assert (tmp_path / "run/checkpoints/last.pt").is_file()
    assert len((tmp_path / "run/metrics.csv").read_text().splitlines()) == 3


def test_kill_and_resume_equals_uninterrupted(synth, synthetic_assets, tmp_path, one_thread):
    """SIGKILL in the middle of epoch 2 (after a mid-epoch checkpoint), resume: the weights
    after 6 steps equal those of a run that was never interrupted."""
    from maed_cli.train.trainer import KILL_ENV, Trainer
    common = ("optim.iters_per_epoch=3", "optim.epochs=2", "save_every_steps=2")
    straight = Trainer(_stage1(synth, synthetic_assets, tmp_path / "a", *common), quiet=True)
    straight.fit()
    killed_out = tmp_path / "b"
    cmd = [PY, "-m", "maed_cli", "train", "-q", "--config",
           str(ROOT / "configs/cpu-smoke-stage1.yaml"),
           *overrides(synth, synthetic_assets, killed_out, "data.batch_img=1", *common)]
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT), **{KILL_ENV: "5"})
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == -9, proc.stderr[-2000:]
    ckpt = torch.load(killed_out / "checkpoints/last.pt", weights_only=True)
    assert ckpt["train_state"]["global_step"] == 4 and ckpt["train_state"]["step_in_epoch"] == 1
    resumed = Trainer(None, resume=killed_out / "checkpoints/last.pt", quiet=True)
    assert resumed.global_step == 4
    resumed.fit()
    a, b = straight.model.state_dict(), resumed.model.state_dict()
    worst = max(float((a[k] - b[k]).abs().max()) for k in a)
    assert worst < 1e-5
    steps = [r.split(",")[2] for r in (killed_out / "metrics.csv").read_text().splitlines()[1:]]
    assert steps == ["1", "2", "3", "4", "5", "6"]


def test_timm_and_pretrained_initialisation(tmp_path):
    from maed_cli.errors import CheckpointError
    from maed_cli.model import MAED, save_checkpoint
    from maed_cli.train.trainer import load_pretrained, load_timm_vit
    torch.manual_seed(1)
    donor = MAED(2, 12, "vanilla", 64)
    # a timm-style state dict: the encoder's names without the prefix, plus timm's head
    timm_state = {k[len("encoder."):]: v for k, v in donor.state_dict().items()
                  if k.startswith("encoder.")}
    timm_state["head.weight"] = torch.zeros(21843, 768)
    torch.save(timm_state, tmp_path / "vit.pth")
    torch.manual_seed(2)
    model = MAED(1, 12, "parallel", 64)
    report = load_timm_vit(model, str(tmp_path / "vit.pth"))
    assert torch.equal(model.state_dict()["encoder.blocks.0.attn.qkv.weight"],
                       donor.state_dict()["encoder.blocks.0.attn.qkv.weight"])
    assert report["not_in_file"] > 0  # ts_attn, temp_embed and the decoder stay as they are
    torch.save({"blocks.0.norm1.weight": torch.ones(768)}, tmp_path / "other.pth")
    with pytest.raises(CheckpointError, match="not an R50\\+ViT-B/16"):
        load_timm_vit(model, str(tmp_path / "other.pth"))
    # stage 1 (vanilla) -> stage 2 (parallel): the encoder transfers, the decoder is re-made
    save_checkpoint(tmp_path / "s1.pt", donor)
    fresh = MAED(2, 12, "parallel", 64)
    decoder_before = fresh.state_dict()["decoder.fc1.weight"].clone()
    report = load_pretrained(fresh, str(tmp_path / "s1.pt"), reinit_decoder=True)
    state = fresh.state_dict()
    assert torch.equal(state["encoder.pos_embed"], donor.state_dict()["encoder.pos_embed"])
    assert torch.equal(state["decoder.fc1.weight"], decoder_before)
    assert report["not_in_file"] == len([k for k in state if "ts_attn" in k or "temp_embed" in k
                                         or k.startswith("decoder.")])


def test_weighted_hybrid_step(synth, synthetic_assets, tmp_path, one_thread):
    """The official single frame-weighted loss: one backward over video and image batches."""
    from maed_cli.train.trainer import Trainer
    cfg = load_config(ROOT / "configs/cpu-smoke.yaml",
                      overrides(synth, synthetic_assets, tmp_path / "run", "hybrid=weighted",
                                "val.enabled=false", "data.video_2d=[]"))
    trainer = Trainer(cfg, quiet=True)
    before = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    terms = trainer.train_step()
    assert terms["frames"] == 2 + 1  # one 2-frame 3D clip and one image
    assert {"loss", "img_loss", "kp_3d", "img_kp_2d"} <= set(terms)
    after = trainer.model.state_dict()
    assert not torch.equal(before["encoder.blocks.0.attn.ts_attn.weight"],
                           after["encoder.blocks.0.attn.ts_attn.weight"])


@pytest.mark.parametrize("where, message", [
    ("proc", r"out_dir /proc/maed-no-such/run: cannot write in /proc"),
    ("file", r"out_dir .*a_file: exists and is not a folder"),
])
def test_unwritable_out_dir_is_refused_before_any_work(synth, synthetic_assets, tmp_path,
                                                        capsys, monkeypatch, where, message):
    if where == "proc" and not Path("/proc/self").is_dir():
        pytest.skip("needs Linux /proc")
    out = Path("/proc/maed-no-such/run") if where == "proc" else tmp_path / "a_file"
    if where == "file":
        out.write_text("not a folder")
    import maed_cli.data.training_sets.datasets as datasets

    def never(*args, **kwargs):
        raise AssertionError("the datasets were built before out_dir was checked")
    monkeypatch.setattr(datasets, "build_datasets", never)
    from maed_cli.cli import main
    code = main(["train", "-q", "--config", str(ROOT / "configs/cpu-smoke.yaml"),
                 *overrides(synth, synthetic_assets, out)])
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err
    assert re.search(message, " ".join(err.split())), err


def test_resume_from_a_folder_names_the_file_to_give(tmp_path, capsys):
    from maed_cli.cli import main
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    code = main(["train", "-q", "--resume", str(run)])
    err = " ".join(capsys.readouterr().err.split())
    assert code == 2
    assert f"{run} is a folder; give the file (e.g. {run / 'checkpoints/last.pt'})" in err


# --- training goes on after validation (issue #19) --------------------------------------------

@pytest.mark.parametrize("stage, hybrid", [(1, None), (2, "accumulate"), (2, "weighted")])
def test_one_process_trains_on_after_each_validation(synth, synthetic_assets, tmp_path,
                                                     one_thread, stage, hybrid):
    """Two epochs in one process with 3DPW validation after each: the epoch after a
    validation trains (its weights move), and both validations are logged."""
    from maed_cli.train.trainer import Trainer
    extra = ["optim.epochs=2", "optim.iters_per_epoch=1", "val.enabled=true",
             "val.max_frames=8"]
    if stage == 1:
        cfg = _stage1(synth, synthetic_assets, tmp_path / "run", *extra)
    else:
        cfg = load_config(ROOT / "configs/cpu-smoke.yaml",
                          overrides(synth, synthetic_assets, tmp_path / "run",
                                    f"hybrid={hybrid}", *extra))
    trainer = Trainer(cfg, quiet=True)
    after_validation = []

    def validate_and_record(model, body, epoch):
        result = real(model, body, epoch)
        after_validation.append({k: v.clone() for k, v in model.state_dict().items()})
        return result
    real, trainer.validator = trainer.validator, validate_and_record
    summary = trainer.fit()
    assert summary["epochs"] == 2 and summary["global_step"] == 2
    assert len(after_validation) == 2 and set(summary["val"]) >= {"mpjpe", "pa_mpjpe"}
    final = trainer.model.state_dict()
    moved = [k for k, v in after_validation[0].items()
             if v.is_floating_point() and not torch.equal(v, final[k])]
    assert "encoder.patch_embed.backbone.stem.conv.weight" in moved
    assert "decoder.fc1.weight" in moved
    assert all(p.requires_grad for p in trainer.model.parameters())
    rows = (tmp_path / "run/metrics.csv").read_text().splitlines()[1:]
    assert [r.split(",")[0] for r in rows] == ["train", "val", "train", "val"]
