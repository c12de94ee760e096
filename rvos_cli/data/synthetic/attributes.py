"""The words and sizes a synthetic clip is made of: colours, shapes, sizes, motions, sentence phrasings.

Held-out split (A2D "test", Ref-YouTube-VOS "valid"/"test"): every held-out clip contains an object whose
colour×shape pair never occurs in any training clip (`HELD_OUT_PAIRS`), and held-out sentences use
carrier phrases and motion verbs never used in training (`TEST_TEMPLATES`, `TEST_MOTION`, `TEST_STILL`).
"""

from __future__ import annotations

COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (215, 35, 35),
    "green": (40, 175, 55),
    "blue": (40, 75, 225),
    "yellow": (240, 215, 35),
    "purple": (150, 50, 200),
}
SHAPES = ("circle", "square", "triangle", "diamond")
SIZES = ("small", "big")
DIRECTIONS = ("left", "right", "up", "down", "static")
SPEEDS = ("slow", "fast")
# One pair per shape and per colour but purple, so every colour and shape still occurs in training.
HELD_OUT_PAIRS = frozenset(
    {("red", "triangle"), ("green", "diamond"), ("blue", "circle"), ("yellow", "square")}
)
ATTRIBUTE_KEYS = ("size", "colour", "shape", "direction", "speed")
# What sentences may name per difficulty. "basic": objects of a clip have distinct colours and sentences
# name colour and/or shape; "full": any attribute, colours repeat, motion and size words are needed.
DIFFICULTIES: dict[str, tuple[str, ...]] = {"basic": ("colour", "shape"), "full": ATTRIBUTE_KEYS}

# Carrier phrases and motion verbs; the held-out split uses only the second set.
TRAIN_TEMPLATES = ("the {np}", "a {np}", "{np}", "the {np} in the video")
TEST_TEMPLATES = ("look at the {np}", "find the {np} in this clip", "segment the {np}")
TRAIN_MOTION = ("moving {d}", "that moves {d}")
TEST_MOTION = ("going {d}", "heading {d}")
TRAIN_STILL = ("that is not moving", "standing still")
TEST_STILL = ("staying in place",)
ADVERBS = {"slow": "slowly", "fast": "quickly"}

RADIUS = {"small": 0.09, "big": 0.16}  # fraction of min(H, W)
TRAVEL = {"slow": 0.25, "fast": 0.75}  # distance covered over the clip, fraction of the frame extent
