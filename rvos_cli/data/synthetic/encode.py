"""Encoding synthetic frames and tables as file bytes (mask PNGs: `rvos_cli.core.mask_png`)."""

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


def jpeg_of_frame(frame: np.ndarray) -> bytes:
    """JPEG bytes (quality 95) of an RGB uint8 `[H, W, 3]` frame."""
    buffer = io.BytesIO()
    Image.fromarray(frame).save(buffer, format="JPEG", quality=95)
    return buffer.getvalue()
