"""The Kinetics-400 Video Swin-T start (spec §1.3): a file with exactly the released checkpoint's keys and
shapes (the `kinetics_checkpoint` fixture) loads into the mttr-a2d backbone, the counts
are reported, and the mttr-* presets refuse a fresh run without it."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest
import torch

from rvos_cli.core.config import apply_overrides, get_preset
from rvos_cli.core.model import build_model
from rvos_cli.engine.pretrained import KINETICS_FILE, load_backbone_weights, require_backbone_weights
from rvos_cli.errors import RvosError


def mttr_a2d_offline() -> torch.nn.Module:
    """The mttr-a2d network with the offline MiniLM in place of roberta-base (no hub access in tests)."""
    torch.manual_seed(0)
    return build_model(apply_overrides(get_preset("mttr-a2d"), ["model.text_encoder.name=minilm"]).model)


def _mttr_backbone_key(key: str) -> str | None:
    """Where spec §1.3 puts a file key in MTTR's backbone (None: dropped)."""
    dropped = r"backbone\.(layers\.3\.|layers\.2\.downsample\.|norm\.)"
    if not key.startswith("backbone.") or re.match(dropped, key):
        return None
    key = key.removeprefix("backbone.")
    match = re.fullmatch(r"layers\.([01])\.downsample\.(.+)", key)
    return f"downsamples.{match[1]}.{match[2]}" if match else key


def test_the_released_layout_loads_into_the_mttr_a2d_backbone_with_counts(kinetics_checkpoint: Path) -> None:
    path = kinetics_checkpoint
    state = torch.load(path, weights_only=True)["state_dict"]
    assert len(state) == 185 and state["backbone.patch_embed.proj.weight"].shape == (96, 3, 2, 4, 4)
    model = mttr_a2d_offline()
    loaded = load_backbone_weights(model, path)
    assert loaded.loaded == 150
    assert loaded.dropped == {"stage 4": 28, "last merging": 3, "final norm": 2, "classifier head": 2}
    assert loaded.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    backbone = model.backbone.state_dict()
    expected = {}
    for key, value in state.items():
        name = _mttr_backbone_key(key)
        if name is not None:
            # the released 2-frame patch kernel [96, 3, 2, 4, 4] is summed over time to [96, 3, 1, 4, 4]
            expected[name] = value.sum(2, keepdim=True) if name == "patch_embed.proj.weight" else value
    assert sorted(backbone) == sorted(expected)
    for name, value in expected.items():
        assert torch.equal(backbone[name], value), name
    assert loaded.summary().endswith("dropped: stage 4 28, last merging 3, final norm 2, classifier head 2")
    head = f"backbone: loaded 150 tensors from {path} (sha256 {loaded.sha256[:12]})"
    assert loaded.summary().startswith(head)


def test_weights_of_another_architecture_are_refused_naming_the_keys(kinetics_checkpoint: Path) -> None:
    expected = f"--backbone-weights {re.escape(str(kinetics_checkpoint))}: does not fit .* shape mismatch"
    with pytest.raises(RvosError, match=expected):
        load_backbone_weights(build_model("tiny"), kinetics_checkpoint)


def test_a_file_without_backbone_tensors_is_not_taken_for_one(tmp_path: Path) -> None:
    path = tmp_path / "other.pth"
    torch.save({"model_state_dict": {"w": torch.zeros(1)}}, path)
    with pytest.raises(RvosError, match="not a Kinetics Video Swin checkpoint"):
        load_backbone_weights(build_model("tiny"), path)


def test_mttr_presets_need_the_weights_unless_from_scratch(tmp_path: Path) -> None:
    config = get_preset("mttr-a2d")
    with pytest.raises(RvosError) as error:
        require_backbone_weights(config, from_scratch=False)
    message = str(error.value)
    assert KINETICS_FILE in message and "Video Swin Transformer release" in message
    assert "--from-scratch" in message and "\n" not in message
    require_backbone_weights(config, from_scratch=True)
    require_backbone_weights(get_preset("tiny"), from_scratch=False)
    config.model.backbone_weights = str(tmp_path / "missing.pth")
    with pytest.raises(RvosError, match=r"missing\.pth: no such file"):
        require_backbone_weights(config, from_scratch=False)
