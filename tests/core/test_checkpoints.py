"""Checkpoint loading: official MTTR layout, Kinetics Video Swin-T layout, rvos's own, and clear errors."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

from rvos_cli.core.checkpoints import adapt_kinetics_swin, load_checkpoint, save_model_checkpoint
from rvos_cli.core.config import config_to_dict, get_preset
from rvos_cli.core.model import MTTR, build_model
from rvos_cli.errors import RvosError


def _outputs(model: MTTR, tokenizer) -> dict:
    torch.manual_seed(1)
    frames = torch.randn(2, 1, 3, 64, 96)
    padding = torch.zeros(2, 1, 64, 96, dtype=torch.bool)
    text = tokenizer(["the red circle moving left"])
    model.eval()
    with torch.no_grad():
        return model(frames, padding, text["input_ids"], text["attention_mask"])


def _fresh_tiny(seed: int) -> MTTR:
    torch.manual_seed(seed)
    return build_model("tiny")


def test_official_layout_with_obsolete_position_ids_loads_strictly_and_reproduces_outputs(
    tmp_path: Path, tiny_tokenizer
) -> None:
    source = _fresh_tiny(0)
    state = source.state_dict()
    state["transformer.text_encoder.embeddings.position_ids"] = torch.arange(514).unsqueeze(0)
    path = tmp_path / "a2d_window-10.pth.tar"
    torch.save({"epoch": 69, "model_state_dict": state, "optimizer_state_dict": {}, "best_mAP": 0.46}, path)
    target = _fresh_tiny(1)
    report = load_checkpoint(target, path)
    assert report.kind == "official-mttr"
    assert report.epoch == 69
    assert report.dropped == ["transformer.text_encoder.embeddings.position_ids"]
    expected, actual = _outputs(source, tiny_tokenizer), _outputs(target, tiny_tokenizer)
    torch.testing.assert_close(actual["pred_masks"], expected["pred_masks"], atol=0, rtol=0)
    torch.testing.assert_close(actual["pred_is_referred"], expected["pred_is_referred"], atol=0, rtol=0)


def test_bare_state_dict_and_ddp_prefix_load(tmp_path: Path) -> None:
    source = _fresh_tiny(0)
    path = tmp_path / "bare.pth"
    torch.save({f"module.{k}": v for k, v in source.state_dict().items()}, path)
    target = _fresh_tiny(1)
    report = load_checkpoint(target, path)
    assert report.num_tensors == len(source.state_dict())
    assert torch.equal(target.obj_queries.weight, source.obj_queries.weight)


def test_mismatch_lists_missing_unexpected_and_misshaped_keys(tmp_path: Path) -> None:
    state = _fresh_tiny(0).state_dict()
    del state["is_referred_head.bias"]
    state["extra.weight"] = torch.zeros(3)
    d_model = state["obj_queries.weight"].shape[1]
    state["obj_queries.weight"] = torch.zeros(50, d_model)
    path = tmp_path / "other.pth"
    torch.save({"model_state_dict": state}, path)
    with pytest.raises(RvosError) as err:
        load_checkpoint(_fresh_tiny(1), path)
    message = str(err.value)
    assert "missing (1): is_referred_head.bias" in message
    assert "unexpected (1): extra.weight" in message
    assert f"obj_queries.weight (50, {d_model}) vs (8, {d_model})" in message
    assert str(path) in message


def test_unreadable_and_foreign_files_fail_clearly(tmp_path: Path) -> None:
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(RvosError, match="not a readable PyTorch checkpoint"):
        load_checkpoint(_fresh_tiny(0), junk)
    foreign = tmp_path / "foreign.pth"
    torch.save({"weights": torch.zeros(2)}, foreign)
    with pytest.raises(RvosError, match="not an MTTR, rvos or Kinetics"):
        load_checkpoint(_fresh_tiny(0), foreign)
    with pytest.raises(RvosError, match="checkpoint file not found"):
        load_checkpoint(_fresh_tiny(0), tmp_path / "missing.pth")


def _kinetics_state(model: MTTR) -> dict[str, torch.Tensor]:
    """A 4-stage mmaction-layout Video Swin state built from `model.backbone` (+ fake stage 4)."""
    state = {
        re.sub(r"^downsamples\.(\d)\.", r"layers.\1.downsample.", key): value
        for key, value in model.backbone.state_dict().items()
    }
    kernel = model.backbone.patch_embed.proj.weight.detach()
    state["patch_embed.proj.weight"] = torch.cat([kernel * 0.25, kernel * 0.75], dim=2)  # [C,3,2,4,4]
    stage3 = model.backbone.out_channels[-1]
    state["layers.2.downsample.reduction.weight"] = torch.zeros(2 * stage3, 4 * stage3)
    state["layers.2.downsample.norm.weight"] = torch.ones(4 * stage3)
    state["layers.3.blocks.0.norm1.weight"] = torch.ones(2 * stage3)
    state["norm.weight"] = torch.ones(2 * stage3)
    state = {f"backbone.{k}": v for k, v in state.items()}
    state["cls_head.fc_cls.weight"] = torch.zeros(400, 2 * stage3)
    return state


def test_kinetics_swin_checkpoint_adapts_and_loads_into_the_backbone(tmp_path: Path) -> None:
    source = _fresh_tiny(0)
    path = tmp_path / "swin_tiny_patch244_window877_kinetics400_1k.pth"
    torch.save({"meta": {"epoch": 30}, "state_dict": _kinetics_state(source)}, path)
    target = _fresh_tiny(1)
    queries_before = target.obj_queries.weight.clone()
    report = load_checkpoint(target, path)
    assert report.kind == "kinetics-swin"
    assert sorted(report.dropped) == [
        "layers.2.downsample.norm.weight",
        "layers.2.downsample.reduction.weight",
        "layers.3.blocks.0.norm1.weight",
        "norm.weight",
    ]
    for key, value in source.backbone.state_dict().items():
        torch.testing.assert_close(target.backbone.state_dict()[key], value, msg=key)
    assert torch.equal(target.obj_queries.weight, queries_before)


def test_patch_kernel_is_summed_over_time() -> None:
    kernel = torch.arange(2 * 3 * 2 * 4 * 4, dtype=torch.float32).view(2, 3, 2, 4, 4)
    adapted, _ = adapt_kinetics_swin({"backbone.patch_embed.proj.weight": kernel})
    assert adapted["patch_embed.proj.weight"].shape == (2, 3, 1, 4, 4)
    torch.testing.assert_close(adapted["patch_embed.proj.weight"][0, 0, 0, 0, 0], torch.tensor(0.0 + 16.0))


def test_rvos_checkpoint_round_trip_keeps_config_and_epoch(tmp_path: Path) -> None:
    source = _fresh_tiny(0)
    path = tmp_path / "run" / "checkpoints" / "03.pth.tar"
    save_model_checkpoint(source, path, config=config_to_dict(get_preset("tiny")), epoch=3)
    assert not list(path.parent.glob("*.tmp"))
    target = _fresh_tiny(1)
    report = load_checkpoint(target, path)
    assert report.kind == "rvos" and report.epoch == 3
    assert report.config["preset"] == "tiny"
    assert torch.equal(target.spatial_decoder.out_lay.weight, source.spatial_decoder.out_lay.weight)
