"""Writing synthetic clips in the Ref-YouTube-VOS layout (spec §10.3), plus the ground truth of the valid
videos that the real dataset does not ship.

    train/{JPEGImages,Annotations}/<vid>/<frame>.{jpg,png}, valid/JPEGImages/<vid>/<frame>.jpg,
    meta_expressions/{train,valid,test}/meta_expressions.json, valid/Annotations/<vid>/<frame>.png for the
    valid videos (valid minus test), meta_expressions/valid/meta_expressions_gt.json (with obj_id).

Frame names are every 5th number: 00000, 00005, ...
"""

from __future__ import annotations

import json
from pathlib import Path

from rvos_cli.core.mask_png import label_png_bytes
from rvos_cli.data.synthetic.clip import SyntheticClip
from rvos_cli.data.synthetic.encode import jpeg_of_frame
from rvos_cli.fileio import write_bytes_atomic

YTVOS_FRAME_STEP = 5
YTVOS_GT_META = "meta_expressions/valid/meta_expressions_gt.json"


class YtvosWriter:
    """Writes clips in the Ref-YouTube-VOS layout; the meta_expressions files are written by `finish`."""

    splits = ("train", "valid", "test")

    def __init__(self, root: Path) -> None:
        self.root = root
        self.meta: dict[str, dict[str, dict]] = {"train": {}, "valid": {}, "test": {}, "gt": {}}

    def add(self, clip: SyntheticClip, split: str) -> None:
        """Write the clip's JPEG frames (and palette PNG masks for train / valid) and remember its meta."""
        names = [f"{YTVOS_FRAME_STEP * t:05d}" for t in range(len(clip.frames))]
        folder = "train" if split == "train" else "valid"
        for name, frame, labels in zip(names, clip.frames, clip.labels, strict=True):
            write_bytes_atomic(
                self.root / folder / "JPEGImages" / clip.video_id / f"{name}.jpg", jpeg_of_frame(frame)
            )
            if split != "test":
                annotation = self.root / folder / "Annotations" / clip.video_id / f"{name}.png"
                write_bytes_atomic(annotation, label_png_bytes(labels))
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
