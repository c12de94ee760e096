"""JHMDB-Sentences: sampled frames, COCO ground truth without bbox, bad input, the evaluation dataset."""

import json
import re
from pathlib import Path

import numpy as np
import pytest
import scipy.io
import torch
from PIL import Image
from pycocotools.coco import COCO

from rvos_cli.data.jhmdb import JHMDBSentencesDataset, prepare_jhmdb
from rvos_cli.errors import RvosError

H, W = 12, 16


def _part_mask(frames: int) -> np.ndarray:
    """[H, W, T] with a one-pixel-wider square in every frame t (area (t + 2)^2)."""
    masks = np.zeros((H, W, frames), dtype=np.uint8)
    for t in range(frames):
        masks[: t + 2, : t + 2, t] = 1
    return masks


def _write_video(root: Path, action: str, video: str, frames: int, masks: int) -> None:
    folder = root / "Rename_Images" / action / video
    folder.mkdir(parents=True)
    for t in range(1, frames + 1):
        Image.fromarray(np.full((H, W, 3), 10 * t, dtype=np.uint8)).save(folder / f"{t:05d}.png")
    mask_dir = root / "puppet_mask" / action / video
    mask_dir.mkdir(parents=True)
    scipy.io.savemat(mask_dir / "puppet_mask.mat", {"part_mask": _part_mask(masks)})


@pytest.fixture
def jhmdb_root(tmp_path: Path) -> Path:
    root = tmp_path / "jhmdb_sentences"
    _write_video(root, "walk", "vid1", frames=5, masks=4)  # only the 4 frames with a mask are eligible
    _write_video(root, "run", "vid2", frames=3, masks=3)
    (root / "jhmdb_annotation.txt").write_text('video_id,query\nvid1,"Man  Walking"\nvid2,a runner\n')
    return root


def test_three_sorted_frames_per_video_from_the_seed(jhmdb_root: Path, tmp_path: Path) -> None:
    summary = prepare_jhmdb(jhmdb_root, tmp_path / "out")
    samples = json.loads((tmp_path / "out/samples_test.json").read_text())
    mask1, mask2 = "puppet_mask/walk/vid1/puppet_mask.mat", "puppet_mask/run/vid2/puppet_mask.mat"
    assert samples == [
        ["vid1", "Rename_Images/walk/vid1/00001.png", mask1, 4, "man walking"],
        ["vid1", "Rename_Images/walk/vid1/00002.png", mask1, 4, "man walking"],
        ["vid1", "Rename_Images/walk/vid1/00004.png", mask1, 4, "man walking"],
        ["vid2", "Rename_Images/run/vid2/00001.png", mask2, 3, "a runner"],
        ["vid2", "Rename_Images/run/vid2/00002.png", mask2, 3, "a runner"],
        ["vid2", "Rename_Images/run/vid2/00003.png", mask2, 3, "a runner"],
    ]
    assert summary.videos == 2 and summary.samples == {"test": 6}


def test_coco_gt_has_frame_image_ids_and_no_bbox(jhmdb_root: Path, tmp_path: Path) -> None:
    prepare_jhmdb(jhmdb_root, tmp_path / "out")
    coco = COCO(str(tmp_path / "out/coco_gt_test.json"))
    assert coco.getImgIds() == [f"v_vid1_f_{f}" for f in (1, 2, 4)] + [f"v_vid2_f_{f}" for f in (1, 2, 3)]
    (ann,) = coco.loadAnns(coco.getAnnIds(imgIds=["v_vid1_f_4"]))
    assert "bbox" not in ann
    assert ann["area"] == 25.0
    assert np.array_equal(coco.annToMask(ann), _part_mask(4)[:, :, 3])


def test_fixed_sample_list_overrides_the_draw(jhmdb_root: Path, tmp_path: Path) -> None:
    fixed = tmp_path / "fixed.json"
    listed = [["vid1", "./jhmdb_sentences/Rename_Images/walk/vid1/00003.png", "m", 4, "q"]]
    listed += [["vid2", f"./x/{f:05d}.png", "m", 3, "q"] for f in (3, 1, 2)]
    fixed.write_text(json.dumps(listed))
    prepare_jhmdb(jhmdb_root, tmp_path / "out", samples_metadata=fixed)
    samples = json.loads((tmp_path / "out/samples_test.json").read_text())
    assert [Path(s[1]).stem for s in samples] == ["00003", "00001", "00002", "00003"]


def test_corrupt_mat(jhmdb_root: Path, tmp_path: Path) -> None:
    mat = jhmdb_root / "puppet_mask/run/vid2/puppet_mask.mat"
    mat.write_bytes(b"garbage")
    with pytest.raises(RvosError, match="^" + re.escape(f"{mat}: not a readable puppet mask")):
        prepare_jhmdb(jhmdb_root, tmp_path / "out")


def test_corrupt_png(jhmdb_root: Path, tmp_path: Path) -> None:
    png = jhmdb_root / "Rename_Images/walk/vid1/00002.png"
    png.write_bytes(b"garbage")
    with pytest.raises(RvosError, match="^" + re.escape(f"{png}: not a readable image")):
        prepare_jhmdb(jhmdb_root, tmp_path / "out")


def test_unknown_video(jhmdb_root: Path, tmp_path: Path) -> None:
    (jhmdb_root / "jhmdb_annotation.txt").write_text("video_id,query\nvid1,a man\nvid9,a ghost\n")
    with pytest.raises(RvosError) as error:
        prepare_jhmdb(jhmdb_root, tmp_path / "out")
    assert str(error.value) == (
        f"{jhmdb_root}/jhmdb_annotation.txt:3: video vid9 has no folder Rename_Images/<action>/vid9"
    )


def test_too_few_frames_skipped_with_skip_bad(jhmdb_root: Path, tmp_path: Path) -> None:
    scipy.io.savemat(jhmdb_root / "puppet_mask/run/vid2/puppet_mask.mat", {"part_mask": _part_mask(2)})
    summary = prepare_jhmdb(jhmdb_root, tmp_path / "out", skip_bad=True)
    assert [str(s) for s in summary.skipped] == [
        f"{jhmdb_root}/Rename_Images/run/vid2: only 2 frames have a puppet mask, need 3"
    ]
    assert summary.samples == {"test": 3}


def _identity(frames: np.ndarray, targets: list, text: str, generator: torch.Generator | None = None):
    return torch.from_numpy(np.asarray(frames)), targets, text


def test_dataset_window_clamps_to_the_masked_frames(jhmdb_root: Path, tmp_path: Path) -> None:
    prepare_jhmdb(jhmdb_root, tmp_path / "out")
    item = JHMDBSentencesDataset(tmp_path / "out", jhmdb_root, 4, _identity)[2]  # vid1, frame 4 of 4
    assert item["frames"][:, 0, 0, 0].tolist() == [20, 30, 40, 40]  # frames 2, 3, 4, 4
    assert item["valid_indices"] == [2] and item["text"] == "man walking"
    target = item["targets"][2]
    assert np.array_equal(target["masks"].numpy(), _part_mask(4)[None, :, :, 3])
    assert int(target["referred_instance_idx"]) == 0 and target["image_id"] == "v_vid1_f_4"
