"""Offline stand-ins for benchmarks: a roberta-base-shaped text encoder config and a small tokenizer.

Benchmarks measure speed and memory with random weights, so only the shapes must be those of the paper.
"""

from __future__ import annotations

from pathlib import Path

import torch


def roberta_base_config_folder(folder: Path) -> Path:
    """Write a roberta-base-shaped `config.json` (no weights) into `folder` and return it."""
    from transformers import RobertaConfig

    RobertaConfig(
        vocab_size=50265,
        hidden_size=768,
        num_hidden_layers=12,
        num_attention_heads=12,
        intermediate_size=3072,
        max_position_embeddings=514,
        type_vocab_size=1,
        layer_norm_eps=1e-5,
        pad_token_id=1,
        bos_token_id=0,
        eos_token_id=2,
    ).save_pretrained(folder)
    return folder


def fake_token_ids(num_sentences: int, length: int = 8) -> dict[str, torch.Tensor]:
    """RoBERTa-style ids `<s> ... </s>` `[K,S]` with a full attention mask (contents do not matter here)."""
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(3, 50000, (num_sentences, length), generator=generator)
    ids[:, 0], ids[:, -1] = 0, 2
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
