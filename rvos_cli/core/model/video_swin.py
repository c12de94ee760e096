"""Video Swin Transformer temporal encoder, as modified by MTTR (spec §1).

Shape legend: B batch, T frames, C channels, D/H/W the (time, height, width) token grid, N tokens per
window, nW windows, nh heads, hd head dim.

MTTR's changes to Video Swin-T: patch size (1,4,4) so every frame keeps its own feature map, only
stages 1–3, and the merging that followed stage 3 removed. The outputs of stages 1–3 (before merging) are
the multi-scale features `[T,B,C,H/s,W/s]` for s = 4, 8, 16.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from timm.layers import DropPath, trunc_normal_
from torch import Tensor, nn

Triple = tuple[int, int, int]


def effective_window(grid: Triple, window: Triple, shift: Triple) -> tuple[Triple, Triple]:
    """Shrink the window to the grid along axes where the grid is not larger, and drop the shift there.

    Takes the token grid (D,H,W), the configured window and shift; returns (window, shift) to use.
    """
    use_window = tuple(g if g <= w else w for g, w in zip(grid, window, strict=True))
    use_shift = tuple(0 if g <= w else s for g, w, s in zip(grid, window, shift, strict=True))
    return use_window, use_shift  # type: ignore[return-value]


def window_partition(x: Tensor, window: Triple) -> Tensor:
    """Split `x [B,D,H,W,C]` (each axis a multiple of the window) into windows `[B·nW, N, C]`."""
    B, D, H, W, C = x.shape
    wd, wh, ww = window
    x = x.view(B, D // wd, wd, H // wh, wh, W // ww, ww, C)
    return x.permute(0, 1, 3, 5, 2, 4, 6, 7).reshape(-1, wd * wh * ww, C)


def window_reverse(windows: Tensor, window: Triple, B: int, D: int, H: int, W: int) -> Tensor:
    """Inverse of `window_partition`: `[B·nW, N, C]` → `[B,D,H,W,C]`."""
    wd, wh, ww = window
    x = windows.view(B, D // wd, H // wh, W // ww, wd, wh, ww, -1)
    return x.permute(0, 1, 4, 2, 5, 3, 6, 7).reshape(B, D, H, W, -1)


@functools.lru_cache(maxsize=32)
def shifted_window_mask(padded: Triple, window: Triple, shift: Triple, device: torch.device) -> Tensor:
    """Additive mask `[nW, N, N]`: −100 between tokens that came from different regions before the roll."""
    img_mask = torch.zeros((1, *padded, 1), device=device)
    region = 0
    slices = [(slice(-w), slice(-w, -s), slice(-s, None)) for w, s in zip(window, shift, strict=True)]
    for d in slices[0]:
        for h in slices[1]:
            for w in slices[2]:
                img_mask[:, d, h, w, :] = region
                region += 1
    windows = window_partition(img_mask, window).squeeze(-1)  # [nW, N]
    mask = windows.unsqueeze(1) - windows.unsqueeze(2)
    return mask.masked_fill(mask != 0, -100.0).masked_fill(mask == 0, 0.0)


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

    def forward(self, x: Tensor, mask: Tensor | None) -> Tensor:
        """Attend within windows. x `[B·nW, N, C]`, mask `[nW, N, N]` additive or None → `[B·nW, N, C]`."""
        Bw, N, C = x.shape
        qkv = self.qkv(x).reshape(Bw, N, 3, self.num_heads, C // self.num_heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)  # each [B·nW, nh, N, hd]
        bias = self.position_bias(N).unsqueeze(0).to(q.dtype)  # [1, nh, N, N]
        if mask is None:
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
        else:
            nW = mask.shape[0]
            full = bias.unsqueeze(0) + mask.to(q.dtype)[None, :, None]  # [1, nW, nh, N, N]
            shape = (Bw // nW, nW, self.num_heads, N, -1)
            out = F.scaled_dot_product_attention(
                q.view(shape), k.view(shape), v.view(shape), attn_mask=full
            ).flatten(0, 1)
        return self.proj(out.transpose(1, 2).reshape(Bw, N, C))


class Mlp(nn.Module):
    """Linear → GELU → Linear (names fc1/fc2 as in the official weights)."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: Tensor) -> Tensor:
        """`[..., C]` → `[..., C]`."""
        return self.fc2(self.act(self.fc1(x)))


class SwinBlock3D(nn.Module):
    """One (shifted-)window transformer block: x + DropPath(W-MSA(LN(x))), then x + DropPath(MLP(LN(x)))."""

    def __init__(
        self, dim: int, num_heads: int, window: Triple, shift: Triple, mlp_ratio: float, drop_path: float
    ) -> None:
        super().__init__()
        self.window = window
        self.shift = shift
        self.norm1 = nn.LayerNorm(dim)
        self.attn = WindowAttention3D(dim, window, num_heads)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def _attention(self, x: Tensor, mask: Tensor | None) -> Tensor:
        B, D, H, W, _ = x.shape
        window, shift = effective_window((D, H, W), self.window, self.shift)
        x = self.norm1(x)
        pad_d = (window[0] - D % window[0]) % window[0]
        pad_h = (window[1] - H % window[1]) % window[1]
        pad_w = (window[2] - W % window[2]) % window[2]
        x = F.pad(x, (0, 0, 0, pad_w, 0, pad_h, 0, pad_d))
        _, Dp, Hp, Wp, _ = x.shape
        shifted = any(s > 0 for s in shift)
        if shifted:
            x = torch.roll(x, shifts=tuple(-s for s in shift), dims=(1, 2, 3))
        windows = self.attn(window_partition(x, window), mask if shifted else None)
        x = window_reverse(windows, window, B, Dp, Hp, Wp)
        if shifted:
            x = torch.roll(x, shifts=shift, dims=(1, 2, 3))
        return x[:, :D, :H, :W, :]

    def forward(self, x: Tensor, mask: Tensor | None) -> Tensor:
        """x `[B,D,H,W,C]`, mask the layer's shifted-window mask `[nW,N,N]` or None → `[B,D,H,W,C]`."""
        x = x + self.drop_path(self._attention(x, mask))
        return x + self.drop_path(self.mlp(self.norm2(x)))


class BasicLayer(nn.Module):
    """A Swin stage: `depth` blocks alternating plain and shifted windows. Its merging lives elsewhere."""

    def __init__(
        self,
        dim: int,
        depth: int,
        num_heads: int,
        window: Triple,
        mlp_ratio: float,
        drop_path: Sequence[float],
    ) -> None:
        super().__init__()
        self.window = window
        self.shift: Triple = (window[0] // 2, window[1] // 2, window[2] // 2)
        self.blocks = nn.ModuleList(
            SwinBlock3D(
                dim, num_heads, window, (0, 0, 0) if i % 2 == 0 else self.shift, mlp_ratio, drop_path[i]
            )
            for i in range(depth)
        )

    def forward(self, x: Tensor) -> Tensor:
        """`[B,C,D,H,W]` → `[B,C,D,H,W]`."""
        x = x.permute(0, 2, 3, 4, 1)  # [B, D, H, W, C]
        _, D, H, W, _ = x.shape
        window, shift = effective_window((D, H, W), self.window, self.shift)
        padded = tuple(-(-g // w) * w for g, w in zip((D, H, W), window, strict=True))
        mask = shifted_window_mask(padded, window, shift, x.device) if any(shift) else None
        for block in self.blocks:
            x = block(x, mask)
        return x.permute(0, 4, 1, 2, 3)


class PatchMerging(nn.Module):
    """2×2 spatial concat → LayerNorm(4C) → Linear(4C→2C, no bias); pads odd H/W by one."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.reduction = nn.Linear(4 * dim, 2 * dim, bias=False)
        self.norm = nn.LayerNorm(4 * dim)

    def forward(self, x: Tensor) -> Tensor:
        """`[B,D,H,W,C]` → `[B,D,⌈H/2⌉,⌈W/2⌉,2C]`."""
        H, W = x.shape[2], x.shape[3]
        x = F.pad(x, (0, 0, 0, W % 2, 0, H % 2))
        x = torch.cat(
            [x[:, :, 0::2, 0::2], x[:, :, 1::2, 0::2], x[:, :, 0::2, 1::2], x[:, :, 1::2, 1::2]], -1
        )
        return self.reduction(self.norm(x))


class PatchEmbed3D(nn.Module):
    """Conv3d patch projection (kernel = stride = patch) followed by LayerNorm over channels."""

    def __init__(self, patch: Triple, embed_dim: int) -> None:
        super().__init__()
        self.patch = patch
        self.proj = nn.Conv3d(3, embed_dim, kernel_size=patch, stride=patch)
        self.norm = nn.LayerNorm(embed_dim)

    def forward(self, x: Tensor) -> Tensor:
        """`[B,3,T,H,W]` → `[B,C,T/pt,⌈H/4⌉,⌈W/4⌉]` (right/bottom zero padding to the patch multiple)."""
        _, _, T, H, W = x.shape
        pt, ph, pw = self.patch
        x = F.pad(x, (0, (pw - W % pw) % pw, 0, (ph - H % ph) % ph, 0, (pt - T % pt) % pt))
        x = self.proj(x)
        return self.norm(x.permute(0, 2, 3, 4, 1)).permute(0, 4, 1, 2, 3)


class VideoSwinBackbone(nn.Module):
    """The MTTR temporal encoder: Video Swin stages 1–3 with merging after stages 1 and 2.

    Drop-path rates are spread linearly over the blocks of the full 4-stage model (the 4th stage's share
    is computed and thrown away, as in the reference).
    """

    def __init__(
        self,
        embed_dim: int = 96,
        depths: Sequence[int] = (2, 2, 6),
        num_heads: Sequence[int] = (3, 6, 12),
        discarded_stage_depth: int = 2,
        patch_size: Triple = (1, 4, 4),
        window_size: Triple = (8, 7, 7),
        mlp_ratio: float = 4.0,
        drop_path_rate: float = 0.1,
    ) -> None:
        super().__init__()
        self.patch_embed = PatchEmbed3D(patch_size, embed_dim)
        self.pos_drop = nn.Dropout(0.0)
        total = sum(depths) + discarded_stage_depth
        rates = torch.linspace(0, drop_path_rate, total).tolist()
        self.layers = nn.ModuleList()
        self.downsamples = nn.ModuleList()
        self.out_channels: list[int] = []
        start = 0
        for i, (depth, heads) in enumerate(zip(depths, num_heads, strict=True)):
            dim = embed_dim * 2**i
            self.layers.append(
                BasicLayer(dim, depth, heads, window_size, mlp_ratio, rates[start : start + depth])
            )
            start += depth
            self.out_channels.append(dim)
            last = i == len(depths) - 1
            self.downsamples.append(None if last else PatchMerging(dim))  # type: ignore[arg-type]
        self.apply(_init_swin_weights)

    def forward(self, frames: Tensor) -> list[Tensor]:
        """frames `[T,B,3,H,W]` → per-stage features `[T,B,C_i,H/s_i,W/s_i]` for s = 4, 8, 16."""
        x = self.pos_drop(self.patch_embed(frames.permute(1, 2, 0, 3, 4)))  # [B, C, T, H/4, W/4]
        outputs = []
        for layer, downsample in zip(self.layers, self.downsamples, strict=True):
            x = layer(x.contiguous())
            outputs.append(x.permute(2, 0, 1, 3, 4))  # [T, B, C, h, w]
            if downsample is not None:
                x = downsample(x.permute(0, 2, 3, 4, 1)).permute(0, 4, 1, 2, 3)
        return outputs


def _init_swin_weights(module: nn.Module) -> None:
    if isinstance(module, nn.Linear):
        trunc_normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)
