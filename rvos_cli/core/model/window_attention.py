"""Video Swin window attention with its 3-D relative position bias, for inference and for training.

Shape legend: n (or B·nW) windows, nh heads, N tokens per window, C channels, hd head dim, P distinct
shift-mask patterns.

Training: `scaled_dot_product_attention` only takes its fused CPU path when the additive mask needs no
gradient; the relative-position bias does, so autograd would fall back to the math path and keep every
window's `[nh, N, N]` scores and probabilities until backward (about 4.5 GB for `mttr-a2d` at
8×320×576). `WindowAttentionFunction` runs the fused kernel on a detached mask and keeps only q, k, v;
its backward recomputes the probabilities a chunk of windows at a time and returns the bias gradient.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.init import trunc_normal_

Triple = tuple[int, int, int]

# Attention scores computed at once (floats) before window attention switches to chunks of windows.
ATTENTION_CHUNK_ELEMENTS = 1 << 24
# Scores per chunk in the training backward (its probabilities and their gradient are live at once).
BACKWARD_CHUNK_ELEMENTS = 1 << 22


@dataclass(frozen=True)
class ShiftMask:
    """Distinct shifted-window masks of a layer: patterns `[P,1,N,N]`, the pattern of each window `[nW]`."""

    patterns: Tensor
    window_pattern: Tensor


def relative_position_index(window: Triple) -> Tensor:
    """Index `[N,N]` into the relative-position bias table for the full window (N = wd·wh·ww)."""
    coords = torch.stack(torch.meshgrid(*[torch.arange(w) for w in window], indexing="ij")).flatten(1)
    rel = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0).contiguous()  # [N, N, 3]
    wd, wh, ww = window
    rel[:, :, 0] += wd - 1
    rel[:, :, 1] += wh - 1
    rel[:, :, 2] += ww - 1
    rel[:, :, 0] *= (2 * wh - 1) * (2 * ww - 1)
    rel[:, :, 1] *= 2 * ww - 1
    return rel.sum(-1)


class WindowAttention3D(nn.Module):
    """Window multi-head self-attention with a learned 3-D relative position bias.

    The attention itself is `scaled_dot_product_attention` (fused on CPU and GPU); the bias and the
    shifted-window mask enter as its additive mask, which gives the same result as softmax(qkᵀ·s + b + m)v.
    Windows sharing a shift-mask pattern (at most 8 patterns) attend together with one broadcast mask,
    in chunks of about `ATTENTION_CHUNK_ELEMENTS` scores, so memory does not grow with the window count.
    """

    def __init__(self, dim: int, window: Triple, num_heads: int) -> None:
        super().__init__()
        self.window = window
        self.num_heads = num_heads
        table_size = (2 * window[0] - 1) * (2 * window[1] - 1) * (2 * window[2] - 1)
        self.relative_position_bias_table = nn.Parameter(torch.zeros(table_size, num_heads))
        self.register_buffer("relative_position_index", relative_position_index(window))
        self.qkv = nn.Linear(dim, dim * 3, bias=True)
        self.proj = nn.Linear(dim, dim)
        trunc_normal_(self.relative_position_bias_table, std=0.02)

    def position_bias(self, N: int) -> Tensor:
        """Bias `[nh, N, N]` from the first N×N entries of the index (reference rule for small windows)."""
        index = self.relative_position_index[:N, :N].reshape(-1)
        return self.relative_position_bias_table[index].reshape(N, N, -1).permute(2, 0, 1)

    def forward(self, tokens: Tensor, gather: Tensor, shift_mask: ShiftMask | None) -> Tensor:
        """Attend within windows, before the output projection.

        tokens `[M+1, C]` normalised tokens of all clips with a last all-zero row for padding; gather
        `[B·nW, N]` rows of `tokens` forming each window; shift_mask None for plain windows.
        Returns `[B·nW, N, C]` (apply `proj` after putting tokens back in place).
        """
        Bw, N = gather.shape
        if torch.is_grad_enabled():
            rows = tokens.index_select(0, gather.flatten()).view(Bw, N, tokens.shape[1])
            return self.attend_qkv(self.qkv(rows), shift_mask)
        bias = self.position_bias(N).unsqueeze(0)  # [1, nh, N, N]
        out = tokens.new_empty(Bw, N, tokens.shape[1])
        chunk = max(1, ATTENTION_CHUNK_ELEMENTS // (self.num_heads * N * N))
        for windows, pattern in _groups(Bw, shift_mask, gather.device):
            attn_mask = bias if pattern is None else bias + pattern.to(bias.dtype)
            for ids in windows.split(chunk):
                rows = tokens.index_select(0, gather.index_select(0, ids).flatten()).view(
                    -1, N, tokens.shape[1]
                )
                out.index_copy_(0, ids, self._attend(rows, attn_mask))
        return out

    def attend_qkv(self, qkv: Tensor, shift_mask: ShiftMask | None) -> Tensor:
        """Attention of projected windows qkv `[B·nW, N, 3C]` through `window_attention` (nothing of
        size N×N kept for backward: the training path) → `[B·nW, N, C]` before `proj`."""
        Bw, N = qkv.shape[:2]
        bias = self.position_bias(N).unsqueeze(0)  # [1, nh, N, N]
        C = qkv.shape[2] // 3
        qkv = qkv.view(Bw, N, 3, self.num_heads, C // self.num_heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)  # each [Bw, nh, N, hd]
        scores = self.num_heads * N * N
        chunks = (max(1, ATTENTION_CHUNK_ELEMENTS // scores), max(1, BACKWARD_CHUNK_ELEMENTS // scores))
        out = window_attention(q, k, v, bias, _groups(Bw, shift_mask, qkv.device), chunks)
        return out.transpose(1, 2).reshape(Bw, N, C)

    def _attend(self, x: Tensor, attn_mask: Tensor) -> Tensor:
        """x `[n, N, C]`, attn_mask `[1, nh, N, N]` additive → `[n, N, C]` (heads merged, no projection)."""
        n, N, C = x.shape
        qkv = self.qkv(x).reshape(n, N, 3, self.num_heads, C // self.num_heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)  # each [n, nh, N, hd]
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask.to(q.dtype))
        return out.transpose(1, 2).reshape(n, N, C)


class WindowAttentionFunction(torch.autograd.Function):
    """softmax(q·kᵀ/√hd + bias + pattern[window]) · v for every window, with gradients for q, k, v, bias.

    Windows are processed in groups of one shift-mask pattern each, `chunks` = (forward, backward)
    windows at a time.
    """

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: torch.autograd.function.FunctionCtx,
        q: Tensor,
        k: Tensor,
        v: Tensor,
        bias: Tensor,
        groups: WindowGroups,
        chunks: tuple[int, int],
    ) -> Tensor:
        """q/k/v `[n,nh,N,hd]`, bias `[1,nh,N,N]`, groups (window indices, additive pattern `[1,1,N,N]`
        or None) covering every window once → out `[n,nh,N,hd]`."""
        n, nh, N, hd = q.shape
        out = q.new_empty(n, N, nh, hd).transpose(1, 2)  # heads merge into channels without a copy
        for windows, pattern in groups:
            mask = bias if pattern is None else bias + pattern
            mask = mask.to(q.dtype)
            for ids in windows.split(chunks[0]):
                out.index_copy_(
                    0, ids, F.scaled_dot_product_attention(q[ids], k[ids], v[ids], attn_mask=mask)
                )
        ctx.save_for_backward(q, k, v, bias)
        ctx.groups = groups
        ctx.backward_chunk = chunks[1]
        return out

    @staticmethod
    def backward(  # type: ignore[override]
        ctx: torch.autograd.function.FunctionCtx, grad_out: Tensor
    ) -> tuple[Tensor | None, ...]:
        """Gradients of q, k, v `[n,nh,N,hd]` and of bias `[1,nh,N,N]` (summed over windows)."""
        q, k, v, bias = ctx.saved_tensors
        scale = q.shape[-1] ** -0.5
        grad_q, grad_k, grad_v = torch.empty_like(q), torch.empty_like(k), torch.empty_like(v)
        sum_dtype = torch.promote_types(bias.dtype, torch.float32)  # bf16 chunks still sum in fp32
        grad_bias = torch.zeros(bias.shape[1:], dtype=sum_dtype, device=bias.device)  # [nh, N, N]
        for windows, pattern in ctx.groups:
            mask = bias if pattern is None else bias + pattern
            for ids in windows.split(ctx.backward_chunk):
                qc, kc, vc, go = q[ids], k[ids], v[ids], grad_out[ids]
                scores = torch.matmul(qc, kc.transpose(-2, -1)).mul_(scale).add_(mask.to(qc.dtype))
                probs = scores.softmax(-1)  # [c, nh, N, N]
                del scores
                grad_v.index_copy_(0, ids, torch.matmul(probs.transpose(-2, -1), go))
                grad_scores = torch.matmul(go, vc.transpose(-2, -1))  # dP, then dS in place
                row = (grad_scores * probs).sum(-1, keepdim=True)
                grad_scores.sub_(row).mul_(probs)
                del probs
                grad_bias += grad_scores.sum(0, dtype=sum_dtype)
                grad_q.index_copy_(0, ids, torch.matmul(grad_scores, kc).mul_(scale))
                grad_k.index_copy_(0, ids, torch.matmul(grad_scores.transpose(-2, -1), qc).mul_(scale))
        return grad_q, grad_k, grad_v, grad_bias.unsqueeze(0).to(bias.dtype), None, None


WindowGroups = list[tuple[Tensor, Tensor | None]]


def _groups(num_windows: int, shift_mask: ShiftMask | None, device: torch.device) -> WindowGroups:
    """(window indices, additive pattern `[1,1,N,N]` or None) of each group of windows sharing a mask.

    Windows are laid out clip-major: window w of clip b sits at b·nW + w.
    """
    if shift_mask is None:
        return [(torch.arange(num_windows, device=device), None)]
    pattern_of = shift_mask.window_pattern.repeat(num_windows // shift_mask.window_pattern.shape[0])
    patterns = shift_mask.patterns
    return [((pattern_of == p).nonzero().squeeze(1), pattern) for p, pattern in enumerate(patterns)]


def window_attention(
    q: Tensor, k: Tensor, v: Tensor, bias: Tensor, groups: WindowGroups, chunks: tuple[int, int]
) -> Tensor:
    """Differentiable window attention (see `WindowAttentionFunction`): q/k/v `[n,nh,N,hd]`, bias
    `[1,nh,N,N]`, groups of windows sharing a shift-mask pattern → `[n,nh,N,hd]`."""
    return WindowAttentionFunction.apply(q, k, v, bias, groups, chunks)
