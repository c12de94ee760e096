"""The one sentence normaliser, used by every dataset and by the tokenizer."""

from __future__ import annotations

from rvos_cli.core.model.text_encoder import normalize_sentence


def test_normalize_sentence_lowercases_and_collapses_whitespace() -> None:
    assert normalize_sentence("  The  Man\tIS\n running ") == "the man is running"
