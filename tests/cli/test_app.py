"""The `rvos` app as a whole: help answers without the heavy libraries."""

from __future__ import annotations

import subprocess
import sys

import pytest

# Runs `python -m rvos_cli ARGS...` and reports, at interpreter exit, which heavy modules got imported.
HEAVY_IMPORTS_PROBE = """
import atexit, runpy, sys
heavy = ("torch", "transformers")
atexit.register(lambda: print("imported:", [m for m in heavy if m in sys.modules], file=sys.stderr))
sys.argv = ["rvos", *sys.argv[1:]]
runpy.run_module("rvos_cli", run_name="__main__")
"""


@pytest.mark.parametrize("command", [[], ["train"], ["eval"], ["infer"], ["prepare"], ["viz"]])
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
