"""Targets from object-id maps: objects present anywhere in the window, ascending, void left out."""

from __future__ import annotations

import numpy as np
import torch

from rvos_cli.data.targets import label_map_targets


def test_label_map_targets_over_the_window_objects() -> None:
    first = np.array([[0, 3], [255, 0]], dtype=np.uint8)
    second = np.array([[5, 0], [0, 0]], dtype=np.uint8)  # object 3 has left, 5 entered
    targets = label_map_targets([first, second], referred_id=3, image_ids=["a", "b"], ignore=(0, 255))
    assert [t["image_id"] for t in targets] == ["a", "b"]
    assert targets[0]["masks"].tolist() == [[[0, 1], [0, 0]], [[0, 0], [0, 0]]]  # objects [3, 5]
    assert targets[1]["masks"].tolist() == [[[0, 0], [0, 0]], [[1, 0], [0, 0]]]
    assert [int(t["referred_instance_idx"]) for t in targets] == [0, 0]
    assert [bool(t["is_ref_inst_visible"]) for t in targets] == [True, False]
    assert targets[0]["size"].tolist() == [2, 2] and targets[0]["iscrowd"].dtype == torch.long
