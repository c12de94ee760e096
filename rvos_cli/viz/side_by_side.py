"""Side-by-side renders of ground truth against prediction, and renders of saved prediction folders.

`render_a2d_samples` reads the A2D/JHMDB evaluation format (COCO ground truth + COCO-style predictions,
spec mttr.md §10.1 and §11); `render_prediction_folder` reads the Ref-YouTube-VOS layout
`<exp_id>/<frame>.png` (spec §8.2) next to the video or folder of frames it was predicted on.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path

import numpy as np

from rvos_cli.core.mask_png import read_mask_png
from rvos_cli.core.metrics.iou import decode_mask, mask_iou_float32, top_score_predictions
from rvos_cli.errors import RvosError
from rvos_cli.viz.animate import write_gif, write_png
from rvos_cli.viz.overlay import (
    PALETTE,
    STRIP_HEIGHT,
    draw_legend,
    overlay_masks,
    text_strip,
)

GT_COLOUR = PALETTE[2]  # dark green
PRED_COLOUR = PALETTE[0]  # light blue
TITLE_COLOUR = (255, 255, 255)
PANEL_GAP = 8
MASK_SUFFIX = ".png"
FRAME_SUFFIXES = (".jpg", ".jpeg", ".png")
VIDEO_SUFFIXES = (".mp4", ".mov", ".mkv", ".avi")


def side_by_side(
    frame: np.ndarray,
    gt_mask: np.ndarray,
    pred_mask: np.ndarray,
    title_left: str = "ground truth",
    title_right: str = "prediction",
    caption: str | None = None,
) -> np.ndarray:
    """Two overlay panels of one frame: ground truth (dark green) left, prediction (light blue) right.

    frame: RGB uint8 `[H, W, 3]`; gt_mask, pred_mask: bool `[H, W]`. Each panel has a 36-px title strip
    above it, the panels are 8 px apart, and `caption` (e.g. the sentence) is printed on a 36-px strip
    below both. Returns uint8 `[36 + H + (36 if caption else 0), 2·W + 8, 3]`.
    """
    height, width = frame.shape[:2]
    panels = []
    for mask, title, colour in ((gt_mask, title_left, GT_COLOUR), (pred_mask, title_right, PRED_COLOUR)):
        overlaid = overlay_masks(frame, [mask], colours=[colour])
        panels.append(np.concatenate([text_strip(width, title, TITLE_COLOUR), overlaid], axis=0))
    gap = np.zeros((height + STRIP_HEIGHT, PANEL_GAP, 3), dtype=np.uint8)
    image = np.concatenate([panels[0], gap, panels[1]], axis=1)
    if caption is not None:
        image = np.concatenate([image, text_strip(image.shape[1], caption, TITLE_COLOUR)], axis=0)
    return image


def _decode(segmentation: Mapping, what: str) -> np.ndarray:
    """A COCO RLE (compressed or uncompressed) as a bool mask `[H, W]`; RvosError naming `what` if not one."""
    try:
        return decode_mask(dict(segmentation))
    except (TypeError, ValueError, KeyError) as error:
        raise RvosError(f"{what}: segmentation is not a COCO RLE {{size, counts}} ({error})") from error


def _file_stem(image_id: object) -> str:
    """A file name stem for an image id (path separators replaced)."""
    return str(image_id).replace("/", "_").replace("\\", "_")


def render_a2d_samples(
    coco_gt: Mapping,
    predictions: Sequence[Mapping],
    frame_loader: Callable[[str], np.ndarray],
    out_dir: Path,
    limit: int | None = None,
) -> list[Path]:
    """Render ground truth vs the top-scoring prediction for the first `limit` GT images (None = all).

    coco_gt: the COCO-format ground truth (`images` with `id`, optionally `sentence`; `annotations` with
    `image_id` and an RLE `segmentation`; spec §10.1). predictions: `{image_id, segmentation, score}` dicts
    (many per image, spec §11). frame_loader: image id → RGB uint8 `[H, W, 3]` of the annotated frame.
    Writes `<out_dir>/<image_id>.png` (see `side_by_side`) in the order of `coco_gt['images']`; an image
    without predictions is shown with an empty prediction. The prediction shown and its IoU are the ones
    `core.metrics` scores (`top_score_predictions`: on a tie the one listed last). Returns the written paths.
    """
    if limit is not None and limit < 1:
        raise RvosError(f"the number of samples to render must be at least 1, got {limit}")
    gt_by_image: dict[object, Mapping] = {}
    for annotation in coco_gt.get("annotations", []):
        gt_by_image.setdefault(annotation["image_id"], annotation)
    best = top_score_predictions(list(predictions))  # the very prediction `rvos eval` scores

    written: list[Path] = []
    for image in coco_gt.get("images", [])[:limit]:
        image_id = image["id"]
        if image_id not in gt_by_image:
            raise RvosError(f"ground truth image {image_id!r} has no annotation")
        gt_mask = _decode(gt_by_image[image_id]["segmentation"], f"ground truth of {image_id!r}")
        frame = frame_loader(str(image_id))
        if frame.shape[:2] != gt_mask.shape:
            raise RvosError(
                f"frame of {image_id!r} is {list(frame.shape[:2])} but its mask is {list(gt_mask.shape)}"
            )
        prediction = best.get(image_id)
        if prediction is None:
            pred_mask = np.zeros_like(gt_mask)
            title_right = "prediction (none)"
        else:
            pred_mask = _decode(prediction["segmentation"], f"prediction for {image_id!r}")
            if pred_mask.shape != gt_mask.shape:
                raise RvosError(
                    f"prediction for {image_id!r} is {list(pred_mask.shape)}, its ground truth "
                    f"{list(gt_mask.shape)}"
                )
            title_right = f"prediction (score {prediction['score']:.2f})"
        iou, _, _ = mask_iou_float32(gt_mask, pred_mask)
        caption = image.get("sentence") or f"{image_id}  IoU {iou:.3f}"
        if image.get("sentence"):
            title_right += f"  IoU {iou:.3f}"
        rendered = side_by_side(frame, gt_mask, pred_mask, "ground truth", title_right, caption)
        written.append(write_png(Path(out_dir) / f"{_file_stem(image_id)}.png", rendered))
    return written


def _sort_key(name: str) -> tuple[int, int, str]:
    """Numeric names ("2" before "10") first in numeric order, then the rest by name."""
    return (0, int(name), name) if name.isdigit() else (1, 0, name)


def _read_mask(file: Path, size: tuple[int, int]) -> np.ndarray:
    """A mask PNG (0 = background, anything else = object) as bool `[H, W]`, checked against `size`."""
    mask = read_mask_png(file, "mask")
    if mask.shape != size:
        raise RvosError(f"{file}: mask size {list(mask.shape)} differs from the frame size {list(size)}")
    return mask


def _named_frames(frames: Path) -> Iterator[tuple[str, np.ndarray]]:
    """(name, RGB frame) pairs: file stems for a folder of images, `%05d` frame indices for a video."""
    from rvos_cli.data.video_io import iter_frames

    if frames.is_dir():
        files = sorted(p for p in frames.iterdir() if p.is_file() and p.suffix.lower() in FRAME_SUFFIXES)
        if not files:
            raise RvosError(f"{frames}: the folder holds no frames (*.jpg, *.jpeg or *.png)")
        yield from zip((p.stem for p in files), iter_frames(frames), strict=True)
    else:
        for index, frame in enumerate(iter_frames(frames)):
            yield f"{index:05d}", frame


def render_prediction_folder(
    frames: Path,
    pred_dir: Path,
    out: Path,
    sentences: Mapping[str, str] | None = None,
    fps: float = 6.0,
) -> Path:
    """Overlay saved per-expression masks on their frames and write the result.

    frames: a folder of frames (`<frame>.jpg|png`) or a video file; pred_dir: one sub-folder per expression
    holding `<frame>.png` masks (0/255 or 0/1), i.e. `Annotations/<video_id>/` of a Ref-YouTube-VOS
    submission. For a video, frame i matches the mask whose name is the number i (`00012.png` → 12).
    Only frames with a mask in at least one expression are rendered; an expression without a mask for
    such a frame shows nothing there. sentences: expression id → sentence for the legend (default
    "expression <id>"). out: `.gif` → animated GIF, `.mp4/.mov/.mkv/.avi` → video, both at `fps`;
    anything else → a folder of `<frame>.png`. Returns `out`.
    """
    frames, pred_dir, out = Path(frames), Path(pred_dir), Path(out)
    if not frames.exists():
        raise RvosError(f"{frames}: no such video or frame folder")
    if not pred_dir.is_dir():
        raise RvosError(f"{pred_dir}: not a folder of <expression>/<frame>.png predictions")
    expressions = sorted((p.name for p in pred_dir.iterdir() if p.is_dir()), key=_sort_key)
    if not expressions:
        raise RvosError(f"{pred_dir}: holds no expression folders (<expression>/<frame>.png)")
    is_video = not frames.is_dir()
    mask_files: dict[str, dict[str, Path]] = {}
    for expression in expressions:
        for file in (pred_dir / expression).glob(f"*{MASK_SUFFIX}"):
            name = f"{int(file.stem):05d}" if is_video and file.stem.isdigit() else file.stem
            mask_files.setdefault(name, {})[expression] = file
    labels = [(sentences or {}).get(e, f"expression {e}") for e in expressions]
    rendered = _render_matched(frames, pred_dir, mask_files, expressions, labels)
    suffix = out.suffix.lower()
    if suffix == ".gif":
        write_gif(out, (image for _, image in rendered), fps)
    elif suffix in VIDEO_SUFFIXES:
        from rvos_cli.data.video_io import write_video

        write_video(out, (image for _, image in rendered), fps)
    else:
        for name, image in rendered:
            write_png(out / f"{name}.png", image)
    return out


def _render_matched(
    frames: Path,
    pred_dir: Path,
    mask_files: Mapping[str, Mapping[str, Path]],
    expressions: Sequence[str],
    labels: Sequence[str],
) -> Iterator[tuple[str, np.ndarray]]:
    """Yield (frame name, overlay with legend `[H + 36·k, W, 3]`) for every frame that has a mask."""
    count = 0
    for name, frame in _named_frames(frames):
        files = mask_files.get(name)
        if files is None:
            continue
        size = frame.shape[:2]
        masks = [
            _read_mask(files[e], size) if e in files else np.zeros(size, dtype=bool) for e in expressions
        ]
        count += 1
        yield name, draw_legend(overlay_masks(frame, masks), labels)
    if count == 0:
        raise RvosError(f"{pred_dir}: no mask file is named after a frame of {frames}")
