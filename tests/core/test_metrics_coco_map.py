"""COCO mask mAP (useCats 0) on constructed cases computed by hand with the 101-point rule."""

import copy

import numpy as np
import pytest
from coco_builders import coco_gt, rle

from rvos_cli.core.metrics import a2d_metrics, coco_map

# The accumulated precision is TP / (TP + FP + machine eps), so values are exact only to ~1e-15.
EXACT = 1e-12


def square(frame: int, top: int, side: int) -> np.ndarray:
    """A `frame`×`frame` mask with a `side`×`side` square at (top, top)."""
    mask = np.zeros((frame, frame), dtype=bool)
    mask[top : top + side, top : top + side] = True
    return mask


def prediction(image_id: str, mask: np.ndarray, score: float) -> dict:
    return {"image_id": image_id, "category_id": 1, "segmentation": rle(mask), "score": score}


GT_SMALL = {"a": square(20, 2, 10), "b": square(20, 2, 10)}  # two 100-px objects (small: area < 32²)
WRONG = square(20, 15, 3)  # disjoint from the GT square, 9 px


def test_perfect_top_prediction_in_one_image_and_wrong_in_the_other() -> None:
    # Detections by score: TP (a), FP (b); recall [.5, .5], precision [1, .5] → recall thresholds
    # 0.00 … 0.50 (51 of 101) get precision 1, the others are never reached → AP = 51/101 at every IoU.
    predictions = [prediction("a", GT_SMALL["a"], 0.9), prediction("b", WRONG, 0.8)]
    metrics = coco_map(coco_gt(GT_SMALL), predictions)
    for key in ("mAP", "AP50", "AP75", "AP_small"):
        assert metrics[key] == pytest.approx(51 / 101, abs=EXACT)
    assert metrics["AP_medium"] == -1.0  # no GT in that range (pycocotools' convention)
    assert metrics["AP_large"] == -1.0


def test_low_score_correct_prediction_raises_recall_at_interpolated_precision() -> None:
    # TP, FP, TP: recall [.5, .5, 1], precision [1, .5, 2/3] → envelope [1, 2/3, 2/3]
    # → AP = (51 · 1 + 50 · 2/3) / 101.
    predictions = [
        prediction("a", GT_SMALL["a"], 0.9),
        prediction("b", WRONG, 0.8),
        prediction("b", GT_SMALL["b"], 0.1),
    ]
    metrics = coco_map(coco_gt(GT_SMALL), predictions)
    assert metrics["mAP"] == pytest.approx((51 + 50 * 2 / 3) / 101, abs=EXACT)


def test_iou_of_0_64_matches_only_the_three_lowest_thresholds() -> None:
    gt = {"a": square(20, 0, 10)}
    partial = square(20, 0, 8)  # IoU 64/100: a TP for t ∈ {.50, .55, .60}, an FP (AP 0) for t ≥ .65
    metrics = coco_map(coco_gt(gt), [prediction("a", partial, 0.5)])
    assert metrics["AP50"] == pytest.approx(1.0, abs=EXACT)
    assert metrics["AP75"] == 0.0
    assert metrics["mAP"] == pytest.approx(3 / 10, abs=EXACT)


def test_area_ranges_use_gt_area_and_unmatched_detection_area() -> None:
    gt = {"small": square(64, 0, 10), "medium": square(64, 0, 40)}  # areas 100 and 1600
    predictions = [
        prediction("small", gt["small"], 0.5),
        prediction("medium", square(64, 50, 3), 0.9),  # wrong, 9 px: an FP of the SMALL range
    ]
    metrics = coco_map(coco_gt(gt), predictions)
    # small range: FP (0.9) then TP (0.5) → precision 1/2 at recall 1 → AP 0.5
    assert metrics["AP_small"] == pytest.approx(0.5, abs=EXACT)
    # medium range: the only GT is never matched → 0
    assert metrics["AP_medium"] == 0.0
    # all: FP, TP over 2 GT → recall [0, .5], envelope [.5, .5] → 51 thresholds at 0.5
    assert metrics["mAP"] == pytest.approx(51 * 0.5 / 101, abs=EXACT)


def test_empty_prediction_list_gives_zeros() -> None:
    gt = {"s": square(100, 0, 10), "m": square(100, 0, 40), "l": square(100, 0, 97)}  # 100, 1600, 9409 px
    metrics = coco_map(coco_gt(gt), [])
    assert metrics == {
        "mAP": 0.0,
        "AP50": 0.0,
        "AP75": 0.0,
        "AP_small": 0.0,
        "AP_medium": 0.0,
        "AP_large": 0.0,
    }


def test_inputs_are_not_modified() -> None:
    gt = coco_gt(GT_SMALL)
    predictions = [prediction("a", GT_SMALL["a"], 0.9), prediction("b", WRONG, 0.8)]
    gt_before, predictions_before = copy.deepcopy(gt), copy.deepcopy(predictions)
    coco_map(gt, predictions)
    assert gt == gt_before
    assert predictions == predictions_before


def test_pycocotools_output_is_silenced(capsys: pytest.CaptureFixture[str]) -> None:
    coco_map(coco_gt(GT_SMALL), [prediction("a", GT_SMALL["a"], 0.9)])
    assert capsys.readouterr().out == ""


def test_a2d_metrics_is_the_union_of_both_tables() -> None:
    metrics = a2d_metrics(
        coco_gt(GT_SMALL), [prediction("a", GT_SMALL["a"], 0.9), prediction("b", WRONG, 0.8)]
    )
    assert list(metrics) == [
        "mAP",
        "AP50",
        "AP75",
        "AP_small",
        "AP_medium",
        "AP_large",
        "P@0.5",
        "P@0.6",
        "P@0.7",
        "P@0.8",
        "P@0.9",
        "overall_iou",
        "mean_iou",
    ]
    assert metrics["P@0.5"] == 0.5
    assert metrics["overall_iou"] == 100 / 209


def test_more_than_255_predictions_score_without_overflow() -> None:
    mask = square(8, 2, 4)
    gt = coco_gt({"v_a_f_1_i_1": mask})
    predictions = [
        {"image_id": "v_a_f_1_i_1", "category_id": 1, "segmentation": rle(mask), "score": 1.0 - i / 1000}
        for i in range(300)
    ]
    assert coco_map(gt, predictions)["AP50"] == pytest.approx(1.0)
