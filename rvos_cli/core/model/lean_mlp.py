"""The Swin MLP branch LayerNorm → Linear → GELU → Linear for training, keeping less for backward.

Autograd would keep four tensors per token for backward: the LayerNorm input and output, the 4×-wide
fc1 output and the 4×-wide GELU output (10·C floats). This function keeps the LayerNorm input, its
per-token statistics and the fc1 output (5·C floats) and recomputes the LayerNorm output and the GELU
in backward, both elementwise and cheap next to the two matrix products. Results are those of autograd
through the plain modules (same kernels, same order), which `tests/core/test_attention.py` checks.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

aten = torch.ops.aten


class LeanMlpFunction(torch.autograd.Function):
    """fc2(GELU(fc1(LayerNorm(x)))) with the LayerNorm output and the GELU recomputed in backward."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: torch.autograd.function.FunctionCtx,
        x: Tensor,
        norm_weight: Tensor,
        norm_bias: Tensor,
        eps: float,
        fc1_weight: Tensor,
        fc1_bias: Tensor,
        fc2_weight: Tensor,
        fc2_bias: Tensor,
    ) -> Tensor:
        """x `[..., C]`, LayerNorm weight/bias `[C]`, fc1 `[4C,C]`/`[4C]`, fc2 `[C,4C]`/`[C]` → `[..., C]`."""
        normalized, mean, rstd = torch.native_layer_norm(x, (x.shape[-1],), norm_weight, norm_bias, eps)
        hidden = F.linear(normalized, fc1_weight, fc1_bias)
        del normalized
        out = F.linear(F.gelu(hidden), fc2_weight, fc2_bias)
        ctx.save_for_backward(x, mean, rstd, hidden, norm_weight, norm_bias, fc1_weight, fc2_weight)
        ctx.eps = eps
        return out

    @staticmethod
    def backward(  # type: ignore[override]
        ctx: torch.autograd.function.FunctionCtx, grad_out: Tensor
    ) -> tuple[Tensor | None, ...]:
        """Gradients of x, the LayerNorm weight and bias, and both linear layers' weights and biases."""
        x, mean, rstd, hidden, norm_weight, norm_bias, fc1_weight, fc2_weight = ctx.saved_tensors
        C = x.shape[-1]
        grad_2d = grad_out.reshape(-1, grad_out.shape[-1])
        activated = F.gelu(hidden)
        grad_fc2_weight = grad_2d.t().mm(activated.reshape(-1, activated.shape[-1]))
        grad_fc2_bias = grad_2d.sum(0)
        del activated
        grad_hidden = aten.gelu_backward(grad_out.matmul(fc2_weight), hidden)
        normalized = torch.native_layer_norm(x, (C,), norm_weight, norm_bias, ctx.eps)[0]
        grad_hidden_2d = grad_hidden.reshape(-1, grad_hidden.shape[-1])
        grad_fc1_weight = grad_hidden_2d.t().mm(normalized.reshape(-1, C))
        grad_fc1_bias = grad_hidden_2d.sum(0)
        del normalized
        grad_normalized = grad_hidden.matmul(fc1_weight)
        del grad_hidden, grad_hidden_2d
        grad_x, grad_norm_weight, grad_norm_bias = aten.native_layer_norm_backward(
            grad_normalized, x, [C], mean, rstd, norm_weight, norm_bias, [True, True, True]
        )
        return (
            grad_x,
            grad_norm_weight,
            grad_norm_bias,
            None,
            grad_fc1_weight,
            grad_fc1_bias,
            grad_fc2_weight,
            grad_fc2_bias,
        )


def lean_mlp(norm: torch.nn.LayerNorm, fc1: torch.nn.Linear, fc2: torch.nn.Linear, x: Tensor) -> Tensor:
    """fc2(GELU(fc1(norm(x)))) for `x` `[..., C]` with the lean backward of `LeanMlpFunction`."""
    return LeanMlpFunction.apply(
        x, norm.weight, norm.bias, norm.eps, fc1.weight, fc1.bias, fc2.weight, fc2.bias
    )
