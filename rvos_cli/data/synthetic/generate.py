"""Generating a synthetic referring-video dataset: one clip per index, drawn and written split by split.

Everything is drawn from numpy Generators seeded by (seed, video index, held out), so a seed fixes the
dataset; re-running with the same arguments rewrites byte-identical files.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
from tqdm import tqdm

from rvos_cli.data.synthetic.a2d_writer import A2dWriter
from rvos_cli.data.synthetic.attributes import DIFFICULTIES
from rvos_cli.data.synthetic.clip import A2D_ANNOTATION_STRIDE, SyntheticClip, video_id_for
from rvos_cli.data.synthetic.davis_writer import DavisWriter
from rvos_cli.data.synthetic.mevis_writer import MevisWriter
from rvos_cli.data.synthetic.scene import (
    draw_background,
    draw_objects,
    draw_track,
    is_visible_enough,
    render,
)
from rvos_cli.data.synthetic.sentences import refer
from rvos_cli.data.synthetic.ytvos_writer import YtvosWriter
from rvos_cli.errors import RvosError

MAX_ATTEMPTS = 200
FORMATS = ("a2d", "ytvos", "mevis", "davis")
Format = Literal["a2d", "ytvos", "mevis", "davis"]


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


def split_plan(num_videos: int, fmt: Format) -> list[str]:
    """Split name per video index: the last quarter (at least one video) is held out.

    A2D: "train" / "test". YTVOS: "train" / "valid" / "test", the last third of the held-out videos being
    the competition test videos (listed in both the valid and the test meta_expressions). MeViS: "train" /
    "valid_u" / "valid" (at least two held out from 4 videos on, so both have one). DAVIS: "train" / "val".
    """
    held = max(1, num_videos // 4)
    if fmt == "a2d":
        return ["train"] * (num_videos - held) + ["test"] * held
    if fmt == "davis":
        return ["train"] * (num_videos - held) + ["val"] * held
    if fmt == "mevis":
        held = max(held, 2) if num_videos >= 4 else held
        valid = held // 2
        return ["train"] * (num_videos - held) + ["valid_u"] * (held - valid) + ["valid"] * valid
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
        objects = draw_objects(rng, held_out, distinct_colours=difficulty == "basic")
        tracks = [draw_track(rng, obj, frames_per_video, height, width) for obj in objects]
        background = draw_background(rng, frames_per_video, height, width)
        frames, labels = render(rng, background, objects, tracks)
        if all(is_visible_enough(labels, obj.obj_id) for obj in objects):
            referrals = [
                ref
                for obj in objects
                for ref in refer(rng, obj, objects, held_out, max_sentences, DIFFICULTIES[difficulty])
            ]
            return SyntheticClip(video_id_for(index), held_out, objects, referrals, frames, labels)
    raise RvosError(
        f"could not place the objects of clip {index} in a {height}x{width} frame; use a larger size"
    )


def generate_synthetic(
    out: Path,
    num_videos: int,
    seed: int,
    fmt: Format,
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
    writers = {"a2d": A2dWriter, "ytvos": YtvosWriter, "davis": DavisWriter}
    writer = MevisWriter(out, seed) if fmt == "mevis" else writers[fmt](out)
    summary = SyntheticSummary(fmt=fmt, root=out)
    for split in writer.splits:
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
        added = writer.add(clip, split)  # the MeViS and DAVIS writers count their own expressions
        summary.videos[split] += 1
        summary.sentences[split] += len(clip.referrals) if added is None else added
    writer.finish()
    return summary


def sentences_per_object(fmt: Format, split: str) -> int:
    """The most sentences an object gets: one in the A2D test split, whose COCO ground truth allows a
    single query per (video, instance); two elsewhere."""
    return 1 if fmt == "a2d" and split == "test" else 2


def _check_arguments(
    num_videos: int, fmt: str, frames_per_video: int, size: tuple[int, int], difficulty: str
) -> None:
    """Raise RvosError for arguments the generator cannot honour."""
    if difficulty not in DIFFICULTIES:
        raise RvosError(f"unknown difficulty {difficulty!r}; expected one of {', '.join(DIFFICULTIES)}")
    if fmt not in FORMATS:
        raise RvosError(f"unknown synthetic format {fmt!r}; expected one of {', '.join(FORMATS)}")
    if num_videos < 2:
        raise RvosError(f"num_videos must be at least 2 (a train and a held-out video), got {num_videos}")
    if frames_per_video < A2D_ANNOTATION_STRIDE:
        raise RvosError(f"frames_per_video must be at least {A2D_ANNOTATION_STRIDE}, got {frames_per_video}")
    if min(size) < 32:
        raise RvosError(f"frame size must be at least 32x32, got {size[0]}x{size[1]}")
