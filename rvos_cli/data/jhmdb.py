"""JHMDB-Sentences (evaluation only): prepare the sample list and COCO ground truth, serve clips.

On disk (root):
    Rename_Images/<action>/<video_id>/<frame:05d>.png    1-based frame numbers, RGB
    puppet_mask/<action>/<video_id>/puppet_mask.mat      'part_mask' [H, W, T] (0/1)
    jhmdb_annotation.txt                                  CSV with header video_id,query

Prepared (out):
    samples_test.json   [[video_id, frame_path, mask_path, video_total_frames, query], ...] with paths
                        relative to root; 3 frames per video
    coco_gt_test.json   one image (id v_<video_id>_f_<frame>) and one annotation (no bbox) per sample
"""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path

import numpy as np
import scipy.io
import torch
from PIL import Image
from torch.utils.data import Dataset
from tqdm import tqdm

from rvos_cli.core.model.text_encoder import normalize_sentence
from rvos_cli.data.prepare import (
    BadInput,
    PrepareSummary,
    coco_gt_entry,
    load_prepared,
    read_csv_rows,
    require_paths,
    window_indices,
)
from rvos_cli.errors import RvosError
from rvos_cli.fileio import read_json, write_json_atomic

IMAGES = "Rename_Images"
MASKS = "puppet_mask"
ANNOTATIONS = "jhmdb_annotation.txt"
ANNOTATION_HEADER = ["video_id", "query"]
FRAMES_PER_VIDEO = 3


def read_part_mask(path: Path) -> np.ndarray:
    """Read `part_mask` from a puppet_mask.mat as uint8 0/1 `[H, W, T]`; RvosError if unreadable."""
    try:
        masks = scipy.io.loadmat(str(path))["part_mask"]
    except (
        OSError,
        ValueError,
        KeyError,
        TypeError,
        NotImplementedError,
        scipy.io.matlab.MatReadError,
    ) as error:
        raise RvosError(f"{path}: not a readable puppet mask (.mat with 'part_mask'): {error}") from error
    if masks.ndim != 3:
        raise RvosError(f"{path}: part_mask has shape {list(masks.shape)}, expected [H, W, T]")
    return (masks > 0).astype(np.uint8)


def _video_actions(images: Path) -> dict[str, str]:
    """Map video id → action folder name from Rename_Images/<action>/<video_id>/."""
    actions: dict[str, str] = {}
    for action in sorted(p for p in images.iterdir() if p.is_dir()):
        for video in sorted(p for p in action.iterdir() if p.is_dir()):
            actions.setdefault(video.name, action.name)
    return actions


def _check_frames(paths: list[Path], size: tuple[int, int]) -> None:
    """Raise RvosError for the first frame that is not a readable image of `size` (H, W)."""
    for path in paths:
        try:
            with Image.open(path) as image:
                image.load()
                found = (image.height, image.width)
        except OSError as error:
            raise RvosError(f"{path}: not a readable image ({error})") from error
        if found != size:
            raise RvosError(f"{path}: frame size {list(found)} differs from the puppet mask's {list(size)}")


def _read_fixed_frames(path: Path) -> dict[str, list[int]]:
    """Chosen frames per video from an official-style samples metadata list (frame number = file stem)."""
    entries = read_json(path, "samples metadata file")
    chosen: dict[str, list[int]] = {}
    try:
        for entry in entries:
            chosen.setdefault(str(entry[0]), []).append(int(Path(entry[1]).stem))
    except (TypeError, ValueError, IndexError, KeyError) as error:
        raise RvosError(
            f"{path}: expected a list of [video_id, frame_path, mask_path, total_frames, query] ({error})"
        ) from error
    return {video: sorted(frames) for video, frames in chosen.items()}


def prepare_jhmdb(
    root: Path,
    out: Path,
    skip_bad: bool = False,
    seed: int = 42,
    samples_metadata: Path | None = None,
) -> PrepareSummary:
    """Prepare JHMDB-Sentences found at `root` into `out` (see the module docstring for both layouts).

    Only frames that have a puppet mask are eligible (the sorted frames are cut to the mask count T).
    Each video gets 3 distinct frames drawn with `random.Random(seed)` (in annotation order) and sorted,
    or, when `samples_metadata` names an official-style list, the frames it lists. With `skip_bad`, bad
    rows/videos are left out and listed in the summary; otherwise the first raises RvosError.
    """
    root, out = Path(root), Path(out)
    require_paths(root, [IMAGES, MASKS, ANNOTATIONS], "JHMDB-Sentences")
    listing = Path(samples_metadata) if samples_metadata is not None else None
    fixed = (listing, _read_fixed_frames(listing)) if listing is not None else None
    bad = BadInput(skip_bad)
    actions = _video_actions(root / IMAGES)
    rng = random.Random(seed)
    rows = read_csv_rows(root / ANNOTATIONS)
    header = next(rows, None)
    if header is None or [cell.strip() for cell in header[1]] != ANNOTATION_HEADER:
        raise RvosError(f"{root / ANNOTATIONS}:1: expected the header {','.join(ANNOTATION_HEADER)}")
    samples: list[list] = []
    gt: list[tuple[dict, dict]] = []
    seen: dict[str, int] = {}
    for line, row in tqdm(list(rows), desc="jhmdb videos", unit="video", leave=False):
        where = f"{root / ANNOTATIONS}:{line}"
        parsed = _parse_row(where, row, seen, actions, bad)
        if parsed is None:
            continue
        video_id, query = parsed
        frame_dir = Path(IMAGES) / actions[video_id] / video_id
        mask_rel = Path(MASKS) / actions[video_id] / video_id / "puppet_mask.mat"
        try:
            masks = read_part_mask(root / mask_rel)  # [H, W, T]
            frame_paths = sorted((root / frame_dir).glob("*.png"))[: masks.shape[2]]
            _check_frames(frame_paths, masks.shape[:2])
        except RvosError as error:
            bad.report_error(error)
            continue
        total = len(frame_paths)
        if fixed is not None:
            chosen = _listed_frames(*fixed, video_id, total, bad)
        else:
            chosen = _drawn_frames(rng, total, root / frame_dir, bad)
        if chosen is None:
            continue
        seen[video_id] = line
        for frame in chosen:
            frame_rel = (frame_dir / f"{frame:05d}.png").as_posix()
            samples.append([video_id, frame_rel, mask_rel.as_posix(), total, query])
            gt.append(_coco_entry(video_id, frame, masks[:, :, frame - 1]))

    write_json_atomic(out / "samples_test.json", samples, indent=None)
    write_json_atomic(out / "coco_gt_test.json", _coco_gt(gt), indent=None)
    return PrepareSummary(
        dataset="jhmdb", out=out, videos=len(seen), samples={"test": len(samples)}, skipped=bad.skipped
    )


def _parse_row(
    where: str, row: list[str], seen: dict[str, int], actions: dict[str, str], bad: BadInput
) -> tuple[str, str] | None:
    """(video_id, normalised query) of an annotation row, or None after reporting a bad row to `bad`."""
    if len(row) != len(ANNOTATION_HEADER):
        bad.report(where, f"expected 2 columns (video_id,query), got {len(row)}")
        return None
    video_id, query = row[0].strip(), normalize_sentence(row[1])
    if video_id in seen:
        bad.report(where, f"video {video_id} already has a query on line {seen[video_id]}")
        return None
    if video_id not in actions:
        bad.report(where, f"video {video_id} has no folder {IMAGES}/<action>/{video_id}")
        return None
    return video_id, query


def _listed_frames(
    listing: Path, fixed: dict[str, list[int]], video_id: str, total: int, bad: BadInput
) -> list[int] | None:
    """The frames the samples metadata `listing` (read into `fixed`) names for a video of `total` masked
    frames, or None after reporting a video it does not list correctly."""
    chosen = fixed.get(video_id)
    if chosen is None or not all(1 <= c <= total for c in chosen):
        bad.report(listing, f"no valid frames listed for video {video_id} (it has {total})")
        return None
    return chosen


def _drawn_frames(rng: random.Random, total: int, frame_dir: Path, bad: BadInput) -> list[int] | None:
    """`FRAMES_PER_VIDEO` distinct 1-based frames drawn with `rng`, sorted; None if the video is too short."""
    if total < FRAMES_PER_VIDEO:
        bad.report(frame_dir, f"only {total} frames have a puppet mask, need {FRAMES_PER_VIDEO}")
        return None
    return sorted(rng.sample(range(1, total + 1), FRAMES_PER_VIDEO))


def _image_id(video_id: str, frame: int) -> str:
    return f"v_{video_id}_f_{frame}"


def _coco_entry(video_id: str, frame: int, mask: np.ndarray) -> tuple[dict, dict]:
    """The COCO image and annotation (without id) of one sample; `mask` `[H, W]` (JHMDB has no bbox)."""
    return coco_gt_entry(_image_id(video_id, frame), mask)


def _coco_gt(entries: list[tuple[dict, dict]]) -> dict:
    return {
        "images": [image for image, _ in entries],
        "annotations": [{"id": n, **ann} for n, (_, ann) in enumerate(entries, start=1)],
        "categories": [{"id": 1, "name": "dummy_class"}],
    }


class JHMDBSentencesDataset(Dataset):
    """JHMDB-Sentences evaluation clips: `window` frames around each sample's chosen frame.

    Item: dict with `frames` float `[T, 3, h, w]`, `text`, `valid_indices` [T//2] and `targets` (None
    except at T//2: `masks` bool `[1, h, w]`, `referred_instance_idx` 0, `area`, `iscrowd`,
    `orig_size`, `size`, `image_id` "v_<video_id>_f_<frame>"). Pass transforms without flipping.
    """

    def __init__(self, prepared: Path, root: Path, window: int, transforms: Callable) -> None:
        if window < 1:
            raise RvosError(f"window size must be at least 1, got {window}")
        self.root = Path(root)
        self.samples = load_prepared(Path(prepared), "samples_test.json", "rvos prepare jhmdb")
        self.window, self.transforms = window, transforms

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> dict:
        video_id, frame_rel, mask_rel, total, query = self.samples[index]
        frame_path = self.root / frame_rel
        center = int(frame_path.stem)
        frames = []
        for frame in window_indices(center, self.window, 1, total):
            with Image.open(frame_path.with_name(f"{frame:05d}.png")) as image:
                frames.append(np.asarray(image.convert("RGB")))
        mask = read_part_mask(self.root / mask_rel)[:, :, center - 1]
        masks = torch.from_numpy(mask[None].copy())  # [1, H, W]
        size = torch.tensor(masks.shape[1:])
        target = {
            "masks": masks,
            "referred_instance_idx": torch.tensor(0),
            "area": masks.flatten(1).sum(1).double(),
            "iscrowd": torch.zeros(1, dtype=torch.long),
            "orig_size": size,
            "size": size.clone(),
            "image_id": _image_id(video_id, center),
        }
        targets: list[dict | None] = [None] * self.window
        targets[self.window // 2] = target
        video, targets, text = self.transforms(np.stack(frames), targets, normalize_sentence(query))
        return {"frames": video, "targets": targets, "text": text, "valid_indices": [self.window // 2]}
