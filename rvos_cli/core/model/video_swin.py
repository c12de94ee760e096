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
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.init import trunc_normal_

from rvos_cli.core.model.checkpointing import run_layer
from rvos_cli.core.model.lean_training import lean_mlp, lean_window_qkv
from rvos_cli.core.model.window_attention import ShiftMask, WindowAttention3D

Triple = tuple[int, int, int]

# Tokens per MLP call at inference: bounds the 4×-wide hidden activations.
MLP_CHUNK_TOKENS = 1 << 15


class DropPath(nn.Module):
    """Stochastic depth: in training, zero a sample's residual branch with probability p, scale the rest.

    Written here rather than taken from timm: timm needs torchvision, which pins a CUDA build of torch
    whose import alone costs about 0.5 GB more resident memory on CPU machines.
    """

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = p

    def forward(self, x: Tensor) -> Tensor:
        """`[B, ...]` → `[B, ...]`, one keep/drop draw per sample."""
        if not self.training or self.p == 0.0:
            return x
        keep = x.new_empty((x.shape[0],) + (1,) * (x.dim() - 1)).bernoulli_(1.0 - self.p)
        return x * keep / (1.0 - self.p)


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


def window_regions(padded: Triple, window: Triple, shift: Triple, device: torch.device) -> Tensor:
    """Region id `[nW, N]` of every window token: tokens of different regions were not neighbours before
    the cyclic shift and must not attend to each other."""
    img_mask = torch.zeros((1, *padded, 1), device=device)
    region = 0
    slices = [(slice(-w), slice(-w, -s), slice(-s, None)) for w, s in zip(window, shift, strict=True)]
    for d in slices[0]:
        for h in slices[1]:
            for w in slices[2]:
                img_mask[:, d, h, w, :] = region
                region += 1
    return window_partition(img_mask, window).squeeze(-1)


def region_mask(regions: Tensor) -> Tensor:
    """Additive mask `[n, N, N]` from region ids `[n, N]`: −100 between different regions, else 0."""
    different = regions.unsqueeze(1) != regions.unsqueeze(2)
    return different.float() * -100.0


def shifted_window_mask(padded: Triple, window: Triple, shift: Triple, device: torch.device) -> Tensor:
    """The reference's additive mask `[nW, N, N]` for shifted windows (for checks; large)."""
    return region_mask(window_regions(padded, window, shift, device))


@functools.lru_cache(maxsize=32)
def shift_mask_patterns(padded: Triple, window: Triple, shift: Triple, device: torch.device) -> ShiftMask:
    """`shifted_window_mask` grouped into its distinct patterns (inner windows share one, borders a few),
    built without materialising the mask of every window."""
    regions = window_regions(padded, window, shift, device)
    distinct, region_row = torch.unique(regions, dim=0, return_inverse=True)  # a few dozen rows at most
    masks = region_mask(distinct)
    patterns, mask_row = torch.unique(masks.flatten(1), dim=0, return_inverse=True)
    return ShiftMask(patterns.view(-1, 1, *masks.shape[1:]), mask_row[region_row])


@dataclass(frozen=True)
class WindowLayout:
    """Where every window token comes from, for one (grid, window, shift) geometry of one clip.

    gather `[nW, N]`: index of each window token in the flattened D·H·W grid, or D·H·W for padding
    (a zero row); scatter `[D·H·W]`: the row of each grid token in the window-major order `nW·N`.
    One gather replaces pad → roll → partition, one scatter replaces reverse → roll back → crop.
    """

    gather: Tensor
    scatter: Tensor
    shift_mask: ShiftMask | None

    def batched(self, B: int) -> tuple[Tensor, Tensor]:
        """Gather `[B·nW, N]` into B stacked clips (padding → row B·D·H·W) and scatter `[B·D·H·W]`."""
        M = self.scatter.numel()
        rows = self.gather.numel()
        offsets = torch.arange(B, device=self.gather.device)
        gather = self.gather.unsqueeze(0) + (offsets * M).view(B, 1, 1)
        gather = torch.where(self.gather.unsqueeze(0) == M, B * M, gather).flatten(0, 1)
        scatter = (self.scatter.unsqueeze(0) + (offsets * rows).view(B, 1)).flatten()
        return gather, scatter


@functools.lru_cache(maxsize=64)
def window_layout(grid: Triple, window: Triple, shift: Triple, device: torch.device) -> WindowLayout:
    """The token layout of (shifted) windows over `grid` (D,H,W); window/shift already effective."""
    D, H, W = grid
    padded = tuple(-(-g // w) * w for g, w in zip(grid, window, strict=True))
    M = D * H * W
    source = torch.full(padded, M, dtype=torch.long, device=device)
    source[:D, :H, :W] = torch.arange(M, device=device).view(D, H, W)
    shifted = any(s > 0 for s in shift)
    if shifted:
        source = torch.roll(source, shifts=tuple(-s for s in shift), dims=(0, 1, 2))
    gather = window_partition(source[None, ..., None], window)[..., 0]  # [nW, N]
    order = torch.arange(gather.numel(), device=device).view(*gather.shape, 1)
    position = window_reverse(order, window, 1, *padded)[0, ..., 0]  # [Dp, Hp, Wp]
    if shifted:
        position = torch.roll(position, shifts=shift, dims=(0, 1, 2))
    scatter = position[:D, :H, :W].flatten()
    mask = shift_mask_patterns(padded, window, shift, device) if shifted else None  # type: ignore[arg-type]
    return WindowLayout(gather, scatter, mask)


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
    """One (shifted-)window transformer block: x + DropPath(W-MSA(LN(x))), then x + DropPath(MLP(LN(x))).

    Same result as the reference's LN → zero-pad → roll → partition → attention → reverse → roll →
    crop, computed with one gather and one scatter (`WindowLayout`); the projection and the MLP run on
    real tokens only, the MLP in chunks of tokens when no gradient is needed. In training, attention and
    MLP keep only what their backward needs (`window_attention`, `lean_training`).
    """

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

    def forward(self, x: Tensor) -> Tensor:
        """`[B,D,H,W,C]` → `[B,D,H,W,C]`."""
        B, D, H, W, C = x.shape
        window, shift = effective_window((D, H, W), self.window, self.shift)
        layout = window_layout((D, H, W), window, shift, x.device)
        gather, scatter = layout.batched(B)
        # the lean training functions have no autocast handling: under autocast autograd keeps more
        lean = torch.is_grad_enabled() and not torch.is_autocast_enabled(x.device.type)
        if lean:
            qkv = lean_window_qkv(self.norm1, self.attn.qkv, x.reshape(-1, C), gather)
            attended = self.attn.attend_qkv(qkv, layout.shift_mask)
        else:
            tokens = self.norm1(x).reshape(-1, C)
            tokens = torch.cat([tokens, tokens.new_zeros(1, C)])  # the last row stands for padding
            attended = self.attn(tokens, gather, layout.shift_mask)
        attended = attended.view(-1, C).index_select(0, scatter)
        x = x + self.drop_path(self.attn.proj(attended).view(B, D, H, W, C))
        if lean:
            return x + self.drop_path(lean_mlp(self.norm2, self.mlp.fc1, self.mlp.fc2, x))
        return x + self.drop_path(self._mlp(x))

    def _mlp(self, x: Tensor) -> Tensor:
        if torch.is_grad_enabled():
            return self.mlp(self.norm2(x))
        flat = x.reshape(-1, x.shape[-1])
        out = torch.empty_like(flat)
        for start in range(0, flat.shape[0], MLP_CHUNK_TOKENS):
            out[start : start + MLP_CHUNK_TOKENS] = self.mlp(
                self.norm2(flat[start : start + MLP_CHUNK_TOKENS])
            )
        return out.view(x.shape)


class BasicLayer(nn.Module):
    """A Swin stage: `depth` blocks alternating plain and shifted windows. Its merging lives elsewhere.

    With `grad_checkpoint` set, each block is recomputed in backward during training (see checkpointing).
    """

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
        self.grad_checkpoint = False
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
        for block in self.blocks:
            x = run_layer(block, self.grad_checkpoint, x)
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
