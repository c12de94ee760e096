"""COCO fixtures built by tests, independently of the code under test: RLEs and ground-truth dicts."""

from __future__ import annotations

import numpy as np
from pycocotools import mask as mask_utils


def rle(mask: np.ndarray) -> dict:
    """Compressed COCO RLE of a boolean mask `[H, W]`, counts as str (as JSON stores it)."""
    encoded = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(v) for v in encoded["size"]], "counts": encoded["counts"].decode("ascii")}


def coco_gt(masks: dict[str, np.ndarray]) -> dict:
    """A COCO GT dict (string image ids, area = pixel count) with one annotation per image."""
    images = [{"id": image_id, "height": m.shape[0], "width": m.shape[1]} for image_id, m in masks.items()]
    annotations = [
        {
            "id": i + 1,
            "image_id": image_id,
            "category_id": 1,
            "iscrowd": 0,
            "area": float(m.sum()),
            "segmentation": rle(m),
        }
        for i, (image_id, m) in enumerate(masks.items())
    ]
    return {"images": images, "annotations": annotations, "categories": [{"id": 1, "name": "referred"}]}
