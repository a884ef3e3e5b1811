"""`maed setup` and `maed doctor` against synthetic assets (never a real download)."""
import socket

import pytest
import torch

from maed_cli.cli import main
from maed_cli.model import MAED


def run(capsys, *args):
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def official_checkpoint(path, with_smpl_body=None):
    state = {f"module.{k}": v for k, v in MAED(num_blocks=1).state_dict().items()}
    if with_smpl_body is not None:
        b = with_smpl_body
        state.update({f"module.decoder.smpl.{k}": v for k, v in {
            "v_template": b.v_template, "shapedirs": b.shapedirs, "posedirs": b.posedirs,
            "J_regressor": b.J_regressor, "lbs_weights": b.lbs_weights, "parents": b.parents,
            "faces_tensor": b.faces_tensor, "J_regressor_extra": b.J_regressor_extra}.items()})
    torch.save({"epoch": 3, "state_dict": state, "performance": 47.0}, path)
    return path


def test_doctor_on_a_fresh_machine_names_what_is_missing(capsys, _isolated_asset_home):
    code, out = run(capsys, "doctor", "--no-render-probe")
    assert code == 1
    assert "checkpoint" in out and "maed setup weights" in out
    assert "SMPL" in out and "maed setup smpl" in out
    assert "cannot run yet" in out


def test_setup_then_doctor_is_all_ok(capsys, tmp_path, synthetic_assets, synthetic_body,
                                     _isolated_asset_home):
    code, out = run(capsys, "setup", "smpl", str(synthetic_assets["pkl"]))
    assert code == 0 and "installed" in out
    assert (_isolated_asset_home / "smpl" / "SMPL_NEUTRAL.npz").is_file()
    code, out = run(capsys, "setup", "smpl", str(synthetic_assets["pkl"]))
    assert code == 0 and "unchanged" in out  # idempotent
    code, out = run(capsys, "setup", "regressors", str(synthetic_assets["pkl"].parent))
    assert code == 0 and (_isolated_asset_home / "J_regressor_h36m.npy").is_file()
    assert (_isolated_asset_home / "J_regressor_extra.npy").is_file()
    ckpt = official_checkpoint(tmp_path / "model_best.pth.tar")
    code, out = run(capsys, "setup", "weights", str(ckpt))
    assert code == 0, out
    installed = _isolated_asset_home / "model_best.pth.tar"
    assert installed.is_file()
    assert (_isolated_asset_home / "model_best.pth.tar.sha256").read_text().split()[0]
    code, out = run(capsys, "setup", "weights", str(ckpt))
    assert code == 0 and "unchanged" in out
    code, out = run(capsys, "doctor", "--no-render-probe")
    assert code == 0, out
    assert "Everything the demo needs" in out


def test_checkpoint_alone_is_enough(capsys, tmp_path, synthetic_body, _isolated_asset_home):
    ckpt = official_checkpoint(tmp_path / "model_best.pth.tar", with_smpl_body=synthetic_body)
    code, out = run(capsys, "setup", "weights", str(ckpt))
    assert code == 0 and "checkpoint" in out and "available" in out
    code, out = run(capsys, "doctor", "--no-render-probe")
    assert code == 0, out


def test_bad_inputs_give_one_line(capsys, tmp_path):
    junk = tmp_path / "model_best.pth.tar"
    junk.write_text("not a checkpoint")
    for args in (("setup", "weights", str(junk)),
                 ("setup", "smpl", str(tmp_path / "missing.pkl")),
                 ("setup", "regressors", str(tmp_path / "nowhere")),
                 ("setup", "bodies", str(tmp_path)),
                 ("setup", "smpl")):
        code, out = run(capsys, *args)
        assert code == 2, args
        assert "Traceback" not in out
        assert out.strip().startswith("error:"), out


def test_download_offline_fails_in_one_line(capsys, monkeypatch):
    def refuse(*args, **kwargs):
        raise OSError("Network is unreachable")
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    code, out = run(capsys, "setup", "weights", "--download")
    assert code == 2
    assert "could not download" in out and "maed setup weights PATH" in out
    assert "Traceback" not in out
