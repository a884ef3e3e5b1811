"""Loading the official checkpoint layout and our own format, safely."""
import os
import pickle

import numpy as np
import pytest
import torch

from maed_cli.errors import CheckpointError
from maed_cli.model import MAED, load_checkpoint, save_checkpoint
from maed_cli.model.checkpoint import infer_config

SMPL_BUFFERS = {
    "faces_tensor": torch.zeros(13776, 3, dtype=torch.int64),
    "v_template": torch.zeros(6890, 3),
    "shapedirs": torch.zeros(6890, 3, 10),
    "J_regressor": torch.zeros(24, 6890),
    "posedirs": torch.zeros(207, 20670),
    "parents": torch.zeros(24, dtype=torch.int64),
    "lbs_weights": torch.zeros(6890, 24),
    "J_regressor_extra": torch.zeros(9, 6890),
    "vertex_joint_selector.extra_joints_idxs": torch.zeros(21, dtype=torch.int64),
}


def write_official(path, model: MAED, performance=np.float64(45.7)):
    """Same structure as model_best.pth.tar: DDP prefixes, SMPL buffers, optimizer state."""
    state = {f"module.{k}": v for k, v in model.state_dict().items()}
    state.update({f"module.decoder.smpl.{k}": v for k, v in SMPL_BUFFERS.items()})
    params = list(model.parameters())
    optimizer = torch.optim.Adam(params, lr=1e-4, weight_decay=1e-5).state_dict()
    torch.save({"epoch": 42, "state_dict": state, "performance": performance,
                "optimizer": optimizer}, path)


@pytest.fixture(scope="module")
def small_model():
    torch.manual_seed(0)
    return MAED(num_blocks=1).eval()


def test_official_layout_loads_with_weights_only(tmp_path, small_model):
    path = tmp_path / "model_best.pth.tar"
    write_official(path, small_model)
    loaded = load_checkpoint(path)
    assert loaded.kind == "official"
    assert loaded.config.num_blocks == 1 and loaded.config.st_mode == "parallel"
    assert set(loaded.smpl_buffers) == set(SMPL_BUFFERS)
    assert loaded.meta["epoch"] == 42
    assert float(loaded.meta["performance"]) == pytest.approx(45.7)
    for key, value in small_model.state_dict().items():
        assert torch.equal(loaded.model.state_dict()[key], value)
    assert not loaded.model.training


def test_official_six_block_layout(tmp_path):
    model = MAED()
    path = tmp_path / "model_best.pth.tar"
    write_official(path, model)
    loaded = load_checkpoint(path)
    assert loaded.config.num_blocks == 6
    x = torch.randn(1, 2, 3, 224, 224)
    with torch.no_grad():
        torch.testing.assert_close(loaded.model(x)["cam"], model.eval()(x)["cam"])


def test_vanilla_is_inferred(tmp_path):
    path = tmp_path / "stage1.pth.tar"
    write_official(path, MAED(num_blocks=2, st_mode="vanilla"))
    assert load_checkpoint(path).config.st_mode == "vanilla"


def test_own_format_round_trip(tmp_path, small_model):
    path = tmp_path / "ours.pt"
    save_checkpoint(path, small_model, meta={"note": "test"})
    assert not [p for p in tmp_path.iterdir() if p.name != "ours.pt"]  # no temp left
    loaded = load_checkpoint(path)
    assert loaded.kind == "maed_cli" and loaded.meta == {"note": "test"}
    assert loaded.config == small_model.config
    for key, value in small_model.state_dict().items():
        assert torch.equal(loaded.model.state_dict()[key], value)


def one_line(exc: pytest.ExceptionInfo) -> str:
    message = str(exc.value)
    assert "\n" not in message and "Traceback" not in message
    return message


def test_missing_file(tmp_path):
    with pytest.raises(CheckpointError, match="not found") as exc:
        load_checkpoint(tmp_path / "nope.pth.tar")
    one_line(exc)


def test_truncated_file(tmp_path, small_model):
    full = tmp_path / "full.pt"
    save_checkpoint(full, small_model)
    cut = tmp_path / "cut.pt"
    cut.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="not a readable") as exc:
        load_checkpoint(cut)
    one_line(exc)


def test_not_a_checkpoint(tmp_path):
    path = tmp_path / "notes.pth.tar"
    path.write_text("hello, this is text\n")
    with pytest.raises(CheckpointError) as exc:
        load_checkpoint(path)
    one_line(exc)


def test_other_architecture(tmp_path):
    import torchvision
    path = tmp_path / "resnet.pth"
    torch.save(torchvision.models.resnet18().state_dict(), path)
    with pytest.raises(CheckpointError, match="not a MAED checkpoint") as exc:
        load_checkpoint(path)
    one_line(exc)


def test_mismatched_keys_are_listed(tmp_path, small_model):
    state = dict(small_model.state_dict())
    del state["decoder.deccam.bias"]
    state["decoder.extra.weight"] = torch.zeros(1)
    path = tmp_path / "odd.pth"
    torch.save({"state_dict": state}, path)
    with pytest.raises(CheckpointError) as exc:
        load_checkpoint(path)
    message = one_line(exc)
    assert "decoder.deccam.bias" in message and "decoder.extra.weight" in message


class _RunsCode:
    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_pickle_that_runs_code_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    payload = _RunsCode()
    payload.marker = marker
    path = tmp_path / "evil.pth.tar"
    with open(path, "wb") as handle:
        pickle.dump({"state_dict": payload}, handle)
    with pytest.raises(CheckpointError, match="refused") as exc:
        load_checkpoint(path)
    one_line(exc)
    assert not marker.exists()


def test_zip_checkpoint_that_runs_code_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    payload = _RunsCode()
    payload.marker = marker
    path = tmp_path / "evil.pt"
    torch.save({"state_dict": payload}, path)
    with pytest.raises(CheckpointError, match="refused"):
        load_checkpoint(path)
    assert not marker.exists()


def test_infer_config_rejects_random_mapping():
    with pytest.raises(CheckpointError):
        infer_config({"weight": torch.zeros(2)})
