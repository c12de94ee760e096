"""Ref-DAVIS17 preparation: both encodings, the sequence-name typos, run order, one-line errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from dataset_builders import DAVIS_H, DAVIS_W, make_davis, write_text

from rvos_cli.data.davis import RUN_FILES, load_davis_index, parse_expression_line, prepare_davis
from rvos_cli.errors import RvosError

H, W = DAVIS_H, DAVIS_W


def test_index_holds_four_expressions_per_object_in_run_order(tmp_path: Path) -> None:
    root = make_davis(tmp_path / "davis")
    summary = prepare_davis(root, tmp_path / "out")
    assert summary.splits == {"train": (1, 1, 4), "val": (1, 2, 8)}
    (sequence,) = load_davis_index(tmp_path / "out", "val")
    assert sequence["frames"] == ["00000", "00001", "00002"] and sequence["size"] == [H, W]
    first, second = sequence["objects"]
    assert (first["obj_id"], first["category"]) == (1, "car")
    assert first["expressions"] == ["car 1 first, café", "car 1 full", "voiture 1 à gauche", "car 1 b full"]
    assert second["expressions"][3] == "car 2 b full"
    assert load_davis_index(tmp_path / "out", "train")[0]["objects"][0]["expressions"][0] == "dog"


def test_the_three_sequence_name_typos_are_corrected() -> None:
    path = Path("x.txt")
    assert parse_expression_line('clasic-car 1 "a"', path, 1)[0] == "classic-car"
    assert parse_expression_line('dog-scale 2 "a"', path, 1)[:2] == ("dogs-scale", 2)
    assert parse_expression_line('motor-bike 1 "a b"', path, 1) == ("motorbike", 1, "a b")


def test_a_malformed_line_names_file_and_line_and_can_be_skipped(tmp_path: Path) -> None:
    root = make_davis(tmp_path / "davis")
    path = root / "davis_text_annotations" / RUN_FILES[1][0]
    path.write_text(path.read_text() + '\nclassic-car one "bad"\n')
    with pytest.raises(RvosError) as caught:
        prepare_davis(root, tmp_path / "out")
    assert str(caught.value) == (
        f'{path}:4: expected <sequence> <object id> "<expression>", got \'classic-car one "bad"\''
    )
    assert len(prepare_davis(root, tmp_path / "out", skip_bad=True).skipped) == 1


def test_an_annot2_file_is_read_as_latin_1_and_annot1_must_be_utf8(tmp_path: Path) -> None:
    root = make_davis(tmp_path / "davis")
    annot1 = root / "davis_text_annotations" / RUN_FILES[0][0]
    annot1.write_bytes('classic-car 1 "caf\xe9"'.encode("latin-1"))
    with pytest.raises(RvosError, match=r"Davis17_annot1.txt: not utf-8 text \(byte 18\)"):
        prepare_davis(root, tmp_path / "out")


ERRORS = {
    "object without an expression": (
        lambda root: write_text(root, [['classic-car 1 "a"', 'dogs-scale 1 "d"']] * 4),
        "Davis17_annot1.txt: no expression for classic-car object 2",
    ),
    "unknown sequence": (
        lambda root: (root / "DAVIS/ImageSets/2017/train.txt").write_text("\n"),
        "Davis17_annot1.txt: sequence 'dogs-scale' (object 1) is in no ImageSets list",
    ),
    "missing annotation": (
        lambda root: (root / "DAVIS/Annotations_unsupervised/480p/classic-car/00002.png").unlink(),
        "Annotations_unsupervised/480p/classic-car/00002.png: missing (the frame 00002.jpg exists)",
    ),
    "listed sequence without frames": (
        lambda root: (root / "DAVIS/ImageSets/2017/val.txt").write_text("classic-car\nbear\n"),
        "JPEGImages/480p/bear: missing (the sequence is listed in DAVIS/ImageSets/2017/val.txt)",
    ),
    "duplicate expression": (
        lambda root: (root / "davis_text_annotations" / RUN_FILES[2][0]).write_bytes(
            b'classic-car 1 "a"\nclassic-car 1 "b"\nclassic-car 2 "c"\ndogs-scale 1 "d"'
        ),
        "Davis17_annot2.txt:2: a second expression for classic-car object 1",
    ),
}


@pytest.mark.parametrize("case", sorted(ERRORS))
def test_every_bad_input_is_one_line_naming_the_file(tmp_path: Path, case: str) -> None:
    edit, message = ERRORS[case]
    root = make_davis(tmp_path / "davis")
    edit(root)
    with pytest.raises(RvosError) as caught:
        prepare_davis(root, tmp_path / "out")
    assert message in str(caught.value) and "\n" not in str(caught.value)
    assert prepare_davis(root, tmp_path / "out", skip_bad=True).skipped


def test_missing_download_parts_are_named(tmp_path: Path) -> None:
    with pytest.raises(RvosError, match="DAVIS: missing"):
        prepare_davis(tmp_path, tmp_path / "out")
    root = make_davis(tmp_path / "davis")
    (root / "DAVIS/davis_semantics.json").unlink()
    with pytest.raises(RvosError, match=r"davis_semantics\.json: DAVIS semantics JSON not found"):
        prepare_davis(root, tmp_path / "out")


def test_train_samples_and_items_refer_to_one_object(tmp_path: Path) -> None:
    from rvos_cli.data.davis_dataset import DavisTrainDataset
    from rvos_cli.data.transforms import VideoTransforms

    root = make_davis(tmp_path / "davis")
    prepare_davis(root, tmp_path / "out", window=2)
    dataset = DavisTrainDataset(tmp_path / "out", root, 2, VideoTransforms(12, 16, horizontal_flip=False))
    # dogs-scale: 2 frames, one object, one window, four expressions (exp ids 0..3).
    assert [s[2]["exp_id"] for s in dataset.samples] == ["0", "1", "2", "3"]
    item = dataset[2]
    assert item["text"] == "chien" and item["frames"].shape == (2, 3, H, W)
    target = item["targets"][0]
    assert target["masks"].shape == (1, H, W) and int(target["referred_instance_idx"]) == 0
    assert int(target["masks"][0].sum()) == 1 and not target["masks"][0, -1, -1]  # void is background
