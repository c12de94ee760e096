"""Synthetic MeViS and Ref-DAVIS17: real layouts, multi-object and no-target expressions, both encodings."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from rvos_cli.core.metrics.iou import decode_mask
from rvos_cli.data.davis import load_davis_index, prepare_davis
from rvos_cli.data.mevis import load_index, prepare_mevis
from rvos_cli.data.synthetic import generate_synthetic, make_clip
from rvos_cli.data.synthetic.generate import split_plan
from rvos_cli.data.synthetic.mevis_writer import group_expressions


@pytest.fixture(scope="module")
def mevis_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("syn_mevis")
    generate_synthetic(root, 6, seed=0, fmt="mevis", frames_per_video=5, size=(48, 64))
    return root


@pytest.fixture(scope="module")
def davis_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("syn_davis")
    generate_synthetic(root, 4, seed=0, fmt="davis", frames_per_video=5, size=(48, 64))
    return root


def test_split_plans() -> None:
    assert split_plan(6, "mevis") == ["train"] * 4 + ["valid_u", "valid"]
    assert split_plan(3, "mevis") == ["train"] * 2 + ["valid_u"]
    assert split_plan(4, "davis") == ["train"] * 3 + ["val"]


def test_mevis_layout_has_every_kind_and_the_union_masks(mevis_root: Path) -> None:
    summary = prepare_mevis(mevis_root, mevis_root / "prepared", window=3)
    train = summary.splits["train"]
    assert train.videos == 4 and train.multi_object >= 4 and train.no_target == 4
    assert summary.splits["valid"].videos == 1 and not (mevis_root / "valid/mask_dict.json").exists()
    meta = json.loads((mevis_root / "train/meta_expressions.json").read_text())["videos"]["syn00000"]
    masks = json.loads((mevis_root / "train/mask_dict.json").read_text())
    clip = make_clip(0, 0, False, 5, (48, 64))
    everything = next(e for e in meta["expressions"].values() if e["exp"] == "all the objects")
    assert everything["obj_id"] == [o.obj_id - 1 for o in clip.objects]
    union = np.zeros((48, 64), dtype=bool)
    for anno_id in everything["anno_id"]:
        union |= decode_mask(masks[str(anno_id)][2]) if masks[str(anno_id)][2] else False
    assert np.array_equal(union, clip.labels[2] > 0)
    no_target = [e for e in meta["expressions"].values() if e["anno_id"] == []]
    (sentence,) = [e["exp"] for e in no_target]
    assert all(f"the {o.colour} {o.shape}" != sentence for o in clip.objects)
    assert [v["frames"][:2] for v in load_index(mevis_root / "prepared", "valid_u")] == [["00000", "00001"]]


def test_group_expressions_name_shared_attributes() -> None:
    clip = make_clip(0, 0, False, 5, (48, 64), difficulty="full")
    for sentence, ids in group_expressions(clip.objects):
        assert len(ids) >= 2
        chosen = [o for o in clip.objects if o.obj_id in ids]
        if sentence != "all the objects":
            word = sentence.split()[1].rstrip("s")
            assert all(word in (o.colour, o.shape) for o in chosen)


def test_davis_layout_both_encodings_and_the_typo(davis_root: Path) -> None:
    summary = prepare_davis(davis_root, davis_root / "prepared")
    assert summary.splits["val"][0] == 1 and summary.splits["train"][0] == 3
    raw = (davis_root / "davis_text_annotations/Davis17_annot2_full_video.txt").read_bytes()
    assert b"vid\xe9o" in raw and raw.startswith(b"syn00000 ")
    assert b"clasic-car" in (davis_root / "davis_text_annotations/Davis17_annot1.txt").read_bytes()
    (sequence,) = load_davis_index(davis_root / "prepared", "val")
    assert sequence["sequence"] == "classic-car"
    for obj in sequence["objects"]:
        first, full, first_2, full_2 = obj["expressions"]
        assert [text.endswith(" (vidéo)") for text in (first, full, first_2, full_2)] == [False, True] * 2
    assert (davis_root / "DAVIS/Annotations/480p/classic-car/00000.png").is_file()
