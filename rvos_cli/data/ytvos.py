"""Ref-YouTube-VOS: prepare training windows and validation samples, serve clips.

On disk (root):
    train/JPEGImages/<video_id>/<frame>.jpg
    train/Annotations/<video_id>/<frame>.png      palette PNG, pixel value = object id, 0 = background
    valid/JPEGImages/<video_id>/<frame>.jpg
    valid/Annotations/<video_id>/<frame>.png      only in synthetic/held-out data: enables local J&F,
    meta_expressions/valid/meta_expressions_gt.json   with the obj_id of every valid expression
    meta_expressions/{train,valid,test}/meta_expressions.json
        {"videos": {video_id: {"expressions": {exp_id: {"exp": text, "obj_id": "1"}}, "frames": [...]}}}

The validation split is the valid videos minus the test videos.

Prepared (out):
    samples_train_w<window>.json   [[video_id, [frame names], {exp, obj_id, exp_id}], ...]
    samples_valid.json             [[video_id, [all frame names], {exp, exp_id[, obj_id]}], ...]
    objects/train/<video_id>.json  {frame: [object ids present]} (resume cache of the mask scan)
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from rvos_cli.core.mask_png import read_label_png
from rvos_cli.core.model.text_encoder import normalize_sentence
from rvos_cli.data.prepare import (
    BadInput,
    PrepareSummary,
    SeededSamples,
    load_prepared,
    require_paths,
)
from rvos_cli.data.targets import label_map_targets
from rvos_cli.errors import RvosError, shown
from rvos_cli.fileio import read_json, write_json_atomic

META = "meta_expressions/{split}/meta_expressions.json"
IMAGES = "{split}/JPEGImages"
MASKS = "{split}/Annotations"
# Not in the real download: the ground truth of held-out (synthetic) valid videos, with obj_ids.
GT_META = "meta_expressions/valid/meta_expressions_gt.json"


def read_object_masks(root: Path, split: str, video_id: str, frames: list[str], obj_id: int) -> np.ndarray:
    """The binary masks of object `obj_id` in the given frames of `split`/Annotations: bool `[T, H, W]`."""
    folder = Path(root) / MASKS.format(split=split) / video_id
    return np.stack([read_label_png(folder / f"{frame}.png") == obj_id for frame in frames])


def train_windows(frames: list[str], window: int) -> list[list[str]]:
    """Cut sorted frame names into consecutive non-overlapping windows of `window` frames.

    A short last window is replaced by the last `window` frames; a video shorter than `window` gives one
    window padded by repeating its last frame.
    """
    if len(frames) < window:
        return [frames + [frames[-1]] * (window - len(frames))]
    windows = [frames[i : i + window] for i in range(0, len(frames), window)]
    if len(windows[-1]) < window:
        windows[-1] = frames[-window:]
    return windows


def _read_meta(path: Path) -> dict[str, dict]:
    """The "videos" mapping of a meta_expressions.json, checked for the fields every video needs."""
    meta = read_json(path, "meta_expressions file")
    videos = meta.get("videos") if isinstance(meta, dict) else None
    if not isinstance(videos, dict):
        raise RvosError(f"{path}: expected a JSON object with a 'videos' mapping")
    for video_id, data in videos.items():
        if not (
            isinstance(data, dict)
            and isinstance(data.get("expressions"), dict)
            and isinstance(data.get("frames"), list)
            and all(isinstance(frame, str) for frame in data["frames"])
            and all(
                isinstance(e, dict) and isinstance(e.get("exp"), str) for e in data["expressions"].values()
            )
        ):
            raise RvosError(
                f"{path}: video {shown(video_id)} needs 'expressions' {{exp_id: {{'exp': text, ...}}}} "
                "and 'frames' (a list of frame names)"
            )
    return videos


def _frame_objects(root: Path, out: Path, video_id: str, frames: list[str]) -> dict[str, list[int]]:
    """Object ids present in each annotated frame of a train video (read once, cached in out/objects)."""
    cache = out / "objects" / "train" / f"{video_id}.json"
    if cache.is_file():
        return read_json(cache, "object cache")
    objects = {}
    for frame in frames:
        image = root / IMAGES.format(split="train") / video_id / f"{frame}.jpg"
        if not image.is_file():
            raise RvosError(f"{image}: missing (listed in {META.format(split='train')})")
        ids = read_label_png(root / MASKS.format(split="train") / video_id / f"{frame}.png")
        objects[frame] = [int(i) for i in np.unique(ids) if i != 0]
    write_json_atomic(cache, objects, indent=None)
    return objects


def _obj_id(value: object) -> int | None:
    """An expression's obj_id as an int, or None when it is not an integer string."""
    text = str(value) if value is not None else ""
    return int(text) if text.isdigit() else None


def prepare_ytvos(root: Path, out: Path, window: int, skip_bad: bool = False) -> PrepareSummary:
    """Prepare Ref-YouTube-VOS found at `root` into `out` (see the module docstring for both layouts).

    Train: per video (meta order) the sorted frames are cut by `train_windows`; each expression × window
    becomes a sample if its obj_id appears in at least one frame of the window. Valid: one sample per
    (video, expression) with all sorted frames, for the valid videos that are not test videos. Bad input
    (missing frames, unreadable masks, an obj_id in no frame of its video) raises RvosError, or with
    `skip_bad` is left out and listed in the summary.
    """
    root, out = Path(root), Path(out)
    if window < 1:
        raise RvosError(f"window size must be at least 1, got {window}")
    metas = {split: META.format(split=split) for split in ("train", "valid", "test")}
    require_paths(
        root,
        [
            IMAGES.format(split="train"),
            MASKS.format(split="train"),
            IMAGES.format(split="valid"),
            *metas.values(),
        ],
        "Ref-YouTube-VOS",
    )
    bad = BadInput(skip_bad)
    train_meta = _read_meta(root / metas["train"])
    valid_meta = _read_meta(root / metas["valid"])
    test_ids = set(_read_meta(root / metas["test"]))

    train_samples: list[list] = []
    train_videos = 0
    for video_id, data in tqdm(train_meta.items(), desc="ytvos train videos", unit="video", leave=False):
        video_samples = _train_samples(root, out, metas["train"], video_id, data, window, bad)
        train_samples += video_samples
        train_videos += int(bool(video_samples))

    valid_samples = _valid_samples(root, valid_meta, test_ids, bad)
    write_json_atomic(out / f"samples_train_w{window}.json", train_samples, indent=None)
    write_json_atomic(out / "samples_valid.json", valid_samples, indent=None)
    return PrepareSummary(
        dataset="ytvos",
        out=out,
        videos=train_videos + len({sample[0] for sample in valid_samples}),
        samples={"train": len(train_samples), "valid": len(valid_samples)},
        skipped=bad.skipped,
    )


def _train_samples(
    root: Path, out: Path, meta_rel: str, video_id: str, data: dict, window: int, bad: BadInput
) -> list[list]:
    """The training samples `[video_id, frame window, entry]` of one train video, meta order.

    Each expression × window (`train_windows` of the sorted frames) is a sample if its obj_id appears in
    at least one frame of the window. Bad input (no frames, unreadable masks, an obj_id in no frame) is
    reported to `bad` and left out.
    """
    frames = sorted(data["frames"])
    if not frames:
        bad.report(root / meta_rel, f"video {shown(video_id)} lists no frames")
        return []
    try:
        objects = _frame_objects(root, out, video_id, frames)
    except RvosError as error:
        bad.report_error(error)
        return []
    present = set().union(*objects.values())
    samples = []
    for exp_id, expression in data["expressions"].items():
        obj_id = _obj_id(expression.get("obj_id"))
        if obj_id is None or obj_id not in present:
            bad.report(
                root / meta_rel,
                f"video {shown(video_id)} expression {shown(exp_id)}: obj_id {expression.get('obj_id')!r} "
                f"is in no annotation of {MASKS.format(split='train')}/{video_id}",
            )
            continue
        entry = {"exp": expression["exp"], "obj_id": str(expression["obj_id"]), "exp_id": str(exp_id)}
        for frames_window in train_windows(frames, window):
            if any(obj_id in objects[frame] for frame in frames_window):
                samples.append([video_id, frames_window, entry])
    return samples


def _valid_samples(root: Path, meta: dict[str, dict], test_ids: set[str], bad: BadInput) -> list[list]:
    """One sample per (video, expression) of the valid videos that are not test videos, all frames.

    When valid/Annotations exists (held-out data with ground truth) every expression needs an obj_id,
    from the valid meta or from meta_expressions/valid/meta_expressions_gt.json; it is kept in the
    sample for local J&F.
    """
    has_gt = (root / MASKS.format(split="valid")).is_dir()
    gt_meta = _read_meta(root / GT_META) if has_gt and (root / GT_META).is_file() else {}
    images = IMAGES.format(split="valid")
    samples = []
    for video_id, data in meta.items():
        if video_id in test_ids:
            continue
        frames = sorted(data["frames"])
        missing = [f for f in frames if not (root / images / video_id / f"{f}.jpg").is_file()]
        if not frames or missing:
            where = root / images / video_id / f"{missing[0] if missing else '<frame>'}.jpg"
            bad.report(where, f"missing (listed in {META.format(split='valid')})")
            continue
        gt_expressions = gt_meta.get(video_id, {}).get("expressions", {})
        for exp_id, expression in data["expressions"].items():
            entry = {"exp": expression["exp"], "exp_id": str(exp_id)}
            if has_gt:
                obj_id = expression.get("obj_id", gt_expressions.get(exp_id, {}).get("obj_id"))
                if _obj_id(obj_id) is None:
                    bad.report(
                        root / GT_META,
                        f"video {shown(video_id)} expression {shown(exp_id)} needs an integer obj_id "
                        f"because {MASKS.format(split='valid')} exists",
                    )
                    continue
                entry["obj_id"] = str(obj_id)
            samples.append([video_id, frames, entry])
    return samples


class ReferYouTubeVOSDataset(SeededSamples):
    """Ref-YouTube-VOS clips.

    split "train": windows of `window` frames; every frame is annotated. Item: `frames` float
    `[T, 3, h, w]`, `text`, `valid_indices` 0..T-1, `targets` (one dict per frame: `masks` bool
    `[n_obj, h, w]` for the objects present anywhere in the window in ascending id order (all-zero where
    absent), `referred_instance_idx`, `is_ref_inst_visible`, `iscrowd`, `orig_size`, `size`, `image_id`).
    split "valid": the whole video; `targets` None and `meta` {video_id, frame_indices (frame names),
    resized_frame_size, original_frame_size, exp_id, obj_id (only with ground truth)}.
    """

    def __init__(
        self,
        prepared: Path,
        root: Path,
        split: str,
        transforms: Callable,
        window: int | None = None,
        seed: int = 42,
    ) -> None:
        if split == "train":
            if window is None or window < 1:
                raise RvosError(f"the Ref-YouTube-VOS train split needs a window size >= 1, got {window}")
            name = f"samples_train_w{window}.json"
        elif split == "valid":
            name = "samples_valid.json"
        else:
            raise RvosError(f"Ref-YouTube-VOS split must be 'train' or 'valid', got {split!r}")
        command = "rvos prepare ytvos" + (f" --window {window}" if split == "train" else "")
        self.samples = load_prepared(Path(prepared), name, command)
        self.root, self.split, self.transforms = Path(root), split, transforms
        self.seed, self.epoch = seed, 0
        self.has_gt = split == "valid" and (self.root / MASKS.format(split="valid")).is_dir()

    def gt_masks(self, index: int) -> np.ndarray:
        """Ground truth of valid sample `index` (only when valid/Annotations exists): bool `[T, H, W]`."""
        if not self.has_gt:
            raise RvosError(f"{self.root / MASKS.format(split='valid')}: missing; no local ground truth")
        video_id, frames, entry = self.samples[index]
        return read_object_masks(self.root, "valid", video_id, frames, int(entry["obj_id"]))

    def _read_frames(self, video_id: str, frames: list[str]) -> np.ndarray:
        folder = self.root / IMAGES.format(split=self.split) / video_id
        images = []
        for frame in frames:
            with Image.open(folder / f"{frame}.jpg") as image:
                images.append(np.asarray(image.convert("RGB")))
        return np.stack(images)  # [T, H, W, 3]

    def __getitem__(self, index: int) -> dict:
        video_id, frames, entry = self.samples[index]
        video = self._read_frames(video_id, frames)
        text = normalize_sentence(entry["exp"])
        if self.split == "valid":
            clip, _, text = self.transforms(video, [None] * len(frames), text)
            meta = {
                "video_id": video_id,
                "frame_indices": list(frames),
                "resized_frame_size": tuple(clip.shape[2:]),
                "original_frame_size": tuple(video.shape[1:3]),
                "exp_id": entry["exp_id"],
            }
            if "obj_id" in entry:
                meta["obj_id"] = entry["obj_id"]
            return {
                "frames": clip,
                "targets": None,
                "text": text,
                "valid_indices": list(range(len(frames))),
                "meta": meta,
            }
        targets = self._train_targets(video_id, frames, entry)
        generator = self.generator(index)
        clip, targets, text = self.transforms(video, targets, text, generator)
        return {"frames": clip, "targets": targets, "text": text, "valid_indices": list(range(len(frames)))}

    def _train_targets(self, video_id: str, frames: list[str], entry: dict) -> list[dict]:
        """Per-frame targets over the objects present anywhere in the window (ascending ids)."""
        folder = self.root / MASKS.format(split="train") / video_id
        labels = [read_label_png(folder / f"{frame}.png") for frame in frames]  # T × [H, W]
        image_ids = [f"v_{video_id}_f_{frame}_e_{entry['exp_id']}" for frame in frames]
        return label_map_targets(labels, int(entry["obj_id"]), image_ids)
