import subprocess
import sys

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
