"""A video given as image files, read one frame at a time: a sized sequence the `Predictor` accepts.

Datasets list their frames explicitly (MeViS `frames`, DAVIS sequences), so the frames to segment are
exactly those files in that order, and only the frames being processed are in memory.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from rvos_cli.errors import RvosError


class FrameFiles:
    """`len()`, indexing and iteration over RGB uint8 frames `[H, W, 3]` decoded from `paths` on access."""

    def __init__(self, paths: Sequence[Path]) -> None:
        self.paths = [Path(p) for p in paths]

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> np.ndarray:
        path = self.paths[index]
        try:
            with Image.open(path) as image:
                return np.asarray(image.convert("RGB"))
        except OSError as error:
            raise RvosError(f"{path}: not a readable frame image ({error})") from error

    def __iter__(self) -> Iterator[np.ndarray]:
        for index in range(len(self.paths)):
            yield self[index]
