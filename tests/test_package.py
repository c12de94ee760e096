"""The package's public names: `Predictor` is exported lazily, so importing rvos stays light."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ("torch", "transformers", "av")


def modules_after(code: str) -> dict[str, bool]:
    """Run `code` in a fresh interpreter; which of HEAVY it left imported."""
    probe = f"{code}\nimport json, sys\nprint(json.dumps({{m: m in sys.modules for m in {HEAVY!r}}}))"
    child = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert child.returncode == 0, child.stderr[-2000:]
    return json.loads(child.stdout.strip().splitlines()[-1])


def test_import_rvos_cli_does_not_import_torch() -> None:
    assert modules_after("import rvos_cli; rvos_cli.__version__, rvos_cli.RvosError") == dict.fromkeys(
        HEAVY, False
    )


def test_rvos_help_does_not_import_torch() -> None:
    code = (
        "import sys\nfrom rvos_cli.cli.app import app\n"
        "try:\n    app(['--help'], prog_name='rvos')\nexcept SystemExit as e:\n    assert e.code == 0\n"
    )
    assert modules_after(code) == dict.fromkeys(HEAVY, False)


def test_predictor_is_imported_on_first_use() -> None:
    loaded = modules_after(
        "import rvos_cli\nfrom rvos_cli.engine.predictor import Predictor\n"
        "assert rvos_cli.Predictor is Predictor and 'Predictor' in rvos_cli.__all__"
    )
    assert loaded["torch"]


def test_an_unknown_name_is_an_attribute_error() -> None:
    import pytest

    import rvos_cli

    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        rvos_cli.Nope  # noqa: B018
