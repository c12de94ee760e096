"""The MTTR network and its builder."""

from __future__ import annotations

from rvos_cli.core.config import ModelConfig, get_preset, resolve_text_encoder
from rvos_cli.core.model.checkpointing import set_grad_checkpoint
from rvos_cli.core.model.mttr import MTTR, TextFeatures, VideoFeatures
from rvos_cli.core.model.text_encoder import Tokenizer, build_text_encoder, text_hidden_size
from rvos_cli.core.model.transformer import MultimodalTransformer
from rvos_cli.core.model.video_swin import VideoSwinBackbone

__all__ = ["MTTR", "TextFeatures", "Tokenizer", "VideoFeatures", "build_model", "build_tokenizer"]


def _model_config(preset: str | ModelConfig) -> ModelConfig:
    return get_preset(preset).model if isinstance(preset, str) else preset


def build_model(preset: str | ModelConfig, text_encoder: str | None = None) -> MTTR:
    """Build an MTTR network from a preset name (`mttr-a2d`, `mttr-ytvos`, `tiny`) or a `ModelConfig`.

    `text_encoder` overrides the config's encoder (a hub name or a local folder). With
    `config.text_encoder.pretrained` false only the encoder's config is read (random weights, to be
    replaced by an MTTR checkpoint). `config.grad_checkpoint` switches activation checkpointing on
    (training only). Returns the model in train mode on the CPU.
    """
    config = _model_config(preset)
    name = resolve_text_encoder(text_encoder or config.text_encoder.name)
    encoder = build_text_encoder(name, pretrained=config.text_encoder.pretrained)
    b, t = config.backbone, config.transformer
    backbone = VideoSwinBackbone(
        embed_dim=b.embed_dim,
        depths=b.depths,
        num_heads=b.num_heads,
        discarded_stage_depth=b.discarded_stage_depth,
        patch_size=b.patch_size,
        window_size=b.window_size,
        mlp_ratio=b.mlp_ratio,
        drop_path_rate=b.drop_path_rate,
    )
    transformer = MultimodalTransformer(
        encoder,
        text_hidden_size(encoder),
        d_model=t.d_model,
        nheads=t.nheads,
        num_encoder_layers=t.num_encoder_layers,
        num_decoder_layers=t.num_decoder_layers,
        dim_feedforward=t.dim_feedforward,
        dropout=t.dropout,
    )
    model = MTTR(
        backbone,
        transformer,
        num_queries=t.num_queries,
        mask_kernels_dim=config.mask_kernels_dim,
        aux_loss=config.aux_loss,
        freeze_text_encoder=config.text_encoder.freeze,
    )
    set_grad_checkpoint(model, config.grad_checkpoint)
    return model


def build_tokenizer(preset: str | ModelConfig, text_encoder: str | None = None) -> Tokenizer:
    """The tokenizer that goes with `build_model(preset, text_encoder)`."""
    config = _model_config(preset)
    return Tokenizer(resolve_text_encoder(text_encoder or config.text_encoder.name))
