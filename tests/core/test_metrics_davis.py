"""DAVIS 2017 protocol on hand-built sequences: void, Hungarian association, statistics, runs."""

from __future__ import annotations

import numpy as np
import pytest

from rvos_cli.core.metrics.davis import (
    aggregate_objects,
    db_statistics,
    decay_bins,
    evaluate_sequence,
    gt_objects,
    mean_of_runs,
)
from rvos_cli.errors import RvosError

SIZE = (40, 40)


def labels(*frames: dict[int, tuple[int, int]], side: int = 6) -> np.ndarray:
    """A [T, H, W] uint8 stack; each frame maps label → (top, left) of a side×side square."""
    stack = np.zeros((len(frames), *SIZE), dtype=np.uint8)
    for t, squares in enumerate(frames):
        for label, (top, left) in squares.items():
            stack[t, top : top + side, left : left + side] = label
    return stack


LEFT, RIGHT = (5, 5), (25, 25)


def test_swapped_object_ids_are_associated_by_hungarian_matching() -> None:
    gt = labels({1: LEFT, 2: RIGHT}, {1: LEFT, 2: RIGHT})
    swapped = labels({2: LEFT, 1: RIGHT}, {2: LEFT, 1: RIGHT})
    objects = evaluate_sequence(gt, swapped, "unsupervised")
    assert [o["J-Mean"] for o in objects] == [1.0, 1.0]
    assert [o["F-Mean"] for o in objects] == [1.0, 1.0]
    # Semi-supervised keeps id k = object k: both objects miss completely.
    semi = evaluate_sequence(
        np.concatenate([gt[:1], gt, gt[:1]]),
        np.concatenate([swapped[:1], swapped, swapped[:1]]),
        "semi-supervised",
    )
    assert [o["J-Mean"] for o in semi] == [0.0, 0.0]


def test_void_pixels_are_excluded_and_are_no_object() -> None:
    gt = labels({1: LEFT})
    gt[0, 11:13, 5:11] = 255  # a void band just below the object
    pred = labels({1: LEFT})
    pred[0, 11:13, 5:11] = 1  # the prediction spills into the void band
    masks, void = gt_objects(gt)
    assert masks.shape == (1, 1, *SIZE) and int(void.sum()) == 12
    (obj,) = evaluate_sequence(gt, pred, "unsupervised")
    assert obj["J-Mean"] == 1.0
    assert obj["F-Mean"] == 1.0


def test_objects_are_counted_in_the_first_frame_and_missing_proposals_score_zero() -> None:
    gt = labels({1: LEFT, 2: RIGHT}, {1: LEFT, 2: RIGHT, 3: (5, 25)})
    pred = labels({1: LEFT}, {1: LEFT})
    objects = evaluate_sequence(gt, pred, "unsupervised")
    assert len(objects) == 2  # label 3 appears after the first frame only
    assert [o["J-Mean"] for o in objects] == [1.0, 0.0]


def test_unsupervised_scores_all_frames_semi_supervised_drops_first_and_last() -> None:
    gt = labels({1: LEFT}, {1: LEFT}, {1: LEFT})
    pred = labels({1: RIGHT}, {1: LEFT}, {1: RIGHT})
    (unsup,) = evaluate_sequence(gt, pred, "unsupervised")
    (semi,) = evaluate_sequence(gt, pred, "semi-supervised")
    assert unsup["J-Mean"] == pytest.approx(1 / 3)
    assert semi["J-Mean"] == 1.0 and semi["F-Mean"] == 1.0


def test_too_many_proposals_and_unknown_task_are_errors() -> None:
    gt = labels({1: LEFT})
    pred = labels({21: LEFT})
    with pytest.raises(RvosError, match="at most 20"):
        evaluate_sequence(gt, pred, "unsupervised")
    with pytest.raises(RvosError, match="sequence has 1 objects"):
        evaluate_sequence(gt, labels({2: LEFT}), "semi-supervised")
    with pytest.raises(RvosError, match="DAVIS task"):
        evaluate_sequence(gt, gt, "weakly")


def test_statistics_mean_recall_decay() -> None:
    # 8 frames: edges round(linspace(1, 8, 5)) - 1 = 0, 2, 4, 5, 7.
    assert decay_bins(8) == [(0, 2), (2, 4), (4, 5), (5, 7)]
    values = np.array([1.0, 1.0, 1.0, 0.5, 0.5, 0.0, 0.0, 0.0])
    mean, recall, decay = db_statistics(values)
    assert mean == 0.5
    assert recall == 3 / 8  # 0.5 is not > 0.5
    assert decay == 1.0  # mean(frames 0..2) - mean(frames 5..7)


def test_run_mean_over_objects_and_mean_of_four_runs() -> None:
    objects = [
        {"J-Mean": 1.0, "J-Recall": 1.0, "J-Decay": 0.0, "F-Mean": 0.5, "F-Recall": 0.0, "F-Decay": 0.2},
        {"J-Mean": 0.0, "J-Recall": 0.0, "J-Decay": 0.4, "F-Mean": 0.5, "F-Recall": 1.0, "F-Decay": 0.0},
    ]
    run = aggregate_objects(objects)
    assert run["J-Mean"] == 0.5 and run["F-Mean"] == 0.5 and run["J&F-Mean"] == 0.5
    assert run["J-Decay"] == pytest.approx(0.2) and run["F-Recall"] == 0.5
    runs = [dict(run, **{"J&F-Mean": value}) for value in (0.2, 0.4, 0.6, 1.0)]
    assert mean_of_runs(runs)["J&F-Mean"] == pytest.approx(0.55)
    assert mean_of_runs(runs)["J-Mean"] == 0.5
