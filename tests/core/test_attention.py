"""Fused attention (scaled_dot_product_attention) equals the plain formulas it replaces."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from rvos_cli.core.model import video_swin, window_attention
from rvos_cli.core.model.position_encoding import sine_position_encoding
from rvos_cli.core.model.transformer import MultiheadAttention
from rvos_cli.core.model.video_swin import (
    SwinBlock3D,
    effective_window,
    shift_mask_patterns,
    shifted_window_mask,
    window_partition,
    window_reverse,
)
from rvos_cli.core.model.window_attention import relative_position_index


def _reference_block(block: SwinBlock3D, x: torch.Tensor) -> torch.Tensor:
    """The reference's formulation: LN → pad → roll → partition → softmax(qkᵀ·s + b + m)v → reverse."""
    B, D, H, W, C = x.shape
    window, shift = effective_window((D, H, W), block.window, block.shift)
    y = block.norm1(x)
    pads = [(w - g % w) % w for g, w in zip((D, H, W), window, strict=True)]
    y = torch.nn.functional.pad(y, (0, 0, 0, pads[2], 0, pads[1], 0, pads[0]))
    _, Dp, Hp, Wp, _ = y.shape
    shifted = any(shift)
    if shifted:
        y = torch.roll(y, shifts=tuple(-s for s in shift), dims=(1, 2, 3))
    windows = window_partition(y, window)
    attn = block.attn
    Bw, N, _ = windows.shape
    nh = attn.num_heads
    qkv = attn.qkv(windows).reshape(Bw, N, 3, nh, C // nh).permute(2, 0, 3, 1, 4)
    scores = (qkv[0] * (C // nh) ** -0.5) @ qkv[1].transpose(-2, -1)
    scores = scores + attn.position_bias(N).unsqueeze(0)
    if shifted:
        mask = shifted_window_mask((Dp, Hp, Wp), window, shift, x.device)
        scores = (scores.view(B, -1, nh, N, N) + mask.unsqueeze(1).unsqueeze(0)).view(Bw, nh, N, N)
    out = attn.proj((scores.softmax(-1) @ qkv[2]).transpose(1, 2).reshape(Bw, N, C))
    y = window_reverse(out, window, B, Dp, Hp, Wp)
    if shifted:
        y = torch.roll(y, shifts=shift, dims=(1, 2, 3))
    x = x + y[:, :D, :H, :W]
    return x + block.mlp(block.norm2(x))


def _random_block(dim: int, heads: int, window, shift) -> SwinBlock3D:
    torch.manual_seed(0)
    block = SwinBlock3D(dim, heads, window, shift, mlp_ratio=2.0, drop_path=0.0).eval()
    nn.init.normal_(block.attn.relative_position_bias_table, std=1.0)
    return block


def test_shifted_block_matches_the_reference_formulation_with_padding() -> None:
    block = _random_block(24, 3, (2, 3, 3), (1, 1, 1))
    x = torch.randn(2, 3, 7, 8, 24)  # pads to 4×9×9: border windows mix regions and padding
    with torch.no_grad():
        torch.testing.assert_close(block(x), _reference_block(block, x), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(block(x), _reference_block(block, x), atol=1e-5, rtol=1e-5)  # autograd path


def _block_gradients(block: SwinBlock3D, x: torch.Tensor, forward) -> dict[str, torch.Tensor]:
    """Gradients of a fixed random projection of forward(block, x) w.r.t. x and every parameter."""
    block.zero_grad(set_to_none=True)
    x = x.clone().requires_grad_(True)
    out = forward(block, x)
    (out * torch.linspace(-1, 1, out.numel(), dtype=out.dtype).view(out.shape)).sum().backward()
    grads = {name: p.grad.clone() for name, p in block.named_parameters()}
    return {"input": x.grad, **grads}


@pytest.mark.parametrize("shift", [(1, 1, 1), (0, 0, 0)])
@pytest.mark.parametrize("windows_per_chunk", [3, 1000])
def test_block_gradients_match_the_reference_formulation(monkeypatch, shift, windows_per_chunk) -> None:
    # float64: the comparison then shows the formulas agree, not how float32 sums round
    block = _random_block(24, 3, (2, 3, 3), shift).train().double()
    x = torch.randn(2, 3, 7, 8, 24, dtype=torch.float64)  # pads to 4×9×9: 36 windows per clip
    monkeypatch.setattr(window_attention, "ATTENTION_CHUNK_ELEMENTS", 3 * 18 * 18 * windows_per_chunk)
    monkeypatch.setattr(window_attention, "BACKWARD_CHUNK_ELEMENTS", 3 * 18 * 18 * (windows_per_chunk - 1))
    fast = _block_gradients(block, x, lambda b, y: b(y))
    reference = _block_gradients(block, x, _reference_block)
    assert fast["attn.relative_position_bias_table"].abs().sum() > 0
    for name, grad in reference.items():
        assert (fast[name] - grad).abs().max() <= 1e-10, name


def test_training_attention_keeps_no_scores_for_backward() -> None:
    block = _random_block(24, 3, (2, 3, 3), (1, 1, 1)).train()
    x = torch.randn(1, 4, 6, 6, 24, requires_grad=True)
    saved: list[tuple[int, ...]] = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(tuple(t.shape)) or t, lambda t: t):
        block(x)
    scores = [shape for shape in saved if shape[-2:] == (18, 18)]
    assert scores == [(1, 3, 18, 18)]  # the position bias once, no [windows, heads, N, N] scores


def _saved_floats_per_token(block: SwinBlock3D, x: torch.Tensor) -> float:
    """Floats kept for backward by one training forward of `block`, per token, counted per storage."""
    storages: dict[int, int] = {}
    parameters = {p.untyped_storage().data_ptr() for p in block.parameters()}

    def pack(t: torch.Tensor) -> torch.Tensor:
        if t.is_floating_point() and t.untyped_storage().data_ptr() not in parameters:
            storages[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes() // t.element_size()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        block(x)
    return sum(storages.values()) / (x.numel() / x.shape[-1])


def test_training_block_keeps_six_floats_per_channel_and_token() -> None:
    # MLP ratio 2. Kept: block input, q/k/v, proj input and LN2 input = 6C, two LayerNorm statistics
    # per token and the position bias [1, nh, N, N] once. Plain autograd also keeps the LN outputs, the
    # window rows, the fc1 and GELU outputs (14C), and the math attention path its N×N scores.
    block = _random_block(32, 2, (2, 4, 4), (1, 2, 2)).train()
    x = torch.randn(1, 4, 8, 8, 32).requires_grad_(True)  # no padding: window rows = tokens
    assert _saved_floats_per_token(block, x) == 6 * 32 + 4 + 2 * 32 * 32 / 256
    with torch.autocast("cpu", dtype=torch.bfloat16):  # no lean path under autocast
        assert _saved_floats_per_token(block, x) > 11 * 32


def test_training_block_under_bf16_autocast_has_close_gradients() -> None:
    block = _random_block(24, 3, (2, 3, 3), (1, 1, 1)).train()
    x = torch.randn(2, 3, 7, 8, 24)
    reference = _block_gradients(block, x, lambda b, y: b(y))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        autocast = _block_gradients(block, x, lambda b, y: b(y).float())
    for name, grad in reference.items():
        assert torch.isfinite(autocast[name]).all(), name
        torch.testing.assert_close(autocast[name].float(), grad, atol=0.1 * grad.abs().max(), rtol=0.1)


def test_plain_block_matches_the_reference_formulation() -> None:
    block = _random_block(24, 3, (2, 3, 3), (0, 0, 0))
    x = torch.randn(1, 4, 6, 5, 24)
    with torch.no_grad():
        torch.testing.assert_close(block(x), _reference_block(block, x), atol=1e-5, rtol=1e-5)


def test_window_smaller_than_configured_uses_first_entries_of_the_index() -> None:
    block = _random_block(8, 2, (8, 7, 7), (4, 3, 3))
    x = torch.randn(1, 2, 10, 14, 8)  # 2 frames: the temporal window shrinks to 2, N = 98 < 392
    with torch.no_grad():
        torch.testing.assert_close(block(x), _reference_block(block, x), atol=1e-5, rtol=1e-5)


def test_chunked_attention_and_mlp_equal_one_pass(monkeypatch) -> None:
    block = _random_block(24, 3, (2, 3, 3), (1, 1, 1))
    x = torch.randn(2, 4, 6, 6, 24)
    with torch.no_grad():
        whole = block(x)
        monkeypatch.setattr(window_attention, "ATTENTION_CHUNK_ELEMENTS", 3 * 18 * 18 * 3)  # 3 windows each
        monkeypatch.setattr(video_swin, "MLP_CHUNK_TOKENS", 50)
        torch.testing.assert_close(block(x), whole, atol=1e-6, rtol=1e-6)


def test_shift_mask_has_one_pattern_for_inner_windows_and_few_at_borders() -> None:
    patterns = shift_mask_patterns((4, 6, 6), (2, 3, 3), (1, 1, 1), torch.device("cpu"))
    assert patterns.patterns.shape == (8, 1, 18, 18)
    assert patterns.window_pattern.shape == (8,)
    big = shift_mask_patterns((16, 91, 161), (8, 7, 7), (4, 3, 3), torch.device("cpu"))
    assert big.patterns.shape[0] == 8 and big.window_pattern.shape == (2 * 13 * 23,)


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


def test_drop_path_drops_whole_samples_and_keeps_the_expectation() -> None:
    torch.manual_seed(0)
    drop = video_swin.DropPath(0.5).train()
    out = drop(torch.ones(1000, 3, 4))
    per_sample = out.flatten(1)
    assert set(per_sample.unique().tolist()) == {0.0, 2.0}
    assert torch.equal(per_sample.min(1).values, per_sample.max(1).values)  # all or nothing per sample
    assert abs(out.mean().item() - 1.0) < 0.1
    x = torch.randn(4, 5)
    assert torch.equal(drop.eval()(x), x)
