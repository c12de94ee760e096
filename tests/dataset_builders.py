"""Tiny dataset downloads written by tests: a MeViS tree and a Ref-DAVIS17 tree (real layouts, real files)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

from rvos_cli.core.inference import masks_to_rle
from rvos_cli.core.mask_png import davis_palette
from rvos_cli.data.davis import RUN_FILES

MEVIS_H, MEVIS_W = 16, 20


def square(top: int, left: int) -> dict:
    mask = np.zeros((1, MEVIS_H, MEVIS_W), dtype=bool)
    mask[0, top : top + 4, left : left + 4] = True
    return masks_to_rle(mask)[0]


def write_split(root: Path, split: str, videos: dict, mask_dict: dict | None) -> None:
    for video, record in videos.items():
        folder = root / split / "JPEGImages" / video
        folder.mkdir(parents=True, exist_ok=True)
        for frame in record["frames"]:
            Image.fromarray(np.full((MEVIS_H, MEVIS_W, 3), 100, np.uint8)).save(folder / f"{frame}.jpg")
    (root / split / "meta_expressions.json").write_text(json.dumps({"videos": videos}))
    if mask_dict is not None:
        (root / split / "mask_dict.json").write_text(json.dumps(mask_dict))


def make_mevis(root: Path) -> Path:
    """train: one 3-frame video with objects 10 (all frames) and 11 (frame 0 only) and a single-object,
    a multi-object and a no-target expression; valid_u: one video, one expression; valid: no GT."""
    frames = ["00000", "00001", "00002"]
    train = {
        "abc": {
            "frames": frames,
            "expressions": {
                "0": {"exp": "The  Cat", "obj_id": [0], "anno_id": [10]},
                "1": {"exp": "two animals", "obj_id": [0, 1], "anno_id": [10, "11"]},
                "2": {"exp": "a dog", "obj_id": [], "anno_id": []},
            },
        }
    }
    masks = {"10": [square(0, 0)] * 3, "11": [square(8, 8), None, None]}
    write_split(root, "train", train, masks)
    valid_u = {
        "vu1": {"frames": frames[:2], "expressions": {"0": {"exp": "x", "obj_id": [0], "anno_id": [5]}}}
    }
    write_split(root, "valid_u", valid_u, {"5": [None, square(2, 2)]})
    write_split(root, "valid", {"vv1": {"frames": frames[:1], "expressions": {"0": {"exp": "y"}}}}, None)
    return root


DAVIS_H, DAVIS_W = 12, 16


def write_sequence(root: Path, sequence: str, objects: int, frames: int = 2) -> None:
    images = root / "DAVIS/JPEGImages/480p" / sequence
    annotations = root / "DAVIS/Annotations_unsupervised/480p" / sequence
    images.mkdir(parents=True)
    annotations.mkdir(parents=True)
    for t in range(frames):
        Image.fromarray(np.zeros((DAVIS_H, DAVIS_W, 3), np.uint8)).save(images / f"{t:05d}.jpg")
        labels = np.zeros((DAVIS_H, DAVIS_W), np.uint8)
        for k in range(1, objects + 1):
            labels[k, k] = k
        labels[-1, -1] = 255
        image = Image.fromarray(labels, mode="P")
        image.putpalette(davis_palette())
        image.save(annotations / f"{t:05d}.png")


def write_text(root: Path, lines: list[list[str]]) -> None:
    """lines[k] = the lines of run file k (annot1 files UTF-8, annot2 files Latin-1)."""
    folder = root / "davis_text_annotations"
    folder.mkdir(parents=True, exist_ok=True)
    for (name, encoding), content in zip(RUN_FILES, lines, strict=True):
        (folder / name).write_bytes("\n".join(content).encode(encoding))


def make_davis(root: Path) -> Path:
    write_sequence(root, "classic-car", objects=2, frames=3)
    write_sequence(root, "dogs-scale", objects=1)
    (root / "DAVIS/ImageSets/2017").mkdir(parents=True)
    (root / "DAVIS/ImageSets/2017/train.txt").write_text("dogs-scale\n")
    (root / "DAVIS/ImageSets/2017/val.txt").write_text("classic-car\n")
    (root / "DAVIS/davis_semantics.json").write_text(json.dumps({"classic-car": {"1": "car", "2": "person"}}))
    write_text(
        root,
        [
            [f'clasic-car {k} "car {k} first, café"' for k in (1, 2)] + ['dog-scale 1 "dog"'],
            [f'classic-car {k} "car {k} full"' for k in (1, 2)] + ['dogs-scale 1 "dog full"'],
            [f'classic-car {k} "voiture {k} à gauche"' for k in (1, 2)] + ['dogs-scale 1 "chien"'],
            [f'classic-car {k}   "car {k} b full"  ' for k in (2, 1)] + ['dogs-scale 1 "chien full"'],
        ],
    )
    return root
