"""`maed setup` and `maed doctor` against synthetic assets (never a real download)."""
import os
import socket

import numpy as np
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


def _flat(text):
    """Table cells wrap: compare on single-spaced text with the borders removed."""
    return " ".join(text.replace("│", " ").split())


def _row(checks, name):
    return next(c for c in checks if c.name == name)


@pytest.fixture(params=["proc", "file"])
def unusable_home(request, tmp_path):
    """(path, why): an asset home nothing can be written in, under /proc or a file."""
    if request.param == "proc":
        if not os.path.isdir("/proc/self"):
            pytest.skip("needs Linux /proc")
        return "/proc/maed-no-such", "cannot write in /proc"
    (tmp_path / "a_file").write_text("x")
    return str(tmp_path / "a_file"), "is a file, not a folder"


def test_doctor_reports_an_unusable_asset_home(capsys, monkeypatch, unusable_home):
    from maed_cli.doctor import run_checks
    path, why = unusable_home
    monkeypatch.setenv("MAED_HOME", path)
    row = _row(run_checks(render_probe=False), "asset home")
    assert not row.ok and row.broken
    assert why in row.detail and "MAED_HOME" in row.fix
    code, out = run(capsys, "doctor", "--no-render-probe")
    assert "BROKEN" in out


def test_doctor_loads_the_assets_it_reports(capsys, tmp_path, synthetic_assets,
                                           _isolated_asset_home):
    from maed_cli.doctor import run_checks
    assert run(capsys, "setup", "smpl", str(synthetic_assets["pkl"]))[0] == 0
    assert run(capsys, "setup", "regressors", str(synthetic_assets["pkl"].parent))[0] == 0
    assert run(capsys, "setup", "weights",
               str(official_checkpoint(tmp_path / "model_best.pth.tar")))[0] == 0
    assert run(capsys, "doctor", "--no-render-probe")[0] == 0
    (_isolated_asset_home / "J_regressor_extra.npy").write_text("not an array")
    row = _row(run_checks(render_probe=False), "J_regressor_extra")
    assert not row.ok and row.broken and "not a readable .npy regressor" in row.detail
    assert "maed setup regressors" in row.fix
    code, out = run(capsys, "doctor", "--no-render-probe")
    assert code == 1 and "Everything the demo needs" not in out
    assert "BROKEN" in out and "broken J_regressor_extra" in _flat(out)
    # the wrong shape is what the demo's body model refuses too
    np.save(_isolated_asset_home / "J_regressor_extra.npy", np.zeros((3, 6890)))
    row = _row(run_checks(render_probe=False), "J_regressor_extra")
    assert not row.ok and "shape (3, 6890), expected (9, 6890)" in row.detail
    (_isolated_asset_home / "smpl" / "SMPL_NEUTRAL.npz").write_text("junk")
    (_isolated_asset_home / "model_best.pth.tar").write_text("junk")
    checks = run_checks(render_probe=False)
    assert "not a readable SMPL npz" in _row(checks, "SMPL model").detail
    # 4 bytes make torch's unpickler fail in a way read_checkpoint_file does not foresee:
    # still a row, not a crash
    assert "model_best.pth.tar" in _row(checks, "checkpoint").detail
    assert all(c.broken and not c.ok for c in checks if c.name in ("SMPL model", "checkpoint"))


def test_a_folder_given_for_a_file_is_named_as_a_folder(capsys, tmp_path):
    from maed_cli import assets
    from maed_cli.errors import InputError
    folder = tmp_path / "adir"
    folder.mkdir()
    for args, example in ((("setup", "weights", str(folder)), "model_best.pth.tar"),
                          (("setup", "smpl", str(folder)), "SMPL_NEUTRAL.pkl")):
        code, out = run(capsys, *args)
        assert code == 2 and "Traceback" not in out
        assert f"{folder} is a folder; give the file (e.g. {folder / example})" in _flat(out)
    with pytest.raises(InputError, match="adir is a folder; give the file"):
        assets.find_checkpoint(folder)
    with pytest.raises(InputError, match="adir is a folder"):
        assets.require_asset(assets.REGRESSOR_EXTRA, folder, what="regressor", how="")
    from maed_cli.body.smpl import find_smpl_file
    from maed_cli.data.evaluation_sets.db import read_db
    from maed_cli.model.checkpoint import read_checkpoint_file
    for read, example in ((find_smpl_file, "SMPL_NEUTRAL.pkl"),
                          (lambda path: read_db(path, "3dpw", "test"), "3dpw_test_db.pt"),
                          (read_checkpoint_file, "model_best.pth.tar")):
        with pytest.raises(InputError, match=f"adir is a folder; give the file .*{example}"):
            read(folder)


def test_a_few_bytes_of_junk_are_not_a_checkpoint(tmp_path):
    from maed_cli.errors import CheckpointError
    from maed_cli.model.checkpoint import read_checkpoint_file
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"junk")  # torch.load fails on it with a struct.error
    with pytest.raises(CheckpointError, match="junk.pt: not a readable PyTorch checkpoint"):
        read_checkpoint_file(junk)


def test_setup_checks_the_asset_home_before_the_work(capsys, tmp_path, monkeypatch,
                                                     synthetic_assets, unusable_home):
    path, why = unusable_home
    monkeypatch.setenv("MAED_HOME", path)
    import maed_cli.installer as installer

    def never(*args, **kwargs):
        raise AssertionError("the source was read before the destination was checked")
    monkeypatch.setattr(installer, "read_smpl_file", never)
    monkeypatch.setattr(installer, "load_checkpoint", never)
    for args in (("setup", "regressors", str(synthetic_assets["pkl"].parent)),
                 ("setup", "smpl", str(synthetic_assets["pkl"])),
                 ("setup", "weights", str(tmp_path / "model_best.pth.tar"))):
        code, out = run(capsys, *args)
        assert code == 2, (args, out)
        assert out.strip().startswith("error: $MAED_HOME") and why in _flat(out), out
