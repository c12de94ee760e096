"""Scoring predictions that already exist on disk, without a model.

These functions are where prediction and ground-truth files enter: they validate them and raise
`RvosError` naming the file (and entry) on any mistake, then hand the trusted data to `core.metrics`.
"""

from __future__ import annotations

import math
from numbers import Real
from pathlib import Path
from typing import Any

from rvos_cli.core.metrics import a2d_metrics, evaluate_referring_vos
from rvos_cli.errors import RvosError
from rvos_cli.fileio import read_json


def _rle_size(segmentation: Any) -> tuple[int, int] | None:
    """(H, W) of a COCO RLE dict, or None if `segmentation` is not one."""
    if not isinstance(segmentation, dict) or "counts" not in segmentation:
        return None
    size = segmentation.get("size")
    if not (isinstance(size, list) and len(size) == 2 and all(isinstance(v, int) for v in size)):
        return None
    return size[0], size[1]


def _validate_coco_gt(gt: Any, path: Path) -> dict[Any, tuple[int, int]]:
    """Check a COCO GT dict (one RLE annotation per image); return {image_id: (H, W)}."""
    if (
        not isinstance(gt, dict)
        or not isinstance(gt.get("images"), list)
        or not isinstance(gt.get("annotations"), list)
    ):
        raise RvosError(f"{path}: expected a COCO ground-truth object with 'images' and 'annotations' lists")
    if not gt["images"]:
        raise RvosError(f"{path}: 'images' is empty")
    image_ids = set()
    for index, image in enumerate(gt["images"]):
        if not isinstance(image, dict) or not isinstance(image.get("id"), (int, str)):
            raise RvosError(f"{path}: images[{index}] needs an 'id' (string or integer)")
        image_ids.add(image["id"])
    sizes: dict[Any, tuple[int, int]] = {}
    for index, ann in enumerate(gt["annotations"]):
        where = f"{path}: annotations[{index}]"
        if not isinstance(ann, dict):
            raise RvosError(f"{where} is not an object")
        missing = [key for key in ("id", "image_id", "segmentation", "area") if key not in ann]
        if missing:
            raise RvosError(f"{where} is missing {', '.join(repr(key) for key in missing)}")
        size = _rle_size(ann["segmentation"])
        if size is None:
            raise RvosError(f"{where}: 'segmentation' must be an RLE {{'size': [H, W], 'counts': ...}}")
        if not isinstance(ann["image_id"], (int, str)) or ann["image_id"] not in image_ids:
            raise RvosError(f"{where}: image_id {ann['image_id']!r} is not in 'images'")
        if ann["image_id"] in sizes:
            raise RvosError(
                f"{where}: image {ann['image_id']!r} has a second annotation (exactly one expected)"
            )
        sizes[ann["image_id"]] = size
    without = [image_id for image_id in image_ids if image_id not in sizes]
    if without:
        raise RvosError(f"{path}: image {without[0]!r} has no annotation (exactly one per image expected)")
    return sizes


def _validate_predictions(predictions: Any, path: Path, gt_sizes: dict[Any, tuple[int, int]]) -> None:
    """Check a COCO results list against the GT image ids and mask sizes."""
    if not isinstance(predictions, list):
        raise RvosError(f"{path}: expected a JSON list of COCO results (image_id, segmentation, score)")
    for index, entry in enumerate(predictions):
        where = f"{path}: entry {index}"
        if not isinstance(entry, dict):
            raise RvosError(f"{where} is not an object")
        missing = [key for key in ("image_id", "segmentation", "score") if key not in entry]
        if missing:
            raise RvosError(f"{where} is missing {', '.join(repr(key) for key in missing)}")
        image_id = entry["image_id"]
        if not isinstance(image_id, (int, str)) or image_id not in gt_sizes:
            raise RvosError(f"{where}: image_id {image_id!r} is not in the ground truth")
        score = entry["score"]
        if not isinstance(score, Real) or isinstance(score, bool):
            raise RvosError(f"{where}: 'score' must be a number, got {score!r}")
        if not math.isfinite(score):
            raise RvosError(f"{where}: 'score' must be a finite number, got {score!r}")
        size = _rle_size(entry["segmentation"])
        if size is None:
            raise RvosError(f"{where}: 'segmentation' must be an RLE {{'size': [H, W], 'counts': ...}}")
        if size != gt_sizes[image_id]:
            raise RvosError(
                f"{where}: mask is {size[0]}x{size[1]} (HxW) but ground truth {image_id!r} is "
                f"{gt_sizes[image_id][0]}x{gt_sizes[image_id][1]}; predict at the original frame resolution"
            )


def score_a2d_predictions(predictions_json: Path, coco_gt_json: Path) -> dict[str, float]:
    """Score an A2D-Sentences / JHMDB-Sentences COCO results file against a COCO GT file.

    Takes the results JSON (a list of {image_id, segmentation RLE, score}) and the GT JSON (COCO format,
    one RLE annotation per image). Returns mAP, AP50, AP75, AP_small, AP_medium, AP_large, P@0.5 ... P@0.9,
    overall_iou, mean_iou as fractions (an AP area range without GT is -1, as in pycocotools).
    Raises RvosError for a missing or invalid file, naming the file and the offending entry.
    """
    coco_gt = read_json(coco_gt_json, "ground-truth file")
    gt_sizes = _validate_coco_gt(coco_gt, coco_gt_json)
    predictions = read_json(predictions_json, "predictions file")
    _validate_predictions(predictions, predictions_json, gt_sizes)
    return a2d_metrics(coco_gt, predictions)


def score_ytvos_predictions(pred_dir: Path, gt_root: Path) -> dict[str, Any]:
    """Ref-YouTube-VOS J&F of a prediction folder (`<video>/<exp_id>/<frame>.png`) against a GT root.

    See `core.metrics.evaluate_referring_vos`; returns {'J', 'F', 'J&F', 'per_expression'}.
    Raises RvosError if either folder is missing or a file in it is missing or malformed.
    """
    if not pred_dir.is_dir():
        raise RvosError(f"{pred_dir}: prediction folder not found")
    if not gt_root.is_dir():
        raise RvosError(f"{gt_root}: ground-truth folder not found")
    return evaluate_referring_vos(pred_dir, gt_root)
