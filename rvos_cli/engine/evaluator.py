"""Evaluation with a model: A2D-/JHMDB-Sentences mAP and IoUs, Ref-YouTube-VOS submissions and J&F.

Shape legend: T frames, B clips in a batch, Nq object queries, h4×w4 = H/4×W/4 mask-logit resolution,
H×W padded input size, h×w resized input size, H0×W0 original frame size.

The model runs through a `Predictor` (its device and precision; `rvos eval` uses fp32) under
`torch.no_grad()` in eval mode; each sentence is tokenised and encoded once per sample.

  * A2D / JHMDB (spec §8.1, §11): batches of clips around the annotated frame; only that frame passes
    the transformer; every query's mask (at the original size) with its P(referred) becomes a COCO
    result, then `core.metrics.a2d_metrics` gives mAP, AP50/75, AP by area, P@K and the IoUs.
  * Ref-YouTube-VOS (spec §8.2): per video, `Predictor.track_video` encodes the frames once (the whole
    video in one pass, or linked overlapping windows when `max_frames` is smaller) and decodes them once
    per expression. PNGs `Annotations/<video>/<exp_id>/<frame>.png` (0/255, original size) and
    `submission.zip` are written atomically. With local ground truth, J, F, J&F follow metrics.md §4.

A2D/JHMDB prediction can be shared by the ranks of a torchrun process group (`distributed=True`: each
rank predicts a slice, the results are gathered); Ref-YouTube-VOS prediction runs in one process.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Subset

from rvos_cli.core.inference import a2d_postprocess
from rvos_cli.core.mask_png import mask_png_bytes, read_mask_png
from rvos_cli.core.metrics import a2d_metrics, mean_jf, score_expression
from rvos_cli.data.collate import collate
from rvos_cli.engine.distributed import DistInfo, all_gather_object, current_info
from rvos_cli.engine.logging import JobProgress
from rvos_cli.engine.predictor import Predictor
from rvos_cli.errors import RvosError
from rvos_cli.fileio import atomic_dir, write_json_atomic, zip_folder_atomic

A2D_KEYS: tuple[str, ...] = (
    "mAP",
    "AP50",
    "AP75",
    "AP_small",
    "AP_medium",
    "AP_large",
    "P@0.5",
    "P@0.6",
    "P@0.7",
    "P@0.8",
    "P@0.9",
    "overall_iou",
    "mean_iou",
)
YTVOS_KEYS: tuple[str, ...] = ("J", "F", "J&F")
ANNOTATIONS_DIR = "Annotations"
SUBMISSION_ZIP = "submission.zip"


def json_metrics(metrics: dict[str, Any], keys: tuple[str, ...]) -> dict[str, float | None]:
    """Keep exactly `keys` (`A2D_KEYS` or `YTVOS_KEYS`) of a metrics dict, as fractions.

    pycocotools reports −1 for an area range (small/medium/large) without any ground truth; that
    becomes None (JSON null), as does a key absent from `metrics`.
    """
    result: dict[str, float | None] = {}
    for key in keys:
        value = metrics.get(key)
        result[key] = None if value is None or float(value) < 0 else float(value)
    return result


# ---------------------------------------------------------------------------------------- A2D / JHMDB


@torch.no_grad()
def predict_a2d(
    predictor: Predictor,
    dataset: Dataset,
    batch_size: int = 1,
    progress: bool = True,
    distributed: bool = False,
) -> list[dict]:
    """COCO results for every sample of an A2D-/JHMDB-Sentences test dataset (spec §8.1).

    `dataset` items are clips `[T, 3, h, w]` with the annotated frame at `valid_indices` and its target
    (`size`, `orig_size`, `image_id`); they are padded into batches of `batch_size`. Returns Nq dicts
    `{image_id, category_id: 1, segmentation: RLE at the original size, score: P(referred)}` per sample,
    samples in dataset order, queries in query order.
    With `distributed` (every rank of the live process group must call it) rank r predicts samples
    r, r + world, ... and the results are gathered, so every rank returns the full list.
    """
    predictor.model.eval()
    info = current_info() if distributed else DistInfo()
    indices = list(range(info.rank, len(dataset), info.world_size))
    loader = DataLoader(Subset(dataset, indices), batch_size=batch_size, shuffle=False, collate_fn=collate)
    per_sample: list[list[dict]] = []
    bar = JobProgress(
        total=len(indices),
        desc="predict",
        unit="clip",
        disable=not (progress and info.is_main),
    )
    for batch in loader:
        frames = batch["frames"]  # [T, B, 3, H, W]
        outputs = predictor.clip_outputs(
            frames, batch["padding_mask"], batch["texts"], batch["valid_indices"]
        )  # pred_masks [1, B, Nq, h4, w4], pred_is_referred [1, B, Nq, 2]
        targets = [target for step in batch["targets"] for target in step]  # time-major, as outputs
        results = a2d_postprocess(
            outputs,
            padded_size=tuple(frames.shape[-2:]),
            resized_sizes=[tuple(int(v) for v in t["size"]) for t in targets],
            orig_sizes=[tuple(int(v) for v in t["orig_size"]) for t in targets],
            image_ids=[t["image_id"] for t in targets],
        )
        num_queries = len(results) // len(targets)
        per_sample += [results[i : i + num_queries] for i in range(0, len(results), num_queries)]
        bar.update(len(targets))
    bar.close()
    if info.enabled:
        by_index: dict[int, list[dict]] = {}
        for rank_indices, rank_results in all_gather_object((indices, per_sample)):
            by_index.update(zip(rank_indices, rank_results, strict=True))
        per_sample = [by_index[i] for i in range(len(dataset))]
    return [prediction for sample in per_sample for prediction in sample]


def evaluate_a2d(
    predictor: Predictor,
    dataset: Dataset,
    coco_gt: dict,
    batch_size: int = 1,
    progress: bool = True,
    predictions_out: Path | None = None,
    distributed: bool = False,
) -> dict[str, float | None]:
    """Predict every test sample (`predict_a2d`) and score against the COCO ground truth `coco_gt`.

    Returns the `A2D_KEYS` metrics as fractions (None for an area range without ground truth). With
    `predictions_out` the COCO results list is also written there as JSON (atomically; by rank 0 only
    when `distributed`, see `predict_a2d`).
    """
    if len(dataset) == 0:
        raise RvosError("the test split holds no samples; nothing to evaluate")
    predictions = predict_a2d(predictor, dataset, batch_size, progress, distributed)
    if predictions_out is not None and (not distributed or current_info().is_main):
        write_json_atomic(Path(predictions_out), predictions)
    return json_metrics(a2d_metrics(coco_gt, predictions), A2D_KEYS)


# ------------------------------------------------------------------------------------ Ref-YouTube-VOS


def _videos(samples: list[list]) -> dict[str, list[int]]:
    """Sample indices per video id, videos in order of first appearance."""
    groups: dict[str, list[int]] = {}
    for index, (video_id, _frames, _entry) in enumerate(samples):
        groups.setdefault(video_id, []).append(index)
    return groups


def predict_ytvos(
    predictor: Predictor,
    dataset: Any,
    out_dir: Path,
    max_frames: int | None = None,
    progress: bool = True,
) -> Path:
    """Write the Ref-YouTube-VOS submission of a valid-split dataset (`ReferYouTubeVOSDataset`).

    For every expression, one PNG per listed frame at `out_dir/Annotations/<video>/<exp_id>/<frame>.png`
    (mode L, 0/255, original frame size), and `out_dir/submission.zip` whose root holds `Annotations/`.
    The whole video goes through the model in one pass unless it has more than `max_frames` frames; then
    windows of `max_frames` frames overlapping by a quarter are linked across (spec §8.3). Both outputs
    replace earlier ones only once complete. Returns the path of the zip.
    """
    if max_frames is not None and max_frames < 1:
        raise RvosError(f"--max-frames {max_frames}: must be at least 1")
    if len(dataset) == 0:
        raise RvosError("the valid split holds no expressions; nothing to predict")
    predictor.model.eval()
    out_dir = Path(out_dir)
    zip_path = out_dir / SUBMISSION_ZIP
    with atomic_dir(out_dir / ANNOTATIONS_DIR) as stage:
        bar = JobProgress(total=len(dataset), desc="predict", unit="expr", disable=not progress)
        for indices in _videos(dataset.samples).values():
            item = dataset[indices[0]]
            meta = item["meta"]
            entries = [dataset.samples[i][2] for i in indices]
            folders = [stage / meta["video_id"] / str(entry["exp_id"]) for entry in entries]
            for folder in folders:
                folder.mkdir(parents=True)
            masks = predictor.track_video(
                item["frames"],
                [entry["exp"] for entry in entries],
                tuple(meta["original_frame_size"]),
                max_frames,
            )
            for k, t, mask in masks:
                # Plain writes: the staging folder is swapped in whole, so no PNG is seen half-written.
                png = folders[k] / f"{meta['frame_indices'][t]}.png"
                png.write_bytes(mask_png_bytes(mask.cpu().numpy()))
            bar.update(len(indices))
        bar.close()
        zip_folder_atomic(stage, zip_path, ANNOTATIONS_DIR)
    return zip_path


def score_ytvos_dataset(dataset: Any, annotations_dir: Path, progress: bool = True) -> dict[str, float]:
    """J, F and J&F of written predictions against a dataset's local ground truth (metrics.md §4).

    `dataset` is a valid-split `ReferYouTubeVOSDataset` with `has_gt`; `annotations_dir` holds
    `<video>/<exp_id>/<frame>.png` (foreground = non-zero). Per expression, J_e and F_e are means over all
    its listed frames (an absent object is an empty GT mask); J and F are means over expressions and
    J&F = (J + F) / 2. Returns {'J', 'F', 'J&F'}.
    """
    scores = []
    bar = JobProgress(dataset.samples, desc="J&F", unit="expr", disable=not progress)
    for index, (video_id, frames, entry) in enumerate(bar):
        gt = dataset.gt_masks(index)  # [T, H0, W0]
        folder = Path(annotations_dir) / video_id / str(entry["exp_id"])
        pred = np.stack([read_mask_png(folder / f"{f}.png", "prediction") for f in frames])  # [T, H0, W0]
        scores.append(score_expression(gt, pred))
    return mean_jf(scores)


def evaluate_ytvos(
    predictor: Predictor,
    dataset: Any,
    out_dir: Path,
    max_frames: int | None = None,
    progress: bool = True,
) -> dict[str, float | None]:
    """`predict_ytvos` into `out_dir`, then J, F, J&F when the dataset has local ground truth.

    Returns the `YTVOS_KEYS` as fractions, or all None without ground truth (the real valid split: upload
    `out_dir/submission.zip` to the evaluation server instead).
    """
    predict_ytvos(predictor, dataset, out_dir, max_frames, progress)
    if not dataset.has_gt:
        return json_metrics({}, YTVOS_KEYS)
    return json_metrics(score_ytvos_dataset(dataset, Path(out_dir) / ANNOTATIONS_DIR, progress), YTVOS_KEYS)
