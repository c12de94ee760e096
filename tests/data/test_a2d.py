"""A2D-Sentences: sample lists, COCO ground truth, frame cache, bad input, resuming, the dataset."""

import json
import re
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO

from rvos_cli.data.a2d import A2DSentencesDataset, prepare_a2d, read_frame_annotation
from rvos_cli.data.prepare import window_indices
from rvos_cli.data.video_io import read_frames, write_video
from rvos_cli.errors import RvosError
from rvos_cli.fileio import temp_path_for

H, W = 32, 48  # H != W so a missed transpose changes the mask shape
NUM_FRAMES = 6
INSTANCES = "text_annotations/a2d_annotation_with_instances"
ANNOTATION = "text_annotations/a2d_annotation.txt"

# (video, frame) -> {instance id: (row0, row1, col0, col1)}; instance 2 of vidA is absent from frame 5
BOXES = {
    ("vidA", 2): {1: (2, 10, 3, 20), 2: (15, 30, 30, 45)},
    ("vidA", 5): {1: (4, 12, 5, 22)},
    ("vidB", 3): {1: (0, 8, 0, 16)},
    ("vidB", 4): {1: (1, 9, 2, 18), 3: (20, 31, 25, 47)},
}
VIDEOSET = [
    "vidA,11,0,0.25,32,48,6,2,0",
    "vidB,12,0,0.25,32,48,6,2,1",
    "vidM,13,0,0.25,32,48,6,2,0",
    "vidN,14,0,0.25,32,48,6,0,1",
]
QUERIES = [
    "video_id,instance_id,query",
    'vidA,1,"The  Man RUNNING"',
    "vidA,2,a dog",
    "vidA,1 (copy),a copied row",
    'vidB,3,"Left  car"',
    "vidB,1,right person",
    "vidM,1,a missed video",
]


def _mask(box: tuple[int, int, int, int]) -> np.ndarray:
    mask = np.zeros((H, W), dtype=np.uint8)
    mask[box[0] : box[1], box[2] : box[3]] = 1
    return mask


def _write_h5(path: Path, boxes: dict[int, tuple[int, int, int, int]]) -> None:
    """Write an A2D frame annotation the way the official files store it (MATLAB-transposed masks)."""
    masks = np.stack([_mask(b) for b in boxes.values()])  # [N, H, W]
    re_mask = masks[0].T if len(boxes) == 1 else masks.transpose(0, 2, 1)
    bbox = np.array([[b[2], b[0], b[3] - 1, b[1] - 1] for b in boxes.values()], dtype=np.float64).T
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as handle:
        handle["instance"] = np.array(list(boxes), dtype=np.float64)
        handle["reMask"] = re_mask
        handle["reBBox"] = bbox
        handle["id"] = np.array([11] * len(boxes))


@pytest.fixture
def a2d_root(tmp_path: Path) -> Path:
    root = tmp_path / "a2d_sentences"
    (root / "Release/clips320H").mkdir(parents=True)
    (root / "Release/videoset.csv").write_text("\n".join(VIDEOSET) + "\n")
    rng = np.random.default_rng(0)
    for video in ("vidA", "vidB", "vidN"):
        frames = [
            np.full((H, W, 3), 30 * t, dtype=np.uint8) + rng.integers(0, 20, (H, W, 3), dtype=np.uint8)
            for t in range(NUM_FRAMES)
        ]
        write_video(root / f"Release/clips320H/{video}.mp4", frames, fps=24)
    (root / INSTANCES).mkdir(parents=True)
    (root / ANNOTATION).write_text("\n".join(QUERIES) + "\n")
    (root / "text_annotations/a2d_missed_videos.txt").write_text("vidM\n")
    for (video, frame), boxes in BOXES.items():
        _write_h5(root / INSTANCES / video / f"{frame:05d}.h5", boxes)
    return root


def _read(path: Path) -> object:
    return json.loads(path.read_text())


def test_train_samples(a2d_root: Path, tmp_path: Path) -> None:
    prepare_a2d(a2d_root, tmp_path / "out")
    assert _read(tmp_path / "out/samples_train.json") == [
        ["the man running", "vidA", 2, 1],
        ["the man running", "vidA", 5, 1],
        ["a dog", "vidA", 2, 2],
    ]


def test_test_samples(a2d_root: Path, tmp_path: Path) -> None:
    summary = prepare_a2d(a2d_root, tmp_path / "out")
    assert _read(tmp_path / "out/samples_test.json") == [
        ["left car", "vidB", 4, 3],
        ["right person", "vidB", 3, 1],
        ["right person", "vidB", 4, 1],
    ]
    assert summary.samples == {"train": 3, "test": 3} and summary.videos == 2 and summary.skipped == []


def test_masks_are_untransposed(a2d_root: Path) -> None:
    single = read_frame_annotation(a2d_root / INSTANCES / "vidA/00005.h5")
    multi = read_frame_annotation(a2d_root / INSTANCES / "vidA/00002.h5")
    assert single.instances == [1] and np.array_equal(single.masks, _mask((4, 12, 5, 22))[None])
    assert multi.instances == [1, 2]
    assert np.array_equal(multi.masks, np.stack([_mask((2, 10, 3, 20)), _mask((15, 30, 30, 45))]))


def test_coco_gt_round_trips_through_pycocotools(a2d_root: Path, tmp_path: Path) -> None:
    prepare_a2d(a2d_root, tmp_path / "out")
    coco = COCO(str(tmp_path / "out/coco_gt_test.json"))
    expected = {
        "v_vidB_f_4_i_3": BOXES[("vidB", 4)][3],
        "v_vidB_f_3_i_1": BOXES[("vidB", 3)][1],
        "v_vidB_f_4_i_1": BOXES[("vidB", 4)][1],
    }
    assert coco.getImgIds() == list(expected)
    assert coco.loadCats(coco.getCatIds()) == [{"id": 1, "name": "dummy_class"}]
    for image_id, box in expected.items():
        (ann,) = coco.loadAnns(coco.getAnnIds(imgIds=[image_id]))
        assert isinstance(ann["segmentation"]["counts"], str)
        assert np.array_equal(coco.annToMask(ann), _mask(box))
        assert ann["area"] == float(_mask(box).sum()) == float(mask_utils.area(ann["segmentation"]))
        assert ann["bbox"] == [box[2], box[0], box[3] - 1 - box[2], box[1] - 1 - box[0]]
        assert coco.imgs[image_id] == {"id": image_id, "height": H, "width": W}
    assert [a["id"] for a in coco.dataset["annotations"]] == [1, 2, 3]


def test_frame_cache_holds_every_decoded_frame(a2d_root: Path, tmp_path: Path) -> None:
    summary = prepare_a2d(a2d_root, tmp_path / "out")
    cached = np.load(tmp_path / "out/frames/vidA.npy")
    assert cached.dtype == np.uint8 and cached.shape == (NUM_FRAMES, H, W, 3)
    assert np.array_equal(cached, read_frames(a2d_root / "Release/clips320H/vidA.mp4"))
    assert sorted(p.name for p in (tmp_path / "out/frames").iterdir()) == ["vidA.npy", "vidB.npy"]
    assert (summary.frames_written, summary.frames_reused) == (2, 0)
    assert _read(tmp_path / "out/videos.json")["vidA"] == {"num_frames": NUM_FRAMES, "height": H, "width": W}


def test_interrupted_prepare_resumes_to_identical_outputs(a2d_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    prepare_a2d(a2d_root, out)
    names = ["samples_train.json", "samples_test.json", "coco_gt_test.json", "videos.json", "frames/vidB.npy"]
    before = {name: (out / name).read_bytes() for name in names}
    (out / "frames/vidB.npy").unlink()
    (out / "samples_test.json").unlink()
    temp_path_for(out / "frames/vidB.npy").write_bytes(b"half-written")  # a killed earlier run
    summary = prepare_a2d(a2d_root, out)
    assert {name: (out / name).read_bytes() for name in names} == before
    assert (summary.frames_written, summary.frames_reused) == (1, 1)


def test_failed_prepare_leaves_earlier_outputs_intact(a2d_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    prepare_a2d(a2d_root, out)
    before = (out / "samples_train.json").read_bytes()
    (a2d_root / INSTANCES / "vidB/00003.h5").write_bytes(b"not hdf5")
    with pytest.raises(RvosError):
        prepare_a2d(a2d_root, out)
    assert (out / "samples_train.json").read_bytes() == before


def test_missing_file(a2d_root: Path, tmp_path: Path) -> None:
    (a2d_root / "text_annotations/a2d_missed_videos.txt").unlink()
    with pytest.raises(RvosError) as error:
        prepare_a2d(a2d_root, tmp_path / "out")
    assert str(error.value) == (
        f"{a2d_root}/text_annotations/a2d_missed_videos.txt: "
        "missing (expected the A2D-Sentences download layout)"
    )


def test_videoset_row_with_wrong_column_count(a2d_root: Path, tmp_path: Path) -> None:
    (a2d_root / "Release/videoset.csv").write_text(
        "\n".join([VIDEOSET[0], "vidB,12,0,0.25,32,48,6,1"]) + "\n"
    )
    with pytest.raises(RvosError) as error:
        prepare_a2d(a2d_root, tmp_path / "out")
    assert str(error.value) == f"{a2d_root}/Release/videoset.csv:2: expected 9 comma-separated columns, got 8"


def test_videoset_row_with_non_integer_subset(a2d_root: Path, tmp_path: Path) -> None:
    (a2d_root / "Release/videoset.csv").write_text("vidA,11,0,0.25,32,48,6,2,train\n")
    with pytest.raises(RvosError) as error:
        prepare_a2d(a2d_root, tmp_path / "out")
    assert str(error.value) == (
        f"{a2d_root}/Release/videoset.csv:1: subset (column 9) must be 0 (train) or 1 (test), got 'train'"
    )


def test_annotation_row_with_non_integer_instance(a2d_root: Path, tmp_path: Path) -> None:
    (a2d_root / ANNOTATION).write_text("\n".join([*QUERIES[:2], "vidA,two,a dog"]) + "\n")
    with pytest.raises(RvosError) as error:
        prepare_a2d(a2d_root, tmp_path / "out")
    assert str(error.value) == f"{a2d_root}/{ANNOTATION}:3: instance_id must be an integer, got 'two'"


def test_query_naming_an_instance_in_no_frame(a2d_root: Path, tmp_path: Path) -> None:
    (a2d_root / ANNOTATION).write_text("\n".join([*QUERIES, "vidA,7,a ghost"]) + "\n")
    with pytest.raises(RvosError) as error:
        prepare_a2d(a2d_root, tmp_path / "out")
    assert (
        str(error.value)
        == f"{a2d_root}/{ANNOTATION}:8: instance 7 of video vidA is in no frame of {INSTANCES}"
    )


def test_corrupt_h5(a2d_root: Path, tmp_path: Path) -> None:
    (a2d_root / INSTANCES / "vidB/00004.h5").write_bytes(b"\x00" * 64)
    with pytest.raises(RvosError, match=r"vidB/00004\.h5: not a readable A2D annotation"):
        prepare_a2d(a2d_root, tmp_path / "out")


def test_truncated_mp4(a2d_root: Path, tmp_path: Path) -> None:
    mp4 = a2d_root / "Release/clips320H/vidA.mp4"
    mp4.write_bytes(mp4.read_bytes()[: mp4.stat().st_size // 2])
    with pytest.raises(RvosError, match="^" + re.escape(f"{mp4}: ")):
        prepare_a2d(a2d_root, tmp_path / "out")


def test_skip_bad_collects_and_continues(a2d_root: Path, tmp_path: Path) -> None:
    (a2d_root / INSTANCES / "vidB/00004.h5").write_bytes(b"\x00" * 64)
    summary = prepare_a2d(a2d_root, tmp_path / "out", skip_bad=True)
    assert [item.where for item in summary.skipped] == [str(a2d_root / INSTANCES / "vidB/00004.h5")]
    assert summary.samples == {"train": 3, "test": 0}
    assert _read(tmp_path / "out/coco_gt_test.json")["images"] == []


def test_window_indices_clamp_at_both_ends() -> None:
    assert window_indices(1, 5, 0, 5) == [0, 0, 1, 2, 3]
    assert window_indices(4, 5, 0, 5) == [2, 3, 4, 5, 5]
    assert window_indices(4, 4, 0, 5) == [2, 3, 4, 5]


def _identity(frames: np.ndarray, targets: list, text: str, generator: torch.Generator | None = None):
    return torch.from_numpy(np.asarray(frames)), targets, text


def test_dataset_window_and_centre_target(a2d_root: Path, tmp_path: Path) -> None:
    prepare_a2d(a2d_root, tmp_path / "out")
    dataset = A2DSentencesDataset(tmp_path / "out", a2d_root, "train", 5, _identity)
    item = dataset[2]  # "a dog", vidA frame 2 (0-based 1), instance 2
    cached = np.load(tmp_path / "out/frames/vidA.npy")
    assert np.array_equal(item["frames"].numpy(), cached[[0, 0, 1, 2, 3]])
    assert item["valid_indices"] == [2] and item["text"] == "a dog"
    assert [t is None for t in item["targets"]] == [True, True, False, True, True]
    target = item["targets"][2]
    assert target["masks"].shape == (2, H, W) and int(target["referred_instance_idx"]) == 1
    assert target["image_id"] == "v_vidA_f_2_i_2" and target["orig_size"].tolist() == [H, W]


def test_dataset_decodes_the_mp4_without_a_cache(a2d_root: Path, tmp_path: Path) -> None:
    prepare_a2d(a2d_root, tmp_path / "out", cache_frames=False)
    assert not (tmp_path / "out/frames").exists()
    item = A2DSentencesDataset(tmp_path / "out", a2d_root, "train", 3, _identity)[1]  # vidA frame 5
    expected = read_frames(a2d_root / "Release/clips320H/vidA.mp4")[[3, 4, 5]]
    assert np.array_equal(item["frames"].numpy(), expected)
