"""train_data: MeViS and Ref-DAVIS17 folders are recognised and give their training datasets."""

from __future__ import annotations

from pathlib import Path

import pytest
from dataset_builders import make_davis, make_mevis

from rvos_cli.core.config import get_preset
from rvos_cli.data.davis import prepare_davis
from rvos_cli.data.davis_dataset import DavisTrainDataset
from rvos_cli.data.mevis import prepare_mevis
from rvos_cli.data.mevis_dataset import MevisTrainDataset
from rvos_cli.engine.train_data import build_train_dataset, detect_dataset
from rvos_cli.errors import RvosError


def test_mevis_and_davis_layouts_are_detected_and_built(tmp_path: Path) -> None:
    mevis, davis = make_mevis(tmp_path / "mevis"), make_davis(tmp_path / "davis")
    assert detect_dataset(mevis, "a2d") == "mevis" and detect_dataset(davis, "a2d") == "davis"
    config = get_preset("tiny")
    config.train.window = 2
    config.data.dataset = "mevis"
    with pytest.raises(RvosError, match=r"run `rvos prepare mevis --root .* --window 2` first"):
        build_train_dataset(config, mevis)
    prepare_mevis(mevis, mevis / "rvos_prepared", window=2)
    assert isinstance(build_train_dataset(config, mevis), MevisTrainDataset)
    config.data.dataset = "davis"
    prepare_davis(davis, davis / "rvos_prepared", window=2)
    dataset = build_train_dataset(config, davis)
    assert isinstance(dataset, DavisTrainDataset) and len(dataset) == 4
