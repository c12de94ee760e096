"""Collate: bottom/right padding, padding masks, and the per-time-step target layout."""

import torch

from rvos_cli.data.collate import collate


def _item(height: int, width: int, value: float, text: str, n_instances: int) -> dict:
    targets = [None] * 3
    targets[1] = {"masks": torch.zeros(n_instances, height, width, dtype=torch.bool), "image_id": text}
    return {
        "frames": torch.full((3, 3, height, width), value),
        "targets": targets,
        "text": text,
        "valid_indices": [1],
    }


def test_frames_are_zero_padded_bottom_right_to_the_batch_max() -> None:
    batch = collate([_item(2, 5, 1.0, "a", 1), _item(4, 3, 2.0, "b", 2)])
    frames = batch["frames"]
    assert frames.shape == (3, 2, 3, 4, 5)
    assert frames[:, 0, :, :2, :5].eq(1.0).all() and frames[:, 0, :, 2:, :].eq(0).all()
    assert frames[:, 1, :, :4, :3].eq(2.0).all() and frames[:, 1, :, :, 3:].eq(0).all()


def test_padding_mask_is_true_on_padded_pixels() -> None:
    mask = collate([_item(2, 5, 1.0, "a", 1), _item(4, 3, 2.0, "b", 2)])["padding_mask"]
    assert mask.shape == (3, 2, 4, 5) and mask.dtype == torch.bool
    assert mask[0, 0].tolist() == [[False] * 5, [False] * 5, [True] * 5, [True] * 5]
    assert mask[2, 1].tolist() == [[False, False, False, True, True]] * 4


def test_targets_are_a_list_over_valid_steps_of_tuples_over_the_batch() -> None:
    batch = collate([_item(2, 5, 1.0, "a", 1), _item(4, 3, 2.0, "b", 2)])
    assert batch["valid_indices"].tolist() == [1] and batch["valid_indices"].dtype == torch.long
    assert batch["texts"] == ["a", "b"]
    assert len(batch["targets"]) == 1
    step = batch["targets"][0]
    assert isinstance(step, tuple)
    assert [t["image_id"] for t in step] == ["a", "b"]
    assert [tuple(t["masks"].shape) for t in step] == [(1, 2, 5), (2, 4, 3)]


def test_items_without_targets_keep_their_meta() -> None:
    item = {"frames": torch.ones(2, 3, 2, 2), "targets": None, "text": "t", "valid_indices": [0, 1]}
    batch = collate([{**item, "meta": {"video_id": "v"}}])
    assert batch["targets"] is None
    assert batch["valid_indices"].tolist() == [0, 1]
    assert batch["metas"] == [{"video_id": "v"}]
