"""Region similarity J, boundary accuracy F (DAVIS definitions) and Ref-YouTube-VOS J&F over a folder.

J and F follow davis2017-evaluation's `db_eval_iou` / `db_eval_boundary` exactly (void pixels are never
used for referring VOS and are left out). The folder evaluation follows the public Ref-YouTube-VOS
convention: the unit is an expression, every listed frame is scored (an absent object gives an empty GT
mask), J_e and F_e are means over the expression's frames, and J, F are means over expressions.

Shape letters: T frames, H height, W width.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage
from tqdm import tqdm

from rvos_cli.core.mask_png import read_label_png, read_mask_png
from rvos_cli.errors import RvosError
from rvos_cli.fileio import read_json

DEFAULT_BOUND_TH = 0.008


def db_eval_iou(gt: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """Region similarity J = |G ∩ P| / |G ∪ P| per frame.

    Takes a GT and a predicted mask of identical shape, `[H, W]` or `[T, H, W]` (any non-zero value is
    foreground). Returns a float64 array of shape `[]` (2-D input) or `[T]`; a frame where both masks are
    empty scores 1.
    """
    gt = gt.astype(bool)
    pred = pred.astype(bool)
    intersection = np.count_nonzero(gt & pred, axis=(-2, -1))
    union = np.count_nonzero(gt | pred, axis=(-2, -1))
    both_empty = union == 0
    return np.where(both_empty, 1.0, intersection / np.where(both_empty, 1, union))


def boundary_radius(height: int, width: int, bound_th: float = DEFAULT_BOUND_TH) -> int:
    """Tolerance radius in pixels for F: `bound_th` itself if ≥ 1, else ceil(bound_th · √(H² + W²)).

    E.g. 360×640 → 6, 480×854 → 8, 720×1280 → 12 (a ceil, never a round).
    """
    if bound_th >= 1:
        return int(bound_th)
    return math.ceil(bound_th * math.sqrt(height * height + width * width))


def seg2bmap(mask: np.ndarray) -> np.ndarray:
    """One-pixel-wide boundary map of a binary mask `[H, W]` (the BSDS `seg2bmap` used by DAVIS).

    A pixel is on the boundary iff it differs from its right, lower or lower-right neighbour
    (neighbours outside the image count as 0); in the last row only the right neighbour counts, in the last
    column only the lower one, and the bottom-right pixel is never a boundary. Hence the image border never
    creates boundary, and a mask covering the whole frame has none. Returns a bool array `[H, W]`.
    """
    seg = mask.astype(bool)
    right = np.zeros_like(seg)
    below = np.zeros_like(seg)
    below_right = np.zeros_like(seg)
    right[:, :-1] = seg[:, 1:]
    below[:-1, :] = seg[1:, :]
    below_right[:-1, :-1] = seg[1:, 1:]
    bmap = (seg ^ right) | (seg ^ below) | (seg ^ below_right)
    bmap[-1, :] = seg[-1, :] ^ right[-1, :]
    bmap[:, -1] = seg[:, -1] ^ below[:, -1]
    bmap[-1, -1] = False
    return bmap


def _count_within_radius(query: np.ndarray, target: np.ndarray, radius: int) -> int:
    """Number of `query` pixels inside the disk dilation (radius `radius`) of `target` (both `[H, W]`).

    Equal to `(query & binary_dilation(target, disk(radius))).sum()`, computed with the exact Euclidean
    feature transform instead: a pixel is inside the dilation iff its nearest target pixel (dy, dx) has
    dy² + dx² ≤ r². That is several times faster than dilating with a large disk at 720p. Both maps must
    contain at least one pixel; the work is restricted to the bounding box of both, which holds every
    query pixel and every target pixel, so distances are unchanged.
    """
    rows, cols = np.nonzero(query | target)
    top, bottom, left, right = rows.min(), rows.max() + 1, cols.min(), cols.max() + 1
    query = query[top:bottom, left:right]
    target = target[top:bottom, left:right]
    nearest = ndimage.distance_transform_edt(~target, return_distances=False, return_indices=True)
    qy, qx = np.nonzero(query)
    dy = nearest[0][qy, qx].astype(np.int64) - qy
    dx = nearest[1][qy, qx].astype(np.int64) - qx
    return int(np.count_nonzero(dy * dy + dx * dx <= radius * radius))


def _f_measure(gt: np.ndarray, pred: np.ndarray, bound_th: float) -> float:
    """Boundary F of one frame (`[H, W]` masks), with DAVIS's edge cases for empty boundaries."""
    radius = boundary_radius(pred.shape[0], pred.shape[1], bound_th)
    pred_boundary = seg2bmap(pred)
    gt_boundary = seg2bmap(gt)
    n_pred = int(np.count_nonzero(pred_boundary))
    n_gt = int(np.count_nonzero(gt_boundary))
    if n_pred == 0 and n_gt == 0:
        return 1.0
    if n_pred == 0 or n_gt == 0:
        return 0.0  # P = 1, R = 0 or P = 0, R = 1
    precision = _count_within_radius(pred_boundary, gt_boundary, radius) / n_pred
    recall = _count_within_radius(gt_boundary, pred_boundary, radius) / n_gt
    if precision + recall == 0:
        return 0.0
    return 2 * precision * recall / (precision + recall)


def db_eval_boundary(gt: np.ndarray, pred: np.ndarray, bound_th: float = DEFAULT_BOUND_TH) -> np.ndarray:
    """Boundary accuracy F per frame.

    Takes a GT and a predicted mask of identical shape, `[H, W]` or `[T, H, W]` (non-zero = foreground),
    and the tolerance `bound_th` (fraction of the frame diagonal, or pixels if ≥ 1). Boundary pixels of
    one map are matched if they lie within the disk of radius `boundary_radius(H, W, bound_th)` around
    the other map's boundary; F = 2PR / (P + R). Both boundaries empty → 1, exactly one empty → 0.
    Returns a float64 array of shape `[]` (2-D input) or `[T]`.
    """
    if gt.ndim == 2:
        return np.asarray(_f_measure(gt, pred, bound_th))
    return np.array([_f_measure(gt[t], pred[t], bound_th) for t in range(gt.shape[0])])


def score_expression(gt: np.ndarray, pred: np.ndarray) -> tuple[float, float]:
    """(J_e, F_e) of one expression: the means over its frames of region J and boundary F.

    Takes GT and prediction masks of identical shape `[T, H, W]` (non-zero = foreground); every frame
    counts, an empty prediction on an empty GT frame scoring J = F = 1.
    """
    return float(np.mean(db_eval_iou(gt, pred))), float(np.mean(db_eval_boundary(gt, pred)))


def mean_jf(scores: Sequence[tuple[float, float]]) -> dict[str, float]:
    """The dataset J, F and J&F of per-expression (J_e, F_e) pairs (metrics.md §4).

    J and F are means over expressions (weight 1 each) and J&F = (J + F) / 2. Returns {'J', 'F', 'J&F'}
    as fractions; raises ValueError for an empty sequence.
    """
    if not scores:
        raise ValueError("no expressions to aggregate")
    j = float(np.mean([j_e for j_e, _ in scores]))
    f = float(np.mean([f_e for _, f_e in scores]))
    return {"J": j, "F": f, "J&F": (j + f) / 2}


def _find_meta_expressions(gt_root: Path) -> Path:
    """The meta_expressions.json of a GT root: `<root>/meta_expressions.json` or the official layout."""
    for candidate in (
        gt_root / "meta_expressions.json",
        gt_root / "meta_expressions" / "valid" / "meta_expressions.json",
    ):
        if candidate.is_file():
            return candidate
    raise RvosError(
        f"{gt_root}: no meta_expressions.json found (looked for meta_expressions.json and "
        "meta_expressions/valid/meta_expressions.json)"
    )


def _load_expressions(meta_path: Path) -> list[tuple[str, str, int, list[str]]]:
    """Read meta_expressions.json into (video_id, exp_id, obj_id, frame names), in file order."""
    meta = read_json(meta_path, "meta_expressions file")
    if not isinstance(meta, dict) or not isinstance(meta.get("videos"), dict):
        raise RvosError(
            f'{meta_path}: expected {{"videos": {{video_id: {{"expressions": ..., "frames": ...}}}}}}'
        )
    expressions = []
    for video_id, video in meta["videos"].items():
        if (
            not isinstance(video, dict)
            or not video.get("frames")
            or not isinstance(video.get("expressions"), dict)
        ):
            raise RvosError(
                f"{meta_path}: video {video_id!r} needs a non-empty 'frames' list and 'expressions'"
            )
        for exp_id, expression in video["expressions"].items():
            obj_id = expression.get("obj_id") if isinstance(expression, dict) else None
            if not str(obj_id).isdigit():
                raise RvosError(
                    f"{meta_path}: video {video_id!r} expression {exp_id!r} needs an integer 'obj_id', "
                    f"got {obj_id!r}"
                )
            expressions.append((video_id, exp_id, int(obj_id), list(video["frames"])))
    if not expressions:
        raise RvosError(f"{meta_path}: lists no expressions")
    return expressions


def _load_gt_labels(annotations_dir: Path, video_id: str, frames: list[str]) -> np.ndarray:
    """Stack a video's GT palette PNGs into object-id labels `[T, H, W]`."""
    labels = []
    for frame in frames:
        path = annotations_dir / video_id / f"{frame}.png"
        label = read_label_png(path, "ground-truth annotation")
        if labels and label.shape != labels[0].shape:
            raise RvosError(
                f"{path}: size {label.shape[0]}x{label.shape[1]} (HxW) differs from the video's first frame"
            )
        labels.append(label)
    return np.stack(labels)


def _load_pred_masks(expression_dir: Path, frames: list[str], gt_labels: np.ndarray) -> np.ndarray:
    """Stack an expression's prediction PNGs into boolean masks `[T, H, W]` (foreground = non-zero)."""
    masks = []
    for frame, gt in zip(frames, gt_labels, strict=True):
        path = expression_dir / f"{frame}.png"
        pred = read_mask_png(path, "prediction")
        if pred.shape != gt.shape:
            raise RvosError(
                f"{path}: prediction is {pred.shape[0]}x{pred.shape[1]} (HxW) but the ground truth is "
                f"{gt.shape[0]}x{gt.shape[1]}; save predictions at the original frame resolution"
            )
        masks.append(pred)
    return np.stack(masks)


def evaluate_referring_vos(pred_root: Path, gt_root: Path) -> dict[str, Any]:
    """Ref-YouTube-VOS J&F of a folder of predictions.

    Takes `pred_root` laid out `<video>/<exp_id>/<frame>.png` (0/255 PNGs, foreground = non-zero; an
    `Annotations/` subfolder is used if present) and `gt_root` holding `Annotations/<video>/<frame>.png`
    palette PNGs and meta_expressions.json (at the root or under meta_expressions/valid/). Every frame
    listed for the video is scored for every expression; GT = (palette value == obj_id).
    Returns {'J', 'F', 'J&F'} (fractions; J and F are means over expressions, J&F = (J + F) / 2) and
    'per_expression': [{'video', 'exp_id', 'J', 'F'}] in meta file order.
    """
    if (pred_root / "Annotations").is_dir():
        pred_root = pred_root / "Annotations"
    expressions = _load_expressions(_find_meta_expressions(gt_root))
    annotations_dir = gt_root / "Annotations"

    per_expression = []
    cached_video, gt_labels = None, np.zeros((0, 0, 0), dtype=np.uint8)
    for video_id, exp_id, obj_id, frames in tqdm(expressions, desc="J&F", unit="expr", file=sys.stderr):
        if video_id != cached_video:
            cached_video, gt_labels = video_id, _load_gt_labels(annotations_dir, video_id, frames)
        gt = gt_labels == obj_id  # [T, H, W]
        pred = _load_pred_masks(pred_root / video_id / exp_id, frames, gt_labels)  # [T, H, W]
        j_e, f_e = score_expression(gt, pred)
        per_expression.append({"video": video_id, "exp_id": exp_id, "J": j_e, "F": f_e})
    totals = mean_jf([(entry["J"], entry["F"]) for entry in per_expression])
    return {**totals, "per_expression": per_expression}
