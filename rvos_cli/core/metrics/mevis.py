"""MeViS J, F and J&F exactly as the official valid_u script scores them (spec datasets-mevis-davis §1b).

Rules:
  * the unit is an expression, keyed by (video, exp_id), never by its sentence;
  * its ground truth in a frame is the pixel-wise OR of the masks of all its anno_ids; a null RLE entry
    (object absent in that frame) adds nothing, so a frame can have an empty GT and is still scored;
  * every frame listed for the video is scored (no first/last exclusion); an empty prediction on an
    empty GT scores J = F = 1 (the DAVIS primitives of `jf.py`);
  * J_e, F_e = means over the frames; J, F = means over expressions (weight 1 each); J&F = (J + F) / 2;
  * a video whose prediction folder is missing scores J = F = 0 for each of its expressions.
The same means are also reported per expression kind: single-object, multi-object and no-target
(empty anno_id list, MeViS v2).

Shape letters: T frames, H height, W width.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from rvos_cli.core.metrics.iou import decode_mask
from rvos_cli.core.metrics.jf import mean_jf
from rvos_cli.core.metrics.jf import score_expression as score_expression  # (J_e, F_e), shared with jf

SINGLE_OBJECT = "single-object"
MULTI_OBJECT = "multi-object"
NO_TARGET = "no-target"
EXPRESSION_KINDS = (SINGLE_OBJECT, MULTI_OBJECT, NO_TARGET)

Rle = dict[str, Any]


def expression_kind(num_objects: int) -> str:
    """The kind of an expression from its number of referred objects: 0, 1 or more."""
    if num_objects == 0:
        return NO_TARGET
    return SINGLE_OBJECT if num_objects == 1 else MULTI_OBJECT


def union_gt_masks(
    tracks: Sequence[Sequence[Rle | None]], num_frames: int, size: tuple[int, int]
) -> np.ndarray:
    """Ground truth of one expression: the OR over its objects' per-frame masks.

    Takes one track per referred object (a list over the frames of COCO RLE dicts or None where the
    object is absent; entry t belongs to the t-th listed frame), the number of frames T and the size
    (H, W). Returns bool `[T, H, W]`; with no tracks (a no-target expression) every frame is empty.
    """
    gt = np.zeros((num_frames, *size), dtype=bool)
    for track in tracks:
        for t, rle in enumerate(track[:num_frames]):
            if rle:
                gt[t] |= decode_mask(rle)
    return gt


@dataclass(frozen=True)
class ExpressionScore:
    """The score of one (video, exp_id): its kind and its J_e, F_e (fractions)."""

    video: str
    exp_id: str
    kind: str
    J: float
    F: float


def _means(scores: Sequence[ExpressionScore]) -> dict[str, float]:
    return mean_jf([(s.J, s.F) for s in scores])


def aggregate_mevis(scores: Sequence[ExpressionScore]) -> dict[str, Any]:
    """The valid_u result of per-expression scores.

    Returns {'J', 'F', 'J&F'} (means over all expressions, J&F = (J + F) / 2), 'expressions' (their
    number) and 'by_kind': {kind: {'J', 'F', 'J&F', 'expressions'}} for each kind present, in
    `EXPRESSION_KINDS` order. Raises ValueError for an empty list.
    """
    if not scores:
        raise ValueError("no expressions to aggregate")
    result: dict[str, Any] = {**_means(scores), "expressions": len(scores), "by_kind": {}}
    for kind in EXPRESSION_KINDS:
        of_kind = [s for s in scores if s.kind == kind]
        if of_kind:
            result["by_kind"][kind] = {**_means(of_kind), "expressions": len(of_kind)}
    return result
