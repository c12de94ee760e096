"""The MTTR network: output layouts, the official parameter layout, gradients, fast paths."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from rvos_cli.core.config import ModelConfig, TextEncoderConfig, get_preset
from rvos_cli.core.model import MTTR, build_model
from rvos_cli.core.model.text_encoder import roberta_base_config
from rvos_cli.core.model.transformer import MultimodalTransformer

# Every parameter name and shape of the reference MTTR (a copy of the project spec's official-state-dict.tsv).
SPEC_TSV = Path(__file__).with_name("official_state_dict.tsv")


def _padded_batch(sizes: list[tuple[int, int]], T: int) -> tuple[torch.Tensor, torch.Tensor]:
    H = max(h for h, _ in sizes)
    W = max(w for _, w in sizes)
    frames = torch.zeros(T, len(sizes), 3, H, W)
    padding = torch.ones(T, len(sizes), H, W, dtype=torch.bool)
    for b, (h, w) in enumerate(sizes):
        frames[:, b, :, :h, :w] = torch.randn(T, 3, h, w)
        padding[:, b, :h, :w] = False
    return frames, padding


def test_output_layout_for_padded_videos_of_different_sizes(tiny_model: MTTR, tiny_tokenizer) -> None:
    frames, padding = _padded_batch([(96, 128), (72, 100)], T=3)
    text = tiny_tokenizer(["the red circle", "a big blue square moving left"])
    out = tiny_model(frames, padding, text["input_ids"], text["attention_mask"])
    assert out["pred_masks"].shape == (3, 2, 8, 24, 32)
    assert out["pred_is_referred"].shape == (3, 2, 8, 2)
    assert len(out["aux_outputs"]) == 1
    assert out["aux_outputs"][0]["pred_masks"].shape == (3, 2, 8, 24, 32)
    assert torch.isfinite(out["pred_masks"]).all() and torch.isfinite(out["pred_is_referred"]).all()


def test_valid_indices_keep_only_those_frames(tiny_model: MTTR, tiny_tokenizer) -> None:
    tiny_model.eval()
    frames, padding = _padded_batch([(64, 64)], T=4)
    text = tiny_tokenizer(["a dog"])
    full = tiny_model(frames, padding, text["input_ids"], text["attention_mask"])
    one = tiny_model(
        frames, padding, text["input_ids"], text["attention_mask"], valid_indices=torch.tensor([2])
    )
    assert one["pred_masks"].shape == (1, 1, 8, 16, 16)
    torch.testing.assert_close(one["pred_masks"][0], full["pred_masks"][2], atol=1e-5, rtol=1e-5)


def test_inference_without_aux_gives_identical_main_outputs(tiny_model: MTTR, tiny_tokenizer) -> None:
    tiny_model.eval()
    frames, padding = _padded_batch([(64, 96)], T=2)
    text = tiny_tokenizer(["a cat on the left"])
    with torch.no_grad():
        full = tiny_model(frames, padding, text["input_ids"], text["attention_mask"])
        fast = tiny_model(frames, padding, text["input_ids"], text["attention_mask"], return_aux=False)
    assert fast["aux_outputs"] == []
    torch.testing.assert_close(fast["pred_masks"], full["pred_masks"])
    torch.testing.assert_close(fast["pred_is_referred"], full["pred_is_referred"])


def test_one_visual_pass_serves_several_sentences(tiny_model: MTTR, tiny_tokenizer) -> None:
    tiny_model.eval()
    frames, padding = _padded_batch([(64, 96)], T=2)
    sentences = ["a red circle", "the small green triangle moving up", "a square"]
    text = tiny_tokenizer(sentences)
    calls = []
    handle = tiny_model.backbone.register_forward_hook(lambda *args: calls.append(1))
    joint = tiny_model.forward_sentences(frames, padding, text["input_ids"], text["attention_mask"])
    handle.remove()
    assert len(calls) == 1
    assert joint["pred_masks"].shape == (2, 3, 8, 16, 24)
    with torch.no_grad():
        for k, sentence in enumerate(sentences):
            single = tiny_tokenizer([sentence])
            out = tiny_model(frames, padding, single["input_ids"], single["attention_mask"], return_aux=False)
            torch.testing.assert_close(
                joint["pred_masks"][:, k], out["pred_masks"][:, 0], atol=1e-4, rtol=1e-4
            )
            torch.testing.assert_close(
                joint["pred_is_referred"][:, k], out["pred_is_referred"][:, 0], atol=1e-5, rtol=1e-5
            )


def test_gradients_reach_backbone_and_heads_but_not_frozen_text_encoder(
    tiny_model: MTTR, tiny_tokenizer
) -> None:
    frames, padding = _padded_batch([(64, 64), (48, 64)], T=2)
    text = tiny_tokenizer(["a red circle", "a blue square"])
    out = tiny_model(frames, padding, text["input_ids"], text["attention_mask"])
    loss = out["pred_masks"].square().mean() + out["pred_is_referred"].square().mean()
    loss = loss + sum(
        a["pred_masks"].square().mean() + a["pred_is_referred"].square().mean() for a in out["aux_outputs"]
    )
    loss.backward()
    for name, p in tiny_model.named_parameters():
        if "text_encoder" in name:
            assert not p.requires_grad and p.grad is None, name
        else:
            assert p.grad is not None, f"no gradient reached {name}"
    assert tiny_model.backbone.patch_embed.proj.weight.grad.abs().sum() > 0
    assert tiny_model.transformer.txt_proj.fc.weight.grad.abs().sum() > 0


def _roberta_base_folder(tmp_path: Path) -> Path:
    """A roberta-base-shaped config (no weights, no download), as the official checkpoints expect."""
    folder = tmp_path / "roberta-base-config"
    roberta_base_config().save_pretrained(folder)
    return folder


def full_mttr_config(tmp_path: Path, preset: str = "mttr-a2d") -> ModelConfig:
    config = get_preset(preset).model
    config.text_encoder = TextEncoderConfig(name=str(_roberta_base_folder(tmp_path)), pretrained=False)
    return config


@pytest.mark.slow
def test_full_preset_matches_the_official_state_dict(tmp_path: Path) -> None:
    model = build_model(full_mttr_config(tmp_path))
    rows = [line.split("\t") for line in SPEC_TSV.read_text().splitlines()[1:]]
    expected = {name: [int(x) for x in shape.strip("[]").split(",")] for name, shape in rows}
    actual = {name: list(t.shape) for name, t in model.state_dict().items()}
    assert list(actual) == list(expected)
    assert actual == expected
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert total == 146_489_864
    assert trainable == 22_434_824


def test_transformer_init_is_xavier_on_matrices_only() -> None:
    """Every encoder/decoder matrix is Xavier-uniform: U(-b, b), b = sqrt(6 / (fan_in + fan_out)).

    PyTorch's default Linear init is U(-1/sqrt(fan_in), 1/sqrt(fan_in)): for the square 32×32 matrices
    that bound is b / sqrt(3), for linear1 [128, 32] 0.91·b; so both "some draw reaches 0.97·b" and
    "std = b / sqrt(3) within 5%" fail unless Xavier ran. Vectors keep their defaults (norms at one).
    """
    torch.manual_seed(0)
    transformer = MultimodalTransformer(nn.Identity(), text_dim=16, d_model=32, nheads=4, dim_feedforward=128)
    matrices = {
        name: p
        for name, p in transformer.named_parameters()
        if p.dim() > 1 and name.startswith(("encoder.", "decoder."))
    }
    assert {"encoder.layers.0.linear1.weight", "decoder.layers.0.self_attn.in_proj_weight"} <= set(matrices)
    for name, weight in matrices.items():
        fan_out, fan_in = weight.shape
        bound = (6 / (fan_in + fan_out)) ** 0.5
        assert weight.abs().max() <= bound, name
        assert weight.abs().max() >= 0.97 * bound, name
        assert weight.std().item() == pytest.approx(bound / 3**0.5, rel=0.05), name
    assert torch.equal(transformer.encoder.layers[0].norm1.weight, torch.ones(32))
    assert torch.equal(transformer.decoder.layers[0].norm1.bias, torch.zeros(32))
