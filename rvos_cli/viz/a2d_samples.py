"""`rvos viz samples` from files: an A2D/JHMDB predictions JSON and its dataset root → side-by-side PNGs.

The frames come from the prepared frame cache (`<prepared>/frames/<video>.npy`) or else from the A2D clip;
the sentences from the prepared `samples_test.json` when it is there.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import numpy as np

from rvos_cli.data import PREPARED_DIRNAME
from rvos_cli.errors import RvosError
from rvos_cli.fileio import read_json
from rvos_cli.viz.side_by_side import render_a2d_samples

A2D_IMAGE_ID = re.compile(r"^v_(?P<video>.+)_f_(?P<frame>\d+)(_i_(?P<instance>\d+))?$")


def a2d_frame_loader(data: Path, prepared: Path) -> Callable[[str], np.ndarray]:
    """Image id `v_<video>_f_<frame>[_i_<inst>]` → RGB uint8 frame `[H, W, 3]`, from the frame cache or
    the A2D clip under `data`; RvosError for an id of another form or a clip that is not there."""
    from rvos_cli.data.video_io import read_frames

    def load(image_id: str) -> np.ndarray:
        match = A2D_IMAGE_ID.match(image_id)
        if match is None:
            raise RvosError(f"image id {image_id!r}: expected v_<video>_f_<frame>[_i_<instance>]")
        video, frame = match["video"], int(match["frame"]) - 1  # A2D frame numbers are 1-based
        cache = prepared / "frames" / f"{video}.npy"
        if cache.is_file():
            return np.load(cache, mmap_mode="r")[frame]
        clip = data / "Release" / "clips320H" / f"{video}.mp4"
        if not clip.is_file():
            raise RvosError(f"{clip}: clip of image {image_id} not found (is --data the A2D root?)")
        return read_frames(clip, [frame])[0]

    return load


def sentences_by_image(prepared: Path) -> dict[str, str]:
    """Image id → sentence of the prepared test samples (empty when `samples_test.json` is missing)."""
    samples_file = prepared / "samples_test.json"
    if not samples_file.is_file():
        return {}
    samples = read_json(samples_file, "prepared samples file")
    return {f"v_{video}_f_{frame}_i_{instance}": text for text, video, frame, instance in samples}


def render_a2d_sample_files(
    predictions: Path, data: Path, out: Path, coco_gt: Path | None = None, limit: int | None = None
) -> list[Path]:
    """Render the first `limit` test samples of `data` (ground truth vs top-scoring prediction) into `out`.

    Takes the COCO results JSON `predictions`, the dataset root `data` (prepared in
    `data/rvos_prepared`) and the ground truth `coco_gt` (default: the prepared `coco_gt_test.json`).
    Returns the written PNG paths (see `side_by_side.render_a2d_samples`).
    """
    prepared = data / PREPARED_DIRNAME
    gt = read_json(coco_gt or prepared / "coco_gt_test.json", "ground-truth file")
    sentences = sentences_by_image(prepared)
    for image in gt["images"]:
        image.setdefault("sentence", sentences.get(image["id"]))
        if image["sentence"] is None:
            del image["sentence"]
    predicted = read_json(predictions, "predictions file")
    return render_a2d_samples(gt, predicted, a2d_frame_loader(data, prepared), out, limit)
