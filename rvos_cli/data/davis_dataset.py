"""Ref-DAVIS17 training windows as model inputs (prepared by `rvos_cli.data.davis`): one referred object.

Shape letters: T frames in the window, n objects present in it, H×W frame size, h×w resized size.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from rvos_cli.core.mask_png import read_label_png
from rvos_cli.core.model.text_encoder import normalize_sentence
from rvos_cli.data.davis import ANNOTATIONS, IMAGES, VOID_LABEL, load_davis_index
from rvos_cli.data.frame_files import FrameFiles
from rvos_cli.data.prepare import SeededSamples, load_prepared
from rvos_cli.data.targets import label_map_targets


class DavisTrainDataset(SeededSamples):
    """Ref-DAVIS17 train windows.

    Item: `frames` float `[T, 3, h, w]`, `text`, `valid_indices` 0..T-1 and `targets`, one dict per frame:
    `masks` bool `[n, h, w]` for the objects present anywhere in the window (ascending ids, void pixels
    counted as background, all-zero where absent), `referred_instance_idx` (scalar), `is_ref_inst_visible`,
    `iscrowd`, `orig_size`, `size`, `image_id`.
    """

    def __init__(self, prepared: Path, root: Path, window: int, transforms: Callable, seed: int = 42) -> None:
        command = f"rvos prepare davis --root {root} --window {window}"
        self.samples = load_prepared(Path(prepared), f"samples_train_w{window}.json", command)
        self.sequences = {e["sequence"]: e for e in load_davis_index(prepared, "train", root)}
        self.root, self.transforms = Path(root), transforms
        self.seed, self.epoch = seed, 0

    def __getitem__(self, index: int) -> dict:
        sequence, positions, record = self.samples[index]
        names = [self.sequences[sequence]["frames"][t] for t in positions]
        images = FrameFiles([self.root / IMAGES / sequence / f"{name}.jpg" for name in names])
        clip = np.stack(list(images))  # [T, H, W, 3]
        labels = [read_label_png(self.root / ANNOTATIONS / sequence / f"{name}.png") for name in names]
        image_ids = [f"v_{sequence}_f_{name}_e_{record['exp_id']}" for name in names]
        targets = label_map_targets(labels, int(record["obj_id"]), image_ids, ignore=(0, VOID_LABEL))
        generator = self.generator(index)
        frames, targets, text = self.transforms(clip, targets, normalize_sentence(record["exp"]), generator)
        return {"frames": frames, "targets": targets, "text": text, "valid_indices": list(range(len(names)))}
