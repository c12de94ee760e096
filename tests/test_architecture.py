"""docs/architecture.md stays true: it lists every module of rvos_cli/, only modules that exist, and the
imports follow its layering (cli → serve → engine → data/viz → core; errors and fileio are leaves)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "rvos_cli"
DOC = REPO / "docs" / "architecture.md"
# Which top-level parts of rvos_cli a module of each layer may import (besides its own layer).
ALLOWED = {
    "cli": {"serve", "engine", "data", "viz", "core"},
    "serve": {"engine", "data", "viz", "core"},
    "engine": {"data", "viz", "core"},
    "viz": {"data", "core"},
    "data": {"core"},
    "core": set(),
}
LEAVES = {"errors", "fileio"}


def _modules_with_code() -> list[str]:
    """Paths (relative to rvos_cli/) of every module that holds anything (empty __init__.py left out)."""
    return sorted(
        path.relative_to(PACKAGE).as_posix() for path in PACKAGE.rglob("*.py") if path.read_text().strip()
    )


def _listed_modules() -> set[str]:
    """The module paths in the first column of the doc's tables."""
    return set(re.findall(r"^\| `([\w/]+\.py)` \|", DOC.read_text(encoding="utf-8"), flags=re.MULTILINE))


def _imports(path: Path) -> list[tuple[int, str]]:
    """(line, absolute module name) of every `rvos_cli` import in a file, relative imports resolved."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
    return [(line, name) for line, name in found if name.split(".")[0] == "rvos_cli"]


def test_every_module_is_listed_in_the_architecture_doc() -> None:
    missing = [name for name in _modules_with_code() if name not in _listed_modules()]
    assert missing == [], f"add these modules to docs/architecture.md: {missing}"


def test_the_doc_lists_only_modules_that_exist() -> None:
    gone = sorted(name for name in _listed_modules() if not (PACKAGE / name).is_file())
    assert gone == [], f"docs/architecture.md lists modules that no longer exist: {gone}"


def test_imports_follow_the_layering() -> None:
    wrong = []
    for path in sorted(PACKAGE.rglob("*.py")):
        layer = path.relative_to(PACKAGE).parts[0]
        if layer not in ALLOWED:  # the package's __init__/__main__ and the leaves
            continue
        for line, name in _imports(path):
            parts = name.split(".")
            target = parts[1] if len(parts) > 1 else ""
            if target in ("", layer) or target in LEAVES or target in ALLOWED[layer]:
                continue
            wrong.append(f"{path.relative_to(PACKAGE)}:{line} {layer} imports {name}")
    assert wrong == [], "imports against the layering:\n" + "\n".join(wrong)


def test_the_layer_check_sees_a_wrong_import(tmp_path: Path) -> None:
    source = tmp_path / "bad.py"
    source.write_text("from rvos_cli.engine.predictor import Predictor\nimport rvos_cli.fileio\n")
    assert _imports(source) == [(1, "rvos_cli.engine.predictor"), (2, "rvos_cli.fileio")]
    assert "engine" not in ALLOWED["core"] and "cli" not in ALLOWED["engine"]
