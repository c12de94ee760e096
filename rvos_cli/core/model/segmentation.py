"""FPN-like spatial decoder and dynamic mask kernels (spec §4).

Shape legend: N = T·B frames, D = d_model, Ds = mask-kernel dim (8), h×w = H/16×W/16 grid.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class FPNSpatialDecoder(nn.Module):
    """Upsamples the multimodal encoder's video memory with the backbone's stride-8 and stride-4 maps.

    Convs 3×3 → GroupNorm(8) → ReLU at widths D, D/2, D/4, D/8, then a 3×3 conv to the Ds mask
    feature channels; the stride-8/4 maps enter through 1×1 adapters added after nearest upsampling.
    """

    def __init__(self, context_dim: int, fpn_dims: Sequence[int], mask_kernels_dim: int = 8) -> None:
        super().__init__()
        dims = [context_dim, context_dim // 2, context_dim // 4, context_dim // 8]
        self.lay1 = nn.Conv2d(context_dim, dims[0], 3, padding=1)
        self.gn1 = nn.GroupNorm(8, dims[0])
        self.lay2 = nn.Conv2d(dims[0], dims[1], 3, padding=1)
        self.gn2 = nn.GroupNorm(8, dims[1])
        self.lay3 = nn.Conv2d(dims[1], dims[2], 3, padding=1)
        self.gn3 = nn.GroupNorm(8, dims[2])
        self.lay4 = nn.Conv2d(dims[2], dims[3], 3, padding=1)
        self.gn4 = nn.GroupNorm(8, dims[3])
        self.adapter1 = nn.Conv2d(fpn_dims[0], dims[1], 1)
        self.adapter2 = nn.Conv2d(fpn_dims[1], dims[2], 1)
        self.out_lay = nn.Conv2d(dims[3], mask_kernels_dim, 3, padding=1)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_uniform_(module.weight, a=1)
                nn.init.zeros_(module.bias)

    def forward(self, x: Tensor, stride8: Tensor, stride4: Tensor) -> Tensor:
        """x `[N,D,h,w]`, stride8 `[N,C2,2h',2w']`, stride4 `[N,C1,4h',4w']`
        → mask features `[N,Ds,H/4,W/4]`."""
        return self.fuse(x, *self.laterals(stride8, stride4))

    def laterals(self, stride8: Tensor, stride4: Tensor) -> tuple[Tensor, Tensor]:
        """The backbone maps through their 1×1 adapters: `[N,D/2,H/8,W/8]`, `[N,D/4,H/4,W/4]`.

        They do not depend on the sentence, so one visual pass computes them once for all sentences.
        """
        return self.adapter1(stride8), self.adapter2(stride4)

    def fuse(self, x: Tensor, lateral8: Tensor, lateral4: Tensor) -> Tensor:
        """Upsample x `[N,D,h,w]` through the adapted laterals → mask features `[N,Ds,H/4,W/4]`."""
        x = F.relu(self.gn1(self.lay1(x)))
        x = F.relu(self.gn2(self.lay2(x)))
        x = lateral8 + F.interpolate(x, size=lateral8.shape[-2:], mode="nearest")
        x = F.relu(self.gn3(self.lay3(x)))
        x = lateral4 + F.interpolate(x, size=lateral4.shape[-2:], mode="nearest")
        x = F.relu(self.gn4(self.lay4(x)))
        return self.out_lay(x)


class MLP(nn.Module):
    """Linear layers with ReLU between them (names layers.0, layers.1, ... as in the official weights)."""

    def __init__(self, input_dim: int, hidden_dim: int, output_dim: int, num_layers: int) -> None:
        super().__init__()
        dims = [input_dim] + [hidden_dim] * (num_layers - 1)
        outs = [hidden_dim] * (num_layers - 1) + [output_dim]
        self.layers = nn.ModuleList(nn.Linear(i, o) for i, o in zip(dims, outs, strict=True))

    def forward(self, x: Tensor) -> Tensor:
        """`[..., input_dim]` → `[..., output_dim]`."""
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < len(self.layers) - 1:
                x = F.relu(x)
        return x


def dynamic_masks(kernels: Tensor, mask_features: Tensor) -> Tensor:
    """1×1 dynamic convolution without bias: each query's kernel dotted with every pixel's features.

    kernels `[L,T,B,Nq,Ds]`, mask_features `[T,B,Ds,H4,W4]` → mask logits `[L,T,B,Nq,H4,W4]`.
    """
    return torch.einsum("ltbqc,tbchw->ltbqhw", kernels, mask_features)
