"""Tiny media written by tests: frames with a known moving object."""

from __future__ import annotations

import numpy as np


def moving_square_frames() -> list[np.ndarray]:
    """20 frames 48×80 uint8 RGB: a grey square moving right over a horizontal gradient."""
    frames = []
    for i in range(20):
        frame = np.tile(np.linspace(0, 200, 80, dtype=np.uint8)[None, :, None], (48, 1, 3))
        frame[10:30, 2 * i : 2 * i + 20] = 128
        frames.append(frame)
    return frames
