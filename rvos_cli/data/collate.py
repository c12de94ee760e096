"""Batching clips: pad frames to a common size and regroup the targets by time step for the matcher.

Shape legend: T frames per clip (the same for every clip of a batch), B clips, H×W the largest resized
frame size of the batch, n_b the instances of clip b.

A dataset item is a dict with
  `frames` float `[T, 3, h_b, w_b]`, `text` str, `valid_indices` list[int] (time steps with annotations),
  `targets` list over T of per-frame dicts or None (None for unannotated frames; the whole list may be
  None when there are no targets), and optionally `meta` (a dict passed through unchanged).
"""

from __future__ import annotations

import torch


def collate(batch: list[dict]) -> dict:
    """Stack a list of dataset items into one batch.

    Returns a dict with
      `frames` float `[T, B, 3, H, W]`, zero-padded at the bottom and right of each clip;
      `padding_mask` bool `[T, B, H, W]`, True on padded pixels;
      `texts` list of B strings;
      `valid_indices` long `[V]`, the annotated time steps (taken from the first item; all items of a
      batch share them);
      `targets`: a list over the V valid time steps, each a tuple over the batch of the per-frame
      target dicts (`masks` `[n_b, h_b, w_b]`, `referred_instance_idx`, `size`, `orig_size`,
      `image_id`, ...), or None when the items carry no targets;
      `metas`: list of B meta dicts (only when the items have one).
    """
    num_frames = batch[0]["frames"].shape[0]
    height = max(item["frames"].shape[2] for item in batch)
    width = max(item["frames"].shape[3] for item in batch)
    frames = torch.zeros(num_frames, len(batch), 3, height, width, dtype=batch[0]["frames"].dtype)
    padding_mask = torch.ones(num_frames, len(batch), height, width, dtype=torch.bool)
    for b, item in enumerate(batch):
        h, w = item["frames"].shape[2:]
        frames[:, b, :, :h, :w] = item["frames"]
        padding_mask[:, b, :h, :w] = False
    valid_indices = list(batch[0]["valid_indices"])
    targets = None
    if batch[0].get("targets") is not None:
        targets = [tuple(item["targets"][t] for item in batch) for t in valid_indices]
    result = {
        "frames": frames,  # [T, B, 3, H, W]
        "padding_mask": padding_mask,  # [T, B, H, W]
        "texts": [item["text"] for item in batch],
        "valid_indices": torch.tensor(valid_indices, dtype=torch.long),
        "targets": targets,
    }
    if "meta" in batch[0]:
        result["metas"] = [item["meta"] for item in batch]
    return result
