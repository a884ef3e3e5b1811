import subprocess
import sys
from pathlib import Path

import pytest

from maed_cli.cli import main

COMMANDS = ["demo", "batch", "eval", "train", "profile", "render", "export", "setup", "doctor"]


def test_root_help_lists_every_command(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for command in COMMANDS:
        assert command in out


@pytest.mark.parametrize("command", COMMANDS)
def test_command_help(command, capsys):
    assert main([command, "--help"]) == 0
    assert "Usage" in capsys.readouterr().out


def test_usage_error_is_not_a_traceback(capsys):
    assert main(["demo", "--no-such-option", "x"]) == 2
    captured = capsys.readouterr()
    assert "Traceback" not in captured.out + captured.err


def test_console_script_runs():
    result = subprocess.run([sys.executable, "-m", "maed_cli", "--version"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and "maed" in result.stdout


@pytest.mark.parametrize("command", ["demo", "batch"])
def test_demo_options_in_help(command, capsys):
    assert main([command, "--help"]) == 0
    out = capsys.readouterr().out
    for option in ("--detect-size", "--compile", "--dtype", "--interp", "--boxes"
                   if command == "demo" else "--retry-failed"):
        assert option in out


def test_check_writable_refuses_what_the_atomic_writers_cannot_write(tmp_path):
    from maed_cli.atomic import check_writable
    from maed_cli.errors import InputError

    a_file = tmp_path / "text.mp4"
    a_file.write_text("x")
    check_writable(tmp_path / "new" / "deeper" / "r.json", "file", "-o")  # parents get made
    check_writable(tmp_path, "folder", "--output")
    with pytest.raises(InputError, match="-o .*: is a folder; give a file name"):
        check_writable(tmp_path, "file", "-o")
    with pytest.raises(InputError, match="--output .*text.mp4: exists and is not a folder"):
        check_writable(a_file, "folder", "--output")
    with pytest.raises(InputError, match="text.mp4 is a file, not a folder"):
        check_writable(a_file / "r.json", "file", "-o")
    with pytest.raises(InputError, match=r"--cache-dir /proc/x/y: cannot write in /proc"):
        check_writable("/proc/x/y", "folder", "--cache-dir")  # root passes os.access here
    assert not list(tmp_path.glob(".maed-write-check.*"))


def test_check_writable_probes_where_the_writing_happens(tmp_path, monkeypatch):
    import tempfile

    from maed_cli.atomic import check_writable
    from maed_cli.errors import InputError

    out = tmp_path / "out"
    out.mkdir()
    probed = []
    real_mkstemp = tempfile.mkstemp

    def mkstemp(*args, dir=None, **kwargs):
        probed.append(Path(dir))
        return real_mkstemp(*args, dir=dir, **kwargs)

    monkeypatch.setattr(tempfile, "mkstemp", mkstemp)
    check_writable(out, "folder", "--output")  # demo: its temporary goes beside the folder
    check_writable(out, "folder", "--output", inside=True)  # batch, export: files go inside
    check_writable(tmp_path / "new", "folder", "--output", inside=True)  # made in its parent
    assert probed == [tmp_path, out, tmp_path]

    def denied(self):
        raise PermissionError(13, "Permission denied", "/home/bob")

    monkeypatch.setattr(Path, "exists", denied)  # a folder on the way we may not look into
    with pytest.raises(InputError, match="--output /home/bob/out: cannot look into /home/bob"):
        check_writable("/home/bob/out", "folder", "--output")


def test_paths_are_printed_as_text_not_markup(monkeypatch, capsys):
    import warnings

    import maed_cli.doctor
    from maed_cli.errors import InputError

    def fail(*args, **kwargs):
        warnings.warn("clips/[final] cut.mp4: ended early")
        raise InputError("clips/[/x] cut.mp4: not a video")

    monkeypatch.setattr(maed_cli.doctor, "run_checks", fail)
    assert main(["doctor"]) == 2
    err = capsys.readouterr().err
    assert "clips/[final] cut.mp4: ended early" in err and "clips/[/x] cut.mp4" in err


def test_unforeseen_os_error_is_one_line(monkeypatch, capsys):
    import maed_cli.doctor

    def fail(*args, **kwargs):
        raise OSError(28, "No space left on device", "/data/out/track_0001.npz")

    monkeypatch.setattr(maed_cli.doctor, "run_checks", fail)
    monkeypatch.delenv("MAED_DEBUG", raising=False)
    assert main(["doctor"]) == 1
    err = capsys.readouterr().err
    assert "cannot read or write /data/out/track_0001.npz: No space left on device" in err
    assert "Traceback" not in err
    monkeypatch.setenv("MAED_DEBUG", "1")
    with pytest.raises(OSError):
        main(["doctor"])


def test_warnings_are_one_yellow_line(monkeypatch, capsys):
    import warnings

    import maed_cli.doctor

    def warn_then_nothing(*args, **kwargs):
        warnings.warn("the video ended early")
        return []

    monkeypatch.setattr(maed_cli.doctor, "run_checks", warn_then_nothing)
    assert main(["doctor"]) == 0
    err = capsys.readouterr().err
    assert "warning: the video ended early" in err and "UserWarning" not in err


def test_atomic_outputs_get_the_permissions_of_an_ordinary_write(tmp_path, monkeypatch):
    import maed_cli.atomic
    from maed_cli.atomic import atomic_dir, atomic_path

    monkeypatch.setattr(maed_cli.atomic, "_UMASK", 0o022)  # as read at import
    with atomic_path(tmp_path / "a.json") as tmp:
        tmp.write_text("{}")
    with atomic_dir(tmp_path / "results") as folder:
        (folder / "x").write_text("x")
    assert (tmp_path / "a.json").stat().st_mode & 0o777 == 0o644  # not mkstemp's 0600
    assert (tmp_path / "results").stat().st_mode & 0o777 == 0o755  # not mkdtemp's 0700
