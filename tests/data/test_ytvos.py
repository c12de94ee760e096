"""Ref-YouTube-VOS: training windows, valid = valid minus test, bad input, train/valid dataset items."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from rvos_cli.data.transforms import VideoTransforms
from rvos_cli.data.ytvos import ReferYouTubeVOSDataset, prepare_ytvos, train_windows
from rvos_cli.errors import RvosError

H, W = 8, 10
NAMES = [f"{5 * t:05d}" for t in range(7)]


def _labels(objects: list[int]) -> np.ndarray:
    """An id map with object k filling column block k (so every listed object is visible)."""
    labels = np.zeros((H, W), dtype=np.uint8)
    for k in objects:
        labels[:, 2 * k : 2 * k + 2] = k
    return labels


def _write_frame(root: Path, split: str, video: str, name: str, objects: list[int] | None) -> None:
    image_dir = root / split / "JPEGImages" / video
    image_dir.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((H, W, 3), 7 * int(name[-2:]), dtype=np.uint8)).save(image_dir / f"{name}.jpg")
    if objects is not None:
        mask_dir = root / split / "Annotations" / video
        mask_dir.mkdir(parents=True, exist_ok=True)
        image = Image.fromarray(_labels(objects), mode="P")
        image.putpalette([0, 0, 0, 255, 0, 0, 0, 255, 0, 0, 0, 255] + [0] * 756)
        image.save(mask_dir / f"{name}.png")


def _write_meta(root: Path, split: str, videos: dict, name: str = "meta_expressions.json") -> None:
    path = root / "meta_expressions" / split / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"videos": videos}))


@pytest.fixture
def ytvos_root(tmp_path: Path) -> Path:
    root = tmp_path / "refer_youtube_vos"
    # v1: object 1 in frames 0-2, object 2 in frames 5-6, object 3 everywhere; v2 has only 2 frames
    for t, name in enumerate(NAMES):
        _write_frame(root, "train", "v1", name, [k for k, on in ((1, t <= 2), (2, t >= 5), (3, True)) if on])
    for name in NAMES[:2]:
        _write_frame(root, "train", "v2", name, [1])
        _write_frame(root, "valid", "v3", name, None)
        _write_frame(root, "valid", "v4", name, None)
    v1 = {"0": {"exp": "The  Cat", "obj_id": "1"}, "1": {"exp": "a dog on the left", "obj_id": "2"}}
    _write_meta(
        root,
        "train",
        {
            "v1": {"expressions": v1, "frames": list(reversed(NAMES))},
            "v2": {"expressions": {"0": {"exp": "bird", "obj_id": "1"}}, "frames": NAMES[:2]},
        },
    )
    valid = {v: {"expressions": {"0": {"exp": f"fish {v}"}}, "frames": NAMES[:2]} for v in ("v3", "v4")}
    _write_meta(root, "valid", valid)
    _write_meta(root, "test", {"v4": valid["v4"]})
    return root


CAT = {"exp": "The  Cat", "obj_id": "1", "exp_id": "0"}
DOG = {"exp": "a dog on the left", "obj_id": "2", "exp_id": "1"}


def test_train_windows_of_seven_frames_with_window_three() -> None:
    assert train_windows(NAMES, 3) == [NAMES[0:3], NAMES[3:6], NAMES[4:7]]


def test_train_windows_pad_a_short_video_with_its_last_frame() -> None:
    assert train_windows(["a", "b"], 4) == [["a", "b", "b", "b"]]


def test_train_samples_keep_windows_where_the_object_appears(ytvos_root: Path, tmp_path: Path) -> None:
    summary = prepare_ytvos(ytvos_root, tmp_path / "out", 3)
    assert json.loads((tmp_path / "out/samples_train_w3.json").read_text()) == [
        ["v1", NAMES[0:3], CAT],
        ["v1", NAMES[3:6], DOG],
        ["v1", NAMES[4:7], DOG],
        ["v2", [NAMES[0], NAMES[1], NAMES[1]], {"exp": "bird", "obj_id": "1", "exp_id": "0"}],
    ]
    assert summary.samples == {"train": 4, "valid": 1}


def test_valid_is_valid_minus_test_with_all_frames(ytvos_root: Path, tmp_path: Path) -> None:
    prepare_ytvos(ytvos_root, tmp_path / "out", 3)
    assert json.loads((tmp_path / "out/samples_valid.json").read_text()) == [
        ["v3", NAMES[:2], {"exp": "fish v3", "exp_id": "0"}]
    ]


def test_expression_naming_an_absent_object(ytvos_root: Path, tmp_path: Path) -> None:
    meta = ytvos_root / "meta_expressions/train/meta_expressions.json"
    data = json.loads(meta.read_text())
    data["videos"]["v2"]["expressions"]["0"]["obj_id"] = "9"
    meta.write_text(json.dumps(data))
    with pytest.raises(RvosError) as error:
        prepare_ytvos(ytvos_root, tmp_path / "out", 3)
    assert (
        str(error.value)
        == f"{meta}: video v2 expression 0: obj_id '9' is in no annotation of train/Annotations/v2"
    )


def test_corrupt_annotation_png_is_skipped_with_skip_bad(ytvos_root: Path, tmp_path: Path) -> None:
    png = ytvos_root / "train/Annotations/v2/00005.png"
    png.write_bytes(b"garbage")
    summary = prepare_ytvos(ytvos_root, tmp_path / "out", 3, skip_bad=True)
    assert [item.where for item in summary.skipped] == [str(png)]
    assert summary.samples == {"train": 3, "valid": 1}


def test_rgb_annotation_png(ytvos_root: Path, tmp_path: Path) -> None:
    png = ytvos_root / "train/Annotations/v2/00005.png"
    Image.new("RGB", (W, H)).save(png)
    with pytest.raises(RvosError) as error:
        prepare_ytvos(ytvos_root, tmp_path / "out", 3)
    assert str(error.value) == f"{png}: expected a palette ('P') annotation PNG, got mode RGB"


def test_missing_test_meta(ytvos_root: Path, tmp_path: Path) -> None:
    (ytvos_root / "meta_expressions/test/meta_expressions.json").unlink()
    with pytest.raises(RvosError, match=r"meta_expressions/test/meta_expressions\.json: missing"):
        prepare_ytvos(ytvos_root, tmp_path / "out", 3)


def _identity(frames: np.ndarray, targets: list, text: str, generator: torch.Generator | None = None):
    return torch.from_numpy(np.asarray(frames)), targets, text


def test_train_item_targets_on_every_frame(ytvos_root: Path, tmp_path: Path) -> None:
    prepare_ytvos(ytvos_root, tmp_path / "out", 3)
    item = ReferYouTubeVOSDataset(tmp_path / "out", ytvos_root, "train", _identity, window=3)[1]  # DOG, 3-5
    assert item["valid_indices"] == [0, 1, 2] and item["text"] == "a dog on the left"
    assert item["frames"].shape == (3, H, W, 3)
    visible = [bool(t["is_ref_inst_visible"]) for t in item["targets"]]
    assert visible == [False, False, True]
    assert item["targets"][0]["is_ref_inst_visible"].dtype == torch.bool
    for t, target in enumerate(item["targets"]):
        assert int(target["referred_instance_idx"]) == 0  # objects [2, 3]
        assert target["masks"].shape == (2, H, W)
        assert target["masks"][0].sum().item() == (2 * H if t == 2 else 0)
        assert np.array_equal(target["masks"][1].numpy(), _labels([3]) == 3)


def test_valid_item_has_metadata_and_no_targets(ytvos_root: Path, tmp_path: Path) -> None:
    prepare_ytvos(ytvos_root, tmp_path / "out", 3)
    dataset = ReferYouTubeVOSDataset(tmp_path / "out", ytvos_root, "valid", VideoTransforms(16, None, False))
    item = dataset[0]
    assert item["targets"] is None and item["valid_indices"] == [0, 1]
    assert item["frames"].shape == (2, 3, 16, 20)
    assert item["meta"] == {
        "video_id": "v3",
        "frame_indices": NAMES[:2],
        "resized_frame_size": (16, 20),
        "original_frame_size": (H, W),
        "exp_id": "0",
    }
    assert not dataset.has_gt


def test_valid_ground_truth_when_annotations_exist(ytvos_root: Path, tmp_path: Path) -> None:
    for name in NAMES[:2]:
        _write_frame(ytvos_root, "valid", "v3", name, [1, 2])
    gt = {"v3": {"expressions": {"0": {"exp": "fish v3", "obj_id": "2"}}, "frames": NAMES[:2]}}
    _write_meta(ytvos_root, "valid", gt, name="meta_expressions_gt.json")
    prepare_ytvos(ytvos_root, tmp_path / "out", 3)
    dataset = ReferYouTubeVOSDataset(tmp_path / "out", ytvos_root, "valid", _identity)
    assert dataset.has_gt and dataset[0]["meta"]["obj_id"] == "2"
    assert np.array_equal(dataset.gt_masks(0), np.stack([_labels([1, 2]) == 2] * 2))
