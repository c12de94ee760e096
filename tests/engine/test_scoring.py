"""Scoring existing prediction files: results on real files, and the validation errors users see."""

import json
import re
from pathlib import Path

import numpy as np
import pytest
from coco_builders import rle
from PIL import Image

from rvos_cli.engine.scoring import score_a2d_predictions, score_ytvos_predictions
from rvos_cli.errors import RvosError


def square(top: int, side: int, frame: int = 20) -> np.ndarray:
    mask = np.zeros((frame, frame), dtype=bool)
    mask[top : top + side, top : top + side] = True
    return mask


GT_MASK = square(2, 10)


def gt_dict() -> dict:
    images = [{"id": image_id, "height": 20, "width": 20} for image_id in ("v_a_f_1_i_0", "v_b_f_3_i_1")]
    annotations = [
        {
            "id": i + 1,
            "image_id": image["id"],
            "category_id": 1,
            "iscrowd": 0,
            "area": 100.0,
            "segmentation": rle(GT_MASK),
        }
        for i, image in enumerate(images)
    ]
    return {"images": images, "annotations": annotations, "categories": [{"id": 1}]}


def good_predictions() -> list[dict]:
    return [
        {"image_id": "v_a_f_1_i_0", "category_id": 1, "segmentation": rle(GT_MASK), "score": 0.9},
        {"image_id": "v_b_f_3_i_1", "category_id": 1, "segmentation": rle(square(15, 3)), "score": 0.8},
    ]


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path]:
    """(predictions.json, gt.json) written to disk."""
    predictions_path, gt_path = tmp_path / "predictions.json", tmp_path / "gt.json"
    predictions_path.write_text(json.dumps(good_predictions()))
    gt_path.write_text(json.dumps(gt_dict()))
    return predictions_path, gt_path


def test_a2d_scores_from_files(files: tuple[Path, Path]) -> None:
    metrics = score_a2d_predictions(*files)
    # image a perfect (IoU 1), image b wrong (I 0, U 109); AP = 51/101 at every IoU threshold
    assert metrics["mAP"] == pytest.approx(51 / 101, abs=1e-12)
    assert metrics["P@0.9"] == 0.5
    assert metrics["overall_iou"] == 100 / 209


def test_missing_predictions_file(files: tuple[Path, Path], tmp_path: Path) -> None:
    missing = tmp_path / "nope.json"
    with pytest.raises(RvosError, match=re.escape(f"{missing}: predictions file not found")):
        score_a2d_predictions(missing, files[1])


def test_invalid_json_names_file_and_line(files: tuple[Path, Path]) -> None:
    predictions_path, gt_path = files
    predictions_path.write_text('[\n{"image_id": "v_a_f_1_i_0",\n}]')
    expected = f"{predictions_path}:3:1: predictions file is not valid JSON"
    with pytest.raises(RvosError, match=re.escape(expected)):
        score_a2d_predictions(predictions_path, gt_path)


def test_entry_missing_a_key_names_the_entry_index(files: tuple[Path, Path]) -> None:
    predictions_path, gt_path = files
    predictions = good_predictions()
    del predictions[1]["score"]
    predictions_path.write_text(json.dumps(predictions))
    with pytest.raises(RvosError, match=re.escape(f"{predictions_path}: entry 1 is missing 'score'")):
        score_a2d_predictions(predictions_path, gt_path)


def test_unknown_image_id_names_the_entry_index(files: tuple[Path, Path]) -> None:
    predictions_path, gt_path = files
    predictions = good_predictions()
    predictions[0]["image_id"] = "v_zzz_f_1_i_0"
    predictions_path.write_text(json.dumps(predictions))
    message = f"{predictions_path}: entry 0: image_id 'v_zzz_f_1_i_0' is not in the ground truth"
    with pytest.raises(RvosError, match=re.escape(message)):
        score_a2d_predictions(predictions_path, gt_path)


def test_mask_of_another_size_is_rejected(files: tuple[Path, Path]) -> None:
    predictions_path, gt_path = files
    predictions = good_predictions()
    predictions[1]["segmentation"] = rle(np.zeros((10, 10), dtype=bool))
    predictions_path.write_text(json.dumps(predictions))
    with pytest.raises(
        RvosError, match=re.escape("entry 1: mask is 10x10 (HxW) but ground truth 'v_b_f_3_i_1' is 20x20")
    ):
        score_a2d_predictions(predictions_path, gt_path)


def test_non_numeric_score_is_rejected(files: tuple[Path, Path]) -> None:
    predictions_path, gt_path = files
    predictions = good_predictions()
    predictions[0]["score"] = "high"
    predictions_path.write_text(json.dumps(predictions))
    with pytest.raises(RvosError, match=re.escape("entry 0: 'score' must be a number")):
        score_a2d_predictions(predictions_path, gt_path)


def test_predictions_must_be_a_list(files: tuple[Path, Path]) -> None:
    predictions_path, gt_path = files
    predictions_path.write_text(json.dumps({"image_id": "v_a_f_1_i_0"}))
    with pytest.raises(RvosError, match="expected a JSON list of COCO results"):
        score_a2d_predictions(predictions_path, gt_path)


def test_gt_image_with_two_annotations_is_rejected(files: tuple[Path, Path]) -> None:
    predictions_path, gt_path = files
    gt = gt_dict()
    gt["annotations"][1]["image_id"] = "v_a_f_1_i_0"
    gt_path.write_text(json.dumps(gt))
    with pytest.raises(
        RvosError, match=re.escape(f"{gt_path}: annotations[1]: image 'v_a_f_1_i_0' has a second")
    ):
        score_a2d_predictions(predictions_path, gt_path)


def test_gt_annotation_without_area_is_rejected(files: tuple[Path, Path]) -> None:
    predictions_path, gt_path = files
    gt = gt_dict()
    del gt["annotations"][0]["area"]
    gt_path.write_text(json.dumps(gt))
    with pytest.raises(RvosError, match=re.escape(f"{gt_path}: annotations[0] is missing 'area'")):
        score_a2d_predictions(predictions_path, gt_path)


def test_ytvos_scores_from_folders(tmp_path: Path) -> None:
    gt_root, pred_dir = tmp_path / "gt", tmp_path / "pred"
    (gt_root / "Annotations" / "v").mkdir(parents=True)
    (pred_dir / "v" / "0").mkdir(parents=True)
    meta = {"videos": {"v": {"expressions": {"0": {"exp": "a cat", "obj_id": "1"}}, "frames": ["00000"]}}}
    (gt_root / "meta_expressions.json").write_text(json.dumps(meta))
    labels = np.zeros((6, 6), dtype=np.uint8)
    labels[1:3, 1:3] = 1
    gt_png = Image.fromarray(labels, mode="L")
    gt_png.putpalette([0, 0, 0, 255, 0, 0] + [0] * (256 * 3 - 6))
    gt_png.save(gt_root / "Annotations" / "v" / "00000.png")
    Image.fromarray(labels * 255, mode="L").save(pred_dir / "v" / "0" / "00000.png")
    result = score_ytvos_predictions(pred_dir, gt_root)
    assert (result["J"], result["F"], result["J&F"]) == (1.0, 1.0, 1.0)


def test_ytvos_missing_prediction_folder(tmp_path: Path) -> None:
    with pytest.raises(RvosError, match=re.escape(f"{tmp_path / 'pred'}: prediction folder not found")):
        score_ytvos_predictions(tmp_path / "pred", tmp_path)
