"""Shared pieces of the datasets: the summary `prepare_*` returns, bad-input handling, reading prepared
files, COCO ground-truth entries, clip windows, per-sample random generators and the base class of the
sample-list datasets.

Every file a prepare step writes goes through `rvos_cli.fileio` (a hidden temporary file renamed over the
final name when complete), so an interrupted run never leaves a half-written output under its final name;
the next run skips outputs that already exist.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from rvos_cli.core.inference import masks_to_rle
from rvos_cli.errors import RvosError
from rvos_cli.fileio import read_json


@dataclass(frozen=True)
class SkippedItem:
    """One piece of bad input that `--skip-bad` left out: where it is and what is wrong with it."""

    where: str
    problem: str

    def __str__(self) -> str:
        return f"{self.where}: {self.problem}"


@dataclass
class PrepareSummary:
    """What a prepare run produced.

    `videos` counts the videos that made it into at least one split, `samples` maps split name to sample
    count, `frames_written`/`frames_reused` count clip frame caches written by this run or found from an
    earlier one, `skipped` lists the bad inputs left out (only non-empty with skip_bad=True).
    """

    dataset: str
    out: Path
    videos: int = 0
    samples: dict[str, int] = field(default_factory=dict)
    frames_written: int = 0
    frames_reused: int = 0
    skipped: list[SkippedItem] = field(default_factory=list)


class BadInput:
    """Collects bad-input reports: raises at the first one, or records it when skipping bad input.

    `report(where, problem)` raises `RvosError("<where>: <problem>")` unless `skip_bad` is set, in which
    case the item is appended to `skipped` and the caller leaves it out and goes on.
    """

    def __init__(self, skip_bad: bool) -> None:
        self.skip_bad = skip_bad
        self.skipped: list[SkippedItem] = []

    def report(self, where: str | Path, problem: str) -> None:
        """Raise, or record when skipping, the bad input `where` with what is wrong with it."""
        item = SkippedItem(str(where), problem)
        if not self.skip_bad:
            raise RvosError(str(item))
        self.skipped.append(item)

    def report_error(self, error: RvosError) -> None:
        """Raise `error` again, or record it (its message already names the file) when skipping."""
        if not self.skip_bad:
            raise error
        where, _, problem = str(error).partition(": ")
        self.skipped.append(SkippedItem(where, problem))


def coco_gt_entry(image_id: str, mask: np.ndarray, bbox: list[float] | None = None) -> tuple[dict, dict]:
    """The COCO image and annotation (without its id) of one referred mask `[H, W]` at the original size:
    RLE segmentation, area = pixel count, category 1, and `bbox` [x, y, w, h] when the dataset has one."""
    image = {"id": image_id, "height": int(mask.shape[0]), "width": int(mask.shape[1])}
    ann = {
        "image_id": image_id,
        "category_id": 1,
        "segmentation": masks_to_rle(mask[None])[0],
        "area": float(mask.sum()),
        **({"bbox": bbox} if bbox is not None else {}),
        "iscrowd": 0,
    }
    return image, ann


def require_paths(root: Path, relative: list[str], layout: str) -> None:
    """Raise RvosError naming the first of `root/relative[i]` that does not exist.

    `layout` names the dataset so the message can say which download layout was expected.
    """
    if not root.is_dir():
        raise RvosError(f"{root}: no such folder (expected the {layout} root)")
    for rel in relative:
        if not (root / rel).exists():
            raise RvosError(f"{root / rel}: missing (expected the {layout} download layout)")


def not_utf8_error(path: Path) -> RvosError:
    """The error for a text file that is not UTF-8, naming the line and the first offending byte."""
    data = Path(path).read_bytes()
    try:
        data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        return RvosError(
            f"{path}:{line}: not UTF-8 text (byte 0x{data[error.start]:02x}); save the file as UTF-8"
        )
    return RvosError(f"{path}: not UTF-8 text; save the file as UTF-8")


def read_csv_rows(path: Path) -> Iterator[tuple[int, list[str]]]:
    """Yield (1-based line number, fields) for every non-blank row of a CSV file.

    Bytes that are not UTF-8 or a malformed CSV line raise RvosError naming the file and line.
    """
    with open(path, encoding="utf-8-sig", newline="") as handle:
        reader = csv.reader(handle)
        try:
            for row in reader:
                if row and any(cell.strip() for cell in row):
                    yield reader.line_num, row
        except UnicodeDecodeError:
            raise not_utf8_error(path) from None
        except csv.Error as error:
            raise RvosError(f"{path}:{reader.line_num}: not a valid CSV line ({error})") from None


def read_text_lines(path: Path) -> list[str]:
    """The non-blank lines of a UTF-8 text file, stripped; RvosError naming the file if it is not UTF-8."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise not_utf8_error(path) from None
    return [line.strip() for line in text.splitlines() if line.strip()]


def load_prepared(prepared: Path, name: str, command: str) -> Any:
    """Read the prepared JSON file `prepared/name`, telling the user to run `command` when it is missing."""
    path = Path(prepared) / name
    if not path.is_file():
        raise RvosError(f"{path}: missing; run `{command}` first")
    return read_json(path, "prepared file")


def window_indices(center: int, window: int, low: int, high: int) -> list[int]:
    """Indices `center - window//2 ... center + (window+1)//2 - 1`, each clamped to [low, high].

    The centre sits at position window//2; near the ends of a video the edge frame repeats.
    """
    start = center - window // 2
    return [min(max(start + k, low), high) for k in range(window)]


def sample_generator(seed: int, epoch: int, index: int) -> torch.Generator:
    """A torch.Generator seeded from (seed, epoch, sample index), so a sample's augmentation does not
    depend on which DataLoader worker draws it."""
    state = int(np.random.SeedSequence([seed, epoch, index]).generate_state(1)[0])
    return torch.Generator().manual_seed(state)


class SeededSamples(Dataset):
    """Base of the datasets over a prepared sample list: `len`, `set_epoch` and each sample's generator.

    Subclasses set `self.samples` (the list) and `self.seed`. A sample's random augmentation depends only on
    (seed, epoch, index), never on which DataLoader worker draws it.
    """

    samples: list
    seed: int = 42
    epoch: int = 0

    def set_epoch(self, epoch: int) -> None:
        """Change the epoch that (with the seed and index) determines each sample's random flip."""
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.samples)

    def generator(self, index: int) -> torch.Generator:
        """The torch.Generator of sample `index` in the current epoch (see `sample_generator`)."""
        return sample_generator(self.seed, self.epoch, index)
