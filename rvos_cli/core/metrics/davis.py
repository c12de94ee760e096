"""The DAVIS 2017 protocol on top of the per-frame J and F of `jf.py` (metrics.md §3, spec §2b).

Ref-DAVIS17 as the published tables score it (ReferFormer's eval_davis.py, default task "unsupervised"):
  * GT: the unsupervised annotations; the number of objects of a sequence is the largest label in its
    FIRST frame, label 255 is void and excluded from J and F;
  * prediction: one indexed PNG per frame, proposal j = pixels of value j (j = 1 .. largest value in
    any frame; at most 20); fewer proposals than GT objects are padded with empty ones;
  * every frame is scored, and each GT object is associated with one proposal by Hungarian matching
    (linear_sum_assignment) maximising the mean over frames of (J + F) / 2;
  * per object: Mean (nanmean), Recall (fraction of frames > 0.5) and Decay (first minus last of four
    temporal bins) of its per-frame J and of its per-frame F;
  * per run: every statistic averaged over all objects of all sequences (weight 1 each),
    J&F-Mean = (J-Mean + F-Mean) / 2; the headline is the mean of the four runs
    (2 annotators × first-frame/full-video expressions).
The "semi-supervised" task instead fixes object k = pixel value k, drops the first and last frame of
every sequence and uses no void mask (an id above the number of GT objects is an error).

Shape letters: N objects, P proposals, T frames, H height, W width.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy.optimize import linear_sum_assignment

from rvos_cli.core.metrics.jf import db_eval_boundary, db_eval_iou
from rvos_cli.errors import RvosError

VOID_LABEL = 255
MAX_PROPOSALS = 20
DECAY_BINS = 4
TASKS = ("unsupervised", "semi-supervised")
STAT_KEYS = ("J&F-Mean", "J-Mean", "J-Recall", "J-Decay", "F-Mean", "F-Recall", "F-Decay")


def split_objects(labels: np.ndarray, num_objects: int) -> np.ndarray:
    """One bool mask per object id 1..num_objects of an indexed label stack `[T, H, W]` → `[N, T, H, W]`."""
    ids = np.arange(1, num_objects + 1).reshape(-1, 1, 1, 1)
    return labels[None] == ids


def gt_objects(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """GT object masks and the void mask of an annotation stack `[T, H, W]` (uint8, 255 = void).

    The number of objects is the largest non-void label of the first frame. Returns
    (bool `[N, T, H, W]`, void bool `[T, H, W]`).
    """
    void = labels == VOID_LABEL
    clean = np.where(void, 0, labels)
    return split_objects(clean, int(clean[0].max())), void


def _per_frame_jf(gt: np.ndarray, pred: np.ndarray, void: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Per-frame J and F `[T]` of one object; void pixels are removed from both masks first.

    Zeroing void pixels in both masks is what DAVIS does for F and gives its void-excluded J.
    """
    if void is not None:
        gt, pred = gt & ~void, pred & ~void
    return db_eval_iou(gt, pred), db_eval_boundary(gt, pred)


def _pad_proposals(pred: np.ndarray, num_objects: int) -> np.ndarray:
    """Append empty proposals to `pred` `[P, T, H, W]` until it holds at least `num_objects`."""
    if pred.shape[0] >= num_objects:
        return pred
    pad = np.zeros((num_objects - pred.shape[0], *pred.shape[1:]), dtype=bool)
    return np.concatenate([pred, pad])


def evaluate_unsupervised(
    gt: np.ndarray, pred: np.ndarray, void: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray]:
    """Hungarian-associated per-frame J and F of one sequence (all frames scored).

    Takes GT objects bool `[N, T, H, W]`, proposals bool `[P, T, H, W]` (P ≤ 20, else RvosError) and the
    void mask `[T, H, W]` or None. Returns (J `[N, T]`, F `[N, T]`), row n = GT object n with the
    proposal that the assignment (maximising mean-over-frames (J + F) / 2) gave it.
    """
    if pred.shape[0] > MAX_PROPOSALS:
        raise RvosError(f"the prediction has {pred.shape[0]} object ids; at most {MAX_PROPOSALS} are allowed")
    pred = _pad_proposals(pred, gt.shape[0])
    num_gt, num_pred, num_frames = gt.shape[0], pred.shape[0], gt.shape[1]
    j = np.zeros((num_pred, num_gt, num_frames))
    f = np.zeros((num_pred, num_gt, num_frames))
    for n in range(num_gt):
        for p in range(num_pred):
            j[p, n], f[p, n] = _per_frame_jf(gt[n], pred[p], void)
    pred_rows, gt_cols = linear_sum_assignment(-(j.mean(axis=2) + f.mean(axis=2)) / 2)
    order = np.argsort(gt_cols)
    return j[pred_rows[order], gt_cols[order]], f[pred_rows[order], gt_cols[order]]


def evaluate_semisupervised(gt: np.ndarray, pred: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-frame J and F with fixed association (prediction id k = GT object k), no void.

    Takes GT bool `[N, T, H, W]` and predictions bool `[P, T, H, W]` with P ≤ N (else RvosError), both
    already without the first and last frame. Returns (J `[N, T]`, F `[N, T]`).
    """
    if pred.shape[0] > gt.shape[0]:
        raise RvosError(
            f"the prediction has object id {pred.shape[0]} but the sequence has {gt.shape[0]} objects"
        )
    pred = _pad_proposals(pred, gt.shape[0])
    j = np.zeros(gt.shape[:2])
    f = np.zeros(gt.shape[:2])
    for n in range(gt.shape[0]):
        j[n], f[n] = _per_frame_jf(gt[n], pred[n], None)
    return j, f


def decay_bins(num_frames: int) -> list[tuple[int, int]]:
    """The four temporal bins of Decay as inclusive (first, last) frame indices.

    Edges are linspace(1, T, 5) rounded half up, minus 1; bin i spans edge i to edge i + 1 inclusive.
    """
    edges = np.floor(np.linspace(1, num_frames, DECAY_BINS + 1) + 0.5).astype(int) - 1
    return [(int(edges[i]), int(edges[i + 1])) for i in range(DECAY_BINS)]


def db_statistics(per_frame: np.ndarray) -> tuple[float, float, float]:
    """(Mean, Recall, Decay) of one object's per-frame values `[T]`.

    Mean = nanmean; Recall = fraction of frames with value > 0.5; Decay = mean of the first of the
    `decay_bins` minus the mean of the last.
    """
    mean = float(np.nanmean(per_frame))
    recall = float(np.nanmean(per_frame > 0.5))
    bins = decay_bins(len(per_frame))
    first, last = bins[0], bins[-1]
    decay = float(
        np.nanmean(per_frame[first[0] : first[1] + 1]) - np.nanmean(per_frame[last[0] : last[1] + 1])
    )
    return mean, recall, decay


def evaluate_sequence(
    labels: np.ndarray, pred_labels: np.ndarray, task: str = "unsupervised"
) -> list[dict[str, float]]:
    """Per-object statistics of one sequence.

    Takes the GT annotation stack uint8 `[T, H, W]` (0 background, k object k, 255 void) and the
    predicted indexed stack `[T, H, W]` of the same frames, and the task (`TASKS`). Returns one dict
    per GT object {'J-Mean', 'J-Recall', 'J-Decay', 'F-Mean', 'F-Recall', 'F-Decay'}, in GT id order.
    """
    if task not in TASKS:
        raise RvosError(f"DAVIS task {task!r}: expected one of {', '.join(TASKS)}")
    gt, void = gt_objects(labels)
    pred = split_objects(pred_labels, int(pred_labels.max()))
    if task == "unsupervised":
        j, f = evaluate_unsupervised(gt, pred, void)
    else:
        j, f = evaluate_semisupervised(gt[:, 1:-1], pred[:, 1:-1])
    objects = []
    for n in range(gt.shape[0]):
        jm, jr, jd = db_statistics(j[n])
        fm, fr, fd = db_statistics(f[n])
        objects.append(
            {"J-Mean": jm, "J-Recall": jr, "J-Decay": jd, "F-Mean": fm, "F-Recall": fr, "F-Decay": fd}
        )
    return objects


def aggregate_objects(objects: Sequence[dict[str, float]]) -> dict[str, float]:
    """One run's global result: every statistic averaged over all objects (weight 1 each).

    Returns the `STAT_KEYS`, with J&F-Mean = (J-Mean + F-Mean) / 2. ValueError for no objects.
    """
    if not objects:
        raise ValueError("no objects to aggregate")
    result = {key: float(np.mean([o[key] for o in objects])) for key in STAT_KEYS[1:]}
    return {"J&F-Mean": (result["J-Mean"] + result["F-Mean"]) / 2, **result}


def mean_of_runs(runs: Sequence[dict[str, Any]]) -> dict[str, float]:
    """The headline Ref-DAVIS17 result: the arithmetic mean of each `STAT_KEYS` entry over the runs."""
    if not runs:
        raise ValueError("no runs to average")
    return {key: float(np.mean([run[key] for run in runs])) for key in STAT_KEYS}
