"""Tests for rvos_cli.data.synthetic: referring uniqueness, held-out split, and the A2D / YTVOS layouts."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import h5py
import numpy as np
import pytest
from PIL import Image

from rvos_cli.core.mask_png import davis_palette
from rvos_cli.data.synthetic import (
    COLOURS,
    HELD_OUT_PAIRS,
    SHAPES,
    TEST_TEMPLATES,
    TRAIN_TEMPLATES,
    YTVOS_GT_META,
    SyntheticClip,
    SyntheticObject,
    a2d_frame_h5,
    generate_synthetic,
    make_clip,
    split_plan,
)
from rvos_cli.data.video_io import read_frames
from rvos_cli.errors import RvosError

SMALL = {"frames_per_video": 8, "size": (64, 96)}
# With this seed the test video of the 4-video A2D set would get two sentences for one object if the
# A2D test split allowed it.
SEED = 0


@pytest.fixture(scope="module")
def clips() -> list[SyntheticClip]:
    """24 small clips of seed 5 at the full difficulty, the last 8 held out."""
    return [make_clip(5, index, index >= 16, **SMALL, difficulty="full") for index in range(24)]


@pytest.fixture(scope="module")
def a2d_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 4-video A2D-format dataset (seed SEED): 3 train, 1 test."""
    root = tmp_path_factory.mktemp("a2d")
    generate_synthetic(root, 4, SEED, "a2d", **SMALL)
    return root


@pytest.fixture(scope="module")
def ytvos_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 12-video YTVOS-format dataset (seed SEED): 9 train, 2 valid, 1 test."""
    root = tmp_path_factory.mktemp("ytvos")
    generate_synthetic(root, 12, SEED, "ytvos", **SMALL)
    return root


def tree_bytes(root: Path) -> dict[str, bytes]:
    """Every file under root, keyed by relative path."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


# ------------------------------------------------------------------------------------ clip contents


def test_make_clip_is_deterministic() -> None:
    first, second = make_clip(3, 2, False, **SMALL), make_clip(3, 2, False, **SMALL)
    assert np.array_equal(first.frames, second.frames) and np.array_equal(first.labels, second.labels)
    assert first.referrals == second.referrals and first.objects == second.objects


def test_other_seed_gives_other_clip() -> None:
    assert not np.array_equal(make_clip(3, 2, False, **SMALL).frames, make_clip(4, 2, False, **SMALL).frames)


def test_every_sentence_fits_its_object_only(clips: list[SyntheticClip]) -> None:
    for clip in clips:
        for ref in clip.referrals:
            fitting = [obj.obj_id for obj in clip.objects if obj.matches(ref.attributes)]
            assert fitting == [ref.obj_id], (clip.video_id, ref.text)


def test_sentence_words_are_the_named_attributes(clips: list[SyntheticClip]) -> None:
    for clip in clips:
        for ref in clip.referrals:
            words = set(ref.text.split())
            assert words & set(COLOURS) == (
                {ref.attributes["colour"]} if "colour" in ref.attributes else set()
            )
            assert words & set(SHAPES) == ({ref.attributes["shape"]} if "shape" in ref.attributes else set())
            assert words & {"small", "big"} == (
                {ref.attributes["size"]} if "size" in ref.attributes else set()
            )


def test_clips_have_distractors_sharing_attributes(clips: list[SyntheticClip]) -> None:
    shared = 0
    for clip in clips:
        assert 2 <= len(clip.objects) <= 4
        pairs = [(a, b) for a in clip.objects for b in clip.objects if a.obj_id < b.obj_id]
        shared += sum(a.colour == b.colour or a.shape == b.shape for a, b in pairs)
        assert all(a.attributes() != b.attributes() for a, b in pairs)
    assert shared >= len(clips) // 2


def test_objects_visible_in_half_the_frames(clips: list[SyntheticClip]) -> None:
    for clip in clips:
        for obj in clip.objects:
            assert clip.mask(obj.obj_id).any(axis=(1, 2)).sum() * 2 >= len(clip.frames)


def test_held_out_pairs_never_in_train(clips: list[SyntheticClip]) -> None:
    train_pairs = {(obj.colour, obj.shape) for clip in clips if not clip.held_out for obj in clip.objects}
    assert train_pairs and not train_pairs & HELD_OUT_PAIRS


def test_held_out_clips_refer_to_held_out_pair_by_colour_and_shape(clips: list[SyntheticClip]) -> None:
    for clip in (clip for clip in clips if clip.held_out):
        novel = [obj for obj in clip.objects if (obj.colour, obj.shape) in HELD_OUT_PAIRS]
        assert novel
        for ref in (ref for ref in clip.referrals if ref.obj_id == novel[0].obj_id):
            assert f"{novel[0].colour} {novel[0].shape}" in ref.text


def test_held_out_phrasing_unseen_in_train(clips: list[SyntheticClip]) -> None:
    train = [ref for clip in clips if not clip.held_out for ref in clip.referrals]
    test = [ref for clip in clips if clip.held_out for ref in clip.referrals]
    assert {ref.template for ref in train} <= set(TRAIN_TEMPLATES)
    assert {ref.template for ref in test} <= set(TEST_TEMPLATES)
    for phrase in ("look at", "find the", "segment the", "going", "heading", "staying in place"):
        assert not any(phrase in ref.text for ref in train)


@pytest.fixture(scope="module")
def basic_clips() -> list[SyntheticClip]:
    """24 small clips of seed 5 at the basic difficulty, the last 8 held out."""
    return [make_clip(5, index, index >= 16, **SMALL, difficulty="basic") for index in range(24)]


def test_basic_clips_have_one_colour_per_object(basic_clips: list[SyntheticClip]) -> None:
    for clip in basic_clips:
        colours = [obj.colour for obj in clip.objects]
        assert len(set(colours)) == len(colours)


def test_basic_sentences_name_colour_or_shape_only(basic_clips: list[SyntheticClip]) -> None:
    named_sets = set()
    for clip in basic_clips:
        for ref in clip.referrals:
            assert set(ref.attributes) <= {"colour", "shape"}
            assert ref.motion_template is None
            target = next(obj for obj in clip.objects if obj.obj_id == ref.obj_id)
            others = [obj for obj in clip.objects if obj.obj_id != ref.obj_id]
            assert target.matches(ref.attributes) and not any(o.matches(ref.attributes) for o in others)
            named_sets.add(frozenset(ref.attributes))
    assert frozenset({"colour"}) in named_sets and frozenset({"colour", "shape"}) in named_sets


def test_basic_keeps_the_held_out_pairs(basic_clips: list[SyntheticClip]) -> None:
    for clip in basic_clips:
        held = [obj for obj in clip.objects if (obj.colour, obj.shape) in HELD_OUT_PAIRS]
        assert bool(held) == clip.held_out
        for ref in clip.referrals:
            if held and ref.obj_id == held[0].obj_id:
                assert set(ref.attributes) == {"colour", "shape"}


def test_split_plan_holds_out_last_quarter() -> None:
    assert split_plan(8, "a2d") == ["train"] * 6 + ["test"] * 2
    assert split_plan(12, "ytvos") == ["train"] * 9 + ["valid"] * 2 + ["test"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"num_videos": 1}, "at least 2"),
        ({"fmt": "coco"}, "unknown synthetic format"),
        ({"size": (16, 96)}, "at least 32x32"),
        ({"frames_per_video": 2}, "frames_per_video must be at least 4"),
        ({"difficulty": "hard"}, "unknown difficulty 'hard'; expected one of basic, full"),
    ],
)
def test_bad_arguments(tmp_path: Path, kwargs: dict, message: str) -> None:
    arguments = {"num_videos": 4, "seed": 0, "fmt": "a2d", **SMALL, **kwargs}
    with pytest.raises(RvosError, match=message):
        generate_synthetic(tmp_path, **arguments)


# ---------------------------------------------------------------------------------------- A2D files


def test_generation_is_byte_identical(tmp_path: Path, a2d_root: Path) -> None:
    generate_synthetic(tmp_path, 4, SEED, "a2d", **SMALL)
    assert tree_bytes(tmp_path) == tree_bytes(a2d_root)


def test_a2d_videoset_rows(a2d_root: Path) -> None:
    rows = list(csv.reader((a2d_root / "Release/videoset.csv").open()))
    assert [row[0] for row in rows] == ["syn00000", "syn00001", "syn00002", "syn00003"]
    assert all(len(row) == 9 for row in rows)
    assert [row[8] for row in rows] == ["0", "0", "0", "1"]
    assert [row[4:7] for row in rows] == [["64", "96", "8"]] * 4
    assert (a2d_root / "text_annotations/a2d_missed_videos.txt").read_text() == ""


def test_a2d_annotation_rows_match_clips(a2d_root: Path) -> None:
    lines = (a2d_root / "text_annotations/a2d_annotation.txt").read_text().splitlines()
    assert lines[0] == "video_id,instance_id,query"
    expected = [
        f"{clip.video_id},{ref.obj_id},{ref.text}"
        for clip in (make_clip(SEED, i, i == 3, **SMALL, max_sentences=2 if i < 3 else 1) for i in range(4))
        for ref in clip.referrals
    ]
    assert lines[1:] == expected


def test_a2d_test_split_has_one_query_per_instance(a2d_root: Path) -> None:
    rows = list(csv.reader((a2d_root / "text_annotations/a2d_annotation.txt").open()))[1:]
    test_instances = [(video, instance) for video, instance, _ in rows if video == "syn00003"]
    assert test_instances and len(test_instances) == len(set(test_instances))


def test_a2d_h5_frames_are_every_fourth_from_third(a2d_root: Path) -> None:
    folder = a2d_root / "text_annotations/a2d_annotation_with_instances/syn00000"
    assert sorted(p.name for p in folder.iterdir()) == ["00003.h5", "00007.h5"]


def test_a2d_h5_masks_are_the_clip_labels(a2d_root: Path) -> None:
    clip = make_clip(SEED, 1, False, **SMALL)
    with h5py.File(a2d_root / "text_annotations/a2d_annotation_with_instances/syn00001/00007.h5") as h5:
        ids = list(h5["instance"][()])
        masks = h5["reMask"][()]
    masks = masks[None] if masks.ndim == 2 else masks
    assert ids == [i for i in range(1, 5) if (clip.labels[6] == i).any()]
    for mask, obj_id in zip(masks, ids, strict=True):
        assert np.array_equal(mask.T, (clip.labels[6] == obj_id).astype(np.uint8))


def test_a2d_mp4_close_to_clip_frames(a2d_root: Path) -> None:
    decoded = read_frames(a2d_root / "Release/clips320H/syn00002.mp4").astype(int)
    assert decoded.shape == (8, 64, 96, 3)
    assert np.abs(decoded - make_clip(SEED, 2, False, **SMALL).frames).mean() < 4


def hand_clip() -> SyntheticClip:
    """A 1-frame 4x5 clip: object 1 a 2x2 block at rows 0-1, cols 1-2; object 2 the pixel (3, 4)."""
    labels = np.zeros((1, 4, 5), dtype=np.uint8)
    labels[0, 0:2, 1:3] = 1
    labels[0, 3, 4] = 2
    objects = [
        SyntheticObject(1, "red", "circle", "small", "left", "slow"),
        SyntheticObject(2, "blue", "square", "big", "static", None),
    ]
    return SyntheticClip("hand", False, objects, [], np.zeros((1, 4, 5, 3), np.uint8), labels)


def read_h5(data: bytes, tmp_path: Path) -> dict[str, np.ndarray]:
    """Write h5 bytes to a file and read every dataset back."""
    path = tmp_path / "frame.h5"
    path.write_bytes(data)
    with h5py.File(path) as h5:
        return {key: h5[key][()] for key in h5}


def test_a2d_h5_single_instance_is_w_by_h(tmp_path: Path) -> None:
    clip = hand_clip()
    clip.labels[0, 3, 4] = 0  # only object 1 left
    h5 = read_h5(a2d_frame_h5(clip, 1), tmp_path)
    assert h5["instance"].tolist() == [1]
    assert h5["reMask"].shape == (5, 4) and h5["reMask"].dtype == np.uint8
    assert h5["reMask"].T.tolist() == [[0, 1, 1, 0, 0], [0, 1, 1, 0, 0], [0, 0, 0, 0, 0], [0, 0, 0, 0, 0]]
    assert h5["reBBox"].tolist() == [[1.0], [0.0], [2.0], [1.0]]
    assert h5["id"].tolist() == [11]


def test_a2d_h5_multi_instance_is_n_by_w_by_h(tmp_path: Path) -> None:
    h5 = read_h5(a2d_frame_h5(hand_clip(), 1), tmp_path)
    assert h5["instance"].tolist() == [1, 2]
    assert h5["reMask"].shape == (2, 5, 4)
    assert h5["reMask"][1].T.tolist() == [[0] * 5, [0] * 5, [0] * 5, [0, 0, 0, 0, 1]]
    assert h5["reBBox"].tolist() == [[1.0, 4.0], [0.0, 3.0], [2.0, 4.0], [1.0, 3.0]]
    assert h5["id"].tolist() == [11, 25]


def test_a2d_h5_frame_without_objects_is_skipped() -> None:
    clip = hand_clip()
    clip.labels[:] = 0
    assert a2d_frame_h5(clip, 1) is None


# -------------------------------------------------------------------------------------- YTVOS files


def load_meta(root: Path, relative: str) -> dict:
    """The "videos" dict of a meta_expressions json."""
    return json.loads((root / relative).read_text())["videos"]


def test_ytvos_train_meta(ytvos_root: Path) -> None:
    meta = load_meta(ytvos_root, "meta_expressions/train/meta_expressions.json")
    assert sorted(meta) == [f"syn{i:05d}" for i in range(9)]
    video = meta["syn00000"]
    assert video["frames"] == ["00000", "00005", "00010", "00015", "00020", "00025", "00030", "00035"]
    clip = make_clip(SEED, 0, False, **SMALL)
    assert video["expressions"] == {
        str(n): {"exp": ref.text, "obj_id": str(ref.obj_id)} for n, ref in enumerate(clip.referrals)
    }


def test_ytvos_valid_contains_test_and_hides_obj_ids(ytvos_root: Path) -> None:
    valid = load_meta(ytvos_root, "meta_expressions/valid/meta_expressions.json")
    test = load_meta(ytvos_root, "meta_expressions/test/meta_expressions.json")
    assert sorted(valid) == ["syn00009", "syn00010", "syn00011"] and sorted(test) == ["syn00011"]
    expressions = [e for v in valid.values() for e in v["expressions"].values()]
    assert expressions and all(set(e) == {"exp"} for e in expressions)


def test_ytvos_ground_truth_only_for_valid_minus_test(ytvos_root: Path) -> None:
    gt = load_meta(ytvos_root, YTVOS_GT_META)
    assert sorted(gt) == ["syn00009", "syn00010"]
    assert sorted(p.name for p in (ytvos_root / "valid/Annotations").iterdir()) == ["syn00009", "syn00010"]
    assert len(list((ytvos_root / "valid/JPEGImages").iterdir())) == 3
    clip = make_clip(SEED, 9, True, **SMALL)
    assert [e["obj_id"] for e in gt["syn00009"]["expressions"].values()] == [
        str(r.obj_id) for r in clip.referrals
    ]


def test_ytvos_palette_png_holds_object_ids(ytvos_root: Path) -> None:
    image = Image.open(ytvos_root / "train/Annotations/syn00004/00015.png")
    assert image.mode == "P"
    assert np.array_equal(np.array(image), make_clip(SEED, 4, False, **SMALL).labels[3])


def test_ytvos_jpeg_frames(ytvos_root: Path) -> None:
    folder = ytvos_root / "train/JPEGImages/syn00004"
    assert len(list(folder.glob("*.jpg"))) == 8
    decoded = np.array(Image.open(folder / "00035.jpg")).astype(int)
    assert np.abs(decoded - make_clip(SEED, 4, False, **SMALL).frames[7]).mean() < 4


def test_davis_palette_first_colours() -> None:
    assert davis_palette()[:15] == [0, 0, 0, 128, 0, 0, 0, 128, 0, 128, 128, 0, 0, 0, 128]
    assert len(davis_palette()) == 768


def test_summary_counts(tmp_path: Path) -> None:
    summary = generate_synthetic(tmp_path, 4, SEED, "ytvos", **SMALL)
    sentences = [len(make_clip(SEED, i, i == 3, **SMALL).referrals) for i in range(4)]
    assert summary.videos == {"train": 3, "valid": 1, "test": 0}
    assert summary.sentences == {"train": sum(sentences[:3]), "valid": sentences[3], "test": 0}
    assert summary.rows()[0] == ("train", 3, sum(sentences[:3]))
