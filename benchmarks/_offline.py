"""Offline stand-ins for benchmarks: a roberta-base-shaped text encoder config and a small tokenizer.

Benchmarks measure speed and memory with random weights, so only the shapes must be those of the paper.
"""

from __future__ import annotations

from pathlib import Path

import torch


def roberta_base_config_folder(folder: Path) -> Path:
    """Write a roberta-base-shaped `config.json` (no weights) into `folder` and return it."""
    from rvos_cli.core.model.text_encoder import roberta_base_config

    roberta_base_config().save_pretrained(folder)
    return folder


def fake_token_ids(num_sentences: int, length: int = 8) -> dict[str, torch.Tensor]:
    """RoBERTa-style ids `<s> ... </s>` `[K,S]` with a full attention mask (contents do not matter here)."""
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(3, 50000, (num_sentences, length), generator=generator)
    ids[:, 0], ids[:, -1] = 0, 2
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
