"""Tests for rvos_cli.viz.side_by_side: GT-vs-prediction panels, A2D sample renders, prediction folders."""

from pathlib import Path

import numpy as np
import pytest
from coco_builders import rle
from PIL import Image

from rvos_cli.core.metrics import precision_at_k_and_iou
from rvos_cli.data.video_io import read_frames, write_video
from rvos_cli.errors import RvosError
from rvos_cli.viz.overlay import overlay_masks
from rvos_cli.viz.side_by_side import (
    GT_COLOUR,
    PRED_COLOUR,
    render_a2d_samples,
    render_prediction_folder,
    side_by_side,
)

H, W = 20, 30


def _frame(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (H, W, 3), dtype=np.uint8)


def _box(top: int, left: int, bottom: int, right: int) -> np.ndarray:
    mask = np.zeros((H, W), dtype=bool)
    mask[top:bottom, left:right] = True
    return mask


def _save_mask(path: Path, mask: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(mask.astype(np.uint8) * 255).save(path)


def test_side_by_side_size_with_and_without_caption():
    frame, gt, pred = _frame(), _box(2, 2, 10, 10), _box(4, 4, 12, 12)
    assert side_by_side(frame, gt, pred, caption="a man").shape == (36 + H + 36, 2 * W + 8, 3)
    assert side_by_side(frame, gt, pred).shape == (36 + H, 2 * W + 8, 3)


def test_side_by_side_panels_are_gt_left_prediction_right_with_a_black_gap():
    frame, gt, pred = _frame(), _box(2, 2, 10, 10), _box(4, 4, 12, 12)
    image = side_by_side(frame, gt, pred, caption="a man")
    assert (image[36 : 36 + H, :W] == overlay_masks(frame, [gt], colours=[GT_COLOUR])).all()
    assert (image[36 : 36 + H, W + 8 :] == overlay_masks(frame, [pred], colours=[PRED_COLOUR])).all()
    assert (image[: 36 + H, W : W + 8] == 0).all()


def _coco_gt(sentence: bool) -> tuple[dict, dict[str, np.ndarray]]:
    masks = {"v_a_f_1_i_0": _box(2, 2, 10, 10), "v_b_f_5_i_1": _box(5, 10, 15, 25)}
    images = [{"id": image_id, "height": H, "width": W} for image_id in masks]
    if sentence:
        images[0]["sentence"] = "a man riding a horse"
    annotations = [
        {"id": i + 1, "image_id": image_id, "category_id": 1, "segmentation": rle(mask), "iscrowd": 0}
        for i, (image_id, mask) in enumerate(masks.items())
    ]
    return {"images": images, "annotations": annotations, "categories": [{"id": 1}]}, masks


def test_render_a2d_samples_draws_the_top_scoring_prediction(tmp_path: Path):
    coco_gt, gt_masks = _coco_gt(sentence=True)
    top, low = _box(0, 0, 8, 8), _box(10, 10, 20, 30)
    predictions = [
        {"image_id": "v_a_f_1_i_0", "category_id": 1, "segmentation": rle(low), "score": 0.2},
        {"image_id": "v_a_f_1_i_0", "category_id": 1, "segmentation": rle(top), "score": 0.9},
        {"image_id": "v_b_f_5_i_1", "category_id": 1, "segmentation": rle(low), "score": 0.5},
    ]
    frames = {"v_a_f_1_i_0": _frame(1), "v_b_f_5_i_1": _frame(2)}
    paths = render_a2d_samples(coco_gt, predictions, frames.__getitem__, tmp_path / "samples", limit=5)
    assert [p.name for p in paths] == ["v_a_f_1_i_0.png", "v_b_f_5_i_1.png"]
    image = np.asarray(Image.open(paths[0]))
    assert image.shape == (36 + H + 36, 2 * W + 8, 3)
    gt_panel = overlay_masks(frames["v_a_f_1_i_0"], [gt_masks["v_a_f_1_i_0"]], colours=[GT_COLOUR])
    pred_panel = overlay_masks(frames["v_a_f_1_i_0"], [top], colours=[PRED_COLOUR])
    assert (image[36 : 36 + H, :W] == gt_panel).all()
    assert (image[36 : 36 + H, W + 8 :] == pred_panel).all()


def test_render_a2d_samples_shows_on_a_tie_the_prediction_the_metrics_score(tmp_path: Path):
    coco_gt, gt_masks = _coco_gt(sentence=True)
    coco_gt["images"], coco_gt["annotations"] = coco_gt["images"][:1], coco_gt["annotations"][:1]
    exact, off = gt_masks["v_a_f_1_i_0"], _box(12, 12, 20, 30)  # IoU 1 and IoU ~0 with the ground truth
    predictions = [
        {"image_id": "v_a_f_1_i_0", "category_id": 1, "segmentation": rle(exact), "score": 0.7},
        {"image_id": "v_a_f_1_i_0", "category_id": 1, "segmentation": rle(off), "score": 0.7},
    ]
    scored = precision_at_k_and_iou(coco_gt, predictions)  # what `rvos eval` reports
    frame = _frame(4)
    paths = render_a2d_samples(coco_gt, predictions, lambda image_id: frame, tmp_path, limit=1)
    image = np.asarray(Image.open(paths[0]))
    shown = overlay_masks(frame, [off], colours=[PRED_COLOUR])
    assert scored["mean_iou"] == pytest.approx(1e-6 / (8 * 8 + 8 * 18 + 1e-6))  # eval took the last one
    assert (image[36 : 36 + H, W + 8 :] == shown).all()  # and viz shows that same last one


def test_render_a2d_samples_respects_limit_and_shows_missing_prediction_as_empty(tmp_path: Path):
    coco_gt, _ = _coco_gt(sentence=False)
    frame = _frame(3)
    paths = render_a2d_samples(coco_gt, [], lambda image_id: frame, tmp_path, limit=1)
    assert [p.name for p in paths] == ["v_a_f_1_i_0.png"]
    image = np.asarray(Image.open(paths[0]))
    assert (image[36 : 36 + H, W + 8 :] == frame).all()


def test_render_a2d_samples_rejects_a_frame_of_another_size(tmp_path: Path):
    coco_gt, _ = _coco_gt(sentence=False)
    with pytest.raises(RvosError, match=r"frame of 'v_a_f_1_i_0' is \[4, 4\] but its mask is \[20, 30\]"):
        render_a2d_samples(coco_gt, [], lambda image_id: np.zeros((4, 4, 3), np.uint8), tmp_path, limit=1)


def _prediction_tree(tmp_path: Path) -> tuple[Path, Path, list[np.ndarray]]:
    """Three frames 00000..00002; expressions 0 and 1 with masks for frames 00000 and 00002 only."""
    frames_dir, pred_dir = tmp_path / "JPEGImages", tmp_path / "Annotations" / "vid"
    frames_dir.mkdir(parents=True)
    frames = [_frame(seed) for seed in range(3)]
    for index, frame in enumerate(frames):
        Image.fromarray(frame).save(frames_dir / f"{index:05d}.png")
    for name in ("00000", "00002"):
        _save_mask(pred_dir / "0" / f"{name}.png", _box(2, 2, 10, 10))
    _save_mask(pred_dir / "1" / "00002.png", _box(8, 12, 18, 28))
    return frames_dir, pred_dir, frames


def test_render_prediction_folder_to_png_folder(tmp_path: Path):
    frames_dir, pred_dir, frames = _prediction_tree(tmp_path)
    out = render_prediction_folder(frames_dir, pred_dir, tmp_path / "viz", sentences={"0": "a cat"})
    assert sorted(p.name for p in out.iterdir()) == ["00000.png", "00002.png"]
    image = np.asarray(Image.open(out / "00002.png"))
    assert image.shape == (2 * 36 + H, W, 3)
    expected = overlay_masks(frames[2], [_box(2, 2, 10, 10), _box(8, 12, 18, 28)])
    assert (image[72:] == expected).all()
    first = np.asarray(Image.open(out / "00000.png"))
    assert (first[72:] == overlay_masks(frames[0], [_box(2, 2, 10, 10), np.zeros((H, W), bool)])).all()


def test_render_prediction_folder_to_gif_has_one_frame_per_predicted_frame(tmp_path: Path):
    frames_dir, pred_dir, _ = _prediction_tree(tmp_path)
    out = render_prediction_folder(frames_dir, pred_dir, tmp_path / "clip.gif", fps=5)
    with Image.open(out) as gif:
        assert gif.n_frames == 2
        assert gif.size == (W, 2 * 36 + H)
        assert gif.info["duration"] == 200


def test_render_prediction_folder_matches_video_frames_by_number(tmp_path: Path):
    video = tmp_path / "clip.mp4"
    write_video(video, [np.full((32, 32, 3), 40 * i, np.uint8) for i in range(4)], fps=10)
    pred_dir = tmp_path / "pred"
    _save_mask(pred_dir / "0" / "2.png", np.ones((32, 32), bool))
    out = render_prediction_folder(video, pred_dir, tmp_path / "viz")
    assert [p.name for p in out.iterdir()] == ["00002.png"]
    image = np.asarray(Image.open(out / "00002.png"))
    decoded = read_frames(video, [1, 2, 3])  # grey 40, 80, 120 (up to H.264 loss)
    assert (image[36:] == overlay_masks(decoded[1], [np.ones((32, 32), bool)])).all()
    for neighbour in (decoded[0], decoded[2]):
        assert not (image[36:] == overlay_masks(neighbour, [np.ones((32, 32), bool)])).all()


def test_render_prediction_folder_rejects_a_mask_of_another_size(tmp_path: Path):
    frames_dir, pred_dir, _ = _prediction_tree(tmp_path)
    _save_mask(pred_dir / "1" / "00000.png", np.ones((5, 5), bool))
    with pytest.raises(
        RvosError, match=r"00000.png: mask size \[5, 5\] differs from the frame size \[20, 30\]"
    ):
        render_prediction_folder(frames_dir, pred_dir, tmp_path / "viz")


def test_render_prediction_folder_without_matching_names_raises(tmp_path: Path):
    frames_dir, _, _ = _prediction_tree(tmp_path)
    other = tmp_path / "other"
    _save_mask(other / "0" / "frame_x.png", _box(0, 0, 4, 4))
    with pytest.raises(RvosError, match="no mask file is named after a frame"):
        render_prediction_folder(frames_dir, other, tmp_path / "viz.gif")
