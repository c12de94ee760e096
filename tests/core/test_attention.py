"""Fused attention (scaled_dot_product_attention) equals the plain formulas it replaces."""

from __future__ import annotations

import math

import torch
from torch import nn

from rvos_cli.core.model.position_encoding import sine_position_encoding
from rvos_cli.core.model.transformer import MultiheadAttention
from rvos_cli.core.model.video_swin import (
    WindowAttention3D,
    effective_window,
    relative_position_index,
    shifted_window_mask,
)


def _plain_window_attention(
    attn: WindowAttention3D, x: torch.Tensor, mask: torch.Tensor | None
) -> torch.Tensor:
    Bw, N, C = x.shape
    nh = attn.num_heads
    qkv = attn.qkv(x).reshape(Bw, N, 3, nh, C // nh).permute(2, 0, 3, 1, 4)
    q, k, v = qkv[0] * (C // nh) ** -0.5, qkv[1], qkv[2]
    scores = q @ k.transpose(-2, -1)
    bias = attn.relative_position_bias_table[attn.relative_position_index[:N, :N].reshape(-1)]
    scores = scores + bias.reshape(N, N, -1).permute(2, 0, 1).unsqueeze(0)
    if mask is not None:
        nW = mask.shape[0]
        scores = scores.view(Bw // nW, nW, nh, N, N) + mask.unsqueeze(1).unsqueeze(0)
        scores = scores.view(-1, nh, N, N)
    out = scores.softmax(-1) @ v
    return attn.proj(out.transpose(1, 2).reshape(Bw, N, C))


def test_window_attention_matches_plain_softmax_with_bias_and_shift_mask() -> None:
    torch.manual_seed(0)
    attn = WindowAttention3D(dim=24, window=(2, 3, 3), num_heads=3)
    nn.init.normal_(attn.relative_position_bias_table, std=1.0)
    mask = shifted_window_mask((4, 6, 6), (2, 3, 3), (1, 1, 1), torch.device("cpu"))
    x = torch.randn(2 * mask.shape[0], 18, 24)
    torch.testing.assert_close(attn(x, mask), _plain_window_attention(attn, x, mask), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(attn(x, None), _plain_window_attention(attn, x, None), atol=1e-5, rtol=1e-5)


def test_window_smaller_than_configured_uses_first_entries_of_the_index() -> None:
    torch.manual_seed(0)
    attn = WindowAttention3D(dim=8, window=(8, 7, 7), num_heads=2)
    x = torch.randn(3, 2 * 7 * 7, 8)  # a 2-frame window: N = 98 < 392
    torch.testing.assert_close(attn(x, None), _plain_window_attention(attn, x, None), atol=1e-5, rtol=1e-5)


def test_multihead_attention_matches_torch_reference_with_key_padding() -> None:
    torch.manual_seed(0)
    ours = MultiheadAttention(32, 4, dropout=0.0).eval()
    ref = nn.MultiheadAttention(32, 4, dropout=0.0).eval()
    ref.load_state_dict(ours.state_dict())
    query, key = torch.randn(3, 5, 32), torch.randn(3, 7, 32)
    value = torch.randn(3, 7, 32)
    padding = torch.zeros(3, 7, dtype=torch.bool)
    padding[1, 5:] = True
    expected, _ = ref(
        query.transpose(0, 1), key.transpose(0, 1), value.transpose(0, 1), key_padding_mask=padding
    )
    torch.testing.assert_close(
        ours(query, key, value, padding), expected.transpose(0, 1), atol=1e-5, rtol=1e-5
    )


def test_effective_window_shrinks_and_unshifts_small_axes() -> None:
    assert effective_window((8, 20, 5), (8, 7, 7), (4, 3, 3)) == ((8, 7, 5), (0, 3, 0))
    assert effective_window((12, 7, 30), (8, 7, 7), (4, 3, 3)) == ((8, 7, 7), (4, 0, 3))


def test_shift_mask_separates_regions() -> None:
    mask = shifted_window_mask((2, 4, 4), (2, 2, 2), (0, 1, 1), torch.device("cpu"))
    assert mask.shape == (4, 8, 8)
    assert torch.equal(mask[0], torch.zeros(8, 8))  # the top-left window holds one region only
    assert set(mask[3].unique().tolist()) == {-100.0, 0.0}  # the bottom-right window mixes four regions
    assert (mask[3] == 0).sum() == 4 * 2 * 2  # each token sees only the 2 tokens of its own region


def test_relative_position_index_of_the_mttr_window() -> None:
    index = relative_position_index((8, 7, 7))
    assert index.shape == (392, 392)
    assert index.min() == 0 and index.max() == 2534
    assert index[0, 0] == index[391, 391] == (7 * 13 * 13) + (6 * 13) + 6  # zero offset = table centre


def test_sine_position_encoding_values() -> None:
    mask = torch.zeros(1, 2, 3, dtype=torch.bool)
    mask[0, :, 2] = True  # last column is padding
    pos = sine_position_encoding(mask, d_model=4)
    assert pos.shape == (1, 4, 2, 3)
    y = torch.tensor([[1.0, 1.0, 0.0], [2.0, 2.0, 0.0]])  # padding column: 0 / (0 + eps)
    y = y / (2 + 1e-6) * 2 * math.pi
    x = torch.tensor([[1.0, 2.0, 2.0], [1.0, 2.0, 2.0]]) / (2 + 1e-6) * 2 * math.pi
    torch.testing.assert_close(pos[0, 0], y.sin())
    torch.testing.assert_close(pos[0, 1], y.cos())  # dim_t = 10000^(2·⌊1/2⌋/2) = 1
    torch.testing.assert_close(pos[0, 2], x.sin())
    torch.testing.assert_close(pos[0, 3], x.cos())
