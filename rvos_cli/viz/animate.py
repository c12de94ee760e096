"""Writing rendered frames to disk: animated GIFs and single PNGs, atomically (temp file + rename).

MP4 and other containers are written by `rvos_cli.data.video_io.write_video`.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np
from PIL import Image

from rvos_cli.errors import RvosError
from rvos_cli.fileio import atomic_path


def write_png(path: Path, image: np.ndarray) -> Path:
    """Save an RGB uint8 image `[H, W, 3]` (or a grayscale `[H, W]`) as PNG at `path`; returns `path`."""
    path = Path(path)
    with atomic_path(path) as temp:
        Image.fromarray(image).save(temp, format="PNG")
    return path


def write_gif(path: Path, frames: Iterable[np.ndarray], fps: float) -> Path:
    """Write RGB uint8 frames `[H, W, 3]` as a looping animated GIF at `fps` frames per second.

    Each frame gets its own adaptive 256-colour palette. GIF stores delays in 1/100 s, so the delay is
    1000/fps ms rounded to 10 ms. Pillow merges consecutive identical frames into one longer frame, so the
    file may hold fewer frames than given while playing for the same time. Returns `path`.
    """
    path = Path(path)
    if fps <= 0:
        raise RvosError(f"{path}: fps must be positive, got {fps}")
    images = [Image.fromarray(frame) for frame in frames]
    if not images:
        raise RvosError(f"{path}: no frames to write")
    size = images[0].size
    for index, image in enumerate(images):
        if image.size != size:
            raise RvosError(f"{path}: frame {index} is {image.size} (w, h) but the first frame is {size}")
    with atomic_path(path) as temp:
        images[0].save(
            temp,
            format="GIF",
            save_all=True,
            append_images=images[1:],
            duration=max(10, round(100 / fps) * 10),
            loop=0,
        )
    return path
