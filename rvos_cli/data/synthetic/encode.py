"""Encoding synthetic frames and masks as the bytes of the files the dataset layouts hold."""

from __future__ import annotations

import csv
import io

import numpy as np
from PIL import Image


def csv_bytes(rows: list[list[str]]) -> bytes:
    """Rows as CSV bytes with '\\n' line ends."""
    text = io.StringIO()
    csv.writer(text, lineterminator="\n").writerows(rows)
    return text.getvalue().encode()


def ytvos_palette() -> list[int]:
    """The 256-colour palette of DAVIS / YouTube-VOS annotation PNGs, flat [r0, g0, b0, r1, ...]."""
    palette = []
    for label in range(256):
        r = g = b = 0
        bits = label
        for shift in range(7, -1, -1):
            r |= (bits & 1) << shift
            g |= ((bits >> 1) & 1) << shift
            b |= ((bits >> 2) & 1) << shift
            bits >>= 3
        palette += [r, g, b]
    return palette


def png_of_labels(labels: np.ndarray) -> bytes:
    """Palette ('P') PNG bytes of a uint8 `[H, W]` id map."""
    image = Image.fromarray(labels, mode="P")
    image.putpalette(ytvos_palette())
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def jpeg_of_frame(frame: np.ndarray) -> bytes:
    """JPEG bytes (quality 95) of an RGB uint8 `[H, W, 3]` frame."""
    buffer = io.BytesIO()
    Image.fromarray(frame).save(buffer, format="JPEG", quality=95)
    return buffer.getvalue()
