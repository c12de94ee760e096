"""J, F (DAVIS definitions) and the Ref-YouTube-VOS folder evaluation on hand-built masks and files."""

import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

from rvos_cli.core.metrics import (
    boundary_radius,
    db_eval_boundary,
    db_eval_iou,
    evaluate_referring_vos,
    mean_jf,
    seg2bmap,
)
from rvos_cli.errors import RvosError


def band(rows: int, shape: tuple[int, int] = (96, 128)) -> np.ndarray:
    """Rows 0 … rows-1 foreground across the whole width: its only boundary is row `rows - 1`."""
    mask = np.zeros(shape, dtype=bool)
    mask[:rows] = True
    return mask


# --- J ---------------------------------------------------------------------------------------------


def test_iou_of_two_empty_masks_is_one() -> None:
    empty = np.zeros((4, 4), dtype=bool)
    assert db_eval_iou(empty, empty) == 1.0


def test_iou_with_one_empty_mask_is_zero() -> None:
    empty = np.zeros((4, 4), dtype=bool)
    assert db_eval_iou(band(2, (4, 4)), empty) == 0.0
    assert db_eval_iou(empty, band(2, (4, 4))) == 0.0


def test_iou_of_a_stack_is_per_frame() -> None:
    gt = np.stack([band(2, (4, 4)), band(4, (4, 4)), np.zeros((4, 4), dtype=bool)])
    pred = np.stack([band(1, (4, 4)), band(1, (4, 4)), np.zeros((4, 4), dtype=bool)]) * 255
    assert db_eval_iou(gt, pred).tolist() == [4 / 8, 4 / 16, 1.0]


# --- boundary map and radius ----------------------------------------------------------------------


def test_boundary_map_of_a_small_square_sits_upper_left_of_transitions() -> None:
    mask = np.array(
        [
            [0, 0, 0, 0, 0],
            [0, 1, 1, 0, 0],
            [0, 1, 1, 0, 0],
            [0, 0, 0, 0, 0],
        ]
    )
    expected = np.array(
        [
            [1, 1, 1, 0, 0],
            [1, 0, 1, 0, 0],
            [1, 1, 1, 0, 0],
            [0, 0, 0, 0, 0],
        ],
        dtype=bool,
    )
    assert np.array_equal(seg2bmap(mask), expected)


def test_image_border_creates_no_boundary() -> None:
    mask = np.array([[1, 1, 0], [1, 1, 0], [1, 1, 0]])  # touches top, left and bottom borders
    expected = np.array([[0, 1, 0], [0, 1, 0], [0, 1, 0]], dtype=bool)
    assert np.array_equal(seg2bmap(mask), expected)


def test_mask_covering_the_whole_frame_has_no_boundary() -> None:
    assert not seg2bmap(np.ones((5, 7), dtype=bool)).any()


@pytest.mark.parametrize(
    ("height", "width", "radius"),
    [
        (96, 128, 2),
        (180, 320, 3),
        (240, 432, 4),
        (270, 480, 5),
        (360, 640, 6),
        (480, 854, 8),
        (720, 1280, 12),
    ],
)
def test_tolerance_radius_is_the_ceil_of_0_008_diagonal(height: int, width: int, radius: int) -> None:
    assert boundary_radius(height, width) == radius


def test_bound_th_of_one_or_more_is_a_pixel_radius() -> None:
    assert boundary_radius(720, 1280, bound_th=3) == 3


# --- F ---------------------------------------------------------------------------------------------


def test_boundaries_exactly_radius_apart_match() -> None:
    # 96×128 → r = 2: GT boundary row 9, prediction boundary row 11
    assert db_eval_boundary(band(10), band(12)) == 1.0


def test_boundaries_one_pixel_beyond_radius_do_not_match() -> None:
    assert db_eval_boundary(band(10), band(13)) == 0.0


def test_f_with_an_extra_far_blob_in_the_prediction() -> None:
    pred = band(12)
    pred[50:52, 50:52] = True  # 2×2 blob far from the GT: 8 unmatched boundary pixels
    # P = 128 / 136, R = 128 / 128 → F = 2·128 / (128 + 136) = 32/33
    assert db_eval_boundary(band(10), pred) == pytest.approx(32 / 33, abs=1e-15)


def test_f_of_two_empty_masks_is_one() -> None:
    empty = np.zeros((8, 8), dtype=bool)
    assert db_eval_boundary(empty, empty) == 1.0


def test_f_with_one_empty_mask_is_zero() -> None:
    empty = np.zeros((8, 8), dtype=bool)
    assert db_eval_boundary(band(3, (8, 8)), empty) == 0.0
    assert db_eval_boundary(empty, band(3, (8, 8))) == 0.0


def test_whole_frame_mask_scores_f_like_an_empty_mask() -> None:
    full = np.ones((8, 8), dtype=bool)
    empty = np.zeros((8, 8), dtype=bool)
    assert db_eval_boundary(full, empty) == 1.0  # neither has boundary pixels
    assert db_eval_iou(full, empty) == 0.0


def test_f_of_a_stack_is_per_frame() -> None:
    gt = np.stack([band(10), band(10)])
    pred = np.stack([band(12), band(13)])
    assert db_eval_boundary(gt, pred).tolist() == [1.0, 0.0]


def _reference_f(gt: np.ndarray, pred: np.ndarray) -> float:
    """F written the DAVIS way: dilate each boundary map with a disk, count matches."""
    radius = boundary_radius(*gt.shape)
    offsets = np.arange(-radius, radius + 1)
    disk = offsets[:, None] ** 2 + offsets[None, :] ** 2 <= radius**2
    gt_b, pred_b = seg2bmap(gt), seg2bmap(pred)
    precision = (pred_b & ndimage.binary_dilation(gt_b, structure=disk)).sum() / pred_b.sum()
    recall = (gt_b & ndimage.binary_dilation(pred_b, structure=disk)).sum() / gt_b.sum()
    return 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)


def test_f_equals_disk_dilation_on_random_masks() -> None:
    rng = np.random.default_rng(0)
    for height, width in [(96, 128), (40, 300), (270, 480)]:
        for density in (0.02, 0.3):
            gt = ndimage.binary_opening(rng.random((height, width)) < 0.5)
            pred = rng.random((height, width)) < density
            assert db_eval_boundary(gt, pred) == pytest.approx(_reference_f(gt, pred), abs=1e-15)


# --- Ref-YouTube-VOS folder evaluation --------------------------------------------------------------

SHAPE = (8, 10)


def write_palette_png(path: Path, labels: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.fromarray(labels.astype(np.uint8), mode="L")
    image.putpalette([0, 0, 0, 236, 95, 103, 249, 145, 87] + [0] * (256 * 3 - 9))  # → mode "P"
    image.save(path)


def write_mask_png(path: Path, mask: np.ndarray, value: int = 255) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray((mask.astype(np.uint8) * value), mode="L").save(path)


def write_meta(path: Path, videos: dict[str, tuple[list[str], dict[str, str]]]) -> None:
    """meta_expressions.json from {video: (frames, {exp_id: obj_id})}."""
    meta = {
        "videos": {
            video: {
                "expressions": {
                    exp_id: {"exp": f"object {obj_id}", "obj_id": obj_id} for exp_id, obj_id in exps.items()
                },
                "frames": frames,
            }
            for video, (frames, exps) in videos.items()
        }
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(meta))


def upper(shape: tuple[int, int] = SHAPE) -> np.ndarray:
    mask = np.zeros(shape, dtype=bool)
    mask[1:4, 2:6] = True
    return mask


def lower(shape: tuple[int, int] = SHAPE) -> np.ndarray:
    mask = np.zeros(shape, dtype=bool)
    mask[5:7, 1:9] = True
    return mask


@pytest.fixture
def dataset(tmp_path: Path) -> tuple[Path, Path]:
    """Video 'v1': 1 frame, obj 1 = upper, referred by exp '0'. Video 'v2': 3 frames, obj 2 = lower,
    referred by exp '0'. Predictions: v1 perfect, v2 empty in every frame."""
    gt_root, pred_root = tmp_path / "gt", tmp_path / "pred"
    write_meta(
        gt_root / "meta_expressions.json",
        {"v1": (["00000"], {"0": "1"}), "v2": (["00000", "00005", "00010"], {"0": "2"})},
    )
    write_palette_png(gt_root / "Annotations" / "v1" / "00000.png", upper().astype(np.uint8))
    write_mask_png(pred_root / "v1" / "0" / "00000.png", upper())
    for frame in ("00000", "00005", "00010"):
        write_palette_png(gt_root / "Annotations" / "v2" / f"{frame}.png", lower().astype(np.uint8) * 2)
        write_mask_png(pred_root / "v2" / "0" / f"{frame}.png", np.zeros(SHAPE, dtype=bool))
    return pred_root, gt_root


def test_each_expression_weighs_the_same_whatever_its_frame_count(dataset: tuple[Path, Path]) -> None:
    pred_root, gt_root = dataset
    result = evaluate_referring_vos(pred_root, gt_root)
    # v1: J = F = 1 (1 frame); v2: J = F = 0 (3 frames). Pooling frames would give 0.25.
    assert (result["J"], result["F"], result["J&F"]) == (0.5, 0.5, 0.5)
    assert result["per_expression"] == [
        {"video": "v1", "exp_id": "0", "J": 1.0, "F": 1.0},
        {"video": "v2", "exp_id": "0", "J": 0.0, "F": 0.0},
    ]


def test_frames_where_the_object_is_absent_are_scored(tmp_path: Path) -> None:
    gt_root, pred_root = tmp_path / "gt", tmp_path / "pred"
    write_meta(gt_root / "meta_expressions.json", {"v": (["00000", "00005"], {"0": "1", "1": "2"})})
    write_palette_png(gt_root / "Annotations" / "v" / "00000.png", upper().astype(np.uint8) + lower() * 2)
    write_palette_png(
        gt_root / "Annotations" / "v" / "00005.png", lower().astype(np.uint8) * 2
    )  # obj 1 absent
    for frame in ("00000", "00005"):
        write_mask_png(pred_root / "v" / "0" / f"{frame}.png", upper())  # wrong in 00005 (GT empty)
        write_mask_png(pred_root / "v" / "1" / f"{frame}.png", lower())
    result = evaluate_referring_vos(pred_root, gt_root)
    assert result["per_expression"][0] == {"video": "v", "exp_id": "0", "J": 0.5, "F": 0.5}
    assert result["per_expression"][1] == {"video": "v", "exp_id": "1", "J": 1.0, "F": 1.0}
    assert result["J&F"] == 0.75


def test_prediction_foreground_is_any_non_zero_value(dataset: tuple[Path, Path]) -> None:
    pred_root, gt_root = dataset
    write_mask_png(pred_root / "v1" / "0" / "00000.png", upper(), value=1)
    assert evaluate_referring_vos(pred_root, gt_root)["per_expression"][0]["J"] == 1.0


def test_annotations_subfolder_of_the_prediction_root_is_used(
    dataset: tuple[Path, Path], tmp_path: Path
) -> None:
    pred_root, gt_root = dataset
    wrapped = tmp_path / "submission"
    wrapped.mkdir()
    pred_root.rename(wrapped / "Annotations")
    assert evaluate_referring_vos(wrapped, gt_root)["J"] == 0.5


def test_official_meta_expressions_location_is_found(dataset: tuple[Path, Path]) -> None:
    pred_root, gt_root = dataset
    official = gt_root / "meta_expressions" / "valid" / "meta_expressions.json"
    official.parent.mkdir(parents=True)
    (gt_root / "meta_expressions.json").rename(official)
    assert evaluate_referring_vos(pred_root, gt_root)["J"] == 0.5


def test_missing_prediction_png_is_an_error_naming_the_file(dataset: tuple[Path, Path]) -> None:
    pred_root, gt_root = dataset
    missing = pred_root / "v2" / "0" / "00005.png"
    missing.unlink()
    with pytest.raises(RvosError, match=re.escape(str(missing))):
        evaluate_referring_vos(pred_root, gt_root)


def test_prediction_of_another_size_is_an_error_naming_both_sizes(dataset: tuple[Path, Path]) -> None:
    pred_root, gt_root = dataset
    resized = pred_root / "v1" / "0" / "00000.png"
    write_mask_png(resized, np.zeros((16, 20), dtype=bool))
    with pytest.raises(
        RvosError,
        match=rf"{re.escape(str(resized))}: prediction is 16x20 \(HxW\) but the ground truth is 8x10",
    ):
        evaluate_referring_vos(pred_root, gt_root)


def test_missing_meta_expressions_is_an_error(dataset: tuple[Path, Path]) -> None:
    pred_root, gt_root = dataset
    (gt_root / "meta_expressions.json").unlink()
    with pytest.raises(RvosError, match=r"no meta_expressions\.json found"):
        evaluate_referring_vos(pred_root, gt_root)


def test_mean_jf_weights_every_expression_once() -> None:
    # J = (1 + 0.5) / 2, F = (0 + 0.5) / 2, J&F = (0.75 + 0.25) / 2
    assert mean_jf([(1.0, 0.0), (0.5, 0.5)]) == {"J": 0.75, "F": 0.25, "J&F": 0.5}
    with pytest.raises(ValueError, match="no expressions"):
        mean_jf([])
