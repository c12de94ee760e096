"""MeViS: check the download, index every split, write per-video ground truth and training windows.

On disk (root), as downloaded (spec datasets-mevis-davis §1a):
    <split>/JPEGImages/<video>/<frame>.jpg        split = train, valid_u, valid
    <split>/meta_expressions.json   {"videos": {video: {"frames": [stems], "expressions":
                                        {exp_id: {"exp": text, "obj_id": [int], "anno_id": [int|str]}}}}}
    <split>/mask_dict.json          train and valid_u only: {anno_id: [COCO RLE or null per frame]}
An expression refers to every object of its anno_id list: one (single-object), several (multi-object)
or none (no-target, MeViS v2: an empty list).

Prepared (out):
    mevis_<split>.json              {"videos": [{"video", "frames", "size": [H, W], "objects": [anno_id],
                                     "expressions": [{"exp_id", "exp", "anno_ids", "kind"}]}]}
    masks/<split>/<video>.json      {anno_id: [RLE or null per frame]}, the video's slice of mask_dict
    samples_train_w<window>.json    [[video, [frame positions], {"exp", "exp_id", "anno_ids"}], ...]
Every file is written atomically; a per-video mask file already written by an earlier run is reused.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image
from tqdm import tqdm

from rvos_cli.core.metrics.mevis import MULTI_OBJECT, NO_TARGET, expression_kind
from rvos_cli.data.prepare import BadInput, SkippedItem
from rvos_cli.data.ytvos import train_windows
from rvos_cli.errors import RvosError
from rvos_cli.fileio import read_json, write_json_atomic

SPLITS = ("train", "valid_u", "valid")
GT_SPLITS = ("train", "valid_u")
META = "{split}/meta_expressions.json"
MASK_DICT = "{split}/mask_dict.json"
IMAGES = "{split}/JPEGImages"
INDEX = "mevis_{split}.json"
VIDEO_MASKS = "masks/{split}/{video}.json"


@dataclass
class SplitCounts:
    """What one split holds after preparation (expressions by kind; training samples for train)."""

    videos: int = 0
    expressions: int = 0
    multi_object: int = 0
    no_target: int = 0
    samples: int | None = None


@dataclass
class MevisSummary:
    """A `prepare_mevis` run: counts per split present, mask files written/reused, bad input skipped."""

    out: Path
    splits: dict[str, SplitCounts] = field(default_factory=dict)
    masks_written: int = 0
    masks_reused: int = 0
    skipped: list[SkippedItem] = field(default_factory=list)


def _frame_size(path: Path) -> tuple[int, int]:
    """(H, W) of a JPEG frame, reading only its header."""
    try:
        with Image.open(path) as image:
            return image.height, image.width
    except OSError as error:
        raise RvosError(f"{path}: not a readable JPEG frame ({error})") from error


def _read_videos(meta_path: Path) -> dict[str, Any]:
    """The "videos" mapping of a meta_expressions.json (RvosError naming the file otherwise)."""
    meta = read_json(meta_path, "MeViS meta_expressions.json")
    videos = meta.get("videos") if isinstance(meta, dict) else None
    if not isinstance(videos, dict):
        raise RvosError(f"{meta_path}: expected a JSON object with a 'videos' mapping")
    return videos


def _check_video(meta_path: Path, images: Path, video: str, record: Any) -> tuple[list[str], tuple[int, int]]:
    """Validate a video record and its frames on disk; returns (frame stems, (H, W))."""
    key = f"videos[{video!r}]"
    frames = record.get("frames") if isinstance(record, dict) else None
    if not (isinstance(frames, list) and frames and all(isinstance(f, str) for f in frames)):
        raise RvosError(f"{meta_path}: {key}.frames: expected a non-empty list of frame names")
    if not isinstance(record.get("expressions"), dict):
        raise RvosError(f"{meta_path}: {key}.expressions: expected a mapping exp_id → expression")
    for frame in frames:
        if not (images / video / f"{frame}.jpg").is_file():
            raise RvosError(f"{images / video / frame}.jpg: missing (listed in {meta_path} {key}.frames)")
    return frames, _frame_size(images / video / f"{frames[0]}.jpg")


def _check_expression(meta_path: Path, video: str, exp_id: str, expression: Any, with_gt: bool) -> list[str]:
    """Validate one expression record; returns its anno_ids as strings (empty without GT)."""
    key = f"videos[{video!r}].expressions[{exp_id!r}]"
    if not (isinstance(expression, dict) and isinstance(expression.get("exp"), str)):
        raise RvosError(f"{meta_path}: {key}.exp: expected the sentence as a string")
    if not with_gt:
        return []
    anno_ids = expression.get("anno_id")
    if not (isinstance(anno_ids, list) and all(isinstance(a, (int, str)) for a in anno_ids)):
        raise RvosError(f"{meta_path}: {key}.anno_id: expected a list of mask_dict keys, got {anno_ids!r}")
    obj_ids = expression.get("obj_id", anno_ids)
    if not isinstance(obj_ids, list) or len(obj_ids) != len(anno_ids):
        raise RvosError(f"{meta_path}: {key}.obj_id: expected a list as long as anno_id ({len(anno_ids)})")
    return [str(a) for a in anno_ids]


def _check_track(mask_path: Path, anno_id: str, track: Any, video: str, num_frames: int, size: tuple) -> None:
    """Validate one object's per-frame RLE list against its video's frame count and size."""
    if not isinstance(track, list) or len(track) != num_frames:
        count = len(track) if isinstance(track, list) else "no list of"
        raise RvosError(f"{mask_path}: [{anno_id!r}] holds {count} frames, video {video} lists {num_frames}")
    for t, rle in enumerate(track):
        if rle is None:
            continue
        if not (isinstance(rle, dict) and "counts" in rle and isinstance(rle.get("size"), list)):
            raise RvosError(f"{mask_path}: [{anno_id!r}][{t}]: expected a COCO RLE {{size, counts}} or null")
        if tuple(rle["size"]) != tuple(size):
            raise RvosError(
                f"{mask_path}: [{anno_id!r}][{t}].size {rle['size']} differs from the frames of video "
                f"{video} ({size[0]}x{size[1]})"
            )


def _index_video(
    root: Path, split: str, video: str, record: Any, mask_dict: dict | None, bad: BadInput
) -> dict | None:
    """Validate one video and its expressions; returns its index entry, or None when it is left out."""
    meta_path, mask_path = root / META.format(split=split), root / MASK_DICT.format(split=split)
    try:
        frames, size = _check_video(meta_path, root / IMAGES.format(split=split), video, record)
    except RvosError as error:
        bad.report_error(error)
        return None
    expressions, objects = [], {}
    for exp_id, expression in record["expressions"].items():
        try:
            anno_ids = _check_expression(meta_path, video, str(exp_id), expression, mask_dict is not None)
            for position, anno_id in enumerate(anno_ids):
                if mask_dict is not None and anno_id not in mask_dict:
                    raise RvosError(
                        f"{meta_path}: videos[{video!r}].expressions[{exp_id!r}].anno_id[{position}] = "
                        f"{anno_id} is not a key of {mask_path}"
                    )
                if anno_id not in objects:
                    _check_track(mask_path, anno_id, mask_dict[anno_id], video, len(frames), size)  # type: ignore[index]
                    objects[anno_id] = mask_dict[anno_id]  # type: ignore[index]
        except RvosError as error:
            bad.report_error(error)
            continue
        kind = expression_kind(len(anno_ids)) if mask_dict is not None else None
        expressions.append(
            {"exp_id": str(exp_id), "exp": expression["exp"], "anno_ids": anno_ids, "kind": kind}
        )
    if not expressions:
        return None
    entry = {"video": video, "frames": frames, "size": list(size), "expressions": expressions}
    if mask_dict is not None:
        entry["objects"] = sorted(objects, key=_anno_order)
        entry["_tracks"] = objects
    return entry


def _anno_order(anno_id: str) -> tuple[int, str]:
    """Numeric ids in numeric order, then any other keys in text order."""
    return (int(anno_id), "") if anno_id.isdigit() else (sys.maxsize, anno_id)


def _train_samples(entry: dict, window: int) -> list[list]:
    """Training windows of one video: every window where a referred object appears, and every window of a
    no-target expression (it teaches "nothing referred")."""
    positions = list(range(len(entry["frames"])))
    samples = []
    for expression in entry["expressions"]:
        tracks = [entry["_tracks"][a] for a in expression["anno_ids"]]
        record = {k: expression[k] for k in ("exp", "exp_id", "anno_ids")}
        for chunk in train_windows(positions, window):
            if not tracks or any(track[t] for track in tracks for t in chunk):
                samples.append([entry["video"], chunk, record])
    return samples


def prepare_mevis(root: Path, out: Path, window: int = 8, skip_bad: bool = False) -> MevisSummary:
    """Prepare every MeViS split found under `root` into `out` (layouts in the module docstring).

    Validates each video (frames listed but missing, a broken meta record), each expression (anno_ids
    that are not mask_dict keys) and each referenced RLE list (frame count, RLE size vs the frames);
    raises RvosError naming the file and key, or with `skip_bad` leaves the video/expression out and
    lists it. `window` is the training window (train split). Returns the per-split counts.
    """
    root, out = Path(root), Path(out)
    if window < 1:
        raise RvosError(f"window size must be at least 1, got {window}")
    present = [s for s in SPLITS if (root / META.format(split=s)).is_file()]
    if not present:
        raise RvosError(
            f"{root}: no MeViS split found (expected {META.format(split='train')}, "
            f"{META.format(split='valid_u')} or {META.format(split='valid')})"
        )
    bad, summary = BadInput(skip_bad), MevisSummary(out=out)
    for split in present:
        summary.splits[split] = _prepare_split(root, out, split, window, bad, summary)
    summary.skipped = bad.skipped
    return summary


def _prepare_split(
    root: Path, out: Path, split: str, window: int, bad: BadInput, summary: MevisSummary
) -> SplitCounts:
    """Index one split, write its per-video masks (GT splits) and training windows (train)."""
    with_gt = split in GT_SPLITS
    mask_dict = None
    if with_gt:
        mask_dict = read_json(root / MASK_DICT.format(split=split), "MeViS mask_dict.json")
        if not isinstance(mask_dict, dict):
            raise RvosError(f"{root / MASK_DICT.format(split=split)}: expected a mapping anno_id → RLE list")
    videos = _read_videos(root / META.format(split=split))
    entries, samples = [], []
    for video, record in tqdm(
        videos.items(), desc=f"mevis {split}", unit="video", file=sys.stderr, leave=False
    ):
        entry = _index_video(root, split, str(video), record, mask_dict, bad)
        if entry is None:
            continue
        if with_gt:
            tracks = entry.pop("_tracks")
            mask_file = out / VIDEO_MASKS.format(split=split, video=entry["video"])
            if mask_file.is_file():
                summary.masks_reused += 1
            else:
                write_json_atomic(mask_file, tracks, indent=None)
                summary.masks_written += 1
            if split == "train":
                samples += _train_samples({**entry, "_tracks": tracks}, window)
        entries.append(entry)
    write_json_atomic(out / INDEX.format(split=split), {"videos": entries}, indent=None)
    counts = SplitCounts(videos=len(entries))
    for entry in entries:
        for expression in entry["expressions"]:
            counts.expressions += 1
            counts.multi_object += expression["kind"] == MULTI_OBJECT
            counts.no_target += expression["kind"] == NO_TARGET
    if split == "train":
        write_json_atomic(out / f"samples_train_w{window}.json", samples, indent=None)
        counts.samples = len(samples)
    return counts


def load_index(prepared: Path, split: str, root: Path | None = None) -> list[dict]:
    """The prepared index of a split (list of video entries), or RvosError naming `rvos prepare mevis`."""
    path = Path(prepared) / INDEX.format(split=split)
    if not path.is_file():
        where = f" --root {root}" if root is not None else ""
        raise RvosError(f"{path}: missing; run `rvos prepare mevis{where}` first")
    return read_json(path, "prepared MeViS index")["videos"]


def load_video_tracks(prepared: Path, split: str, video: str) -> dict[str, list]:
    """The per-frame RLE lists {anno_id: [RLE or None]} of one prepared video."""
    return read_json(Path(prepared) / VIDEO_MASKS.format(split=split, video=video), "prepared MeViS masks")


def read_gt_split(split_dir: Path) -> tuple[list[dict], dict[str, list]]:
    """The ground truth of a downloaded split folder (valid_u) without preparing it, for scoring.

    Reads `split_dir/meta_expressions.json` and `split_dir/mask_dict.json` and checks every expression's
    anno_ids; frames are not needed. Returns (videos [{"video", "frames", "expressions": [{"exp_id",
    "anno_ids", "kind"}]}] in file order, mask_dict). RvosError naming the file and key otherwise.
    """
    meta_path, mask_path = Path(split_dir) / "meta_expressions.json", Path(split_dir) / "mask_dict.json"
    videos = _read_videos(meta_path)
    mask_dict = read_json(mask_path, "MeViS mask_dict.json")
    if not isinstance(mask_dict, dict):
        raise RvosError(f"{mask_path}: expected a mapping anno_id → RLE list")
    entries = []
    for video, record in videos.items():
        frames = record.get("frames") if isinstance(record, dict) else None
        if not (isinstance(frames, list) and frames and isinstance(record.get("expressions"), dict)):
            raise RvosError(
                f"{meta_path}: videos[{video!r}]: expected 'frames' (non-empty) and 'expressions'"
            )
        expressions = []
        for exp_id, expression in record["expressions"].items():
            anno_ids = _check_expression(meta_path, video, str(exp_id), expression, with_gt=True)
            for position, anno_id in enumerate(anno_ids):
                if anno_id not in mask_dict:
                    raise RvosError(
                        f"{meta_path}: videos[{video!r}].expressions[{exp_id!r}].anno_id[{position}] = "
                        f"{anno_id} is not a key of {mask_path}"
                    )
            expressions.append(
                {"exp_id": str(exp_id), "anno_ids": anno_ids, "kind": expression_kind(len(anno_ids))}
            )
        entries.append({"video": str(video), "frames": frames, "expressions": expressions})
    return entries, mask_dict
