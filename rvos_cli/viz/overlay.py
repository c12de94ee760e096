"""Mask overlays with a sentence legend, as in the MTTR demo (spec mttr.md §8.4).

Each referring sentence gets one colour. Inside its mask a pixel becomes `alpha·colour + (1−alpha)·pixel`
(alpha 0.7 in the demo), the inner boundary of the mask is drawn in a brighter shade of the colour so the
mask stays visible on any background, and the sentences are printed in their colours on a black strip of
36 px per sentence above the frame. Frames are RGB uint8 `[H, W, 3]`, masks bool `[H, W]`.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Iterator, Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from rvos_cli.errors import RvosError

Colour = tuple[int, int, int]

# The demo's four colours first (light blue, purple, dark green, orange), then more for extra sentences.
PALETTE: tuple[Colour, ...] = (
    (41, 171, 226),
    (237, 30, 121),
    (35, 161, 90),
    (255, 148, 59),
    (255, 221, 0),
    (140, 82, 255),
    (0, 206, 190),
    (200, 30, 30),
)
STRIP_HEIGHT = 36
MIN_FONT_SIZE = 10
FONT_SIZE = 20
TEXT_MARGIN = 8
ELLIPSIS = "…"


def sentence_colour(index: int) -> Colour:
    """The RGB colour of the `index`-th sentence; the palette repeats after its 8 colours."""
    return PALETTE[index % len(PALETTE)]


def brighter(colour: Colour, amount: float = 0.5) -> Colour:
    """`colour` moved `amount` of the way towards white (used for mask contours)."""
    red, green, blue = (round(c + (255 - c) * amount) for c in colour)
    return (red, green, blue)


def mask_boundary(mask: np.ndarray, width: int = 2) -> np.ndarray:
    """The inner boundary of a bool mask `[H, W]`: its pixels within `width` 4-neighbour steps of outside.

    Pixels beyond the image border count as inside, so a mask touching the border is not outlined there.
    Returns a bool array `[H, W]` that is a subset of `mask`.
    """
    inner = mask.copy()
    for _ in range(width):
        padded = np.pad(inner, 1, mode="edge")
        inner = (
            inner & padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:]
        )  # erosion by a 4-neighbour cross
    return mask & ~inner


def overlay_masks(
    frame: np.ndarray,
    masks: Sequence[np.ndarray],
    alpha: float = 0.7,
    colours: Sequence[Colour] | None = None,
    contour_width: int = 2,
) -> np.ndarray:
    """Blend coloured masks into a frame and outline them.

    frame: RGB uint8 `[H, W, 3]`; masks: one bool (or 0/1) array `[H, W]` per sentence, painted in order so
    later masks cover earlier ones; colours: one RGB per mask (default `sentence_colour(i)`).
    Inside mask i a pixel p becomes round(alpha·colour_i + (1−alpha)·p); then the inner boundary of every
    mask, `contour_width` px thick (0 = none), is set to `brighter(colour_i)`. Pixels outside all masks are
    unchanged. Returns a new uint8 array `[H, W, 3]`.
    """
    height, width = frame.shape[:2]
    out = frame.astype(np.float64)
    bool_masks = []
    for index, mask in enumerate(masks):
        if mask.shape != (height, width):
            raise RvosError(f"mask {index} has size {list(mask.shape)} but the frame is {[height, width]}")
        bool_mask = mask.astype(bool)
        bool_masks.append(bool_mask)
        colour = np.asarray(colours[index] if colours else sentence_colour(index), dtype=np.float64)
        out[bool_mask] = alpha * colour + (1.0 - alpha) * out[bool_mask]
    out = np.floor(out + 0.5).clip(0, 255).astype(np.uint8)
    if contour_width > 0:
        for index, bool_mask in enumerate(bool_masks):
            colour = colours[index] if colours else sentence_colour(index)
            out[mask_boundary(bool_mask, contour_width)] = brighter(colour)
    return out


@functools.lru_cache(maxsize=16)
def legend_font(size: int = FONT_SIZE) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """PIL's built-in default font at `size` px (its fixed-size bitmap font on builds without FreeType)."""
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, ImportError):  # Pillow < 10.1 or no FreeType: the bitmap font has one size
        return ImageFont.load_default()


def font_that_fits(text: str, max_width: float) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """The largest legend font (FONT_SIZE down to MIN_FONT_SIZE px) in which `text` fits `max_width` px, else
    the smallest: narrow videos get smaller letters before a sentence is cut short."""
    fonts = (legend_font(size) for size in range(FONT_SIZE, MIN_FONT_SIZE - 1, -1))
    return next((font for font in fonts if font.getlength(text) <= max_width), legend_font(MIN_FONT_SIZE))


def fit_text(text: str, max_width: float, font: ImageFont.FreeTypeFont | ImageFont.ImageFont) -> str:
    """`text` unchanged if it fits in `max_width` px, else its longest prefix that fits with "…" appended."""
    if font.getlength(text) <= max_width:
        return text
    low, high = 0, len(text)  # invariant: prefix of length `low` fits, length `high` does not
    while high - low > 1:
        middle = (low + high) // 2
        if font.getlength(text[:middle].rstrip() + ELLIPSIS) <= max_width:
            low = middle
        else:
            high = middle
    shortened = text[:low].rstrip() + ELLIPSIS
    return shortened if font.getlength(shortened) <= max_width else ""


def text_strip(width: int, text: str, colour: Colour, height: int = STRIP_HEIGHT) -> np.ndarray:
    """A black strip `[height, width, 3]` uint8 with `text` in `colour`, left-aligned, vertically centred.

    Text too long for the strip is shortened with "…".
    """
    image = Image.new("RGB", (width, height), (0, 0, 0))
    # Narrow videos get a smaller font before the sentence is cut short.
    fonts = (legend_font(size) for size in range(FONT_SIZE, MIN_FONT_SIZE - 1, -1))
    font = next(
        (f for f in fonts if f.getlength(text) <= width - 2 * TEXT_MARGIN), legend_font(MIN_FONT_SIZE)
    )
    shown = fit_text(text, width - 2 * TEXT_MARGIN, font)
    if shown:
        draw = ImageDraw.Draw(image)
        top, bottom = font.getbbox(shown)[1::2]
        draw.text((TEXT_MARGIN, (height - (bottom - top)) // 2 - top), shown, fill=colour, font=font)
    return np.asarray(image)


def legend_strip(width: int, sentences: Sequence[str], colours: Sequence[Colour] | None = None) -> np.ndarray:
    """The legend alone: `[36·k, width, 3]` uint8, one black 36-px strip per sentence in its colour."""
    strips = [
        text_strip(width, sentence, colours[i] if colours else sentence_colour(i))
        for i, sentence in enumerate(sentences)
    ]
    if not strips:
        return np.zeros((0, width, 3), dtype=np.uint8)
    return np.concatenate(strips, axis=0)


def draw_legend(
    frame: np.ndarray, sentences: Sequence[str], colours: Sequence[Colour] | None = None
) -> np.ndarray:
    """Put the sentence legend above a frame.

    frame: uint8 `[H, W, 3]`; sentences: k strings. Returns uint8 `[H + 36·k, W, 3]` whose bottom H rows
    are the frame unchanged.
    """
    return np.concatenate([legend_strip(frame.shape[1], sentences, colours), frame], axis=0)


def render_overlay_frames(
    frames: Iterable[np.ndarray],
    masks_per_sentence: Iterable[Sequence[np.ndarray]],
    sentences: Sequence[str],
    alpha: float = 0.7,
) -> Iterator[np.ndarray]:
    """Stream demo-style frames: masks overlaid, legend above.

    frames: RGB uint8 `[H, W, 3]` each; masks_per_sentence: for each frame, a list of k bool masks `[H, W]`
    (one per sentence, in the order of `sentences`). Yields uint8 `[H + 36·k, W, 3]` frames one at a time;
    the legend is drawn once and reused. Both iterables must have the same length.
    """
    mask_iter = iter(masks_per_sentence)
    strip: np.ndarray | None = None
    count = 0
    for index, frame in enumerate(frames):
        masks = next(mask_iter, None)
        if masks is None:
            raise RvosError(f"masks stop after {index} frames but the video has more frames")
        if len(masks) != len(sentences):
            raise RvosError(f"frame {index} has {len(masks)} masks for {len(sentences)} sentences")
        if strip is None or strip.shape[1] != frame.shape[1]:
            strip = legend_strip(frame.shape[1], sentences)
        count = index + 1
        yield np.concatenate([strip, overlay_masks(frame, masks, alpha)], axis=0)
    if next(mask_iter, None) is not None:
        raise RvosError(f"there are masks for more frames than the {count} frames of the video")
