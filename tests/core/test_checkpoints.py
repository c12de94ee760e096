"""Checkpoint loading: official MTTR layout, Kinetics Video Swin-T layout, rvos's own, and clear errors."""

from __future__ import annotations

import re
import zipfile
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from rvos_cli.core.checkpoints import (
    adapt_kinetics_swin,
    load_checkpoint,
    read_checkpoint_file,
    save_model_checkpoint,
    trusted_checkpoints,
)
from rvos_cli.core.config import config_to_dict, get_preset
from rvos_cli.core.model import MTTR, build_model
from rvos_cli.core.model.video_swin import VideoSwinBackbone
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


def _mttr_name(kinetics_key: str) -> str | None:
    """Where spec §1.1/§1.3 puts a Kinetics key in MTTR's backbone (None: dropped or not a backbone key)."""
    if not kinetics_key.startswith("backbone."):
        return None
    key = kinetics_key[len("backbone.") :]
    if key.startswith(("layers.3.", "layers.2.downsample.", "norm.")):
        return None  # stage 4, the third merging and the final norm
    match = re.fullmatch(r"layers\.([01])\.downsample\.(.+)", key)
    return f"downsamples.{match[1]}.{match[2]}" if match else key


class _BackboneOnly(nn.Module):
    """Just what a Kinetics checkpoint loads into: MTTR's Swin-T backbone at the paper's sizes."""

    def __init__(self) -> None:
        super().__init__()
        self.backbone = VideoSwinBackbone()


def test_the_released_kinetics_swin_t_layout_adapts_and_loads_into_the_backbone(
    kinetics_checkpoint: Path,
) -> None:
    # conftest's file holds exactly the keys and shapes of the release's listing (seeded random values)
    state = torch.load(kinetics_checkpoint, weights_only=True)["state_dict"]
    assert len(state) == 185 and state["backbone.patch_embed.proj.weight"].shape == (96, 3, 2, 4, 4)
    model = _BackboneOnly()
    report = load_checkpoint(model, kinetics_checkpoint)
    assert report.kind == "kinetics-swin"
    assert report.num_tensors == 150  # 183 backbone keys − 28 of stage 4 − 3 of the 3rd merging − 2 norm
    assert len(report.dropped) == 33
    assert {"layers.3.blocks.1.mlp.fc2.bias", "layers.2.downsample.reduction.weight", "norm.bias"} <= set(
        report.dropped
    )
    loaded = model.backbone.state_dict()
    for key, value in state.items():
        name = _mttr_name(key)
        if name is None:
            continue
        if key == "backbone.patch_embed.proj.weight":
            value = value[:, :, :1] + value[:, :, 1:]  # the 2-frame kernel summed over time
        assert torch.equal(loaded[name], value), key
    kept = [_mttr_name(key) for key in state]
    assert sorted(loaded) == sorted(name for name in kept if name is not None)


def _rename_numpy_core(path: Path) -> None:
    """Rewrite a zip checkpoint's pickle as NumPy 1.x names it (`numpy.core`, not `numpy._core`)."""
    with zipfile.ZipFile(path) as source:
        entries = {name: source.read(name) for name in source.namelist()}
    with zipfile.ZipFile(path, "w") as target:
        for name, data in entries.items():
            is_pickle = name.endswith("data.pkl")
            target.writestr(
                name, data.replace(b"numpy._core.multiarray", b"numpy.core.multiarray") if is_pickle else data
            )


@pytest.mark.parametrize("numpy_1_names", [False, True], ids=["numpy-2", "numpy-1"])
def test_kinetics_meta_with_numpy_values_loads_without_trusting_the_file(
    tmp_path: Path, numpy_1_names: bool
) -> None:
    # What mmcv's runner leaves in `meta`: version strings, counters, NumPy scalars and small arrays.
    meta = {"mmcv_version": "1.3.1", "epoch": 30, "iter": np.int64(1200), "best_score": np.float64(0.78),
            "hook_msgs": {"last_ckpt": "e30.pth"}, "mean": np.array([123.675, 116.28, 103.53])}  # fmt: skip
    kernel = torch.randn(96, 3, 2, 4, 4)
    path = tmp_path / "kinetics.pth"
    torch.save({"meta": meta, "state_dict": {"backbone.patch_embed.proj.weight": kernel}}, path)
    if numpy_1_names:
        _rename_numpy_core(path)
    saved = read_checkpoint_file(path)
    assert saved["meta"]["best_score"] == 0.78 and saved["meta"]["iter"] == 1200
    np.testing.assert_array_equal(saved["meta"]["mean"], meta["mean"])
    assert torch.equal(saved["state_dict"]["backbone.patch_embed.proj.weight"], kernel)


def test_other_python_objects_load_only_inside_trusted_checkpoints(tmp_path: Path) -> None:
    path = tmp_path / "with-fraction.pth"
    torch.save({"model_state_dict": _fresh_tiny(0).state_dict(), "note": Fraction(1, 3)}, path)
    with pytest.raises(
        RvosError, match=r"with-fraction.pth: refused: .* \(fractions.Fraction\) .*--trust-checkpoint"
    ):
        read_checkpoint_file(path)
    with trusted_checkpoints():
        assert read_checkpoint_file(path)["note"] == Fraction(1, 3)
    with trusted_checkpoints(False), pytest.raises(RvosError, match="refused"):
        read_checkpoint_file(path)


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
