"""Validation during training leaves the network exactly as training needs it (issue #19):
`inference_view`, `predict(prepare=False)`, the trainer's validator, stale frozen weights."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from maed_cli.data.training_sets.synthetic_train import write_synthetic_train_data
from maed_cli.model import MAED
from maed_cli.model.backbone import StdConv2dSame
from maed_cli.model.inference import inference_view, prepare_for_inference
from maed_cli.train.config import load_config

ROOT = Path(__file__).resolve().parents[1]
TINY = dict(num_blocks=1, num_heads=2, hidden_dim=64, embed_dim=96, backbone_layers=(1, 1, 1))


def backward_all(out: dict) -> None:
    sum(v.float().sum() for v in out.values() if v.requires_grad).backward()


def model_state(model: nn.Module) -> dict:
    """Everything training depends on: values, requires_grad, strides (memory format), every
    module's training flag, the stem's space-to-depth switch, frozen/cached standardisation."""
    convs = [m for m in model.modules() if isinstance(m, StdConv2dSame)]
    return {
        "values": {k: v.detach().clone() for k, v in model.state_dict().items()},
        "requires_grad": [p.requires_grad for p in model.parameters()],
        "strides": [p.stride() for p in model.parameters()],
        "training": [m.training for m in model.modules()],
        "space_to_depth": [c.space_to_depth for c in convs],
        "frozen": [c.frozen_weight is not None for c in convs],
        "cached": [c._cache is not None for c in convs],
        "grad_mode": torch.is_grad_enabled(),
    }


def assert_same_state(before: dict, after: dict) -> None:
    for key in ("requires_grad", "strides", "training", "space_to_depth", "frozen", "cached",
                "grad_mode"):
        assert before[key] == after[key], key
    assert before["values"].keys() == after["values"].keys()
    changed = [k for k in before["values"] if not torch.equal(before["values"][k],
                                                               after["values"][k])]
    assert not changed, changed


@pytest.fixture
def tiny_training_model():
    torch.manual_seed(0)
    model = MAED(**TINY).train()
    model.encoder.pos_embed.requires_grad_(False)  # a deliberately frozen parameter
    model.decoder.eval()  # and a part deliberately kept in eval mode
    return model


def test_inference_view_runs_in_eval_without_grad_and_puts_everything_back(
        tiny_training_model):
    model = tiny_training_model
    before = model_state(model)
    x = torch.randn(1, 2, 3, 224, 224)
    with inference_view(model) as net:
        assert net is model
        assert not any(m.training for m in model.modules())
        assert not torch.is_grad_enabled()
        out = net(x)
        again = net(x)
    assert not out["cam"].requires_grad
    torch.testing.assert_close(out["cam"], again["cam"])  # eval: no dropout
    assert_same_state(before, model_state(model))
    # and the model still trains: a backward reaches every parameter that required grad
    backward_all(model(x))
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)
    assert model.encoder.pos_embed.grad is None


def test_inference_view_puts_back_state_even_when_the_block_fails(tiny_training_model):
    before = model_state(tiny_training_model)
    with pytest.raises(RuntimeError, match="boom"):
        with inference_view(tiny_training_model) as net:
            net(torch.randn(1, 1, 3, 224, 224))
            raise RuntimeError("boom")
    assert_same_state(before, model_state(tiny_training_model))


def test_inference_view_keeps_a_prepared_model_prepared():
    torch.manual_seed(0)
    fast = prepare_for_inference(MAED(**TINY), "cpu")
    before = model_state(fast)
    assert all(before["frozen"])
    with inference_view(fast) as net:
        net(torch.randn(1, 1, 3, 224, 224))
    assert_same_state(before, model_state(fast))


def test_a_frozen_standardised_weight_never_reaches_training_nor_goes_stale():
    torch.manual_seed(0)
    conv = StdConv2dSame(4, 6, 3).eval()
    conv.freeze_standardization()
    x = torch.randn(1, 4, 9, 9)
    with torch.no_grad():
        assert conv.standardized_weight() is conv.frozen_weight  # the fast path is used
    # eval mode with autograd (fine-tuning with dropout off): the raw weight gets gradients
    w = conv.standardized_weight()
    assert w.requires_grad and w is not conv.frozen_weight
    conv(x).sum().backward()
    assert conv.weight.grad is not None
    # the raw weight changes in place (an optimiser step): the frozen copy is not used
    with torch.no_grad():
        conv.weight.mul_(-1.0)
        flipped = conv.standardized_weight()
    assert conv.frozen_weight is None
    expected = conv._standardize(conv.weight.detach())
    torch.testing.assert_close(flipped, expected)


def test_predict_without_prepare_leaves_the_model_as_it_was(tiny_training_model, tmp_path,
                                                           synthetic_body):
    from maed_cli.data.evaluation_sets.db import find_db, read_db
    from maed_cli.evaluate.inference import predict
    write_synthetic_train_data(tmp_path, frames_per_video=4)
    evalset = read_db(find_db(tmp_path, "3dpw", "val"), "3dpw", "val", tmp_path)
    model = tiny_training_model
    before = model_state(model)
    rng = torch.get_rng_state()
    preds = predict(evalset, model, "cpu", interp=8, batch_pools=1, workers=0, prepare=False)
    assert preds.betas.shape == (4, 10) and torch.isfinite(torch.as_tensor(preds.cam)).all()
    assert_same_state(before, model_state(model))
    assert torch.equal(rng, torch.get_rng_state())  # dropout streams after it are unchanged
    # the same numbers as the fast path on a copy
    fast = MAED(**TINY)
    fast.load_state_dict(model.state_dict())
    reference = predict(evalset, fast, "cpu", interp=8, batch_pools=1, workers=0)
    torch.testing.assert_close(torch.as_tensor(preds.cam), torch.as_tensor(reference.cam),
                               atol=1e-4, rtol=0)


# the tiny model's cls token gets an expanded (strided) gradient; nothing to do with the view
@pytest.mark.filterwarnings("ignore:Grad strides do not match bucket view strides")
def test_inference_view_of_a_ddp_model_keeps_it_trainable(tiny_training_model):
    """One gloo process: the view runs `.module` and DDP's next forward/backward works."""
    import socket

    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel as DDP
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=0,
                            world_size=1)
    try:
        model = tiny_training_model
        ddp = DDP(model)
        before = model_state(model)
        x = torch.randn(1, 1, 3, 224, 224)
        with inference_view(ddp) as net:
            assert net is model
            net(x)
        assert_same_state(before, model_state(model))
        backward_all(ddp(x))
        assert all(p.grad is not None for p in model.parameters() if p.requires_grad)
    finally:
        dist.destroy_process_group()


# --- the trainer's validator ----------------------------------------------------------------

@pytest.fixture(scope="module")
def synth(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("train_data")
    write_synthetic_train_data(folder)
    return folder


def _config(synth, assets, out, *extra):
    return load_config(ROOT / "configs/cpu-smoke.yaml", [
        f"data.data_dir={synth}", f"body.smpl={assets['npz']}",
        f"body.j_regressor_extra={assets['extra']}", f"body.j_regressor_h36m={assets['h36m']}",
        f"out_dir={out}", "val.max_frames=8", *extra])


@pytest.mark.parametrize("amp", ["off", "bf16"])
def test_a_validation_pass_changes_nothing_training_needs(synth, synthetic_assets, tmp_path,
                                                          amp):
    from maed_cli.train.trainer import Trainer
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        trainer = Trainer(_config(synth, synthetic_assets, tmp_path / "run",
                                  f"optim.amp={amp}"), quiet=True)
        trainer.model.train()
        trainer.train_step()  # Adam state exists, as after a real epoch
        before = model_state(trainer.model)
        rng = torch.get_rng_state()
        result = trainer._run_validator()
        assert set(result) >= {"mpjpe", "pa_mpjpe"}
        assert_same_state(before, model_state(trainer.model))
        assert torch.equal(rng, torch.get_rng_state())
        trainer.train_step()  # what crashed before the fix
    finally:
        torch.set_num_threads(threads)


def test_the_trainer_puts_back_what_a_careless_validator_changed(synth, synthetic_assets,
                                                                 tmp_path):
    """A custom validator that uses the fast inference path: training still goes on."""
    from maed_cli.train.trainer import Trainer

    def careless(model, body, epoch):
        prepare_for_inference(model, "cpu", channels_last=False)
        return {"pa_mpjpe": 1.0}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        trainer = Trainer(_config(synth, synthetic_assets, tmp_path / "run"),
                          validator=careless, quiet=True)
        wanted = [p.requires_grad for p in trainer.model.parameters()]
        trainer._run_validator()
        assert [p.requires_grad for p in trainer.model.parameters()] == wanted
        trainer.model.train()
        trainer.train_step()
    finally:
        torch.set_num_threads(threads)
