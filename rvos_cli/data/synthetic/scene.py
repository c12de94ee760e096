"""Drawing a synthetic scene: objects with distinct attributes, straight tracks, a textured background,
and the rendered frames with their per-pixel object labels.

Each clip shows 2–4 moving shapes over a textured background. Objects differ in colour, shape, size,
direction of motion (or none) and speed; later objects occlude earlier ones, and some enter or leave the
frame. Every draw comes from the numpy Generator passed in, in a fixed order, so a seed fixes the scene.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from rvos_cli.data.synthetic.attributes import (
    COLOURS,
    DIRECTIONS,
    HELD_OUT_PAIRS,
    RADIUS,
    SHAPES,
    SIZES,
    SPEEDS,
    TRAVEL,
)
from rvos_cli.data.synthetic.clip import A2D_ANNOTATION_STRIDE, SyntheticObject, a2d_annotated_frames


def draw_objects(
    rng: np.random.Generator, held_out: bool, distinct_colours: bool = False
) -> list[SyntheticObject]:
    """2–4 objects, each differing from every other in at least one attribute; later ones often copy an
    attribute of an earlier one so that descriptions need more than one word. Training clips never use a
    held-out colour×shape pair; held-out clips start with one. `distinct_colours`: no two objects share
    a colour (a copied colour is redrawn)."""
    count = int(rng.integers(2, 5))
    objects: list[SyntheticObject] = []
    while len(objects) < count:
        values = {
            "colour": str(rng.choice(list(COLOURS))),
            "shape": str(rng.choice(SHAPES)),
            "size": str(rng.choice(SIZES)),
            "direction": str(rng.choice(DIRECTIONS, p=[0.2, 0.2, 0.2, 0.2, 0.2])),
            "speed": str(rng.choice(SPEEDS)),
        }
        if held_out and not objects:
            values["colour"], values["shape"] = sorted(HELD_OUT_PAIRS)[int(rng.integers(len(HELD_OUT_PAIRS)))]
        elif objects and rng.random() < 0.8:
            donor = objects[int(rng.integers(len(objects)))].attributes()
            for key in rng.choice(
                ["colour", "shape", "size", "direction"], size=int(rng.integers(1, 3)), replace=False
            ):
                values[str(key)] = donor[str(key)]
        if values["direction"] == "static":
            values["speed"] = None
        candidate = SyntheticObject(obj_id=len(objects) + 1, **values)
        if not held_out and (candidate.colour, candidate.shape) in HELD_OUT_PAIRS:
            continue
        own = candidate.attributes()
        if any(other.attributes() == own for other in objects):
            continue
        if distinct_colours and any(other.colour == candidate.colour for other in objects):
            continue
        objects.append(candidate)
    return objects


@dataclass(frozen=True)
class Track:
    """Centre (cx, cy) per frame, float `[T, 2]`, and radius in pixels."""

    centres: np.ndarray
    radius: float


def draw_track(rng: np.random.Generator, obj: SyntheticObject, frames: int, height: int, width: int) -> Track:
    """A straight constant-speed path; a moving object stays inside, enters or leaves the frame."""
    radius = RADIUS[obj.size] * min(height, width)
    if obj.direction == "static":
        cx = rng.uniform(radius, width - radius)
        cy = rng.uniform(radius, height - radius)
        return Track(np.tile([cx, cy], (frames, 1)), radius)
    horizontal = obj.direction in ("left", "right")
    extent, across = (width, height) if horizontal else (height, width)
    travel = TRAVEL[obj.speed] * extent
    # s: position along the motion axis, growing with time; mirrored below for left / up.
    mode = rng.choice(["inside", "enter", "leave"], p=[0.5, 0.25, 0.25])
    if mode == "inside" and travel <= extent - 2 * radius:
        s0 = rng.uniform(radius, extent - radius - travel)
    elif mode == "enter":
        s0 = rng.uniform(-radius, 0.0)
    else:
        s0 = rng.uniform(extent, extent + radius) - travel
    s = s0 + travel * np.arange(frames) / max(frames - 1, 1)
    if obj.direction in ("left", "up"):
        s = extent - s
    t = np.full(frames, rng.uniform(radius, across - radius))
    centres = np.stack([s, t] if horizontal else [t, s], axis=1)
    return Track(centres, radius)


def draw_background(rng: np.random.Generator, frames: int, height: int, width: int) -> np.ndarray:
    """Muted smooth noise plus faint drifting stripes, float `[T, H, W, 3]` in 0..255."""
    coarse = rng.uniform(0.0, 1.0, size=(4, 5, 3))
    smooth = np.asarray(
        Image.fromarray((coarse * 255).astype(np.uint8)).resize((width, height), Image.Resampling.BICUBIC),
        dtype=np.float64,
    )
    grey = smooth.mean(axis=2, keepdims=True)
    base = 70.0 + 0.45 * (0.35 * smooth + 0.65 * grey)  # low saturation so the objects' colours stand out
    angle = rng.uniform(0, np.pi)
    period = rng.uniform(10.0, 24.0)
    drift = rng.uniform(-0.6, 0.6)
    yy, xx = np.mgrid[0:height, 0:width]
    phase = (xx * np.cos(angle) + yy * np.sin(angle)) / period * 2 * np.pi
    stripes = 10.0 * np.sin(phase[None] + drift * np.arange(frames)[:, None, None])  # [T, H, W]
    return base[None] + stripes[..., None]


def shape_mask(shape: str, cx: float, cy: float, r: float, yy: np.ndarray, xx: np.ndarray) -> np.ndarray:
    """Bool `[H, W]` mask of a shape of radius r centred at (cx, cy); yy, xx are pixel-centre grids."""
    dx, dy = xx - cx, yy - cy
    if shape == "circle":
        return dx**2 + dy**2 <= r**2
    if shape == "square":
        return np.maximum(np.abs(dx), np.abs(dy)) <= 0.85 * r
    if shape == "diamond":
        return np.abs(dx) + np.abs(dy) <= 1.15 * r
    # triangle: apex up at cy - r, base at cy + 0.8 r of half-width r
    depth = (dy + r) / (1.8 * r)
    return (depth >= 0) & (depth <= 1) & (np.abs(dx) <= r * depth)


def render(
    rng: np.random.Generator, background: np.ndarray, objects: list[SyntheticObject], tracks: list[Track]
) -> tuple[np.ndarray, np.ndarray]:
    """Paint the objects in order (later ones on top) over the background; add sensor noise.

    Returns frames uint8 `[T, H, W, 3]` and labels uint8 `[T, H, W]` (visible object id, 0 = background).
    """
    frames, height, width = background.shape[:3]
    canvas = background.copy()
    labels = np.zeros((frames, height, width), dtype=np.uint8)
    yy, xx = np.mgrid[0:height, 0:width] + 0.5
    for obj, track in zip(objects, tracks, strict=True):
        colour = np.clip(np.array(COLOURS[obj.colour]) + rng.integers(-12, 13, size=3), 0, 255)
        for t in range(frames):
            inside = shape_mask(obj.shape, track.centres[t, 0], track.centres[t, 1], track.radius, yy, xx)
            canvas[t][inside] = colour
            labels[t][inside] = obj.obj_id
    canvas += rng.normal(0.0, 3.0, size=canvas.shape)
    return np.clip(np.rint(canvas), 0, 255).astype(np.uint8), labels


def is_visible_enough(labels: np.ndarray, obj_id: int) -> bool:
    """The object shows at least 4 pixels in half of the frames and in one A2D annotated frame."""
    visible = (labels == obj_id).sum(axis=(1, 2)) >= 4  # [T]
    annotated = visible[a2d_annotated_frames(len(visible))[0] - 1 :: A2D_ANNOTATION_STRIDE]
    return bool(visible.sum() * 2 >= len(visible) and annotated.any())
