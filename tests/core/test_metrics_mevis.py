"""MeViS valid_u scoring on hand-built cases: union GT, null RLEs, empty frames, means, kinds."""

from __future__ import annotations

import numpy as np
import pytest

from rvos_cli.core.inference import masks_to_rle
from rvos_cli.core.metrics.mevis import (
    MULTI_OBJECT,
    NO_TARGET,
    SINGLE_OBJECT,
    ExpressionScore,
    aggregate_mevis,
    expression_kind,
    score_expression,
    union_gt_masks,
)

SIZE = (40, 40)  # boundary radius ceil(0.008 · 56.6) = 1


def square(top: int, left: int, side: int = 6) -> np.ndarray:
    mask = np.zeros(SIZE, dtype=bool)
    mask[top : top + side, left : left + side] = True
    return mask


def rle(mask: np.ndarray) -> dict:
    return masks_to_rle(mask[None])[0]


def test_gt_is_the_union_of_all_referred_objects_and_null_entries_add_nothing() -> None:
    a, b = square(5, 5), square(25, 25)
    tracks = [[rle(a), None], [rle(b), rle(b)]]
    gt = union_gt_masks(tracks, num_frames=2, size=SIZE)
    assert gt.shape == (2, *SIZE)
    assert np.array_equal(gt[0], a | b)
    assert np.array_equal(gt[1], b)


def test_predicting_one_of_two_referred_objects_scores_half_j_and_two_thirds_f() -> None:
    a, b = square(5, 5), square(25, 25)
    gt = union_gt_masks([[rle(a)], [rle(b)]], 1, SIZE)
    j, f = score_expression(gt, a[None])
    # J = |A| / |A ∪ B| = 1/2; precision 1, recall 1/2 (two equal far-apart squares) → F = 2/3.
    assert j == pytest.approx(0.5)
    assert f == pytest.approx(2 / 3)


def test_every_listed_frame_is_scored_and_empty_vs_empty_is_one() -> None:
    a = square(5, 5)
    # The object is present in frame 0 only; frames 1 and 2 have null RLEs, so an empty GT.
    gt = union_gt_masks([[rle(a), None, None]], 3, SIZE)
    pred = np.stack([a, np.zeros(SIZE, bool), np.zeros(SIZE, bool)])
    assert score_expression(gt, pred) == (1.0, 1.0)
    pred[2] = a  # a non-empty prediction on an empty GT frame scores 0 there
    j, f = score_expression(gt, pred)
    assert j == pytest.approx(2 / 3)
    assert f == pytest.approx(2 / 3)


def test_no_target_expression_scores_one_only_when_every_frame_is_empty() -> None:
    gt = union_gt_masks([], 4, SIZE)
    assert not gt.any()
    empty = np.zeros((4, *SIZE), dtype=bool)
    assert score_expression(gt, empty) == (1.0, 1.0)
    empty[3] = square(0, 0, 2)
    assert score_expression(gt, empty) == (0.75, 0.75)


def test_mean_over_frames_then_over_expressions_with_kinds() -> None:
    scores = [
        ExpressionScore("v1", "0", SINGLE_OBJECT, J=1.0, F=0.5),  # a 1-frame video
        ExpressionScore("v2", "0", MULTI_OBJECT, J=0.0, F=0.0),  # a 3-frame video: frames not pooled
        ExpressionScore("v2", "1", MULTI_OBJECT, J=0.5, F=1.0),
        ExpressionScore("v2", "2", NO_TARGET, J=1.0, F=1.0),
    ]
    result = aggregate_mevis(scores)
    assert result["J"] == pytest.approx(2.5 / 4)
    assert result["F"] == pytest.approx(2.5 / 4)
    assert result["J&F"] == pytest.approx(2.5 / 4)
    assert result["expressions"] == 4
    assert list(result["by_kind"]) == [SINGLE_OBJECT, MULTI_OBJECT, NO_TARGET]
    assert result["by_kind"][MULTI_OBJECT] == {"J": 0.25, "F": 0.5, "J&F": 0.375, "expressions": 2}
    assert result["by_kind"][SINGLE_OBJECT]["J&F"] == 0.75


def test_kinds_present_only_and_empty_list_rejected() -> None:
    result = aggregate_mevis([ExpressionScore("v", "0", SINGLE_OBJECT, 0.2, 0.4)])
    assert list(result["by_kind"]) == [SINGLE_OBJECT]
    with pytest.raises(ValueError):
        aggregate_mevis([])


def test_expression_kind() -> None:
    assert [expression_kind(n) for n in (0, 1, 2, 5)] == [
        NO_TARGET,
        SINGLE_OBJECT,
        MULTI_OBJECT,
        MULTI_OBJECT,
    ]
