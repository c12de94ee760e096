"""A synthetic referring-video dataset, written in the on-disk formats of A2D-Sentences or Ref-YouTube-VOS.

Each clip shows 2–4 moving shapes over a textured background. Objects differ in colour, shape, size,
direction of motion (or none) and speed; later objects occlude earlier ones, and some enter or leave the
frame. Every object gets one or two sentences naming a combination of its attributes that no other
object of the clip shares, so only the text says which object is meant. Two difficulties
(`DIFFICULTIES`): "basic" gives every object of a clip its own colour and names colour and/or shape
("the red object", "a blue circle"); "full" lets objects share colours and names any attribute, so
sentences often need size and motion words ("the red circle moving left" next to a red square and a
blue circle moving left).

Held-out split (A2D "test", Ref-YouTube-VOS "valid"/"test"): every held-out clip contains an object whose
colour×shape pair never occurs in any training clip (`HELD_OUT_PAIRS`), whose sentences always name that
pair, and held-out sentences use carrier phrases and motion verbs never used in training.

Everything is drawn from numpy Generators seeded by (seed, video index), so a seed fixes the dataset.
Layouts written (spec §10.1, §10.3; frame names of Ref-YouTube-VOS are every 5th number, 00000, 00005, …):

    a2d:   Release/videoset.csv, Release/clips320H/<vid>.mp4, text_annotations/a2d_annotation.txt,
           text_annotations/a2d_missed_videos.txt (empty),
           text_annotations/a2d_annotation_with_instances/<vid>/<frame:05d>.h5 (every 4th frame, 1-based)
    ytvos: train/{JPEGImages,Annotations}/<vid>/<frame>.{jpg,png}, valid/JPEGImages/<vid>/<frame>.jpg,
           meta_expressions/{train,valid,test}/meta_expressions.json, and ground truth that the real
           dataset does not ship: valid/Annotations/<vid>/<frame>.png for the valid videos (valid minus
           test) and meta_expressions/valid/meta_expressions_gt.json (their expressions with obj_id).
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import h5py
import numpy as np
from PIL import Image
from tqdm import tqdm

from rvos_cli.data.video_io import write_video
from rvos_cli.errors import RvosError
from rvos_cli.fileio import write_bytes_atomic

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
A2D_ANNOTATION_STRIDE = 4
A2D_FPS = 24.0
YTVOS_FRAME_STEP = 5
YTVOS_GT_META = "meta_expressions/valid/meta_expressions_gt.json"
MAX_ATTEMPTS = 200


@dataclass(frozen=True)
class SyntheticObject:
    """One object of a clip: its id (1-based; pixel value / instance id on disk) and attributes."""

    obj_id: int
    colour: str
    shape: str
    size: str
    direction: str
    speed: str | None  # None when direction == "static"

    def attributes(self) -> dict[str, str | None]:
        """The attribute values keyed by `ATTRIBUTE_KEYS`."""
        return {
            "size": self.size,
            "colour": self.colour,
            "shape": self.shape,
            "direction": self.direction,
            "speed": self.speed,
        }

    def matches(self, attributes: dict[str, str | None]) -> bool:
        """True if this object has every attribute value in `attributes` (a description fits it)."""
        own = self.attributes()
        return all(own[key] == value for key, value in attributes.items())


@dataclass(frozen=True)
class Referral:
    """A sentence referring to one object, the attributes it names and the templates it was built from."""

    obj_id: int
    text: str
    attributes: dict[str, str | None]
    template: str
    motion_template: str | None


@dataclass
class SyntheticClip:
    """The in-memory description of one clip.

    frames: uint8 `[T, H, W, 3]` RGB; labels: uint8 `[T, H, W]`, the id of the object visible at each pixel
    (0 = background), i.e. the masks after occlusion.
    """

    video_id: str
    held_out: bool
    objects: list[SyntheticObject]
    referrals: list[Referral]
    frames: np.ndarray
    labels: np.ndarray

    def mask(self, obj_id: int) -> np.ndarray:
        """Visible mask of one object, bool `[T, H, W]`."""
        return self.labels == obj_id


@dataclass
class SyntheticSummary:
    """What `generate_synthetic` wrote: videos and sentences per split (A2D: train/test, YTVOS:
    train/valid/test, where valid excludes test and has local ground truth)."""

    fmt: str
    root: Path
    videos: dict[str, int] = field(default_factory=dict)
    sentences: dict[str, int] = field(default_factory=dict)

    def rows(self) -> list[tuple[str, int, int]]:
        """(split, videos, sentences) per split, for a table."""
        return [(split, self.videos[split], self.sentences.get(split, 0)) for split in self.videos]


def video_id_for(index: int) -> str:
    """The video id of clip `index`."""
    return f"syn{index:05d}"


def split_plan(num_videos: int, fmt: Literal["a2d", "ytvos"]) -> list[str]:
    """Split name per video index: the last quarter (at least one video) is held out.

    A2D: "train" / "test". YTVOS: "train" / "valid" / "test", the last third of the held-out videos being
    the competition test videos (listed in both the valid and the test meta_expressions).
    """
    held = max(1, num_videos // 4)
    if fmt == "a2d":
        return ["train"] * (num_videos - held) + ["test"] * held
    test = held // 3
    return ["train"] * (num_videos - held) + ["valid"] * (held - test) + ["test"] * test


def make_clip(
    seed: int,
    index: int,
    held_out: bool,
    frames_per_video: int = 24,
    size: tuple[int, int] = (120, 160),
    max_sentences: int = 2,
    difficulty: str = "basic",
) -> SyntheticClip:
    """Draw clip `index` of the dataset of `seed`: objects, trajectories, rendered frames, masks, sentences.

    `held_out` selects the held-out recipe (a held-out colour×shape pair, held-out phrasing). `size` is
    (H, W). Each object gets 1..`max_sentences` sentences naming attributes allowed by `difficulty`
    (a key of `DIFFICULTIES`). The result depends only on the arguments.
    """
    rng = np.random.default_rng([seed, index, int(held_out)])
    height, width = size
    for _ in range(MAX_ATTEMPTS):
        objects = _draw_objects(rng, held_out, distinct_colours=difficulty == "basic")
        tracks = [_draw_track(rng, obj, frames_per_video, height, width) for obj in objects]
        background = _draw_background(rng, frames_per_video, height, width)
        frames, labels = _render(rng, background, objects, tracks)
        if all(_is_visible_enough(labels, obj.obj_id) for obj in objects):
            referrals = [
                ref
                for obj in objects
                for ref in _refer(rng, obj, objects, held_out, max_sentences, DIFFICULTIES[difficulty])
            ]
            return SyntheticClip(video_id_for(index), held_out, objects, referrals, frames, labels)
    raise RvosError(
        f"could not place the objects of clip {index} in a {height}x{width} frame; use a larger size"
    )


def generate_synthetic(
    out: Path,
    num_videos: int,
    seed: int,
    fmt: Literal["a2d", "ytvos"],
    frames_per_video: int = 24,
    size: tuple[int, int] = (120, 160),
    difficulty: str = "basic",
) -> SyntheticSummary:
    """Generate `num_videos` clips of `frames_per_video` frames of `size` (H, W) into `out` in format `fmt`.

    `difficulty` ("basic" or "full", see `DIFFICULTIES`) sets which attributes the sentences name.
    Returns the counts of videos and sentences per split. Re-running with the same arguments rewrites
    byte-identical files (the mp4s too, with libx264; files of a larger earlier run are not removed).
    """
    _check_arguments(num_videos, fmt, frames_per_video, size, difficulty)
    out = Path(out)
    splits = split_plan(num_videos, fmt)
    writer = _A2dWriter(out) if fmt == "a2d" else _YtvosWriter(out)
    summary = SyntheticSummary(fmt=fmt, root=out)
    for split in ("train", "test") if fmt == "a2d" else ("train", "valid", "test"):
        summary.videos[split], summary.sentences[split] = 0, 0
    for index in tqdm(range(num_videos), desc=f"synthetic {fmt}", unit="video", file=sys.stderr):
        split = splits[index]
        clip = make_clip(
            seed,
            index,
            split != "train",
            frames_per_video,
            size,
            sentences_per_object(fmt, split),
            difficulty,
        )
        writer.add(clip, split)
        summary.videos[split] += 1
        summary.sentences[split] += len(clip.referrals)
    writer.finish()
    return summary


def sentences_per_object(fmt: Literal["a2d", "ytvos"], split: str) -> int:
    """The most sentences an object gets: one in the A2D test split, whose COCO ground truth allows a
    single query per (video, instance); two elsewhere."""
    return 1 if fmt == "a2d" and split == "test" else 2


def _check_arguments(
    num_videos: int, fmt: str, frames_per_video: int, size: tuple[int, int], difficulty: str
) -> None:
    """Raise RvosError for arguments the generator cannot honour."""
    if difficulty not in DIFFICULTIES:
        raise RvosError(f"unknown difficulty {difficulty!r}; expected one of {', '.join(DIFFICULTIES)}")
    if fmt not in ("a2d", "ytvos"):
        raise RvosError(f"unknown synthetic format {fmt!r}; expected 'a2d' or 'ytvos'")
    if num_videos < 2:
        raise RvosError(f"num_videos must be at least 2 (a train and a held-out video), got {num_videos}")
    if frames_per_video < A2D_ANNOTATION_STRIDE:
        raise RvosError(f"frames_per_video must be at least {A2D_ANNOTATION_STRIDE}, got {frames_per_video}")
    if min(size) < 32:
        raise RvosError(f"frame size must be at least 32x32, got {size[0]}x{size[1]}")


# ---------------------------------------------------------------------------------------------- scene


def _draw_objects(
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
class _Track:
    """Centre (cx, cy) per frame, float `[T, 2]`, and radius in pixels."""

    centres: np.ndarray
    radius: float


def _draw_track(
    rng: np.random.Generator, obj: SyntheticObject, frames: int, height: int, width: int
) -> _Track:
    """A straight constant-speed path; a moving object stays inside, enters or leaves the frame."""
    radius = RADIUS[obj.size] * min(height, width)
    if obj.direction == "static":
        cx = rng.uniform(radius, width - radius)
        cy = rng.uniform(radius, height - radius)
        return _Track(np.tile([cx, cy], (frames, 1)), radius)
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
    return _Track(centres, radius)


def _draw_background(rng: np.random.Generator, frames: int, height: int, width: int) -> np.ndarray:
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


def _shape_mask(shape: str, cx: float, cy: float, r: float, yy: np.ndarray, xx: np.ndarray) -> np.ndarray:
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


def _render(
    rng: np.random.Generator, background: np.ndarray, objects: list[SyntheticObject], tracks: list[_Track]
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
            inside = _shape_mask(obj.shape, track.centres[t, 0], track.centres[t, 1], track.radius, yy, xx)
            canvas[t][inside] = colour
            labels[t][inside] = obj.obj_id
    canvas += rng.normal(0.0, 3.0, size=canvas.shape)
    return np.clip(np.rint(canvas), 0, 255).astype(np.uint8), labels


def _is_visible_enough(labels: np.ndarray, obj_id: int) -> bool:
    """The object shows at least 4 pixels in half of the frames and in one A2D annotated frame."""
    visible = (labels == obj_id).sum(axis=(1, 2)) >= 4  # [T]
    annotated = visible[_a2d_annotated_frames(len(visible))[0] - 1 :: A2D_ANNOTATION_STRIDE]
    return bool(visible.sum() * 2 >= len(visible) and annotated.any())


# ------------------------------------------------------------------------------------------ sentences


def _refer(
    rng: np.random.Generator,
    obj: SyntheticObject,
    objects: list[SyntheticObject],
    held_out: bool,
    max_sentences: int,
    nameable: tuple[str, ...] = ATTRIBUTE_KEYS,
) -> list[Referral]:
    """1..max_sentences sentences for `obj`, each naming a set of its attributes (drawn from `nameable`,
    a subsequence of `ATTRIBUTE_KEYS`) that fits no other object.

    Subsets of minimal size are preferred (one more attribute is allowed for variety). A held-out object
    (held-out colour×shape pair) is always named by its colour and shape.
    """
    own = obj.attributes()
    others = [other for other in objects if other.obj_id != obj.obj_id]
    must = {"colour", "shape"} if (obj.colour, obj.shape) in HELD_OUT_PAIRS else set()
    candidates = []
    for n in range(1, len(nameable) + 1):
        for keys in itertools.combinations(nameable, n):
            if not must <= set(keys) or (
                "speed" in keys and (own["speed"] is None or "direction" not in keys)
            ):
                continue
            named = {key: own[key] for key in keys}
            if not any(other.matches(named) for other in others):
                candidates.append(named)
    smallest = len(candidates[0])
    pool = [named for named in candidates if len(named) <= smallest + 1]
    count = min(len(pool), int(rng.integers(1, max_sentences + 1)))
    first = int(rng.integers(sum(len(named) == smallest for named in pool)))
    rest = [i for i in range(len(pool)) if i != first]
    chosen = [first, *rng.choice(rest, size=count - 1, replace=False).tolist()] if count > 1 else [first]
    return [_sentence(rng, obj.obj_id, pool[i], held_out) for i in chosen]


def _sentence(
    rng: np.random.Generator, obj_id: int, named: dict[str, str | None], held_out: bool
) -> Referral:
    """Build the text for the attributes `named`: "[size] [colour] shape|object [motion [adverb]]"."""
    templates, motions, stills = (
        (TEST_TEMPLATES, TEST_MOTION, TEST_STILL)
        if held_out
        else (TRAIN_TEMPLATES, TRAIN_MOTION, TRAIN_STILL)
    )
    words = [named[key] for key in ("size", "colour") if key in named]
    words.append(named.get("shape") or "object")
    motion_template = None
    if "direction" in named:
        if named["direction"] == "static":
            motion_template = str(rng.choice(stills))
            words.append(motion_template)
        else:
            motion_template = str(rng.choice(motions))
            words.append(motion_template.format(d=named["direction"]))
            if "speed" in named:
                words.append(ADVERBS[str(named["speed"])])
    template = str(rng.choice(templates))
    phrase = " ".join(str(word) for word in words)
    article_fixed = "an" + template[1:] if template.startswith("a ") and phrase[0] in "aeiou" else template
    text = article_fixed.format(np=phrase)
    return Referral(obj_id, text, named, template, motion_template)


# -------------------------------------------------------------------------------------------- writers


def _a2d_annotated_frames(frames: int) -> list[int]:
    """1-based numbers of the A2D annotated frames: every 4th frame starting at the 3rd."""
    return list(range(A2D_ANNOTATION_STRIDE // 2 + 1, frames + 1, A2D_ANNOTATION_STRIDE))


def _a2d_class_id(obj: SyntheticObject) -> int:
    """An A2D-like two-digit actor-action id: shape index (actor) and direction index (action), 1-based."""
    return 10 * (SHAPES.index(obj.shape) + 1) + DIRECTIONS.index(obj.direction) + 1


def a2d_frame_h5(clip: SyntheticClip, frame: int) -> bytes | None:
    """The A2D `.h5` of 1-based `frame` as bytes, or None if no object is visible in it.

    Datasets: instance `[N]` ids; reMask uint8 `[N, W, H]` (N > 1) or `[W, H]` (N == 1), MATLAB-transposed;
    reBBox float `[4, N]` rows x1, y1, x2, y2 (inclusive pixel coords); id `[N]` class ids.
    """
    labels = clip.labels[frame - 1]
    ids = [obj.obj_id for obj in clip.objects if (labels == obj.obj_id).any()]
    if not ids:
        return None
    masks = np.stack([labels == i for i in ids]).astype(np.uint8)  # [N, H, W]
    boxes = np.zeros((4, len(ids)), dtype=np.float64)
    for n, mask in enumerate(masks):
        rows, cols = np.nonzero(mask)
        boxes[:, n] = [cols.min(), rows.min(), cols.max(), rows.max()]
    re_mask = masks.transpose(0, 2, 1) if len(ids) > 1 else masks[0].T
    classes = {obj.obj_id: _a2d_class_id(obj) for obj in clip.objects}
    buffer = io.BytesIO()
    with h5py.File(buffer, "w") as h5:
        # track_times=False keeps the bytes identical between runs
        h5.create_dataset("instance", data=np.array(ids, dtype=np.int64), track_times=False)
        h5.create_dataset("reMask", data=np.ascontiguousarray(re_mask), track_times=False)
        h5.create_dataset("reBBox", data=boxes, track_times=False)
        h5.create_dataset("id", data=np.array([classes[i] for i in ids], dtype=np.int64), track_times=False)
    return buffer.getvalue()


class _A2dWriter:
    """Writes clips in the A2D-Sentences layout; the CSV files are written by `finish`."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.videoset: list[list[str]] = []
        self.queries: list[list[str]] = []

    def add(self, clip: SyntheticClip, split: str) -> None:
        """Write the clip's mp4 and per-frame h5 files; remember its CSV rows."""
        frames = len(clip.frames)
        write_video(self.root / "Release/clips320H" / f"{clip.video_id}.mp4", clip.frames, fps=A2D_FPS)
        annotated = 0
        for frame in _a2d_annotated_frames(frames):
            data = a2d_frame_h5(clip, frame)
            if data is not None:
                folder = self.root / "text_annotations/a2d_annotation_with_instances" / clip.video_id
                write_bytes_atomic(folder / f"{frame:05d}.h5", data)
                annotated += 1
        height, width = clip.labels.shape[1:]
        self.videoset.append(
            [
                clip.video_id,
                str(_a2d_class_id(clip.objects[0])),
                "0",
                f"{frames / A2D_FPS:.2f}",
                str(height),
                str(width),
                str(frames),
                str(annotated),
                "0" if split == "train" else "1",
            ]
        )
        self.queries += [[clip.video_id, str(ref.obj_id), ref.text] for ref in clip.referrals]

    def finish(self) -> None:
        """Write videoset.csv, a2d_annotation.txt and an empty a2d_missed_videos.txt."""
        write_bytes_atomic(self.root / "Release/videoset.csv", _csv(self.videoset))
        annotation = _csv([["video_id", "instance_id", "query"], *self.queries])
        write_bytes_atomic(self.root / "text_annotations/a2d_annotation.txt", annotation)
        write_bytes_atomic(self.root / "text_annotations/a2d_missed_videos.txt", b"")


def _csv(rows: list[list[str]]) -> bytes:
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


def _png_of_labels(labels: np.ndarray) -> bytes:
    """Palette ('P') PNG bytes of a uint8 `[H, W]` id map."""
    image = Image.fromarray(labels, mode="P")
    image.putpalette(ytvos_palette())
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _jpeg_of_frame(frame: np.ndarray) -> bytes:
    """JPEG bytes (quality 95) of an RGB uint8 `[H, W, 3]` frame."""
    buffer = io.BytesIO()
    Image.fromarray(frame).save(buffer, format="JPEG", quality=95)
    return buffer.getvalue()


class _YtvosWriter:
    """Writes clips in the Ref-YouTube-VOS layout; the meta_expressions files are written by `finish`."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.meta: dict[str, dict[str, dict]] = {"train": {}, "valid": {}, "test": {}, "gt": {}}

    def add(self, clip: SyntheticClip, split: str) -> None:
        """Write the clip's JPEG frames (and palette PNG masks for train / valid) and remember its meta."""
        names = [f"{YTVOS_FRAME_STEP * t:05d}" for t in range(len(clip.frames))]
        folder = "train" if split == "train" else "valid"
        for name, frame, labels in zip(names, clip.frames, clip.labels, strict=True):
            write_bytes_atomic(
                self.root / folder / "JPEGImages" / clip.video_id / f"{name}.jpg", _jpeg_of_frame(frame)
            )
            if split != "test":
                write_bytes_atomic(
                    self.root / folder / "Annotations" / clip.video_id / f"{name}.png", _png_of_labels(labels)
                )
        with_ids = {
            str(n): {"exp": ref.text, "obj_id": str(ref.obj_id)} for n, ref in enumerate(clip.referrals)
        }
        without_ids = {key: {"exp": value["exp"]} for key, value in with_ids.items()}
        if split == "train":
            self.meta["train"][clip.video_id] = {"expressions": with_ids, "frames": names}
            return
        self.meta["valid"][clip.video_id] = {"expressions": without_ids, "frames": names}
        if split == "test":
            self.meta["test"][clip.video_id] = {"expressions": without_ids, "frames": names}
        else:
            self.meta["gt"][clip.video_id] = {"expressions": with_ids, "frames": names}

    def finish(self) -> None:
        """Write meta_expressions/{train,valid,test}/meta_expressions.json and the valid ground-truth meta."""
        for split in ("train", "valid", "test"):
            path = self.root / "meta_expressions" / split / "meta_expressions.json"
            write_bytes_atomic(path, json.dumps({"videos": self.meta[split]}).encode())
        write_bytes_atomic(self.root / YTVOS_GT_META, json.dumps({"videos": self.meta["gt"]}).encode())
