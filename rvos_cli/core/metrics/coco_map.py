"""COCO mask mAP for A2D-Sentences / JHMDB-Sentences (pycocotools COCOeval, iouType 'segm', useCats 0).

The ground truth and results are turned into in-memory `COCO` objects (no temporary files) and the
evaluation runs with pycocotools' default parameters. pycocotools prints to stdout; that is silenced.
"""

from __future__ import annotations

import contextlib
import io
from typing import Any

from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from rvos_cli.core.metrics.iou import precision_at_k_and_iou, to_compressed_rle

# COCOeval.stats[0..5]: AP@[.5:.95], AP@.5, AP@.75, AP small / medium / large (all maxDets 100).
COCO_STAT_KEYS: tuple[str, ...] = ("mAP", "AP50", "AP75", "AP_small", "AP_medium", "AP_large")
# Categories play no part with useCats = 0, so everything is put in one dummy class.
_CATEGORY_ID = 1


def _coco_from_dataset(dataset: dict[str, Any]) -> COCO:
    """Build and index a `COCO` object from an in-memory dataset dict (prints silenced)."""
    coco = COCO()
    coco.dataset = dataset
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
    return coco


def _ground_truth(coco_gt: dict[str, Any]) -> COCO:
    """Copy the GT dict into a single-category `COCO` (COCOeval writes into annotation dicts)."""
    annotations = [
        {**ann, "category_id": _CATEGORY_ID, "iscrowd": ann.get("iscrowd", 0)}
        for ann in coco_gt["annotations"]
    ]
    return _coco_from_dataset(
        {
            "images": [dict(image) for image in coco_gt["images"]],
            "annotations": annotations,
            "categories": [{"id": _CATEGORY_ID, "name": "referred"}],
        }
    )


def _results(gt: COCO, predictions: list[dict[str, Any]]) -> COCO:
    """Build the results `COCO` like `COCO.loadRes` does for masks, but accepting an empty list.

    Only image_id, segmentation and score are taken from each prediction; the area used for the
    small/medium/large filtering is always the mask area (loadRes would take a bbox area if a 'bbox' key
    were present).
    """
    segmentations = [to_compressed_rle(pred["segmentation"]) for pred in predictions]
    # One RLE at a time: pycocotools 2.0.x's batched area() overflows a uint8 beyond 255 RLEs on NumPy 2.
    areas = [float(mask_utils.area(segmentation)) for segmentation in segmentations]
    boxes = mask_utils.toBbox(segmentations) if segmentations else []
    annotations = [
        {
            "id": index + 1,
            "image_id": pred["image_id"],
            "category_id": _CATEGORY_ID,
            "segmentation": segmentation,
            "score": float(pred["score"]),
            "area": float(area),
            "bbox": [float(v) for v in box],
            "iscrowd": 0,
        }
        for index, (pred, segmentation, area, box) in enumerate(
            zip(predictions, segmentations, areas, boxes, strict=True)
        )
    ]
    return _coco_from_dataset(
        {
            "images": gt.dataset["images"],
            "annotations": annotations,
            "categories": gt.dataset["categories"],
        }
    )


def coco_map(coco_gt: dict[str, Any], predictions: list[dict[str, Any]]) -> dict[str, float]:
    """COCO mask average precision, all predictions of every image taking part.

    Takes a COCO ground-truth dict ('images', 'annotations' with RLE 'segmentation' and 'area' = mask pixel
    count; image ids may be strings) and a list of COCO results (`image_id`, `segmentation` RLE, `score`;
    category ids are ignored). Returns {'mAP', 'AP50', 'AP75', 'AP_small', 'AP_medium', 'AP_large'} as
    fractions; as in pycocotools an area range without any ground truth reports -1.
    """
    gt = _ground_truth(coco_gt)
    dt = _results(gt, predictions)
    evaluator = COCOeval(gt, dt, iouType="segm")
    evaluator.params.useCats = 0
    with contextlib.redirect_stdout(io.StringIO()):
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return {key: float(value) for key, value in zip(COCO_STAT_KEYS, evaluator.stats[:6], strict=True)}


def a2d_metrics(coco_gt: dict[str, Any], predictions: list[dict[str, Any]]) -> dict[str, float]:
    """The full A2D-Sentences / JHMDB-Sentences table: `coco_map` and `precision_at_k_and_iou` merged.

    Same inputs as `coco_map`; returns mAP, AP50, AP75, AP_small, AP_medium, AP_large, P@0.5 ... P@0.9,
    overall_iou and mean_iou.
    """
    return {**coco_map(coco_gt, predictions), **precision_at_k_and_iou(coco_gt, predictions)}
