"""MeViS evaluation: predict every (video, expression), score valid_u, zip the valid submission.

Predictions are written `<out>/predictions/<video>/<exp_id>/<frame>.png` (mode L, 0/255, the frame's
original size; one PNG per listed frame), results are keyed by (video, exp_id). Scoring follows
`core.metrics.mevis` (the official valid_u script); the valid split has no ground truth, so its
predictions become `<out>/submission.zip` with the video folders at the zip root, as the server wants.

The model side is a `Predictor` (engine/predictor.py) built with `select="threshold"` by default:
a MeViS sentence may refer to several objects or to none.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from rvos_cli.core.mask_png import mask_png_bytes, read_mask_png
from rvos_cli.core.metrics.mevis import ExpressionScore, aggregate_mevis, score_expression, union_gt_masks
from rvos_cli.core.model.text_encoder import normalize_sentence
from rvos_cli.data.frame_files import FrameFiles
from rvos_cli.data.mevis import IMAGES, load_index, load_video_tracks, read_gt_split
from rvos_cli.engine.logging import JobProgress
from rvos_cli.errors import RvosError
from rvos_cli.fileio import atomic_dir, write_bytes_atomic, zip_folder_atomic

PREDICTIONS_DIR = "predictions"
SUBMISSION_ZIP = "submission.zip"


def predict_mevis(
    predictor: Any, root: Path, videos: list[dict], split: str, out_dir: Path, progress: bool = True
) -> Path:
    """Write the prediction PNGs of every expression of `videos` (a prepared index) into `out_dir`.

    `predictor.stream(frames, sentences)` yields per frame `.index` and `.masks` bool `[K, H0, W0]`.
    All expressions of a video share one pass. The folder `out_dir/predictions` replaces an earlier
    one only once complete. Returns that folder.
    """
    target = Path(out_dir) / PREDICTIONS_DIR
    with atomic_dir(target) as stage:
        total = sum(len(v["expressions"]) for v in videos)
        bar = JobProgress(total=total, desc="predict", unit="expr", disable=not progress)
        for entry in videos:
            expressions = entry["expressions"]
            sentences = [normalize_sentence(e["exp"]) for e in expressions]
            folder = Path(root) / IMAGES.format(split=split) / entry["video"]
            frames = FrameFiles([folder / f"{name}.jpg" for name in entry["frames"]])
            for result in predictor.stream(frames, sentences):
                name = entry["frames"][result.index]
                for expression, mask in zip(expressions, result.masks, strict=True):
                    path = stage / entry["video"] / expression["exp_id"] / f"{name}.png"
                    write_bytes_atomic(path, mask_png_bytes(mask))
            bar.update(len(expressions))
        bar.close()
    return target


def _read_prediction(path: Path, size: tuple[int, int] | None) -> np.ndarray:
    """A prediction PNG as bool `[H, W]` (non-zero = foreground), checked against the GT size."""
    mask = read_mask_png(path, "prediction")
    if size is not None and mask.shape != tuple(size):
        raise RvosError(
            f"{path}: prediction is {mask.shape[0]}x{mask.shape[1]} but the ground truth is "
            f"{size[0]}x{size[1]}; save predictions at the original frame size"
        )
    return mask


def _gt_size(tracks: list[list]) -> tuple[int, int] | None:
    """(H, W) of the first non-null RLE of an expression's tracks, or None if all are null."""
    for track in tracks:
        for rle in track:
            if rle:
                return int(rle["size"][0]), int(rle["size"][1])
    return None


def score_mevis(
    pred_root: Path, videos: list[dict], tracks_of: Callable[[str], dict], progress: bool = True
) -> dict[str, Any]:
    """J, F, J&F of a prediction folder `<video>/<exp_id>/<frame>.png` (spec §1b).

    `videos`: [{"video", "frames", "expressions": [{"exp_id", "anno_ids", "kind"}]}]; `tracks_of(video)`
    gives {anno_id: [RLE or None per frame]}. A missing video folder scores J = F = 0 for its
    expressions (as the official script); a missing PNG or a size mismatch is an RvosError. Returns
    `aggregate_mevis` of the per-expression scores plus 'per_expression' [{video, exp_id, kind, J, F}].
    """
    scores: list[ExpressionScore] = []
    total = sum(len(v["expressions"]) for v in videos)
    bar = JobProgress(total=total, desc="J&F", unit="expr", disable=not progress)
    for entry in videos:
        video, frames = entry["video"], entry["frames"]
        tracks = tracks_of(video) if (Path(pred_root) / video).is_dir() else {}
        for expression in entry["expressions"]:
            exp_id, kind = expression["exp_id"], expression["kind"]
            if not (Path(pred_root) / video).is_dir():
                scores.append(ExpressionScore(video, exp_id, kind, 0.0, 0.0))
                bar.update(1)
                continue
            object_tracks = [tracks[a] for a in expression["anno_ids"]]
            folder = Path(pred_root) / video / exp_id
            size = _gt_size(object_tracks) or _read_prediction(folder / f"{frames[0]}.png", None).shape
            pred = np.stack([_read_prediction(folder / f"{f}.png", size) for f in frames])  # [T, H, W]
            gt = union_gt_masks(object_tracks, len(frames), size)  # [T, H, W]
            scores.append(ExpressionScore(video, exp_id, kind, *score_expression(gt, pred)))
            bar.update(1)
    bar.close()
    result = aggregate_mevis(scores)
    result["per_expression"] = [vars(s) for s in scores]
    return result


def score_mevis_folder(pred_root: Path, gt_root: Path, progress: bool = True) -> dict[str, Any]:
    """Score an existing prediction folder against a downloaded valid_u folder (or a MeViS root holding
    `valid_u/`); see `score_mevis`."""
    pred_root, gt_root = Path(pred_root), Path(gt_root)
    if not pred_root.is_dir():
        raise RvosError(f"{pred_root}: prediction folder not found")
    split_dir = gt_root if (gt_root / "meta_expressions.json").is_file() else gt_root / "valid_u"
    videos, mask_dict = read_gt_split(split_dir)
    return score_mevis(pred_root, videos, lambda video: mask_dict, progress)


def evaluate_mevis(
    predictor: Any, root: Path, prepared: Path, split: str, out_dir: Path, progress: bool = True
) -> dict[str, Any]:
    """Predict a prepared split with `predictor`; score valid_u, or write the submission zip for valid.

    Returns the `score_mevis` result (valid_u) or {'submission': zip path} (valid).
    """
    if split not in ("valid_u", "valid"):
        raise RvosError(f"--split {split}: expected valid_u (local J&F) or valid (server submission)")
    videos = load_index(prepared, split, root)
    if not videos:
        raise RvosError(f"{Path(prepared)}: the {split} split holds no expressions; nothing to predict")
    pred_root = predict_mevis(predictor, root, videos, split, out_dir, progress)
    if split == "valid":
        return {"submission": str(zip_folder_atomic(pred_root, Path(out_dir) / SUBMISSION_ZIP))}
    return score_mevis(pred_root, videos, lambda video: load_video_tracks(prepared, split, video), progress)
