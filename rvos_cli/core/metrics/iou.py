"""Precision@K, overall IoU and mean IoU for A2D-Sentences / JHMDB-Sentences (MTTR's convention).

For every ground-truth image (exactly one annotation each) only the single highest-score prediction is
scored. The per-image IoU is computed in float32 with a 1e-6 epsilon, so an empty prediction on an empty
ground truth scores 1 and the P@K thresholds see float32 values (600/1000 is 0.60000002 > 0.6, 500/1000 is
exactly 0.5 and does not count).
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
from pycocotools import mask as mask_utils

PRECISION_THRESHOLDS: tuple[float, ...] = (0.5, 0.6, 0.7, 0.8, 0.9)
_EPS = np.float32(1e-6)


def to_compressed_rle(segmentation: dict[str, Any]) -> dict[str, Any]:
    """Return a COCO RLE dict with compressed counts (bytes or str).

    Takes a COCO RLE `{'size': [H, W], 'counts': ...}` whose counts are either compressed (str/bytes) or
    uncompressed (a list of run lengths); returns a compressed RLE that pycocotools' C functions accept.
    """
    if isinstance(segmentation["counts"], list):
        height, width = segmentation["size"]
        return mask_utils.frPyObjects(segmentation, height, width)
    return segmentation


def decode_mask(segmentation: dict[str, Any]) -> np.ndarray:
    """Decode a COCO RLE (compressed or uncompressed counts) into a boolean mask `[H, W]`."""
    with warnings.catch_warnings():
        # pycocotools' Cython array wrapper predates NumPy 2's `copy` keyword; the warning is harmless.
        warnings.simplefilter("ignore", DeprecationWarning)
        return mask_utils.decode(to_compressed_rle(segmentation)).astype(bool)


def top_score_predictions(predictions: list[dict[str, Any]]) -> dict[Any, dict[str, Any]]:
    """Pick the highest-score prediction of every image.

    Takes COCO result entries (`image_id`, `score`, ...) and returns {image_id: entry}. Among equal top
    scores the one submitted LAST wins, as in MTTR (stable ascending sort by score, last element).
    """
    best: dict[Any, dict[str, Any]] = {}
    for prediction in predictions:
        current = best.get(prediction["image_id"])
        if current is None or prediction["score"] >= current["score"]:
            best[prediction["image_id"]] = prediction
    return best


def mask_iou_float32(gt: np.ndarray, pred: np.ndarray) -> tuple[float, float, float]:
    """IoU of two boolean masks `[H, W]` as MTTR computes it.

    Returns (iou, intersection, union): intersection and union are pixel counts, and
    iou = (I + 1e-6) / (U + 1e-6) evaluated in float32 (then widened to a Python float).
    """
    intersection = np.float32(np.count_nonzero(gt & pred))
    union = np.float32(np.count_nonzero(gt | pred))
    iou = (intersection + _EPS) / (union + _EPS)
    return float(iou), float(intersection), float(union)


def precision_at_k_and_iou(coco_gt: dict[str, Any], predictions: list[dict[str, Any]]) -> dict[str, float]:
    """Precision@K, overall IoU and mean IoU of the highest-score prediction per ground-truth image.

    Takes a COCO ground-truth dict (one annotation per image, segmentation = RLE) and a list of COCO
    results (`image_id`, `segmentation` RLE of the same size as the GT, `score`). An image without any
    prediction is scored against an empty mask. Returns fractions in [0, 1] under the keys
    'P@0.5' ... 'P@0.9' (share of images with IoU strictly greater than K), 'overall_iou' (ΣI / ΣU over
    all images; 1 when every mask is empty) and 'mean_iou' (mean of the per-image IoUs).
    """
    best = top_score_predictions(predictions)
    counts = dict.fromkeys(PRECISION_THRESHOLDS, 0)
    total_intersection = 0.0
    total_union = 0.0
    ious: list[float] = []
    for annotation in coco_gt["annotations"]:
        gt_mask = decode_mask(annotation["segmentation"])
        prediction = best.get(annotation["image_id"])
        pred_mask = np.zeros_like(gt_mask) if prediction is None else decode_mask(prediction["segmentation"])
        iou, intersection, union = mask_iou_float32(gt_mask, pred_mask)
        for threshold in PRECISION_THRESHOLDS:
            if iou > threshold:
                counts[threshold] += 1
        total_intersection += intersection
        total_union += union
        ious.append(iou)

    num_images = len(ious)
    metrics = {f"P@{threshold}": counts[threshold] / num_images for threshold in PRECISION_THRESHOLDS}
    metrics["overall_iou"] = total_intersection / total_union if total_union > 0 else 1.0
    metrics["mean_iou"] = float(np.mean(ious))
    return metrics
