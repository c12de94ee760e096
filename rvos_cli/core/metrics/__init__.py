"""Evaluation metrics: COCO mask mAP, Precision@K / IoU (A2D, JHMDB) and J, F, J&F (Ref-YouTube-VOS)."""

from rvos_cli.core.metrics.coco_map import COCO_STAT_KEYS, a2d_metrics, coco_map
from rvos_cli.core.metrics.iou import PRECISION_THRESHOLDS, decode_mask, precision_at_k_and_iou
from rvos_cli.core.metrics.jf import (
    boundary_radius,
    db_eval_boundary,
    db_eval_iou,
    evaluate_referring_vos,
    mean_jf,
    score_expression,
    seg2bmap,
)

__all__ = [
    "COCO_STAT_KEYS",
    "PRECISION_THRESHOLDS",
    "a2d_metrics",
    "boundary_radius",
    "coco_map",
    "db_eval_boundary",
    "db_eval_iou",
    "decode_mask",
    "evaluate_referring_vos",
    "mean_jf",
    "precision_at_k_and_iou",
    "score_expression",
    "seg2bmap",
]
