"""Precision@K, overall IoU and mean IoU: float32 ties, top-score selection, overall vs mean."""

import numpy as np
import pytest
from coco_builders import coco_gt, rle

from rvos_cli.core.metrics import decode_mask, precision_at_k_and_iou

THRESHOLD_KEYS = ["P@0.5", "P@0.6", "P@0.7", "P@0.8", "P@0.9"]


def first_n(shape: tuple[int, int], n: int) -> np.ndarray:
    """A mask whose first `n` pixels (row-major) are foreground."""
    mask = np.zeros(shape[0] * shape[1], dtype=bool)
    mask[:n] = True
    return mask.reshape(shape)


def test_iou_of_exactly_half_in_float32_is_not_above_0_5() -> None:
    gt = first_n((25, 40), 1000)  # I = 500, U = 1000 → float32 IoU exactly 0.5
    metrics = precision_at_k_and_iou(
        coco_gt({"a": gt}), [{"image_id": "a", "segmentation": rle(first_n((25, 40), 500)), "score": 1.0}]
    )
    assert metrics["mean_iou"] == 0.5
    assert metrics["P@0.5"] == 0.0


def test_iou_of_600_of_1000_is_above_0_6_in_float32() -> None:
    gt = first_n((25, 40), 1000)  # 600/1000 in float32 is 0.60000002
    metrics = precision_at_k_and_iou(
        coco_gt({"a": gt}), [{"image_id": "a", "segmentation": rle(first_n((25, 40), 600)), "score": 1.0}]
    )
    assert metrics["mean_iou"] == float(np.float32(0.6))
    assert [metrics[k] for k in THRESHOLD_KEYS] == [1.0, 1.0, 0.0, 0.0, 0.0]


def test_one_of_two_pixels_is_above_0_5_through_the_epsilon() -> None:
    gt = first_n((1, 2), 2)  # (1 + 1e-6) / (2 + 1e-6) in float32 = 0.50000024
    metrics = precision_at_k_and_iou(
        coco_gt({"a": gt}), [{"image_id": "a", "segmentation": rle(first_n((1, 2), 1)), "score": 1.0}]
    )
    assert metrics["mean_iou"] == float(np.float32(0.50000024))
    assert metrics["P@0.5"] == 1.0


def test_empty_prediction_on_empty_gt_scores_one() -> None:
    empty = np.zeros((4, 4), dtype=bool)
    metrics = precision_at_k_and_iou(
        coco_gt({"a": empty}), [{"image_id": "a", "segmentation": rle(empty), "score": 0.5}]
    )
    assert metrics == {**dict.fromkeys(THRESHOLD_KEYS, 1.0), "overall_iou": 1.0, "mean_iou": 1.0}


def test_empty_prediction_on_non_empty_gt_scores_about_zero() -> None:
    gt = first_n((10, 10), 100)
    empty = np.zeros((10, 10), dtype=bool)
    metrics = precision_at_k_and_iou(
        coco_gt({"a": gt}), [{"image_id": "a", "segmentation": rle(empty), "score": 0.5}]
    )
    assert metrics["mean_iou"] == pytest.approx(1e-8, rel=1e-3)  # 1e-6 / (100 + 1e-6)
    assert metrics["overall_iou"] == 0.0
    assert [metrics[k] for k in THRESHOLD_KEYS] == [0.0] * 5


def test_image_without_prediction_counts_as_empty_prediction() -> None:
    gt = {"a": first_n((10, 10), 100), "b": first_n((10, 10), 100)}
    metrics = precision_at_k_and_iou(
        coco_gt(gt), [{"image_id": "a", "segmentation": rle(gt["a"]), "score": 0.5}]
    )
    assert metrics["P@0.9"] == 0.5
    assert metrics["overall_iou"] == 100 / 200


def test_highest_score_prediction_is_scored_not_the_best_iou() -> None:
    gt = first_n((10, 10), 50)
    disjoint = ~gt
    predictions = [
        {"image_id": "a", "segmentation": rle(gt), "score": 0.3},  # perfect, lower score
        {"image_id": "a", "segmentation": rle(disjoint), "score": 0.7},
    ]
    metrics = precision_at_k_and_iou(coco_gt({"a": gt}), predictions)
    assert metrics["overall_iou"] == 0.0


@pytest.mark.parametrize(
    ("order", "expected_overall"), [(("perfect", "disjoint"), 0.0), (("disjoint", "perfect"), 1.0)]
)
def test_among_equal_top_scores_the_last_submitted_wins(
    order: tuple[str, str], expected_overall: float
) -> None:
    gt = first_n((10, 10), 50)
    masks = {"perfect": gt, "disjoint": ~gt}
    predictions = [{"image_id": "a", "segmentation": rle(masks[name]), "score": 0.9} for name in order]
    predictions.insert(0, {"image_id": "a", "segmentation": rle(gt), "score": 0.1})
    assert precision_at_k_and_iou(coco_gt({"a": gt}), predictions)["overall_iou"] == expected_overall


def test_overall_iou_pools_pixels_while_mean_iou_averages_images() -> None:
    big_gt = first_n((10, 10), 100)  # I = 50, U = 100 → 0.5
    small_gt = first_n((2, 2), 4)  # I = 4, U = 4 → 1.0
    predictions = [
        {"image_id": "big", "segmentation": rle(first_n((10, 10), 50)), "score": 1.0},
        {"image_id": "small", "segmentation": rle(small_gt), "score": 1.0},
    ]
    metrics = precision_at_k_and_iou(coco_gt({"big": big_gt, "small": small_gt}), predictions)
    assert metrics["overall_iou"] == 54 / 104
    assert metrics["mean_iou"] == 0.75


def test_uncompressed_rle_decodes_like_compressed() -> None:
    mask = np.array([[0, 1, 1], [0, 1, 0]], dtype=bool)
    # column-major runs: 0 at (0,0),(1,0) → 2 zeros, then (0,1),(1,1),(0,2) → 3 ones, then (1,2) → 1 zero
    uncompressed = {"size": [2, 3], "counts": [2, 3, 1]}
    assert np.array_equal(decode_mask(uncompressed), mask)
    assert np.array_equal(decode_mask(rle(mask)), mask)
