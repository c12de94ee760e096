"""Activation checkpointing (`model.grad_checkpoint`): the plain run's gradients, training only."""

from __future__ import annotations

import pytest
import torch

from rvos_cli.core.config import get_preset
from rvos_cli.core.losses import SetCriterion
from rvos_cli.core.matcher import HungarianMatcher
from rvos_cli.core.model import MTTR, build_model
from rvos_cli.core.model import checkpointing as checkpointing_module
from rvos_cli.core.model.checkpointing import set_grad_checkpoint


def _tiny_with_dropout(grad_checkpoint: bool) -> MTTR:
    """The tiny preset with dropout and drop-path on, so checkpointing must replay the random masks."""
    config = get_preset("tiny").model
    config.backbone.drop_path_rate = 0.3
    config.transformer.dropout = 0.2
    config.grad_checkpoint = grad_checkpoint
    torch.manual_seed(0)
    return build_model(config)


def _batch(tiny_tokenizer) -> tuple:
    generator = torch.Generator().manual_seed(1)
    frames = torch.randn(4, 2, 3, 64, 80, generator=generator)
    padding = torch.zeros(4, 2, 64, 80, dtype=torch.bool)
    padding[:, 1, :, 64:] = True
    text = tiny_tokenizer(["the dog on the left", "a red ball"])
    masks = torch.zeros(2, 64, 80, dtype=torch.bool)
    masks[0, 10:40, 5:30] = True
    masks[1, 20:60, 40:75] = True
    targets = [
        tuple({"masks": masks, "referred_instance_idx": torch.tensor(b)} for b in range(2)) for _ in range(2)
    ]
    return frames, padding, text, torch.tensor([1, 2]), targets


def _gradients(model: MTTR, tiny_tokenizer) -> tuple[float, dict[str, torch.Tensor]]:
    frames, padding, text, valid, targets = _batch(tiny_tokenizer)
    criterion = SetCriterion(HungarianMatcher())
    torch.manual_seed(7)  # the dropout / drop-path draws
    outputs = model(frames, padding, text["input_ids"], text["attention_mask"], valid)
    _, total = criterion(outputs, targets)
    total.backward()
    return total.item(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def test_checkpointed_gradients_equal_the_plain_run(tiny_tokenizer) -> None:
    plain_loss, plain = _gradients(_tiny_with_dropout(False), tiny_tokenizer)
    checkpointed_loss, checkpointed = _gradients(_tiny_with_dropout(True), tiny_tokenizer)
    assert checkpointed_loss == pytest.approx(plain_loss, abs=1e-6)
    assert checkpointed.keys() == plain.keys()
    assert any("backbone.layers.0.blocks.0" in n for n in plain)
    assert any("transformer.decoder.layers.1" in n for n in plain)
    for name, grad in plain.items():
        torch.testing.assert_close(checkpointed[name], grad, atol=1e-5, rtol=0, msg=name)


def _count_checkpoint_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    calls: list[str] = []
    real = checkpointing_module.checkpoint

    def counting(function, *args, **kwargs):
        calls.append(type(function).__name__)
        assert kwargs.get("use_reentrant") is False
        return real(function, *args, **kwargs)

    monkeypatch.setattr(checkpointing_module, "checkpoint", counting)
    return calls


def test_every_swin_block_and_transformer_layer_is_checkpointed_in_training(
    monkeypatch: pytest.MonkeyPatch, tiny_tokenizer
) -> None:
    calls = _count_checkpoint_calls(monkeypatch)
    model = _tiny_with_dropout(True)
    frames, padding, text, valid, _ = _batch(tiny_tokenizer)
    model(frames, padding, text["input_ids"], text["attention_mask"], valid)
    # tiny: Swin depths (1, 1, 2), 2 encoder and 2 decoder layers
    assert sorted(calls) == sorted(["SwinBlock3D"] * 4 + ["EncoderLayer"] * 2 + ["DecoderLayer"] * 2)


def test_checkpointing_is_off_at_eval_and_without_gradients(
    monkeypatch: pytest.MonkeyPatch, tiny_tokenizer
) -> None:
    calls = _count_checkpoint_calls(monkeypatch)
    model = _tiny_with_dropout(True)
    frames, padding, text, valid, _ = _batch(tiny_tokenizer)
    with torch.no_grad():
        model(frames, padding, text["input_ids"], text["attention_mask"], valid)
    model.eval()
    model(frames, padding, text["input_ids"], text["attention_mask"], valid)
    model.forward_sentences(frames[:, :1], padding[:, :1], text["input_ids"], text["attention_mask"], valid)
    assert calls == []


def test_set_grad_checkpoint_switches_every_layer_stack() -> None:
    model = build_model(get_preset("tiny").model)
    flags = [m.grad_checkpoint for m in model.modules() if hasattr(m, "grad_checkpoint")]
    assert flags == [False] * 5  # 3 Swin stages, the encoder and the decoder
    set_grad_checkpoint(model, True)
    assert all(m.grad_checkpoint for m in model.modules() if hasattr(m, "grad_checkpoint"))
