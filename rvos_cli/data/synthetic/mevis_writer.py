"""Writing synthetic clips in the MeViS layout (spec datasets-mevis-davis §1a), with expressions that refer
to one object, to several, and to none.

    <split>/JPEGImages/<vid>/<frame>.jpg           split = train, valid_u, valid; frames 00000, 00001, ...
    <split>/meta_expressions.json                  expressions with obj_id / anno_id lists (none for valid)
    <split>/mask_dict.json                         train and valid_u: {anno_id: [RLE or null per frame]}

Per clip: every single-object sentence of the clip; one multi-object expression per colour or shape that
two or more objects share, plus "all the objects"; and one no-target expression naming a colour×shape
pair that no object of the clip has (empty obj_id and anno_id lists, the MeViS v2 convention assumed by
rvos). anno_ids are numbered across the split.
"""

from __future__ import annotations

import json
import zlib
from pathlib import Path

import numpy as np

from rvos_cli.core.inference import masks_to_rle
from rvos_cli.data.synthetic.attributes import COLOURS, SHAPES
from rvos_cli.data.synthetic.clip import SyntheticClip, SyntheticObject
from rvos_cli.data.synthetic.encode import jpeg_of_frame
from rvos_cli.fileio import write_bytes_atomic

MEVIS_SPLITS = ("train", "valid_u", "valid")


def group_expressions(objects: list[SyntheticObject]) -> list[tuple[str, list[int]]]:
    """(sentence, referred obj_ids) for the groups of two or more objects sharing a colour or a shape,
    then "all the objects" (every clip has at least two objects)."""
    groups = []
    for colour in COLOURS:
        ids = [o.obj_id for o in objects if o.colour == colour]
        if len(ids) > 1:
            groups.append((f"the {colour} objects", ids))
    for shape in SHAPES:
        ids = [o.obj_id for o in objects if o.shape == shape]
        if len(ids) > 1:
            groups.append((f"the {shape}s", ids))
    groups.append(("all the objects", [o.obj_id for o in objects]))
    return groups


def no_target_expression(objects: list[SyntheticObject], rng: np.random.Generator) -> str:
    """A sentence naming a colour×shape pair that no object of the clip has."""
    present = {(o.colour, o.shape) for o in objects}
    absent = [(c, s) for c in COLOURS for s in SHAPES if (c, s) not in present]
    colour, shape = absent[int(rng.integers(len(absent)))]
    return f"the {colour} {shape}"


def mevis_expressions(clip: SyntheticClip, rng: np.random.Generator) -> list[tuple[str, list[int]]]:
    """All (sentence, referred obj_ids) of a clip: single-object, multi-object, then one no-target."""
    single = [(ref.text, [ref.obj_id]) for ref in clip.referrals]
    return [*single, *group_expressions(clip.objects), (no_target_expression(clip.objects, rng), [])]


class MevisWriter:
    """Writes clips in the MeViS layout; meta_expressions.json and mask_dict.json are written by `finish`."""

    splits = MEVIS_SPLITS

    def __init__(self, root: Path, seed: int = 0) -> None:
        self.root = root
        self.seed = seed
        self.meta: dict[str, dict] = {split: {} for split in MEVIS_SPLITS}
        self.masks: dict[str, dict] = {"train": {}, "valid_u": {}}

    def add(self, clip: SyntheticClip, split: str) -> int:
        """Write the clip's frames, remember its expressions and masks; returns its expression count."""
        names = [f"{t:05d}" for t in range(len(clip.frames))]
        for name, frame in zip(names, clip.frames, strict=True):
            write_bytes_atomic(
                self.root / split / "JPEGImages" / clip.video_id / f"{name}.jpg", jpeg_of_frame(frame)
            )
        # A generator of its own, so the clips themselves stay those of the other formats.
        rng = np.random.default_rng([self.seed, zlib.crc32(clip.video_id.encode())])
        expressions = mevis_expressions(clip, rng)
        anno_of = {}
        if split in self.masks:
            for obj in clip.objects:
                anno_of[obj.obj_id] = str(len(self.masks[split]))
                self.masks[split][anno_of[obj.obj_id]] = self._track(clip.labels == obj.obj_id)
        records = {}
        for n, (text, ids) in enumerate(expressions):
            record: dict = {"exp": text}
            if split in self.masks:
                record["obj_id"] = [i - 1 for i in ids]
                record["anno_id"] = [int(anno_of[i]) for i in ids]
            records[str(n)] = record
        self.meta[split][clip.video_id] = {"expressions": records, "frames": names}
        return len(expressions)

    @staticmethod
    def _track(masks: np.ndarray) -> list[dict | None]:
        """Per-frame COCO RLEs of a bool `[T, H, W]` mask stack, None where the object is not visible."""
        return [masks_to_rle(mask[None])[0] if mask.any() else None for mask in masks]

    def finish(self) -> None:
        """Write every split's meta_expressions.json and (train, valid_u) mask_dict.json."""
        for split in MEVIS_SPLITS:
            meta = json.dumps({"videos": self.meta[split]}).encode()
            write_bytes_atomic(self.root / split / "meta_expressions.json", meta)
        for split, masks in self.masks.items():
            write_bytes_atomic(self.root / split / "mask_dict.json", json.dumps(masks).encode())
