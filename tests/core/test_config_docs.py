"""Config field documentation: every field has one, where it is defined, and the commented YAML of a
preset reads back to the same preset."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from rvos_cli.core.config import PRESETS, TrainConfig, get_preset, load_config
from rvos_cli.core.config_docs import commented_yaml, field_docs, undocumented_fields


def test_every_config_field_is_documented_where_it_is_defined() -> None:
    assert undocumented_fields() == []


@dataclass
class _Example:
    plain: int = 1  #: one line
    #: a comment above
    #: on two lines
    long_one: float = 2.0  #: and the end of the line
    # an ordinary comment is not documentation
    bare: str = "x"


def test_docs_are_the_hash_colon_comments_above_and_at_the_end_of_the_line() -> None:
    assert field_docs(_Example) == {
        "plain": "one line",
        "long_one": "a comment above on two lines and the end of the line",
        "bare": "",
    }
    assert undocumented_fields(_Example) == ["bare"]


@pytest.mark.parametrize("name", list(PRESETS))
def test_commented_yaml_reads_back_to_the_same_preset(name: str, tmp_path: Path) -> None:
    text = commented_yaml(get_preset(name), f"preset {name}")
    path = tmp_path / "shown.yaml"
    path.write_text(text)
    assert load_config(path) == get_preset(name)


def test_each_key_follows_its_documentation_at_its_depth() -> None:
    text = commented_yaml(get_preset("tiny"), "preset tiny")
    lines = text.splitlines()
    assert lines[0] == "# preset tiny"
    train = lines.index("train:")
    window = lines.index("  window: 4", train)
    doc = field_docs(TrainConfig)["window"]
    comment = [line.removeprefix("  # ") for line in lines[train + 1 : window] if line.startswith("  # ")]
    assert " ".join(comment).endswith(doc)
    assert lines[window - 1].startswith("  # ")
    assert "model:" in lines and "  backbone:" in lines and "    depths: [1, 1, 2]" in lines
