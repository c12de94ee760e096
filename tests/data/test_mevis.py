"""MeViS preparation: validation errors naming file and key, --skip-bad, counts, resumable masks, items."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from dataset_builders import MEVIS_H, MEVIS_W, make_mevis

from rvos_cli.data.mevis import load_index, load_video_tracks, prepare_mevis
from rvos_cli.data.mevis_dataset import MevisTrainDataset
from rvos_cli.data.transforms import VideoTransforms
from rvos_cli.errors import RvosError

H, W = MEVIS_H, MEVIS_W


def test_counts_index_masks_and_training_windows(tmp_path: Path) -> None:
    root = make_mevis(tmp_path / "mevis")
    summary = prepare_mevis(root, tmp_path / "out", window=2)
    train = summary.splits["train"]
    assert (train.videos, train.expressions, train.multi_object, train.no_target) == (1, 3, 1, 1)
    # windows [0, 1], [1, 2]: expr 0 (object 10 everywhere) 2, expr 1 2, no-target expr 2 -> 6
    assert train.samples == 6
    assert (summary.splits["valid_u"].expressions, summary.splits["valid"].videos) == (1, 1)
    (video,) = load_index(tmp_path / "out", "train")
    assert video["objects"] == ["10", "11"] and video["size"] == [H, W]
    assert [e["kind"] for e in video["expressions"]] == ["single-object", "multi-object", "no-target"]
    assert video["expressions"][1]["anno_ids"] == ["10", "11"]
    tracks = load_video_tracks(tmp_path / "out", "train", "abc")
    assert tracks["11"][1] is None and tracks["10"][2]["size"] == [H, W]
    assert summary.masks_written == 2  # train + valid_u
    again = prepare_mevis(root, tmp_path / "out", window=2)
    assert (again.masks_written, again.masks_reused) == (0, 2)


def test_training_item_targets_hold_the_referred_set(tmp_path: Path) -> None:
    root = make_mevis(tmp_path / "mevis")
    prepare_mevis(root, tmp_path / "out", window=2)
    dataset = MevisTrainDataset(tmp_path / "out", root, 2, VideoTransforms(16, 20, horizontal_flip=False))
    items = {(s[2]["exp_id"], tuple(s[1])): i for i, s in enumerate(dataset.samples)}
    multi = dataset[items[("1", (0, 1))]]
    assert multi["frames"].shape == (2, 3, H, W) and multi["text"] == "two animals"
    first, second = multi["targets"]
    assert first["masks"].shape == (2, H, W)  # objects 10 and 11 (11 only in frame 0)
    assert first["referred_instance_idx"].tolist() == [0, 1]
    assert first["is_ref_inst_visible"].tolist() == [True, True]
    assert second["is_ref_inst_visible"].tolist() == [True, False]
    assert int(first["masks"][1].sum()) == 16 and not second["masks"][1].any()
    none = dataset[items[("2", (1, 2))]]["targets"][0]
    assert none["referred_instance_idx"].tolist() == [] and none["masks"].shape == (1, H, W)
    assert none["referred_instance_idx"].dtype == torch.int64


def edit_train(root: Path, edit_meta=None, edit_masks=None) -> None:
    meta_path, masks_path = root / "train/meta_expressions.json", root / "train/mask_dict.json"
    meta, masks = json.loads(meta_path.read_text()), json.loads(masks_path.read_text())
    if edit_meta:
        edit_meta(meta["videos"]["abc"])
    if edit_masks:
        edit_masks(masks)
    meta_path.write_text(json.dumps(meta))
    masks_path.write_text(json.dumps(masks))


def set_anno(video: dict, value: object) -> None:
    video["expressions"]["1"]["anno_id"] = value


CASES = {
    "unknown anno_id": (
        lambda v: set_anno(v, [10, 99]),
        None,
        "train/meta_expressions.json: videos['abc'].expressions['1'].anno_id[1] = 99 is not a key of ",
    ),
    "RLE size": (
        None,
        lambda m: m["11"].__setitem__(0, dict(m["11"][0], size=[8, 8])),
        "train/mask_dict.json: ['11'][0].size [8, 8] differs from the frames of video abc (16x20)",
    ),
    "frame count": (
        None,
        lambda m: m["11"].pop(),
        "train/mask_dict.json: ['11'] holds 2 frames, video abc lists 3",
    ),
    "missing frame": (
        lambda v: v["frames"].append("00009"),
        None,
        "train/JPEGImages/abc/00009.jpg: missing (listed in ",
    ),
    "anno_id type": (
        lambda v: set_anno(v, 10),
        None,
        "videos['abc'].expressions['1'].anno_id: expected a list of mask_dict keys, got 10",
    ),
    "obj_id length": (
        lambda v: v["expressions"]["1"].__setitem__("obj_id", [0]),
        None,
        "videos['abc'].expressions['1'].obj_id: expected a list as long as anno_id (2)",
    ),
    "no sentence": (
        lambda v: v["expressions"]["0"].pop("exp"),
        None,
        "videos['abc'].expressions['0'].exp: expected the sentence as a string",
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_every_bad_input_is_a_one_line_error_or_skipped(tmp_path: Path, case: str) -> None:
    edit_meta, edit_masks, message = CASES[case]
    root = make_mevis(tmp_path / "mevis")
    edit_train(root, edit_meta, edit_masks)
    with pytest.raises(RvosError) as caught:
        prepare_mevis(root, tmp_path / "out")
    assert message in str(caught.value) and "\n" not in str(caught.value)
    summary = prepare_mevis(root, tmp_path / "out", skip_bad=True)
    assert len(summary.skipped) == 1 and message.split(": ")[-1] in str(summary.skipped[0])


def test_no_split_and_bad_json_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(RvosError, match="no MeViS split found"):
        prepare_mevis(tmp_path, tmp_path / "out")
    root = make_mevis(tmp_path / "mevis")
    (root / "valid_u/mask_dict.json").write_text("{")
    with pytest.raises(
        RvosError, match=r"valid_u/mask_dict.json:1:2: MeViS mask_dict.json is not valid JSON"
    ):
        prepare_mevis(root, tmp_path / "out")


def test_a_collated_mevis_batch_trains_the_tiny_model(tmp_path: Path, tiny_model, tiny_tokenizer) -> None:
    from rvos_cli.core.losses import SetCriterion
    from rvos_cli.core.matcher import HungarianMatcher
    from rvos_cli.data.collate import collate

    root = make_mevis(tmp_path / "mevis")
    prepare_mevis(root, tmp_path / "out", window=2)
    dataset = MevisTrainDataset(tmp_path / "out", root, 2, VideoTransforms(16, 20, horizontal_flip=False))
    # A multi-object window and a no-target window in one batch.
    picks = [i for i, s in enumerate(dataset.samples) if s[2]["exp_id"] in ("1", "2") and s[1] == [0, 1]]
    batch = collate([dataset[i] for i in picks])
    text = tiny_tokenizer(batch["texts"])
    outputs = tiny_model(
        batch["frames"],
        batch["padding_mask"],
        text["input_ids"],
        text["attention_mask"],
        batch["valid_indices"],
    )
    losses, total = SetCriterion(HungarianMatcher())(outputs, batch["targets"])
    total.backward()
    assert torch.isfinite(total) and set(losses) >= {"loss_is_referred", "loss_dice", "loss_sigmoid_focal"}
    assert all(p.grad is not None for p in tiny_model.parameters() if p.requires_grad)
