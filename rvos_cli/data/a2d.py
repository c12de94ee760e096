"""A2D-Sentences: read the download as it lies on disk, prepare sample lists, COCO ground truth and a
frame cache, and serve training/evaluation clips.

On disk (root):
    Release/videoset.csv                       no header; 9 columns, column 1 video id, column 9 subset
    Release/clips320H/<video_id>.mp4
    text_annotations/a2d_annotation.txt        CSV with header video_id,instance_id,query
    text_annotations/a2d_missed_videos.txt     one video id per line, left out of both splits
    text_annotations/a2d_annotation_with_instances/<video_id>/<frame:05d>.h5
        instance [N] ids present in the frame; reMask MATLAB-transposed: [W, H] if N == 1 else [N, W, H];
        reBBox [4, N] rows x1, y1, x2, y2

Prepared (out):
    samples_{train,test}.json   [[query, video_id, frame_idx (1-based), instance_id], ...]
    coco_gt_test.json           one image + one annotation per test sample (referred instance's mask)
    videos.json                 {video_id: {num_frames, height, width}} from decoding every clip
    frames/<video_id>.npy       every decoded frame, uint8 [N, H, W, 3] (read through a memory map)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np
import torch
from tqdm import tqdm

from rvos_cli.core.model.text_encoder import normalize_sentence
from rvos_cli.data.prepare import (
    BadInput,
    PrepareSummary,
    SeededSamples,
    coco_gt_entry,
    load_prepared,
    read_csv_rows,
    read_text_lines,
    require_paths,
    window_indices,
)
from rvos_cli.data.video_io import iter_frames, read_frames
from rvos_cli.errors import RvosError
from rvos_cli.fileio import save_npy_atomic, write_json_atomic

VIDEOSET = "Release/videoset.csv"
CLIPS = "Release/clips320H"
ANNOTATIONS = "text_annotations/a2d_annotation.txt"
MISSED = "text_annotations/a2d_missed_videos.txt"
INSTANCES = "text_annotations/a2d_annotation_with_instances"
SUBSETS = {0: "train", 1: "test"}
VIDEOSET_COLUMNS = 9
ANNOTATION_HEADER = ["video_id", "instance_id", "query"]
COPY_INSTANCE = "1 (copy)"  # one duplicated row of the official file, dropped like the official code does


@dataclass(frozen=True)
class FrameAnnotation:
    """One annotated frame: instance ids `[N]`, masks uint8 `[N, H, W]`, boxes `[N, 4]` (x1, y1, x2, y2)."""

    instances: list[int]
    masks: np.ndarray
    boxes: np.ndarray


@dataclass(frozen=True)
class _QueryRow:
    line: int
    video_id: str
    instance_id: int
    query: str


def read_frame_annotation(path: Path) -> FrameAnnotation:
    """Read one A2D `<frame>.h5`, undoing the MATLAB transpose of the masks.

    Returns the instance ids, binary masks uint8 `[N, H, W]` and boxes `[N, 4]` (x1, y1, x2, y2);
    raises RvosError naming the file when it is unreadable or its arrays do not fit together.
    """
    try:
        with h5py.File(path, "r") as handle:
            instances = np.asarray(handle["instance"]).reshape(-1)
            masks = np.asarray(handle["reMask"])
            boxes = np.asarray(handle["reBBox"], dtype=np.float64)
    except (OSError, KeyError) as error:
        raise RvosError(
            f"{path}: not a readable A2D annotation (.h5 with instance, reMask, reBBox): {error}"
        ) from error
    count = len(instances)
    if count == 0 or not np.all(np.equal(np.mod(instances, 1), 0)):
        raise RvosError(f"{path}: 'instance' must list one or more integer ids, got {instances.tolist()}")
    if masks.ndim == 2 and count == 1:
        masks = masks[None]
    if masks.ndim != 3 or masks.shape[0] != count:
        raise RvosError(
            f"{path}: reMask has shape {list(masks.shape)}, expected [W, H] for one instance "
            f"or [N, W, H] for N = {count}"
        )
    if boxes.size != 4 * count:
        raise RvosError(f"{path}: reBBox has shape {list(boxes.shape)}, expected [4, {count}]")
    return FrameAnnotation(
        instances=[int(i) for i in instances],
        masks=np.ascontiguousarray((masks > 0).astype(np.uint8).transpose(0, 2, 1)),  # [N, H, W]
        boxes=boxes.reshape(4, count).T,
    )


def _read_videoset(path: Path, bad: BadInput) -> dict[str, str]:
    """Map video id → "train"/"test" from videoset.csv (rows in file order)."""
    splits: dict[str, str] = {}
    for line, row in read_csv_rows(path):
        where = f"{path}:{line}"
        if len(row) != VIDEOSET_COLUMNS:
            bad.report(where, f"expected {VIDEOSET_COLUMNS} comma-separated columns, got {len(row)}")
            continue
        try:
            subset = int(row[8])
        except ValueError:
            subset = -1
        if subset not in SUBSETS:
            bad.report(where, f"subset (column 9) must be 0 (train) or 1 (test), got {row[8]!r}")
            continue
        splits[row[0].strip()] = SUBSETS[subset]
    return splits


def _read_query_rows(path: Path, known: dict[str, str], missed: set[str], bad: BadInput) -> list[_QueryRow]:
    """The usable rows of a2d_annotation.txt, in file order, with queries normalised."""
    rows = read_csv_rows(path)
    first = next(rows, None)
    if first is None or [cell.strip() for cell in first[1]] != ANNOTATION_HEADER:
        raise RvosError(f"{path}:1: expected the header {','.join(ANNOTATION_HEADER)}")
    result = []
    for line, row in rows:
        where = f"{path}:{line}"
        if len(row) != len(ANNOTATION_HEADER):
            bad.report(where, f"expected 3 columns (video_id,instance_id,query), got {len(row)}")
            continue
        video_id, instance, query = row[0].strip(), row[1].strip(), row[2]
        if instance == COPY_INSTANCE:
            continue
        if not instance.isdigit():
            bad.report(where, f"instance_id must be an integer, got {instance!r}")
            continue
        if video_id not in known:
            bad.report(where, f"video {video_id!r} is not listed in {VIDEOSET}")
            continue
        if video_id not in missed:
            result.append(_QueryRow(line, video_id, int(instance), normalize_sentence(query)))
    return result


def _read_video_annotations(folder: Path) -> dict[int, FrameAnnotation]:
    """All annotated frames of one video: 1-based frame number → FrameAnnotation, ascending."""
    if not folder.is_dir():
        raise RvosError(f"{folder}: missing (expected one <frame:05d>.h5 per annotated frame)")
    frames = {}
    for path in sorted(folder.glob("*.h5")):
        if not path.stem.isdigit():
            raise RvosError(f"{path}: expected a file name <frame number>.h5")
        frames[int(path.stem)] = read_frame_annotation(path)
    if not frames:
        raise RvosError(f"{folder}: holds no <frame:05d>.h5 annotation")
    return frames


def _cache_clip(mp4: Path, cache: Path | None) -> tuple[tuple[int, int, int], bool]:
    """Decode a clip once; save it to `cache` (unless None or already there). Returns ((N, H, W), written)."""
    if cache is not None and cache.is_file():
        return tuple(np.load(cache, mmap_mode="r").shape[:3]), False
    if cache is None:
        count, shape = 0, (0, 0)
        for frame in iter_frames(mp4):
            count, shape = count + 1, frame.shape[:2]
        if count == 0:
            raise RvosError(f"{mp4}: the video holds no decodable frame")
        return (count, *shape), False
    frames = read_frames(mp4)  # [N, H, W, 3]
    save_npy_atomic(cache, frames)
    return frames.shape[:3], True


@dataclass
class _A2dOutputs:
    """What the per-video pass collects: samples per query row (by CSV line), test GT per image, sizes."""

    row_samples: dict[int, list[list]] = field(default_factory=dict)
    gt_by_image: dict[str, tuple[dict, dict]] = field(default_factory=dict)
    videos: dict[str, dict[str, int]] = field(default_factory=dict)


def prepare_a2d(root: Path, out: Path, skip_bad: bool = False, cache_frames: bool = True) -> PrepareSummary:
    """Prepare A2D-Sentences found at `root` into `out`; see the module docstring for both layouts.

    Samples: for every query row of a split (file order; "1 (copy)" rows and missed videos dropped) and
    every annotated frame (ascending) in which the row's instance appears, one sample. The test split also
    gets its COCO ground truth. Every clip that has a sample is decoded once (a truncated or undecodable
    mp4 is bad input) and, with `cache_frames`, saved to frames/<video_id>.npy (~N·H·W·3 bytes per clip;
    clips cached by an earlier run are reused). With `skip_bad`, bad rows/videos are left out and listed
    in the summary; otherwise the first one raises RvosError "<file>[:<line>]: <problem>".
    """
    root, out = Path(root), Path(out)
    require_paths(root, [VIDEOSET, CLIPS, ANNOTATIONS, MISSED, INSTANCES], "A2D-Sentences")
    bad = BadInput(skip_bad)
    splits = _read_videoset(root / VIDEOSET, bad)
    missed = set(read_text_lines(root / MISSED))
    rows = _read_query_rows(root / ANNOTATIONS, splits, missed, bad)
    summary = PrepareSummary(dataset="a2d", out=out)

    rows_by_video: dict[str, list[_QueryRow]] = {}
    for row in rows:
        rows_by_video.setdefault(row.video_id, []).append(row)
    collected = _A2dOutputs()
    for video_id in tqdm(sorted(rows_by_video), desc="a2d clips", unit="clip", leave=False):
        cache = out / "frames" / f"{video_id}.npy" if cache_frames else None
        video_rows = rows_by_video[video_id]
        _collect_video(root, video_id, splits[video_id], video_rows, cache, bad, summary, collected)

    samples: dict[str, list[list]] = {"train": [], "test": []}
    for row in rows:
        if row.line in collected.row_samples:
            samples[splits[row.video_id]].extend(collected.row_samples[row.line])
    write_json_atomic(out / "samples_train.json", samples["train"], indent=None)
    write_json_atomic(out / "samples_test.json", samples["test"], indent=None)
    coco_gt = _coco_gt(samples["test"], collected.gt_by_image)
    write_json_atomic(out / "coco_gt_test.json", coco_gt, indent=None)
    write_json_atomic(out / "videos.json", collected.videos, indent=None)
    summary.videos = len(collected.videos)
    summary.samples = {split: len(items) for split, items in samples.items()}
    summary.skipped = bad.skipped
    return summary


def _collect_video(
    root: Path,
    video_id: str,
    split: str,
    rows: list[_QueryRow],
    cache: Path | None,
    bad: BadInput,
    summary: PrepareSummary,
    collected: _A2dOutputs,
) -> None:
    """Decode (and cache) one clip, check its masks' size, and add its samples and test GT to `collected`.

    Bad input is reported to `bad` (the video is then left out); frame-cache counts go to `summary`.
    """
    try:
        annotations = _read_video_annotations(root / INSTANCES / video_id)
        mp4 = root / CLIPS / f"{video_id}.mp4"
        (num_frames, height, width), written = _cache_clip(mp4, cache)
    except RvosError as error:
        bad.report_error(error)
        return
    if cache is not None:
        summary.frames_written += int(written)
        summary.frames_reused += int(not written)
    mismatched = [f for f, a in annotations.items() if a.masks.shape[1:] != (height, width)]
    if mismatched:
        where = root / INSTANCES / video_id / f"{mismatched[0]:05d}.h5"
        size = list(annotations[mismatched[0]].masks.shape[1:])
        bad.report(where, f"mask size {size} differs from the video's [{height}, {width}] ({mp4.name})")
        return
    kept = _video_samples(root, video_id, split, rows, annotations, bad)
    for row, samples in kept:
        collected.row_samples[row.line] = samples
        if split == "test":
            for sample in samples:
                image_id, gt = _coco_entry(sample, annotations[sample[2]])
                collected.gt_by_image[image_id] = gt
    if kept:
        collected.videos[video_id] = {"num_frames": num_frames, "height": height, "width": width}


def _video_samples(
    root: Path,
    video_id: str,
    split: str,
    rows: list[_QueryRow],
    annotations: dict[int, FrameAnnotation],
    bad: BadInput,
) -> list[tuple[_QueryRow, list[list]]]:
    """The samples of each query row of one video; rows whose instance is in no frame are bad input."""
    kept = []
    seen: dict[int, int] = {}
    for row in rows:
        where = f"{root / ANNOTATIONS}:{row.line}"
        frames = [f for f, a in annotations.items() if row.instance_id in a.instances]
        if not frames:
            bad.report(where, f"instance {row.instance_id} of video {video_id} is in no frame of {INSTANCES}")
            continue
        if split == "test" and row.instance_id in seen:
            bad.report(
                where,
                f"instance {row.instance_id} of test video {video_id} already has a query on line "
                f"{seen[row.instance_id]} (COCO image ids must be unique)",
            )
            continue
        seen[row.instance_id] = row.line
        kept.append((row, [[row.query, video_id, frame, row.instance_id] for frame in frames]))
    return kept


def _image_id(video_id: str, frame_idx: int, instance_id: int) -> str:
    return f"v_{video_id}_f_{frame_idx}_i_{instance_id}"


def _coco_entry(sample: list, annotation: FrameAnnotation) -> tuple[str, tuple[dict, dict]]:
    """The COCO image and annotation (without its id) of one test sample's referred instance."""
    _, video_id, frame_idx, instance_id = sample
    index = annotation.instances.index(instance_id)
    mask = annotation.masks[index]  # [H, W]
    x1, y1, x2, y2 = (float(v) for v in annotation.boxes[index])
    image_id = _image_id(video_id, frame_idx, instance_id)
    image, ann = coco_gt_entry(image_id, mask, [x1, y1, x2 - x1, y2 - y1])
    return image_id, (image, ann)


def _coco_gt(test_samples: list[list], gt_by_image: dict[str, tuple[dict, dict]]) -> dict:
    """COCO ground truth: one image and one annotation (ids 1..) per test sample, in sample order."""
    images, annotations = [], []
    for number, sample in enumerate(test_samples, start=1):
        image, ann = gt_by_image[_image_id(*sample[1:])]
        images.append(image)
        annotations.append({"id": number, **ann})
    return {"images": images, "annotations": annotations, "categories": [{"id": 1, "name": "dummy_class"}]}


class A2DSentencesDataset(SeededSamples):
    """A2D-Sentences clips: a window of `window` frames around each sample's annotated frame.

    Item: dict with `frames` float `[T, 3, h, w]` (T = window), `text`, `valid_indices` [T//2] and
    `targets` (None except at T//2: `masks` bool `[N, h, w]` of all instances of the frame,
    `referred_instance_idx`, `area`, `iscrowd`, `orig_size`, `size`, `image_id`).
    """

    def __init__(
        self,
        prepared: Path,
        root: Path,
        split: str,
        window: int,
        transforms: Callable,
        seed: int = 42,
    ) -> None:
        if split not in SUBSETS.values():
            raise RvosError(f"A2D-Sentences split must be 'train' or 'test', got {split!r}")
        if window < 1:
            raise RvosError(f"window size must be at least 1, got {window}")
        self.prepared, self.root = Path(prepared), Path(root)
        self.samples = load_prepared(self.prepared, f"samples_{split}.json", "rvos prepare a2d")
        self.videos = load_prepared(self.prepared, "videos.json", "rvos prepare a2d")
        self.window, self.transforms, self.seed, self.epoch = window, transforms, seed, 0

    def __getitem__(self, index: int) -> dict:
        query, video_id, frame_idx, instance_id = self.samples[index]
        num_frames = self.videos[video_id]["num_frames"]
        indices = window_indices(frame_idx - 1, self.window, 0, num_frames - 1)
        frames = self._read_frames(video_id, indices)  # [T, H, W, 3]
        annotation = read_frame_annotation(self.root / INSTANCES / video_id / f"{frame_idx:05d}.h5")
        masks = torch.from_numpy(annotation.masks)  # [N, H, W]
        size = torch.tensor(masks.shape[1:])
        target = {
            "masks": masks,
            "referred_instance_idx": torch.tensor(annotation.instances.index(instance_id)),
            "area": masks.flatten(1).sum(1).double(),
            "iscrowd": torch.zeros(len(masks), dtype=torch.long),
            "orig_size": size,
            "size": size.clone(),
            "image_id": _image_id(video_id, frame_idx, instance_id),
        }
        targets: list[dict | None] = [None] * self.window
        targets[self.window // 2] = target
        generator = self.generator(index)
        video, targets, text = self.transforms(frames, targets, normalize_sentence(query), generator)
        return {"frames": video, "targets": targets, "text": text, "valid_indices": [self.window // 2]}

    def _read_frames(self, video_id: str, indices: list[int]) -> np.ndarray:
        cache = self.prepared / "frames" / f"{video_id}.npy"
        if cache.is_file():
            return np.asarray(np.load(cache, mmap_mode="r")[indices])
        return read_frames(self.root / CLIPS / f"{video_id}.mp4", indices)
