"""MTTR assembly (spec §0, §4, §5): temporal encoder → multimodal transformer → FPN → dynamic masks.

Shape legend: T frames in the window, T' valid (annotated) frames, B clips, S text tokens, Nq queries,
D d_model, Ds mask-kernel dim, L decoder layers, H×W padded input size, h×w = H/16×W/16.

The forward pass is split in three reusable steps so that inference can encode a sentence once per clip
and serve several sentences with one visual pass: `encode_video`, `encode_text`, `decode`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rvos_cli.core.model.position_encoding import sine_position_encoding
from rvos_cli.core.model.segmentation import MLP, FPNSpatialDecoder, dynamic_masks
from rvos_cli.core.model.text_encoder import encode_text, text_hidden_size
from rvos_cli.core.model.transformer import MultimodalTransformer
from rvos_cli.core.model.video_swin import VideoSwinBackbone


@dataclass
class VideoFeatures:
    """The backbone's view of a clip, restricted to the valid frames.

    stages: three maps `[T',B,C_i,H/s_i,W/s_i]` (s = 4, 8, 16); masks: their padding masks
    `[T',B,H/s_i,W/s_i]` (True on padding).
    """

    stages: list[Tensor]
    masks: list[Tensor]


@dataclass
class VisualContext:
    """What `decode` needs of a clip, for any sentence: vid_embeds `[T',B,D,h,w]`, mask16 `[T',B,h,w]`,
    pos `[T',B,D,h,w]`, and the spatial decoder laterals `[T'·B,D/2,H/8,W/8]`, `[T'·B,D/4,H/4,W/4]`."""

    vid_embeds: Tensor
    mask16: Tensor
    pos: Tensor
    lateral8: Tensor
    lateral4: Tensor


@dataclass
class TextFeatures:
    """Projected token states `[B,S,D]` and the text padding mask `[B,S]` (True on pads)."""

    memory: Tensor
    pad_mask: Tensor


class MTTR(nn.Module):
    """End-to-end referring video object segmentation with multimodal transformers."""

    def __init__(
        self,
        backbone: VideoSwinBackbone,
        transformer: MultimodalTransformer,
        num_queries: int = 50,
        mask_kernels_dim: int = 8,
        aux_loss: bool = True,
        freeze_text_encoder: bool = True,
    ) -> None:
        super().__init__()
        d_model = transformer.d_model
        self.backbone = backbone
        self.transformer = transformer
        self.is_referred_head = nn.Linear(d_model, 2)
        self.instance_kernels_head = MLP(d_model, d_model, mask_kernels_dim, num_layers=2)
        self.obj_queries = nn.Embedding(num_queries, d_model)
        self.vid_embed_proj = nn.Conv2d(backbone.out_channels[-1], d_model, kernel_size=1)
        self.spatial_decoder = FPNSpatialDecoder(
            d_model, backbone.out_channels[-2::-1], mask_kernels_dim=mask_kernels_dim
        )
        self.aux_loss = aux_loss
        self.freeze_text_encoder = freeze_text_encoder
        if freeze_text_encoder:
            for p in self.transformer.text_encoder.parameters():
                p.requires_grad_(False)

    @property
    def text_dim(self) -> int:
        """Width of the text encoder's token states."""
        return text_hidden_size(self.transformer.text_encoder)

    def encode_video(
        self, frames: Tensor, padding_mask: Tensor, valid_indices: Tensor | None = None
    ) -> VideoFeatures:
        """Run the temporal encoder on the whole window and keep the valid frames.

        frames `[T,B,3,H,W]` normalised, padding_mask `[T,B,H,W]` bool, valid_indices `[T']` long or None.
        """
        stages = self.backbone(frames)
        masks = [
            F.interpolate(padding_mask.float(), size=s.shape[-2:], mode="nearest").bool() for s in stages
        ]
        if valid_indices is not None:
            valid_indices = valid_indices.to(frames.device)
            stages = [s.index_select(0, valid_indices) for s in stages]
            masks = [m.index_select(0, valid_indices) for m in masks]
        return VideoFeatures(stages, masks)

    def encode_text(self, input_ids: Tensor, attention_mask: Tensor) -> TextFeatures:
        """input_ids / attention_mask `[B,S]` → projected token states (frozen encoder under no_grad)."""
        states = encode_text(
            self.transformer.text_encoder, input_ids, attention_mask, self.freeze_text_encoder
        )
        return TextFeatures(self.transformer.txt_proj(states), attention_mask != 1)

    def visual_context(self, video: VideoFeatures) -> VisualContext:
        """The sentence-independent inputs of `decode`: projected stride-16 embeddings, their sine
        positions and the spatial decoder's laterals (computed once per clip, whatever the sentences)."""
        stride4, stride8, stride16 = video.stages
        T, B = stride16.shape[:2]
        vid_embeds = self.vid_embed_proj(stride16.flatten(0, 1))  # [T·B, D, h, w]
        vid_embeds = vid_embeds.view(T, B, *vid_embeds.shape[1:])
        mask16 = video.masks[2]
        pos = sine_position_encoding(mask16.flatten(0, 1), vid_embeds.shape[2]).view(vid_embeds.shape)
        lateral8, lateral4 = self.spatial_decoder.laterals(stride8.flatten(0, 1), stride4.flatten(0, 1))
        return VisualContext(vid_embeds, mask16, pos, lateral8, lateral4)

    def decode(
        self, video: VideoFeatures | VisualContext, text: TextFeatures, return_aux: bool = True
    ) -> dict:
        """Multimodal transformer, spatial decoder and heads.

        Returns {'pred_masks': `[T',B,Nq,H/4,W/4]` logits, 'pred_is_referred': `[T',B,Nq,2]` logits,
        'aux_outputs': one dict of the same keys per earlier decoder layer (empty if not `return_aux`)}.
        """
        context = video if isinstance(video, VisualContext) else self.visual_context(video)
        T, B = context.vid_embeds.shape[:2]
        hs, vid_memory = self.transformer(
            context.vid_embeds,
            context.mask16,
            context.pos,
            text.memory,
            text.pad_mask,
            self.obj_queries.weight,
        )
        mask_features = self.spatial_decoder.fuse(
            vid_memory.flatten(0, 1), context.lateral8, context.lateral4
        )
        mask_features = mask_features.view(T, B, *mask_features.shape[1:])  # [T', B, Ds, H/4, W/4]
        layers = hs if return_aux and self.aux_loss else hs[-1:]
        kernels = self.instance_kernels_head(layers)  # [L, T', B, Nq, Ds]
        pred_masks = dynamic_masks(kernels, mask_features)  # [L, T', B, Nq, H/4, W/4]
        pred_is_referred = self.is_referred_head(layers)  # [L, T', B, Nq, 2]
        aux = [
            {"pred_masks": m, "pred_is_referred": r}
            for m, r in zip(pred_masks[:-1], pred_is_referred[:-1], strict=True)
        ]
        return {"pred_masks": pred_masks[-1], "pred_is_referred": pred_is_referred[-1], "aux_outputs": aux}

    def forward(
        self,
        frames: Tensor,
        padding_mask: Tensor,
        input_ids: Tensor,
        attention_mask: Tensor,
        valid_indices: Tensor | None = None,
        return_aux: bool = True,
    ) -> dict:
        """Segment the referred object of each clip.

        frames `[T,B,3,H,W]` float (ImageNet-normalised), padding_mask `[T,B,H,W]` bool (True on padding),
        input_ids / attention_mask `[B,S]`, valid_indices `[T']` long (None = all frames).
        Returns {'pred_masks': `[T',B,Nq,H/4,W/4]`, 'pred_is_referred': `[T',B,Nq,2]`, 'aux_outputs': list
        of those two keys for decoder layers 0..L-2}. `return_aux=False` skips the auxiliary masks
        (inference) and leaves 'aux_outputs' empty; the main outputs are identical.
        """
        video = self.encode_video(frames, padding_mask, valid_indices)
        text = self.encode_text(input_ids, attention_mask)
        return self.decode(video, text, return_aux)

    @torch.no_grad()
    def forward_sentences(
        self,
        frames: Tensor,
        padding_mask: Tensor,
        input_ids: Tensor,
        attention_mask: Tensor,
        valid_indices: Tensor | None = None,
    ) -> dict:
        """One visual pass for K sentences about the same clip (inference).

        frames `[T,1,3,H,W]`, padding_mask `[T,1,H,W]`, input_ids / attention_mask `[K,S]`.
        Returns pred_masks `[T',K,Nq,H/4,W/4]` and pred_is_referred `[T',K,Nq,2]` (no aux outputs):
        the same as K separate forward passes. The backbone, the text encoder and everything of `decode`
        that does not depend on the sentence run once; the transformer, the rest of the spatial decoder
        and the heads run per sentence, so peak memory is that of a single sentence.
        """
        context = self.visual_context(self.encode_video(frames, padding_mask, valid_indices))
        text = self.encode_text(input_ids, attention_mask)
        outputs = [
            self.decode(
                context, TextFeatures(text.memory[k : k + 1], text.pad_mask[k : k + 1]), return_aux=False
            )
            for k in range(input_ids.shape[0])
        ]
        return {
            "pred_masks": torch.cat([o["pred_masks"] for o in outputs], dim=1),
            "pred_is_referred": torch.cat([o["pred_is_referred"] for o in outputs], dim=1),
            "aux_outputs": [],
        }
