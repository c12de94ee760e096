"""Activation checkpointing of MTTR's repeated layers (Swin blocks, multimodal transformer layers).

A checkpointed layer keeps only its inputs during the forward pass and runs again in backward, so peak
memory holds one layer's activations at a time instead of all of them. Gradients are those of the plain
run: `torch.utils.checkpoint` replays the RNG state, so dropout and drop-path draw the same masks.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint


def run_layer(layer: nn.Module, enabled: bool, *args: Any) -> Any:
    """`layer(*args)`, checkpointed when `enabled`, the layer is training and a gradient is being built.

    At inference and evaluation (eval mode or no_grad) the layer always runs plainly: there is nothing to
    save memory for, and recomputation would only cost time.
    """
    if enabled and layer.training and torch.is_grad_enabled():
        return checkpoint(layer, *args, use_reentrant=False)
    return layer(*args)


def set_grad_checkpoint(model: nn.Module, enabled: bool) -> None:
    """Switch checkpointing on or off in every submodule of `model` that supports it (has the flag)."""
    for module in model.modules():
        if hasattr(module, "grad_checkpoint"):
            module.grad_checkpoint = enabled
