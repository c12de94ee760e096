"""The `rvos` app as a whole: -h/--help, --version, the one error boundary, help without heavy imports."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

from rvos_cli import __version__
from rvos_cli.cli import app as app_module
from rvos_cli.cli.app import app
from rvos_cli.errors import RvosError
from rvos_cli.viz import curves

runner = CliRunner()

# Runs `python -m rvos_cli ARGS...` and reports, at interpreter exit, which heavy modules got imported.
HEAVY_IMPORTS_PROBE = """
import atexit, runpy, sys
heavy = ("torch", "transformers")
atexit.register(lambda: print("imported:", [m for m in heavy if m in sys.modules], file=sys.stderr))
sys.argv = ["rvos", *sys.argv[1:]]
runpy.run_module("rvos_cli", run_name="__main__")
"""


@pytest.mark.parametrize(
    "command", [[], ["train"], ["eval"], ["infer"], ["prepare"], ["viz"], ["convert"], ["config", "show"]]
)
def test_help_does_not_import_torch_or_transformers(command: list[str]) -> None:
    child = subprocess.run(
        [sys.executable, "-c", HEAVY_IMPORTS_PROBE, *command, "--help"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert child.returncode == 0, child.stderr
    assert "Usage: rvos" in child.stdout
    assert child.stderr.strip().splitlines()[-1] == "imported: []"


def test_version_prints_the_package_version() -> None:
    result = runner.invoke(app, ["--version"])
    assert (result.exit_code, result.stdout) == (0, f"rvos {__version__}\n")


HELPED = [[], ["train"], ["infer"], ["eval"], ["prepare", "a2d"], ["viz", "curves"], ["config", "show"]]


@pytest.mark.parametrize("command", HELPED)
def test_dash_h_is_the_same_as_dash_dash_help(command: list[str]) -> None:
    short, long = runner.invoke(app, [*command, "-h"]), runner.invoke(app, [*command, "--help"])
    assert (short.exit_code, long.exit_code) == (0, 0)
    assert short.stdout == long.stdout and "Usage: " in short.stdout


def test_a_user_error_in_any_command_is_one_red_line_and_exit_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def bad_log(log: Path, target: Path) -> Path:
        raise RvosError(f"{log}: line 3 is not JSON")

    monkeypatch.setattr(curves, "plot_training_curves", bad_log)
    # What a terminal gets: the console the boundary prints with, as it is set up on a colour terminal.
    terminal = Console(stderr=True, force_terminal=True, color_system="standard", width=200)
    monkeypatch.setattr(app_module, "err_console", terminal)
    result = runner.invoke(app, ["viz", "curves", str(tmp_path / "m.jsonl")])
    assert (result.exit_code, result.stdout) == (2, "")
    red_bold_error = "\x1b[1;31merror:\x1b[0m"
    assert result.stderr == f"{red_bold_error} {tmp_path / 'm.jsonl'}: line 3 is not JSON\n"


def test_ctrl_c_in_any_command_exits_130_without_a_traceback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def interrupted(log: Path, target: Path) -> Path:
        raise KeyboardInterrupt

    monkeypatch.setattr(curves, "plot_training_curves", interrupted)
    result = runner.invoke(app, ["viz", "curves", str(tmp_path / "m.jsonl")])
    assert (result.exit_code, result.stderr) == (130, "interrupted\n")


def test_other_exceptions_are_not_swallowed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def bug(log: Path, target: Path) -> Path:
        raise ZeroDivisionError("a bug, not a user mistake")

    monkeypatch.setattr(curves, "plot_training_curves", bug)
    result = runner.invoke(app, ["viz", "curves", str(tmp_path / "m.jsonl")])
    assert result.exit_code == 1 and isinstance(result.exception, ZeroDivisionError)
