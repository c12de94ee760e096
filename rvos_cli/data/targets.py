"""Per-frame training targets from object-id maps: what the matcher and the losses read for one frame.

Ref-YouTube-VOS and Ref-DAVIS17 annotate every object of a frame in one indexed PNG; a training window
becomes one target per frame over the objects present anywhere in the window, in ascending id order.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

import numpy as np
import torch


def label_map_targets(
    labels: Sequence[np.ndarray],
    referred_id: int,
    image_ids: Sequence[str],
    ignore: Collection[int] = (0,),
) -> list[dict]:
    """Targets of a window from its object-id maps.

    Takes the T id maps uint8 `[H, W]` of the window, the id of the referred object, one image id per
    frame and the ids that are not objects (background, DAVIS's void 255). The objects are the ids present
    in any frame (ascending, `ignore` left out); the referred one must be among them. Returns per frame
    {'masks': uint8 `[n, H, W]`, 'referred_instance_idx': 0-d int64, 'is_ref_inst_visible': 0-d bool,
    'iscrowd': int64 `[n]` zeros, 'orig_size' = 'size': int64 `[2]` (H, W), 'image_id'}.
    """
    objects = sorted(set().union(*(np.unique(frame).tolist() for frame in labels)) - set(ignore))
    referred = objects.index(int(referred_id))
    targets = []
    for frame_labels, image_id in zip(labels, image_ids, strict=True):
        masks = torch.from_numpy(np.stack([frame_labels == o for o in objects]).astype(np.uint8))  # [n, H, W]
        size = torch.tensor(masks.shape[1:])
        targets.append(
            {
                "masks": masks,
                "referred_instance_idx": torch.tensor(referred),
                "is_ref_inst_visible": masks[referred].bool().any(),
                "iscrowd": torch.zeros(len(objects), dtype=torch.long),
                "orig_size": size,
                "size": size.clone(),
                "image_id": image_id,
            }
        )
    return targets
