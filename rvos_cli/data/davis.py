"""Ref-DAVIS17: check the files researchers download and index the sequences, objects and four expressions.

On disk (root), as unzipped (spec datasets-mevis-davis §2a):
    DAVIS/JPEGImages/480p/<seq>/<#####>.jpg
    DAVIS/Annotations_unsupervised/480p/<seq>/<#####>.png   indexed: 0 background, k object k, 255 void
    DAVIS/ImageSets/2017/{train,val}.txt                      one sequence per line
    DAVIS/davis_semantics.json                                {seq: {object id: category}}
    davis_text_annotations/Davis17_annot1.txt, Davis17_annot1_full_video.txt    (UTF-8)
    davis_text_annotations/Davis17_annot2.txt, Davis17_annot2_full_video.txt    (Latin-1)
An expression line is `<sequence> <object id> "<expression>"`; three sequence names in these files are
misspelt and corrected here (`SEQUENCE_TYPOS`). Every object gets one expression per file, so four:
run k = 0 annotator 1 first-frame, 1 annotator 1 full-video, 2 annotator 2 first-frame, 3 annotator 2
full-video (ReferFormer's anno_0..anno_3).

Prepared (out):
    davis_<split>.json   {"sequences": [{"sequence", "frames", "size": [H, W], "objects":
                          [{"obj_id", "category", "expressions": [run 0, 1, 2, 3]}]}]}
    samples_train_w<window>.json   [[sequence, [frame positions], {"exp", "obj_id", "exp_id"}], ...]:
                          each train object × expression × window where the object appears (exp_id
                          4·n + run for the n-th object, as ReferFormer's conversion numbers them)
Written atomically; the download is only read. The published Ref-DAVIS17 numbers come from a
Ref-YouTube-VOS model without fine-tuning; the train samples are for those who fine-tune anyway.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from rvos_cli.core.mask_png import read_label_png
from rvos_cli.data.prepare import BadInput, SkippedItem
from rvos_cli.data.ytvos import train_windows
from rvos_cli.errors import RvosError
from rvos_cli.fileio import read_json, write_json_atomic

IMAGES = "DAVIS/JPEGImages/480p"
ANNOTATIONS = "DAVIS/Annotations_unsupervised/480p"
SEMI_ANNOTATIONS = "DAVIS/Annotations/480p"  # the semi-supervised zip, only for --davis-task semi-supervised
IMAGE_SETS = "DAVIS/ImageSets/2017/{split}.txt"
SEMANTICS = "DAVIS/davis_semantics.json"
TEXT_DIR = "davis_text_annotations"
# (file, encoding) per run k, in run order.
RUN_FILES = (
    ("Davis17_annot1.txt", "utf-8"),
    ("Davis17_annot1_full_video.txt", "utf-8"),
    ("Davis17_annot2.txt", "latin-1"),
    ("Davis17_annot2_full_video.txt", "latin-1"),
)
RUN_NAMES = ("anno_0", "anno_1", "anno_2", "anno_3")
SEQUENCE_TYPOS = {"clasic-car": "classic-car", "dog-scale": "dogs-scale", "motor-bike": "motorbike"}
SPLITS = ("train", "val")
VOID_LABEL = 255
INDEX = "davis_{split}.json"
LINE_FORMAT = '<sequence> <object id> "<expression>"'


@dataclass
class DavisSummary:
    """A `prepare_davis` run: per split (sequences, objects, expressions) and the bad input skipped."""

    out: Path
    splits: dict[str, tuple[int, int, int]] = field(default_factory=dict)
    skipped: list[SkippedItem] = field(default_factory=list)


def parse_expression_line(line: str, path: Path, number: int) -> tuple[str, int, str]:
    """(sequence with typos corrected, object id, expression) of one line of an expression file.

    The expression is the rest of the line without its surrounding double quotes. RvosError naming
    `path:number` for a line that does not have the three fields.
    """
    parts = line.strip().split(maxsplit=2)
    if len(parts) != 3 or not parts[1].isdigit():
        raise RvosError(f"{path}:{number}: expected {LINE_FORMAT}, got {line.strip()!r}")
    sequence, obj_id, text = parts
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] == '"':
        text = text[1:-1]
    return SEQUENCE_TYPOS.get(sequence, sequence), int(obj_id), text.strip()


def read_expression_file(path: Path, encoding: str, bad: BadInput) -> dict[tuple[str, int], str]:
    """{(sequence, object id): expression} of one file decoded with `encoding` (lines in file order)."""
    if not path.is_file():
        raise RvosError(f"{path}: missing (expected the four files of davis_text_annotations.zip)")
    try:
        lines = path.read_bytes().decode(encoding).splitlines()
    except UnicodeDecodeError as error:
        raise RvosError(f"{path}: not {encoding} text (byte {error.start})") from error
    expressions: dict[tuple[str, int], str] = {}
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            sequence, obj_id, text = parse_expression_line(line, path, number)
            if (sequence, obj_id) in expressions:
                raise RvosError(f"{path}:{number}: a second expression for {sequence} object {obj_id}")
        except RvosError as error:
            bad.report_error(error)
            continue
        expressions[(sequence, obj_id)] = text
    return expressions


def read_sequence_list(path: Path) -> list[str]:
    """The sequence names of an ImageSets file, in file order."""
    if not path.is_file():
        raise RvosError(f"{path}: missing (expected the DAVIS 2017 unsupervised trainval download)")
    return [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _sequence_frames(root: Path, sequence: str, listed_in: str) -> tuple[list[str], tuple[int, int], int]:
    """(frame stems, (H, W), number of objects in the first annotation) of one sequence, checked."""
    images, annotations = root / IMAGES / sequence, root / ANNOTATIONS / sequence
    if not images.is_dir():
        raise RvosError(f"{images}: missing (the sequence is listed in {listed_in})")
    frames = sorted(p.stem for p in images.glob("*.jpg"))
    if not frames:
        raise RvosError(f"{images}: holds no .jpg frames")
    missing = [f for f in frames if not (annotations / f"{f}.png").is_file()]
    if missing:
        raise RvosError(f"{annotations / missing[0]}.png: missing (the frame {missing[0]}.jpg exists)")
    first = read_label_png(annotations / f"{frames[0]}.png")
    with Image.open(images / f"{frames[0]}.jpg") as image:
        size = (image.height, image.width)
    if first.shape != size:
        raise RvosError(f"{annotations / frames[0]}.png: size {first.shape} differs from its frame {size}")
    return frames, size, int(np.where(first == VOID_LABEL, 0, first).max())


def _index_sequence(
    root: Path,
    split: str,
    sequence: str,
    runs: list[dict[tuple[str, int], str]],
    semantics: dict,
    bad: BadInput,
) -> dict | None:
    """The index entry of one sequence: its objects with their four expressions (None if left out)."""
    try:
        frames, size, num_objects = _sequence_frames(root, sequence, IMAGE_SETS.format(split=split))
    except RvosError as error:
        bad.report_error(error)
        return None
    objects = []
    for obj_id in range(1, num_objects + 1):
        texts = [run.get((sequence, obj_id)) for run in runs]
        if None in texts:
            missing = RUN_FILES[texts.index(None)][0]
            bad.report(root / TEXT_DIR / missing, f"no expression for {sequence} object {obj_id}")
            continue
        category = semantics.get(sequence, {}).get(str(obj_id)) if isinstance(semantics, dict) else None
        objects.append({"obj_id": obj_id, "category": category, "expressions": texts})
    if not objects:
        return None
    return {"sequence": sequence, "frames": frames, "size": list(size), "objects": objects}


def _check_known_sequences(runs: list[dict], known: set[str], root: Path, bad: BadInput) -> None:
    """Report expressions whose sequence is in no ImageSets list (after the typo corrections)."""
    for (file_name, _), run in zip(RUN_FILES, runs, strict=True):
        for sequence, obj_id in sorted({key for key in run if key[0] not in known}):
            bad.report(
                root / TEXT_DIR / file_name,
                f"sequence {sequence!r} (object {obj_id}) is in no ImageSets list",
            )


def _train_samples(root: Path, entries: list[dict], window: int) -> list[list]:
    """Training windows of the train sequences: per object, expression and window where it appears."""
    samples = []
    for entry in entries:
        folder = root / ANNOTATIONS / entry["sequence"]
        present = [set(np.unique(read_label_png(folder / f"{f}.png")).tolist()) for f in entry["frames"]]
        for n, obj in enumerate(entry["objects"]):
            for chunk in train_windows(list(range(len(entry["frames"]))), window):
                if any(obj["obj_id"] in present[t] for t in chunk):
                    for k, text in enumerate(obj["expressions"]):
                        record = {"exp": text, "obj_id": obj["obj_id"], "exp_id": str(len(RUN_FILES) * n + k)}
                        samples.append([entry["sequence"], chunk, record])
    return samples


def prepare_davis(root: Path, out: Path, skip_bad: bool = False, window: int = 8) -> DavisSummary:
    """Prepare Ref-DAVIS17 found at `root` into `out` (layouts in the module docstring).

    Checks the ImageSets lists, every listed sequence's frames and annotations, the semantics JSON and
    the four expression files (each decoded with its own encoding; malformed lines, duplicates, unknown
    sequences, objects without an expression in every file). Raises RvosError naming file and line or
    key, or with `skip_bad` leaves the item out and lists it. `window` is the training window of the
    train samples. Returns the per-split counts.
    """
    root, out = Path(root), Path(out)
    if window < 1:
        raise RvosError(f"window size must be at least 1, got {window}")
    if not (root / "DAVIS").is_dir():
        raise RvosError(
            f"{root / 'DAVIS'}: missing (expected DAVIS-2017-Unsupervised-trainval-480p.zip unzipped)"
        )
    bad = BadInput(skip_bad)
    semantics = read_json(root / SEMANTICS, "DAVIS semantics JSON")
    splits = {split: read_sequence_list(root / IMAGE_SETS.format(split=split)) for split in SPLITS}
    runs = [read_expression_file(root / TEXT_DIR / name, encoding, bad) for name, encoding in RUN_FILES]
    _check_known_sequences(runs, {s for names in splits.values() for s in names}, root, bad)
    summary = DavisSummary(out=out)
    for split, sequences in splits.items():
        entries = [
            e for s in sequences if (e := _index_sequence(root, split, s, runs, semantics, bad)) is not None
        ]
        write_json_atomic(out / INDEX.format(split=split), {"sequences": entries}, indent=None)
        if split == "train":
            samples = _train_samples(root, entries, window)
            write_json_atomic(out / f"samples_train_w{window}.json", samples, indent=None)
        objects = sum(len(e["objects"]) for e in entries)
        summary.splits[split] = (len(entries), objects, objects * len(RUN_FILES))
    summary.skipped = bad.skipped
    return summary


def load_davis_index(prepared: Path, split: str = "val", root: Path | None = None) -> list[dict]:
    """The prepared sequences of a split, or RvosError naming `rvos prepare davis`."""
    path = Path(prepared) / INDEX.format(split=split)
    if not path.is_file():
        where = f" --root {root}" if root is not None else ""
        raise RvosError(f"{path}: missing; run `rvos prepare davis{where}` first")
    return read_json(path, "prepared Ref-DAVIS17 index")["sequences"]
