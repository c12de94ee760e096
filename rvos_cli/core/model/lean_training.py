"""Pieces of the Swin block for training that keep less for backward and recompute the cheap rest.

Autograd through the plain modules keeps, per token, the LayerNorm input and output, the gathered
window rows, the 4×-wide fc1 output and the 4×-wide GELU output. These functions keep only the LayerNorm
inputs with their per-token statistics, and recompute in backward the LayerNorm outputs, the window rows,
the fc1 output and the GELU: about 10·C floats per token fewer (for `mttr-a2d` at 8×320×576, 0.64 GB of
the 2.25 GB it kept before), for a few passes over memory and one more fc1 product. Gradients are those
of autograd through the plain modules (same kernels), which `tests/core/test_attention.py` checks in float64.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

aten = torch.ops.aten


class LeanMlpFunction(torch.autograd.Function):
    """fc2(GELU(fc1(LayerNorm(x)))) with the LayerNorm output, fc1's output and the GELU recomputed in
    backward."""

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
        ctx.save_for_backward(x, mean, rstd, norm_weight, norm_bias, fc1_weight, fc1_bias, fc2_weight)
        ctx.eps = eps
        return out

    @staticmethod
    def backward(  # type: ignore[override]
        ctx: torch.autograd.function.FunctionCtx, grad_out: Tensor
    ) -> tuple[Tensor | None, ...]:
        """Gradients of x, the LayerNorm weight and bias, and both linear layers' weights and biases."""
        x, mean, rstd, norm_weight, norm_bias, fc1_weight, fc1_bias, fc2_weight = ctx.saved_tensors
        C = x.shape[-1]
        grad_2d = grad_out.reshape(-1, grad_out.shape[-1])
        normalized = torch.native_layer_norm(x, (C,), norm_weight, norm_bias, ctx.eps)[0]
        hidden = F.linear(normalized, fc1_weight, fc1_bias)
        activated = F.gelu(hidden)
        grad_fc2_weight = grad_2d.t().mm(activated.reshape(-1, activated.shape[-1]))
        grad_fc2_bias = grad_2d.sum(0)
        del activated
        grad_hidden = aten.gelu_backward(grad_out.matmul(fc2_weight), hidden)
        del hidden
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


class LeanWindowQkvFunction(torch.autograd.Function):
    """qkv(window rows of LayerNorm(x)) with the LayerNorm output and the window rows recomputed in backward.

    Window rows are gathered from the normalised tokens plus one all-zero row standing for padding.
    """

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: torch.autograd.function.FunctionCtx,
        x: Tensor,
        norm_weight: Tensor,
        norm_bias: Tensor,
        eps: float,
        gather: Tensor,
        qkv_weight: Tensor,
        qkv_bias: Tensor,
    ) -> Tensor:
        """x `[M, C]` tokens, gather `[n, N]` rows of x (M = padding), qkv `[3C, C]`/`[3C]` → `[n, N, 3C]`."""
        rows, mean, rstd = _window_rows(x, norm_weight, norm_bias, eps, gather)
        ctx.save_for_backward(x, mean, rstd, norm_weight, norm_bias, gather, qkv_weight)
        ctx.eps = eps
        return F.linear(rows, qkv_weight, qkv_bias).view(*gather.shape, -1)

    @staticmethod
    def backward(  # type: ignore[override]
        ctx: torch.autograd.function.FunctionCtx, grad_out: Tensor
    ) -> tuple[Tensor | None, ...]:
        """Gradients of x, the LayerNorm weight and bias, and the qkv weight and bias."""
        x, mean, rstd, norm_weight, norm_bias, gather, qkv_weight = ctx.saved_tensors
        M, C = x.shape
        grad_2d = grad_out.reshape(-1, grad_out.shape[-1])
        rows = _window_rows(x, norm_weight, norm_bias, ctx.eps, gather)[0]
        grad_qkv_weight = grad_2d.t().mm(rows)
        grad_qkv_bias = grad_2d.sum(0)
        del rows
        grad_tokens = x.new_zeros(M + 1, C).index_add_(0, gather.flatten(), grad_2d.mm(qkv_weight))
        grad_x, grad_norm_weight, grad_norm_bias = aten.native_layer_norm_backward(
            grad_tokens[:M], x, [C], mean, rstd, norm_weight, norm_bias, [True, True, True]
        )
        return grad_x, grad_norm_weight, grad_norm_bias, None, None, grad_qkv_weight, grad_qkv_bias


def _window_rows(
    x: Tensor, norm_weight: Tensor, norm_bias: Tensor, eps: float, gather: Tensor
) -> tuple[Tensor, Tensor, Tensor]:
    """LayerNorm of x `[M, C]` gathered into window rows `[n·N, C]` (a zero row for padding), with the
    LayerNorm's mean and rstd `[M, 1]`."""
    normalized, mean, rstd = torch.native_layer_norm(x, (x.shape[-1],), norm_weight, norm_bias, eps)
    tokens = torch.cat([normalized, normalized.new_zeros(1, x.shape[-1])])
    return tokens.index_select(0, gather.flatten()), mean, rstd


def lean_window_qkv(norm: torch.nn.LayerNorm, qkv: torch.nn.Linear, x: Tensor, gather: Tensor) -> Tensor:
    """qkv(LayerNorm(x)) for the windows `gather` `[n, N]` of the tokens `x` `[M, C]` → `[n, N, 3C]`."""
    return LeanWindowQkvFunction.apply(x, norm.weight, norm.bias, norm.eps, gather, qkv.weight, qkv.bias)


def lean_mlp(norm: torch.nn.LayerNorm, fc1: torch.nn.Linear, fc2: torch.nn.Linear, x: Tensor) -> Tensor:
    """fc2(GELU(fc1(norm(x)))) for `x` `[..., C]` with the lean backward of `LeanMlpFunction`."""
    return LeanMlpFunction.apply(
        x, norm.weight, norm.bias, norm.eps, fc1.weight, fc1.bias, fc2.weight, fc2.bias
    )
