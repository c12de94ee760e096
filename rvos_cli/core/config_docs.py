"""What every config field means, read once from the `#:` comments where `core/config.py` defines it, and
a config printed as YAML with those comments (what `rvos config show PRESET` prints).

A field's documentation is the `#:` comment at the end of its line, after any `#:` lines right above it:

    window: int = 10  #: frames per training clip (w; paper §4.1)
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import inspect
import textwrap
from typing import Any

from rvos_cli.core.config import Config, config_to_dict

DOC_MARK = "#:"
WIDTH = 110  # comment lines wrap here, like the code


@functools.cache
def field_docs(cls: type) -> dict[str, str]:
    """{field name: its `#:` documentation} of config dataclass `cls` ("" for an undocumented field)."""
    lines, _ = inspect.getsourcelines(cls)
    tree = ast.parse(textwrap.dedent("".join(lines)))
    body = tree.body[0].body  # type: ignore[attr-defined]
    docs = {}
    for node in body:
        if not isinstance(node, ast.AnnAssign) or not isinstance(node.target, ast.Name):
            continue
        above = []
        index = node.lineno - 2
        while index >= 0 and lines[index].strip().startswith(DOC_MARK):
            above.insert(0, lines[index].strip()[len(DOC_MARK) :].strip())
            index -= 1
        span = range(node.lineno - 1, node.end_lineno or node.lineno)
        own = [lines[i].partition(DOC_MARK)[2].strip() for i in span]
        docs[node.target.id] = " ".join(part for part in [*above, *own] if part)
    return docs


def undocumented_fields(cls: type = Config, prefix: str = "") -> list[str]:
    """Dotted names (`train.window`) of the fields of `cls` and its nested configs that have no doc."""
    missing = []
    docs = field_docs(cls)
    for item in dataclasses.fields(cls):
        name = f"{prefix}{item.name}"
        if not docs.get(item.name):
            missing.append(name)
        nested = item.default_factory  # a section's type (annotations are strings under PEP 563)
        if isinstance(nested, type) and dataclasses.is_dataclass(nested):
            missing.extend(undocumented_fields(nested, f"{name}."))
    return missing


def commented_yaml(config: Config, title: str) -> str:
    """`config` as YAML text that `load_config` reads back to the same config, each key preceded by its
    documentation as `#` comments, under the `title` comment line. Returns the text (ends with a newline)."""
    lines = [f"# {title}"]
    _append_section(config, 0, lines)
    return "\n".join(lines) + "\n"


def _append_section(section: Any, depth: int, lines: list[str]) -> None:
    import yaml

    pad = "  " * depth
    docs = field_docs(type(section))
    for item in dataclasses.fields(section):
        for text in textwrap.wrap(docs.get(item.name, ""), width=WIDTH - len(pad) - 2):
            lines.append(f"{pad}# {text}")
        value = getattr(section, item.name)
        if dataclasses.is_dataclass(value):
            lines.append(f"{pad}{item.name}:")
            _append_section(value, depth + 1, lines)
            continue
        plain = config_to_dict(section)[item.name]
        text = yaml.safe_dump(plain, default_flow_style=True, width=10**6).strip()
        lines.append(f"{pad}{item.name}: {text.removesuffix('...').strip()}")
