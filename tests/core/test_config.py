"""Configs: presets, YAML round trip, overrides and their errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from rvos_cli.core.config import (
    apply_overrides,
    config_to_dict,
    get_preset,
    load_config,
    save_config,
)
from rvos_cli.errors import RvosError


def test_presets_hold_the_paper_numbers() -> None:
    a2d, ytvos = get_preset("mttr-a2d"), get_preset("mttr-ytvos")
    assert a2d.model.backbone.window_size == (8, 7, 7) and a2d.model.backbone.patch_size == (1, 4, 4)
    assert a2d.model.transformer.num_queries == 50 and a2d.model.mask_kernels_dim == 8
    assert (a2d.train.lr, a2d.train.lr_backbone, a2d.train.weight_decay) == (1e-4, 1e-5, 1e-4)
    assert a2d.train.lr_drop_milestones == (50,) and ytvos.train.lr_drop_milestones == (20,)
    assert (ytvos.data.train_short_size, ytvos.data.train_max_size) == (360, 640)
    assert get_preset("tiny").model.text_encoder.name == "minilm"


@pytest.mark.parametrize("name", ["mttr-a2d", "mttr-ytvos", "tiny"])
def test_yaml_round_trip(tmp_path: Path, name: str) -> None:
    config = get_preset(name)
    save_config(config, tmp_path / "config.yaml")
    assert load_config(tmp_path / "config.yaml") == config


def test_partial_file_overrides_its_preset(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("preset: tiny\ntrain:\n  lr: 2.0e-4\n")
    config = load_config(path)
    assert config.train.lr == 2e-4
    assert config.model == get_preset("tiny").model


def test_set_overrides_parse_scalars_including_exponents_without_a_dot() -> None:
    config = apply_overrides(
        get_preset("tiny"), ["train.lr=1e-3", "train.epochs=3", "data.horizontal_flip=false"]
    )
    assert config.train.lr == 1e-3 and config.train.epochs == 3 and config.data.horizontal_flip is False
    assert config_to_dict(config)["train"]["lr_drop_milestones"] == [6]


def test_unknown_keys_suggest_the_close_match(tmp_path: Path) -> None:
    with pytest.raises(
        RvosError, match=r"unknown config key 'train.lr_backbon' \(did you mean 'lr_backbone'\?\)"
    ):
        apply_overrides(get_preset("tiny"), ["train.lr_backbon=1e-5"])
    with pytest.raises(RvosError, match="unknown preset 'mttr-a2"):
        get_preset("mttr-a2")
    with pytest.raises(RvosError, match="expected a number"):
        apply_overrides(get_preset("tiny"), ["train.lr=fast"])
    with pytest.raises(RvosError, match=r"expected key\.path=value"):
        apply_overrides(get_preset("tiny"), ["train.lr"])
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: [1, 2\n")
    with pytest.raises(RvosError, match=r"bad.yaml:\d+: not valid YAML"):
        load_config(bad)
