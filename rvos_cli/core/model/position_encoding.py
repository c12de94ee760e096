"""2-D sine positional encoding of the video tokens (spec §3.3), DETR style with normalisation."""

from __future__ import annotations

import math

import torch
from torch import Tensor


def sine_position_encoding(padding_mask: Tensor, d_model: int, temperature: float = 10000.0) -> Tensor:
    """Positions of the un-padded pixels, normalised to [0, 2π] per image.

    Takes padding_mask `[N,h,w]` bool (True on padding) and returns `[N, d_model, h, w]`: the first
    d_model/2 channels encode y, the rest x, each interleaving sin (even) and cos (odd) channels.
    """
    not_mask = (~padding_mask).float()
    y = not_mask.cumsum(1)
    x = not_mask.cumsum(2)
    eps = 1e-6
    y = y / (y[:, -1:, :] + eps) * 2 * math.pi
    x = x / (x[:, :, -1:] + eps) * 2 * math.pi
    num_feats = d_model // 2
    dim_t = torch.arange(num_feats, dtype=torch.float32, device=padding_mask.device)
    dim_t = temperature ** (2 * torch.div(dim_t, 2, rounding_mode="floor") / num_feats)
    pos_x = x[..., None] / dim_t  # [N, h, w, F]
    pos_y = y[..., None] / dim_t
    pos_x = torch.stack((pos_x[..., 0::2].sin(), pos_x[..., 1::2].cos()), dim=4).flatten(3)
    pos_y = torch.stack((pos_y[..., 0::2].sin(), pos_y[..., 1::2].cos()), dim=4).flatten(3)
    return torch.cat((pos_y, pos_x), dim=3).permute(0, 3, 1, 2)
