"""Writing synthetic clips in the layout of the Ref-DAVIS17 downloads (spec datasets-mevis-davis §2a).

    DAVIS/JPEGImages/480p/<seq>/<#####>.jpg
    DAVIS/Annotations_unsupervised/480p/<seq>/<#####>.png and DAVIS/Annotations/480p/... (the same labels:
        the semi-supervised zip's folder, so `--davis-task semi-supervised` runs too)
    DAVIS/ImageSets/2017/{train,val}.txt, DAVIS/davis_semantics.json (object id → shape)
    davis_text_annotations/Davis17_annot{1,2}[_full_video].txt   annot1 UTF-8, annot2 Latin-1

Every object gets four expressions (its sentences in turn); the full-video ones end in " (vidéo)", so a
file decoded with the wrong encoding shows. The first val sequence is called "classic-car" and the text
files spell it "clasic-car", one of the three typos of the real files.
"""

from __future__ import annotations

import json
from pathlib import Path

from rvos_cli.core.mask_png import label_png_bytes
from rvos_cli.data.synthetic.clip import SyntheticClip
from rvos_cli.data.synthetic.encode import jpeg_of_frame
from rvos_cli.fileio import write_bytes_atomic

DAVIS_SPLITS = ("train", "val")
RUN_FILES = (
    ("Davis17_annot1.txt", "utf-8", ""),
    ("Davis17_annot1_full_video.txt", "utf-8", " (vidéo)"),
    ("Davis17_annot2.txt", "latin-1", ""),
    ("Davis17_annot2_full_video.txt", "latin-1", " (vidéo)"),
)
TYPO_SEQUENCE, TYPO_SPELLING = "classic-car", "clasic-car"


class DavisWriter:
    """Writes clips as DAVIS sequences; lists, semantics and expression files are written by `finish`."""

    splits = DAVIS_SPLITS

    def __init__(self, root: Path) -> None:
        self.root = root
        self.sequences: dict[str, list[str]] = {split: [] for split in DAVIS_SPLITS}
        self.semantics: dict[str, dict[str, str]] = {}
        self.lines: list[list[str]] = [[] for _ in RUN_FILES]

    def add(self, clip: SyntheticClip, split: str) -> int:
        """Write the clip's frames and annotations; remember its expressions. Returns 4 × its objects."""
        sequence = TYPO_SEQUENCE if split == "val" and not self.sequences["val"] else clip.video_id
        for t, (frame, labels) in enumerate(zip(clip.frames, clip.labels, strict=True)):
            write_bytes_atomic(
                self.root / "DAVIS/JPEGImages/480p" / sequence / f"{t:05d}.jpg", jpeg_of_frame(frame)
            )
            png = label_png_bytes(labels)
            for folder in ("Annotations_unsupervised", "Annotations"):
                write_bytes_atomic(self.root / "DAVIS" / folder / "480p" / sequence / f"{t:05d}.png", png)
        self.sequences[split].append(sequence)
        self.semantics[sequence] = {str(o.obj_id): o.shape for o in clip.objects}
        spelling = TYPO_SPELLING if sequence == TYPO_SEQUENCE else sequence
        for obj in clip.objects:
            texts = [ref.text for ref in clip.referrals if ref.obj_id == obj.obj_id]
            for k, (_, _, suffix) in enumerate(RUN_FILES):
                self.lines[k].append(f'{spelling} {obj.obj_id} "{texts[k % len(texts)]}{suffix}"')
        return len(clip.objects) * len(RUN_FILES)

    def finish(self) -> None:
        """Write the ImageSets lists, davis_semantics.json and the four expression files."""
        for split, names in self.sequences.items():
            write_bytes_atomic(
                self.root / f"DAVIS/ImageSets/2017/{split}.txt", "".join(f"{n}\n" for n in names).encode()
            )
        write_bytes_atomic(self.root / "DAVIS/davis_semantics.json", json.dumps(self.semantics).encode())
        for (name, encoding, _), lines in zip(RUN_FILES, self.lines, strict=True):
            write_bytes_atomic(
                self.root / "davis_text_annotations" / name, "\n".join(lines).encode(encoding) + b"\n"
            )
