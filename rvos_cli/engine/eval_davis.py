"""Ref-DAVIS17 evaluation: four runs (2 annotators × first-frame/full-video expressions), DAVIS 2017 scores.

With a model, every val sequence goes through the `Predictor` once with all 4·N expressions of its N
objects (top-1 TSVS each: one expression, one object); per run k the N object masks are merged into one
indexed PNG per frame (`core.inference.merge_object_masks`, value = object id), written
`<out>/anno_k/<sequence>/<frame>.png` with the DAVIS palette. Each anno_k folder is scored with the
DAVIS 2017 protocol of `core.metrics.davis` (default task "unsupervised", as the published tables);
the headline is the mean of the four runs.

Shape letters: N objects, T frames, H0×W0 original frame size.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import numpy as np

from rvos_cli.core.inference import merge_object_masks
from rvos_cli.core.mask_png import label_png_bytes, read_label_png
from rvos_cli.core.metrics.davis import TASKS, aggregate_objects, evaluate_sequence, mean_of_runs
from rvos_cli.core.model.text_encoder import normalize_sentence
from rvos_cli.data.davis import (
    ANNOTATIONS,
    IMAGE_SETS,
    IMAGES,
    RUN_NAMES,
    SEMI_ANNOTATIONS,
    load_davis_index,
    read_sequence_list,
)
from rvos_cli.data.frame_files import FrameFiles
from rvos_cli.engine.logging import JobProgress
from rvos_cli.errors import RvosError
from rvos_cli.fileio import atomic_dir, write_bytes_atomic


def predict_davis(
    predictor: Any, root: Path, sequences: list[dict], out_dir: Path, progress: bool = True
) -> Path:
    """Write `out_dir/anno_0..anno_3/<sequence>/<frame>.png` for every prepared val sequence.

    `predictor.stream(frames, sentences)` yields per frame `.index` and `.masks` bool `[K, H0, W0]`;
    the K = 4·N sentences are run-major (run k, object n at k·N + n). The four folders replace earlier
    ones only once all are complete. Returns `out_dir`.
    """
    out_dir = Path(out_dir)
    with contextlib.ExitStack() as runs:  # the four folders replace earlier ones once all are complete
        stages = [runs.enter_context(atomic_dir(out_dir / run)) for run in RUN_NAMES]
        for entry in JobProgress(sequences, desc="predict", unit="seq", disable=not progress):
            objects = entry["objects"]
            ids = [obj["obj_id"] for obj in objects]
            sentences = [
                normalize_sentence(obj["expressions"][k]) for k in range(len(RUN_NAMES)) for obj in objects
            ]
            folder = Path(root) / IMAGES / entry["sequence"]
            frames = FrameFiles([folder / f"{name}.jpg" for name in entry["frames"]])
            for result in predictor.stream(frames, sentences):
                name = entry["frames"][result.index]
                for k, stage in enumerate(stages):
                    labels = merge_object_masks(result.masks[k * len(ids) : (k + 1) * len(ids)], ids)
                    write_bytes_atomic(stage / entry["sequence"] / f"{name}.png", label_png_bytes(labels))
    return out_dir


def _label_stack(folder: Path, frames: list[str]) -> np.ndarray:
    """The indexed PNGs `folder/<frame>.png` stacked: uint8 `[T, H, W]` (RvosError naming a bad file)."""
    stack = [read_label_png(folder / f"{frame}.png") for frame in frames]
    for frame, labels in zip(frames, stack, strict=True):
        if labels.shape != stack[0].shape:
            raise RvosError(
                f"{folder / frame}.png: size {labels.shape} differs from the sequence's first frame"
            )
    return np.stack(stack)


def score_davis_run(run_dir: Path, gt_root: Path, sequences: list[str], task: str = "unsupervised") -> dict:
    """DAVIS 2017 result of one run folder `<sequence>/<frame>.png` against the download at `gt_root`.

    GT: `DAVIS/Annotations_unsupervised/480p` (unsupervised) or `DAVIS/Annotations/480p`
    (semi-supervised); every GT frame needs a prediction of the same size. Returns the run's
    `aggregate_objects` stats plus 'objects': [{'sequence', 'object', stats...}].
    """
    annotations = Path(gt_root) / (ANNOTATIONS if task == "unsupervised" else SEMI_ANNOTATIONS)
    if not annotations.is_dir():
        zip_name = (
            "DAVIS-2017-Unsupervised-trainval-480p" if task == "unsupervised" else "DAVIS-2017-trainval-480p"
        )
        raise RvosError(f"{annotations}: missing (the {task} task reads the annotations of {zip_name}.zip)")
    objects = []
    for sequence in sequences:
        frames = sorted(p.stem for p in (annotations / sequence).glob("*.png"))
        if not frames:
            raise RvosError(f"{annotations / sequence}: no annotation PNGs")
        gt = _label_stack(annotations / sequence, frames)
        pred = _label_stack(Path(run_dir) / sequence, frames)
        if pred.shape != gt.shape:
            raise RvosError(
                f"{Path(run_dir) / sequence}: predictions are {pred.shape[1]}x{pred.shape[2]}, the ground "
                f"truth {gt.shape[1]}x{gt.shape[2]}; save them at the original frame size"
            )
        for n, stats in enumerate(evaluate_sequence(gt, pred, task), start=1):
            objects.append({"sequence": sequence, "object": n, **stats})
    return {**aggregate_objects(objects), "objects": objects}


def score_davis(
    pred_root: Path, gt_root: Path, task: str = "unsupervised", progress: bool = True
) -> dict[str, Any]:
    """The four runs `pred_root/anno_0..anno_3` scored on the val sequences of `gt_root`, and their mean.

    Returns {'runs': {anno_k: stats}, 'mean': the `mean_of_runs`, 'task'}. RvosError for a missing run
    folder, sequence or frame.
    """
    if task not in TASKS:
        raise RvosError(f"--davis-task {task}: expected one of {', '.join(TASKS)}")
    sequences = read_sequence_list(Path(gt_root) / IMAGE_SETS.format(split="val"))
    runs = {}
    for run in JobProgress(RUN_NAMES, desc="DAVIS runs", unit="run", disable=not progress):
        if not (Path(pred_root) / run).is_dir():
            raise RvosError(
                f"{Path(pred_root) / run}: missing (expected anno_0..anno_3/<sequence>/<frame>.png)"
            )
        runs[run] = score_davis_run(Path(pred_root) / run, gt_root, sequences, task)
    return {"task": task, "runs": runs, "mean": mean_of_runs(list(runs.values()))}


def evaluate_davis(
    predictor: Any,
    root: Path,
    prepared: Path,
    out_dir: Path,
    task: str = "unsupervised",
    progress: bool = True,
) -> dict[str, Any]:
    """Predict the prepared val sequences with `predictor` into `out_dir`, then `score_davis` it."""
    if task not in TASKS:
        raise RvosError(f"--davis-task {task}: expected one of {', '.join(TASKS)}")
    sequences = load_davis_index(prepared, "val", root)
    if not sequences:
        raise RvosError(f"{Path(prepared)}: the val split holds no sequences; nothing to predict")
    predict_davis(predictor, root, sequences, out_dir, progress)
    return score_davis(out_dir, root, task, progress)
