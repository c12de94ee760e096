"""Multimodal transformer (spec §3): post-norm DETR encoder/decoder over one sequence per frame.

Shape legend: N = T·B sequences (t-major: n = t·B + b), L = h·w video tokens + S text tokens, D = d_model,
Nq = object queries, nh heads, hd = D/nh. Tensors are batch-first internally; the parameter names and
the math are those of `nn.MultiheadAttention` in the official weights.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rvos_cli.core.model.checkpointing import run_layer


class MultiheadAttention(nn.Module):
    """Multi-head attention with `nn.MultiheadAttention`'s parameters, computed by the fused SDPA kernel.

    Same outputs as `nn.MultiheadAttention(D, nh, dropout)` (up to float rounding) without materialising
    the attention matrix where the backend can avoid it.
    """

    def __init__(self, d_model: int, nheads: int, dropout: float) -> None:
        super().__init__()
        self.nheads = nheads
        self.dropout = dropout
        self.in_proj_weight = nn.Parameter(torch.empty(3 * d_model, d_model))
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * d_model))
        self.out_proj = nn.Linear(d_model, d_model)
        nn.init.xavier_uniform_(self.in_proj_weight)
        nn.init.zeros_(self.out_proj.bias)

    def forward(
        self, query: Tensor, key: Tensor, value: Tensor, key_padding_mask: Tensor | None = None
    ) -> Tensor:
        """query `[N,Lq,D]`, key/value `[N,Lk,D]`, key_padding_mask `[N,Lk]` (True = ignore) → `[N,Lq,D]`."""
        N, Lq, D = query.shape
        w_q, w_k, w_v = self.in_proj_weight.chunk(3)
        b_q, b_k, b_v = self.in_proj_bias.chunk(3)
        hd = D // self.nheads
        q = F.linear(query, w_q, b_q).view(N, Lq, self.nheads, hd).transpose(1, 2)  # [N, nh, Lq, hd]
        k = F.linear(key, w_k, b_k).view(N, -1, self.nheads, hd).transpose(1, 2)
        v = F.linear(value, w_v, b_v).view(N, -1, self.nheads, hd).transpose(1, 2)
        attn_mask = None
        if key_padding_mask is not None:  # additive −inf: faster than bool on CPU
            attn_mask = torch.zeros(key_padding_mask.shape, dtype=q.dtype, device=q.device)
            attn_mask = attn_mask.masked_fill(key_padding_mask, float("-inf"))[:, None, None, :]
        out = F.scaled_dot_product_attention(
            q, k, v, attn_mask=attn_mask, dropout_p=self.dropout if self.training else 0.0
        )
        return self.out_proj(out.transpose(1, 2).reshape(N, Lq, D))


class EncoderLayer(nn.Module):
    """Post-norm layer: LN(x + SA(x+pos, x+pos, x)), then LN(x + FFN(x))."""

    def __init__(self, d_model: int, nheads: int, dim_feedforward: int, dropout: float) -> None:
        super().__init__()
        self.self_attn = MultiheadAttention(d_model, nheads, dropout)
        self.linear1 = nn.Linear(d_model, dim_feedforward)
        self.dropout = nn.Dropout(dropout)
        self.linear2 = nn.Linear(dim_feedforward, d_model)
        self.norm1 = nn.LayerNorm(d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.dropout1 = nn.Dropout(dropout)
        self.dropout2 = nn.Dropout(dropout)

    def forward(self, src: Tensor, pos: Tensor, padding_mask: Tensor) -> Tensor:
        """src/pos `[N,L,D]`, padding_mask `[N,L]` → `[N,L,D]`."""
        qk = src + pos
        src = self.norm1(src + self.dropout1(self.self_attn(qk, qk, src, padding_mask)))
        ffn = self.linear2(self.dropout(F.relu(self.linear1(src))))
        return self.norm2(src + self.dropout2(ffn))


class DecoderLayer(nn.Module):
    """Post-norm layer: query self-attention, cross-attention to the multimodal memory, FFN."""

    def __init__(self, d_model: int, nheads: int, dim_feedforward: int, dropout: float) -> None:
        super().__init__()
        self.self_attn = MultiheadAttention(d_model, nheads, dropout)
        self.multihead_attn = MultiheadAttention(d_model, nheads, dropout)
        self.linear1 = nn.Linear(d_model, dim_feedforward)
        self.dropout = nn.Dropout(dropout)
        self.linear2 = nn.Linear(dim_feedforward, d_model)
        self.norm1 = nn.LayerNorm(d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.norm3 = nn.LayerNorm(d_model)
        self.dropout1 = nn.Dropout(dropout)
        self.dropout2 = nn.Dropout(dropout)
        self.dropout3 = nn.Dropout(dropout)

    def forward(
        self, tgt: Tensor, memory: Tensor, memory_padding_mask: Tensor, pos: Tensor, query_pos: Tensor
    ) -> Tensor:
        """tgt/query_pos `[N,Nq,D]`, memory/pos `[N,L,D]`, memory_padding_mask `[N,L]` → `[N,Nq,D]`."""
        qk = tgt + query_pos
        tgt = self.norm1(tgt + self.dropout1(self.self_attn(qk, qk, tgt)))
        attended = self.multihead_attn(tgt + query_pos, memory + pos, memory, memory_padding_mask)
        tgt = self.norm2(tgt + self.dropout2(attended))
        ffn = self.linear2(self.dropout(F.relu(self.linear1(tgt))))
        return self.norm3(tgt + self.dropout3(ffn))


class TransformerEncoder(nn.Module):
    """A stack of encoder layers with no final norm; `grad_checkpoint` recomputes each layer in backward."""

    def __init__(
        self, num_layers: int, d_model: int, nheads: int, dim_feedforward: int, dropout: float
    ) -> None:
        super().__init__()
        self.grad_checkpoint = False
        self.layers = nn.ModuleList(
            EncoderLayer(d_model, nheads, dim_feedforward, dropout) for _ in range(num_layers)
        )

    def forward(self, src: Tensor, pos: Tensor, padding_mask: Tensor) -> Tensor:
        """`[N,L,D]` → `[N,L,D]`."""
        for layer in self.layers:
            src = run_layer(layer, self.grad_checkpoint, src, pos, padding_mask)
        return src


class TransformerDecoder(nn.Module):
    """A stack of decoder layers; every layer's output passes the shared final LayerNorm and is kept.

    `grad_checkpoint` recomputes each layer in backward during training.
    """

    def __init__(
        self, num_layers: int, d_model: int, nheads: int, dim_feedforward: int, dropout: float
    ) -> None:
        super().__init__()
        self.grad_checkpoint = False
        self.layers = nn.ModuleList(
            DecoderLayer(d_model, nheads, dim_feedforward, dropout) for _ in range(num_layers)
        )
        self.norm = nn.LayerNorm(d_model)

    def forward(self, memory: Tensor, memory_padding_mask: Tensor, pos: Tensor, query_pos: Tensor) -> Tensor:
        """memory/pos `[N,L,D]`, query_pos `[N,Nq,D]` → decoder states of every layer `[Ldec,N,Nq,D]`."""
        tgt = torch.zeros_like(query_pos)
        states = []
        for layer in self.layers:
            tgt = run_layer(layer, self.grad_checkpoint, tgt, memory, memory_padding_mask, pos, query_pos)
            states.append(self.norm(tgt))
        return torch.stack(states)


class FeatureResizer(nn.Module):
    """`txt_proj`: Linear → LayerNorm(eps 1e-12) → Dropout, from the text width to d_model."""

    def __init__(self, input_dim: int, output_dim: int, dropout: float) -> None:
        super().__init__()
        self.fc = nn.Linear(input_dim, output_dim, bias=True)
        self.layer_norm = nn.LayerNorm(output_dim, eps=1e-12)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        """`[B,S,C_text]` → `[B,S,D]`."""
        return self.dropout(self.layer_norm(self.fc(x)))


class MultimodalTransformer(nn.Module):
    """Encoder over [video tokens ; text tokens] of each frame, decoder of Nq shared queries per frame.

    Owns the text encoder and `txt_proj` too, so the parameter names match the official weights
    (`transformer.text_encoder.*`, `transformer.txt_proj.*`).
    """

    def __init__(
        self,
        text_encoder: nn.Module,
        text_dim: int,
        d_model: int = 256,
        nheads: int = 8,
        num_encoder_layers: int = 3,
        num_decoder_layers: int = 3,
        dim_feedforward: int = 2048,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        self.d_model = d_model
        self.encoder = TransformerEncoder(num_encoder_layers, d_model, nheads, dim_feedforward, dropout)
        self.decoder = TransformerDecoder(num_decoder_layers, d_model, nheads, dim_feedforward, dropout)
        for p in self.parameters():
            if p.dim() > 1:
                nn.init.xavier_uniform_(p)
        self.text_encoder = text_encoder
        self.txt_proj = FeatureResizer(text_dim, d_model, dropout)

    def forward(
        self,
        vid_embeds: Tensor,
        vid_pad_mask: Tensor,
        vid_pos: Tensor,
        text_memory: Tensor,
        text_pad_mask: Tensor,
        query_embed: Tensor,
    ) -> tuple[Tensor, Tensor]:
        """Run the multimodal encoder and the query decoder on every frame independently.

        vid_embeds `[T,B,D,h,w]`, vid_pad_mask `[T,B,h,w]`, vid_pos `[T,B,D,h,w]` (sine), text_memory
        `[B,S,D]` (after txt_proj), text_pad_mask `[B,S]` (True on pads), query_embed `[Nq,D]`.
        Returns decoder states `[Ldec,T,B,Nq,D]` and the encoded video memory `[T,B,D,h,w]`.
        """
        T, B, D, h, w = vid_embeds.shape
        N = T * B
        video = vid_embeds.flatten(3).permute(0, 1, 3, 2).reshape(N, h * w, D)
        pos = vid_pos.flatten(3).permute(0, 1, 3, 2).reshape(N, h * w, D)
        S = text_memory.shape[1]
        text = text_memory.unsqueeze(0).expand(T, B, S, D).reshape(N, S, D)
        src = torch.cat([video, text], dim=1)  # [N, h·w + S, D]
        pos = torch.cat([pos, torch.zeros_like(text)], dim=1)
        padding_mask = torch.cat(
            [vid_pad_mask.reshape(N, h * w), text_pad_mask.unsqueeze(0).expand(T, B, S).reshape(N, S)], dim=1
        )
        memory = self.encoder(src, pos, padding_mask)
        query_pos = query_embed.unsqueeze(0).expand(N, -1, -1)
        hs = self.decoder(memory, padding_mask, pos, query_pos)  # [Ldec, N, Nq, D]
        hs = hs.view(hs.shape[0], T, B, *hs.shape[2:])
        vid_memory = memory[:, : h * w].reshape(T, B, h, w, D).permute(0, 1, 4, 2, 3)
        return hs, vid_memory
