"""MeViS training windows as model inputs: frames, per-frame targets over the window's objects and the
expression's referred set (several objects, one, or none). Prepared by `rvos_cli.data.mevis`.

Shape letters: T frames in the window, n objects present in it, R referred objects, H×W frame size,
h×w resized size.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from rvos_cli.core.metrics.iou import decode_mask
from rvos_cli.core.model.text_encoder import normalize_sentence
from rvos_cli.data.mevis import IMAGES, load_index, load_video_tracks
from rvos_cli.data.prepare import SeededSamples, load_prepared


def read_frames(root: Path, split: str, video: str, frames: list[str]) -> np.ndarray:
    """The RGB frames of one video: uint8 `[T, H, W, 3]`."""
    folder = Path(root) / IMAGES.format(split=split) / video
    images = []
    for frame in frames:
        with Image.open(folder / f"{frame}.jpg") as image:
            images.append(np.asarray(image.convert("RGB")))
    return np.stack(images)


class MevisTrainDataset(SeededSamples):
    """MeViS training windows (prepared by `prepare_mevis`).

    Item: `frames` float `[T, 3, h, w]`, `text`, `valid_indices` 0..T-1 and `targets`, one dict per frame:
    `masks` bool `[n, h, w]` for the video's objects present anywhere in the window (prepared order,
    all-zero where absent), `referred_instance_idx` int `[R]` (the expression's referred objects among
    them: R may be 0 for a no-target expression or > 1), `is_ref_inst_visible` bool `[R]`, `iscrowd`,
    `orig_size`, `size`, `image_id`.
    """

    def __init__(self, prepared: Path, root: Path, window: int, transforms: Callable, seed: int = 42) -> None:
        command = f"rvos prepare mevis --root {root} --window {window}"
        self.samples = load_prepared(Path(prepared), f"samples_train_w{window}.json", command)
        self.videos = {entry["video"]: entry for entry in load_index(prepared, "train", root)}
        self.prepared, self.root, self.transforms = Path(prepared), Path(root), transforms
        self.seed, self.epoch = seed, 0

    def __getitem__(self, index: int) -> dict:
        video, positions, record = self.samples[index]
        entry = self.videos[video]
        frames = [entry["frames"][t] for t in positions]
        clip = read_frames(self.root, "train", video, frames)
        targets = self._targets(video, entry, positions, record)
        generator = self.generator(index)
        sentence = normalize_sentence(record["exp"])
        clip_tensor, targets, text = self.transforms(clip, targets, sentence, generator)
        return {
            "frames": clip_tensor,
            "targets": targets,
            "text": text,
            "valid_indices": list(range(len(frames))),
        }

    def _targets(self, video: str, entry: dict, positions: list[int], record: dict) -> list[dict]:
        """Per-frame targets over the objects present anywhere in the window."""
        tracks = load_video_tracks(self.prepared, "train", video)
        objects = [a for a in entry["objects"] if any(tracks[a][t] for t in positions)]
        referred = [objects.index(a) for a in record["anno_ids"] if a in objects]
        height, width = entry["size"]
        targets = []
        for t in positions:
            masks = np.zeros((len(objects), height, width), dtype=np.uint8)
            for n, anno_id in enumerate(objects):
                if tracks[anno_id][t]:
                    masks[n] = decode_mask(tracks[anno_id][t])
            masks_tensor = torch.from_numpy(masks)  # [n, H, W]
            size = torch.tensor([height, width])
            targets.append(
                {
                    "masks": masks_tensor,
                    "referred_instance_idx": torch.tensor(referred, dtype=torch.int64),
                    "is_ref_inst_visible": torch.tensor(
                        [bool(masks[r].any()) for r in referred], dtype=torch.bool
                    ),
                    "iscrowd": torch.zeros(len(objects), dtype=torch.long),
                    "orig_size": size,
                    "size": size.clone(),
                    "image_id": f"v_{video}_f_{entry['frames'][t]}_e_{record['exp_id']}",
                }
            )
        return targets
