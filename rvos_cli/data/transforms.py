"""Video-clip transforms shared by all datasets: optional horizontal flip, resize, ImageNet normalisation.

Shape legend: T frames in the clip, N instances in a frame's target, H×W before and h×w after resizing.
A clip is transformed frame by frame with one random decision for the whole clip, so all its frames
and masks stay aligned. Targets are per-frame dicts (None for frames without annotation) holding at
least `masks` `[N, H, W]`; `size` is set to the resized (h, w), `orig_size` is left as it is.
"""

from __future__ import annotations

import re

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# "left", "leftmost" and "left-most" (and the same for right) as whole words; the suffix is kept as it is.
_LEFT_RIGHT = re.compile(r"\b(left|right)(-?most)?\b")
_OPPOSITE = {"left": "right", "right": "left"}


def swap_left_right(text: str) -> str:
    """Swap the whole words left/right, leftmost/rightmost and left-most/right-most (all may occur).

    Takes a query and returns it as it describes the horizontally flipped clip. Other words that contain
    "left" or "right" (bright, upright, leftover) stay as they are: the official code swaps substrings,
    which turns "upright" into "upleft".
    """
    return _LEFT_RIGHT.sub(lambda match: _OPPOSITE[match.group(1)] + (match.group(2) or ""), text)


def resized_size(height: int, width: int, short_size: int, max_size: int | None) -> tuple[int, int]:
    """Return the (h, w) a frame of `height`×`width` is resized to.

    The short side becomes `short_size` unless the long side would then exceed `max_size`, in which case
    the short side becomes round(max_size · short / long). The long side is truncated with int(). If the
    short side already has the target length the size is unchanged.
    """
    size = short_size
    if max_size is not None:
        short, long = min(height, width), max(height, width)
        if long / short * size > max_size:
            size = round(max_size * short / long)
    if (width <= height and width == size) or (height <= width and height == size):
        return height, width
    if width < height:
        return int(size * height / width), size
    return size, int(size * width / height)


class VideoTransforms:
    """Flip (training only, probability 0.5), resize by short/max size, scale to [0, 1] and normalise.

    Frames are resized with PIL bilinear, masks with nearest neighbour and then thresholded to bool.
    """

    def __init__(self, short_size: int, max_size: int | None, horizontal_flip: bool) -> None:
        self.short_size = short_size
        self.max_size = max_size
        self.horizontal_flip = horizontal_flip

    def __call__(
        self,
        frames: np.ndarray,
        targets: list[dict | None],
        text: str,
        generator: torch.Generator | None = None,
    ) -> tuple[torch.Tensor, list[dict | None], str]:
        """Transform one clip.

        Takes frames uint8 `[T, H, W, 3]`, per-frame targets (dicts with `masks` `[N, H, W]` tensors, or
        None), the text query and the generator the flip decision is drawn from. Returns normalised
        frames float32 `[T, 3, h, w]`, the targets with bool `masks` `[N, h, w]` and updated `size` (and
        `area` scaled like the frame), and the text (left/right swapped if the clip was flipped).
        """
        frames = np.asarray(frames)
        targets = [None if t is None else dict(t) for t in targets]
        if self.horizontal_flip and torch.rand(1, generator=generator).item() > 0.5:
            frames = frames[:, :, ::-1]
            for target in targets:
                if target is not None:
                    target["masks"] = target["masks"].flip(-1)
            text = swap_left_right(text)
        height, width = frames.shape[1:3]
        new_h, new_w = resized_size(height, width, self.short_size, self.max_size)
        if (new_h, new_w) != (height, width):
            frames = np.stack([_resize_frame(frame, (new_h, new_w)) for frame in frames])
        for target in targets:
            if target is not None:
                _resize_target(target, (height, width), (new_h, new_w))
        video = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float().div_(255.0)
        mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
        std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
        return (video - mean) / std, targets, text  # [T, 3, h, w]


def _resize_frame(frame: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """PIL bilinear resize of one frame uint8 `[H, W, 3]` to `size` (h, w)."""
    image = Image.fromarray(np.ascontiguousarray(frame))
    return np.asarray(image.resize((size[1], size[0]), Image.BILINEAR))


def _resize_target(target: dict, old: tuple[int, int], new: tuple[int, int]) -> None:
    """Nearest-resize `masks` `[N, H, W]` to `new` (h, w) as bool, set `size`, scale `area` if present."""
    masks = target["masks"]
    resized = F.interpolate(masks[:, None].float(), size=new, mode="nearest")[:, 0] > 0.5
    target["masks"] = resized  # [N, h, w] bool
    target["size"] = torch.tensor(new)
    if "area" in target:
        target["area"] = target["area"] * (new[0] * new[1] / (old[0] * old[1]))
