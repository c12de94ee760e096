"""Mask PNGs, the one codec: binary masks as 0/255 greyscale, object-id maps as DAVIS-palette images.

Referring-VOS predictions are written one binary PNG per frame (mode L, 0 = background, 255 = object;
Ref-YouTube-VOS and MeViS submissions); annotations and DAVIS predictions are indexed PNGs (mode P, pixel
value = object id, the DAVIS / YouTube-VOS palette). Readers raise `RvosError` naming the file.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image

from rvos_cli.errors import RvosError


def davis_palette() -> list[int]:
    """The 256-colour palette of DAVIS / YouTube-VOS annotation PNGs, flat [r0, g0, b0, r1, ...] (768)."""
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


def mask_png_bytes(mask: np.ndarray) -> bytes:
    """PNG bytes (mode L, 0/255) of a bool mask `[H, W]`."""
    buffer = io.BytesIO()
    Image.fromarray(np.asarray(mask).astype(np.uint8) * 255, mode="L").save(buffer, format="PNG")
    return buffer.getvalue()


def label_png_bytes(labels: np.ndarray) -> bytes:
    """Indexed ('P') PNG bytes, with the DAVIS palette, of a uint8 object-id map `[H, W]`."""
    image = Image.fromarray(labels, mode="P")
    image.putpalette(davis_palette())
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _open_png(path: Path, what: str) -> Image.Image:
    """The decoded image at `path` (loaded, file closed); RvosError if it is missing or unreadable."""
    if not path.is_file():
        raise RvosError(f"{path}: missing {what} PNG")
    try:
        with Image.open(path) as image:
            image.load()
            return image
    except OSError as error:
        raise RvosError(f"{path}: not a readable {what} PNG ({error})") from error


def read_label_png(path: Path, what: str = "annotation") -> np.ndarray:
    """An indexed ('P') or greyscale object-id PNG as uint8 labels `[H, W]` (0 = background).

    `what` names the file in errors ('annotation', 'prediction'): missing, unreadable, or of another
    mode (RGB, ...) raise RvosError naming `path`.
    """
    image = _open_png(Path(path), what)
    if image.mode not in ("P", "L"):
        raise RvosError(f"{path}: expected a palette ('P') {what} PNG, got mode {image.mode}")
    return np.asarray(image).astype(np.uint8)


def read_mask_png(path: Path, what: str = "prediction") -> np.ndarray:
    """A mask PNG as bool `[H, W]`: foreground = a non-zero value (any colour channel of an RGB image).

    Accepts 0/255 or 0/1 greyscale, indexed and RGB(A) PNGs. A missing or unreadable file raises
    RvosError naming `path` and `what`.
    """
    values = np.asarray(_open_png(Path(path), what))
    if values.ndim == 3:
        values = values[..., :3].any(axis=-1)
    return values != 0
