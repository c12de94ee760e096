"""Tests for rvos_cli.core.inference: TSVS, A2D/video post-processing, window planning and linking."""

import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from pycocotools import mask as mask_utils

from rvos_cli.core.inference import (
    WindowLinker,
    a2d_postprocess,
    link_windows,
    masks_to_rle,
    plan_windows,
    tsvs_select,
    video_postprocess,
)
from rvos_cli.errors import RvosError


def referred_logits(p: torch.Tensor) -> torch.Tensor:
    """Two-class logits whose softmax puts probability `p` on class 0 ("referred"): `[...]` → `[..., 2]`."""
    return torch.stack([p.log(), (1 - p).log()], dim=-1)


# Low-resolution 2×2 logit patterns; bilinear ×4 to 8×8 turns each into an exact half of the frame.
LEFT = torch.tensor([[10.0, -10.0], [10.0, -10.0]])
RIGHT = -LEFT
TOP = torch.tensor([[10.0, 10.0], [-10.0, -10.0]])
EMPTY = torch.full((2, 2), -10.0)


def half_mask(side: str) -> torch.Tensor:
    """The 8×8 bool mask that the 2×2 pattern of the same name upsamples to."""
    mask = torch.zeros(8, 8, dtype=torch.bool)
    if side == "left":
        mask[:, :4] = True
    elif side == "right":
        mask[:, 4:] = True
    elif side == "top":
        mask[:4, :] = True
    return mask


def window_outputs(patterns: list[torch.Tensor], probs: list[float], frames: int) -> tuple:
    """Window outputs: query q shows `patterns[q]` on every frame with constant P(referred) `probs[q]`."""
    pred_masks = torch.stack(patterns)[None].repeat(frames, 1, 1, 1)  # [T, Nq, 2, 2]
    pred_is_referred = referred_logits(torch.tensor(probs, dtype=torch.float64))[None].repeat(frames, 1, 1)
    return pred_masks, pred_is_referred.float()


# ---------------------------------------------------------------- TSVS


def test_tsvs_picks_highest_mean_not_most_frame_wins() -> None:
    # Query 0 is the top query in 3 of 4 frames, but query 1 has the higher mean (0.6 vs 0.475).
    probs = torch.tensor([[0.6, 0.5], [0.6, 0.5], [0.6, 0.5], [0.1, 0.9]], dtype=torch.float64)
    query, _ = tsvs_select(referred_logits(probs))
    assert query == 1


def test_tsvs_sequence_scores_are_mean_referred_probabilities() -> None:
    probs = torch.tensor([[0.6, 0.5, 0.2], [0.6, 0.5, 0.4], [0.6, 0.5, 0.3], [0.1, 0.9, 0.1]])
    _, scores = tsvs_select(referred_logits(probs))
    assert torch.allclose(scores, torch.tensor([0.475, 0.6, 0.25]), atol=1e-6)


# ---------------------------------------------------------------- A2D


def a2d_outputs(pred_masks: torch.Tensor, pred_is_referred: torch.Tensor) -> dict:
    return {"pred_masks": pred_masks, "pred_is_referred": pred_is_referred}


def test_a2d_mask_is_cropped_then_nearest_resized() -> None:
    # Logits already at the padded size (bilinear to the same size is the identity) → the pattern is exact.
    logits = torch.full((6, 6), -5.0)
    fg = [(0, 0), (0, 2), (1, 1), (2, 0), (2, 1), (3, 2), (4, 4), (5, 5)]  # last two are in the padding
    for r, c in fg:
        logits[r, c] = 5.0
    outputs = a2d_outputs(logits[None, None, None], torch.zeros(1, 1, 1, 2))
    (pred,) = a2d_postprocess(outputs, (6, 6), [(4, 3)], [(6, 5)], ["img"])
    cropped = np.array([[1, 0, 1], [0, 1, 0], [1, 1, 0], [0, 0, 1]], dtype=np.uint8)
    rows, cols = [0, 0, 1, 2, 2, 3], [0, 0, 1, 1, 2]  # floor(i·4/6), floor(j·3/5)
    expected = cropped[np.ix_(rows, cols)]
    assert np.array_equal(mask_utils.decode(pred["segmentation"]), expected)


def test_a2d_threshold_is_strict() -> None:
    logits = torch.tensor([[0.0, 1e-3], [-1e-3, 0.0]])
    outputs = a2d_outputs(logits[None, None, None], torch.zeros(1, 1, 1, 2))
    (pred,) = a2d_postprocess(outputs, (2, 2), [(2, 2)], [(2, 2)], ["img"])
    assert np.array_equal(mask_utils.decode(pred["segmentation"]), np.array([[0, 1], [0, 0]], dtype=np.uint8))


def test_a2d_upsamples_bilinear_without_align_corners() -> None:
    # Along a row [10, -2] → 8 values 10, 10, 8.5, 5.5, 2.5, -0.5, -2, -2: five foreground columns
    # (nearest would give four, align_corners=True six).
    logits = torch.tensor([[10.0, -2.0]])
    outputs = a2d_outputs(logits[None, None, None], torch.zeros(1, 1, 1, 2))
    (pred,) = a2d_postprocess(outputs, (1, 8), [(1, 8)], [(1, 8)], ["img"])
    expected = np.array([[1, 1, 1, 1, 1, 0, 0, 0]], dtype=np.uint8)
    assert np.array_equal(mask_utils.decode(pred["segmentation"]), expected)


def test_a2d_emits_every_query_of_every_sample_with_referred_probability() -> None:
    pred_masks = torch.stack([torch.stack([LEFT, RIGHT, TOP]), torch.stack([TOP, EMPTY, LEFT])])[None]
    is_referred = torch.tensor(
        [[[0.0, 0.0], [math.log(3), 0.0], [0.0, math.log(4)]], [[0.0, math.log(4)], [0.0, 0.0], [0.0, 0.0]]]
    )[None]  # [1, 2, 3, 2] → P(referred) 0.5, 0.75, 0.2 and 0.2, 0.5, 0.5
    preds = a2d_postprocess(
        a2d_outputs(pred_masks, is_referred), (8, 8), [(8, 8)] * 2, [(8, 8)] * 2, ["a", "b"]
    )
    assert [p["image_id"] for p in preds] == ["a"] * 3 + ["b"] * 3
    assert all(p["category_id"] == 1 for p in preds)
    assert [p["score"] for p in preds] == pytest.approx([0.5, 0.75, 0.2, 0.2, 0.5, 0.5], abs=1e-6)
    not_referred = is_referred.softmax(-1)[..., 1].flatten().tolist()
    assert [p["score"] + n for p, n in zip(preds, not_referred, strict=True)] == pytest.approx([1.0] * 6)


def test_a2d_segmentations_decode_to_the_query_masks() -> None:
    pred_masks = torch.stack([LEFT, RIGHT, TOP, EMPTY])[None, None]  # [1, 1, 4, 2, 2]
    preds = a2d_postprocess(
        a2d_outputs(pred_masks, torch.zeros(1, 1, 4, 2)), (8, 8), [(8, 8)], [(8, 8)], ["x"]
    )
    decoded = [mask_utils.decode(p["segmentation"]) for p in preds]
    expected = [half_mask(s).numpy().astype(np.uint8) for s in ["left", "right", "top", "empty"]]
    assert all(np.array_equal(d, e) for d, e in zip(decoded, expected, strict=True))


def test_masks_to_rle_is_json_ready_and_round_trips(tmp_path) -> None:
    masks = np.zeros((2, 3, 4), dtype=bool)
    masks[0, 0, 1:3] = True
    masks[0, 2, 0] = True
    masks[1, 1:, 3] = True
    path = tmp_path / "rle.json"
    path.write_text(json.dumps(masks_to_rle(masks)))
    rles = json.loads(path.read_text())
    assert all(isinstance(r["counts"], str) and r["size"] == [3, 4] for r in rles)
    assert np.array_equal(mask_utils.decode(rles).transpose(2, 0, 1), masks.astype(np.uint8))


# ---------------------------------------------------------------- whole-video post-processing


def test_video_postprocess_equals_upsampling_all_queries_then_selecting() -> None:
    gen = torch.Generator().manual_seed(0)
    pred_masks = torch.randn(3, 4, 5, 6, generator=gen) * 3  # [T, Nq, h4, w4]
    pred_is_referred = torch.randn(3, 4, 2, generator=gen)
    masks, query, score = video_postprocess(pred_masks, pred_is_referred, (20, 24), (18, 21), (30, 40))

    up = F.interpolate(pred_masks, size=(20, 24), mode="bilinear", align_corners=False)  # [T, Nq, 20, 24]
    all_masks = (up.sigmoid() > 0.5)[:, :, :18, :21].to(torch.uint8)
    all_masks = F.interpolate(all_masks, size=(30, 40), mode="nearest").bool()  # [T, Nq, 30, 40]
    mean_scores = pred_is_referred.softmax(-1)[..., 0].mean(0)
    expected_query = int(mean_scores.argmax())
    assert (query, score) == (expected_query, pytest.approx(float(mean_scores[expected_query])))
    assert torch.equal(masks, all_masks[:, expected_query])


# ---------------------------------------------------------------- window planning


def test_plan_windows_video_shorter_than_window() -> None:
    assert plan_windows(5, 24, 6) == [(0, 5)]


def test_plan_windows_exact_fit_adds_no_window_inside_the_previous() -> None:
    assert plan_windows(24, 24, 6) == [(0, 24)]
    assert plan_windows(42, 24, 6) == [(0, 24), (18, 42)]


def test_plan_windows_last_window_is_shorter() -> None:
    assert plan_windows(30, 24, 6) == [(0, 24), (18, 30)]


def test_plan_windows_without_overlap() -> None:
    assert plan_windows(10, 4, 0) == [(0, 4), (4, 8), (8, 10)]


@pytest.mark.parametrize(
    ("num_frames", "window", "overlap"), [(10, 4, 4), (10, 4, 5), (10, 4, -1), (10, 0, 0), (0, 4, 1)]
)
def test_plan_windows_rejects_bad_sizes(num_frames: int, window: int, overlap: int) -> None:
    with pytest.raises(RvosError):
        plan_windows(num_frames, window, overlap)


# ---------------------------------------------------------------- cross-window linking


def make_linker(num_frames: int, window: int, overlap: int) -> WindowLinker:
    return WindowLinker(num_frames, window, overlap, (8, 8), (8, 8), (8, 8))


def test_linker_follows_the_object_by_overlap_iou_not_tsvs() -> None:
    linker = make_linker(6, 4, 2)  # windows (0, 4), (2, 6)
    first = linker.push(*window_outputs([LEFT, RIGHT, TOP], [0.9, 0.2, 0.1], 4))
    # Window 2: the TSVS-best query 0 is another object; the tracked "left" object is now query 2.
    second = linker.push(*window_outputs([RIGHT, TOP, LEFT], [0.8, 0.1, 0.4], 4))
    assert [(f.frame_index, f.query) for f in first] == [(0, 0), (1, 0), (2, 0), (3, 0)]
    assert [(f.frame_index, f.query) for f in second] == [(4, 2), (5, 2)]
    assert all(torch.equal(f.mask, half_mask("left")) for f in first + second)
    assert [f.score for f in second] == pytest.approx([0.4, 0.4])


def test_linker_keeps_the_earlier_window_on_shared_frames() -> None:
    linker = make_linker(6, 4, 2)
    first = linker.push(*window_outputs([LEFT], [0.9], 4))
    # Window 2's left object covers five columns on the shared frames 2-3 and exactly the left half after.
    wider = torch.tensor([[10.0, -2.0], [10.0, -2.0]])
    pred_masks, pred_is_referred = window_outputs([LEFT, RIGHT], [0.5, 0.7], 4)
    pred_masks[:2, 0] = wider
    second = linker.push(pred_masks, pred_is_referred)
    assert [(f.frame_index, f.query, f.window) for f in second] == [(4, 0, 1), (5, 0, 1)]
    assert all(torch.equal(f.mask, half_mask("left")) for f in first + second)


def test_linker_falls_back_to_tsvs_when_the_track_is_lost() -> None:
    linker = WindowLinker(6, 4, 2, (8, 8), (8, 8), (8, 8), iou_threshold=0.5)
    linker.push(*window_outputs([LEFT, RIGHT], [0.9, 0.2], 4))
    # The best overlap match, TOP, has IoU 16/48 = 1/3 < 0.5 with the left half: take the TSVS-best query.
    second = linker.push(*window_outputs([TOP, RIGHT], [0.3, 0.6], 4))
    assert [f.query for f in second] == [1, 1]
    assert all(torch.equal(f.mask, half_mask("right")) for f in second)


def test_linker_restarts_by_tsvs_when_the_track_is_empty_on_shared_frames() -> None:
    linker = make_linker(6, 4, 2)
    linker.push(*window_outputs([EMPTY, RIGHT], [0.9, 0.2], 4))
    # Every window-2 query agrees with an empty track as well as any other; IoU says nothing, TSVS decides.
    second = linker.push(*window_outputs([EMPTY, TOP], [0.3, 0.6], 4))
    assert [f.query for f in second] == [1, 1]


def test_linker_emits_every_frame_once_in_order_while_streaming() -> None:
    gen = torch.Generator().manual_seed(1)
    linker = make_linker(11, 4, 1)  # windows (0, 4), (3, 7), (6, 10), (9, 11)
    emitted: list[int] = []
    for start, end in linker.windows:
        pushed = linker.push(torch.randn(end - start, 3, 2, 2, generator=gen), torch.randn(end - start, 3, 2))
        assert all(f.frame_index < end for f in pushed)
        emitted += [f.frame_index for f in pushed]
    assert emitted == list(range(11))
    assert linker.done


def test_link_windows_streams_a_generator_of_windows() -> None:
    gen = torch.Generator().manual_seed(2)
    plan = plan_windows(9, 4, 2)
    windows = ((torch.randn(e - s, 3, 2, 2, generator=gen), torch.randn(e - s, 3, 2)) for s, e in plan)
    frames = list(link_windows(windows, 9, 4, 2, (8, 8), (8, 8), (4, 4)))
    assert [f.frame_index for f in frames] == list(range(9))
    assert all(f.mask.shape == (4, 4) and f.mask.dtype == torch.bool for f in frames)


# ---------------------------------------------------------------- threshold selection (several or none)


def threshold_linker(num_frames: int, window: int, overlap: int, tau: float = 0.5) -> WindowLinker:
    return WindowLinker(
        num_frames, window, overlap, (8, 8), (8, 8), (8, 8), select="threshold", score_threshold=tau
    )


def test_threshold_selection_outputs_the_union_of_passing_sequences() -> None:
    linker = threshold_linker(3, 3, 0)
    frames = linker.push(*window_outputs([LEFT, TOP, RIGHT], [0.7, 0.4, 0.9], 3))
    # LEFT (0.7) and RIGHT (0.9) pass 0.5: the whole frame; TOP (0.4) does not.
    assert all(torch.equal(f.mask, torch.ones(8, 8, dtype=torch.bool)) for f in frames)
    assert [(f.query, f.score) for f in frames] == [(2, pytest.approx(0.9))] * 3


def test_threshold_selection_is_empty_in_every_frame_when_no_sequence_passes() -> None:
    linker = threshold_linker(6, 4, 2, tau=0.8)
    frames = linker.push(*window_outputs([LEFT, TOP], [0.7, 0.8], 4))  # 0.8 is not above 0.8
    frames += linker.push(*window_outputs([LEFT, TOP], [0.1, 0.2], 4))
    assert [f.frame_index for f in frames] == list(range(6))
    assert not any(f.mask.any() for f in frames) and {f.query for f in frames} == {-1}


def test_threshold_selection_is_chosen_per_window() -> None:
    linker = threshold_linker(6, 4, 2)
    first = linker.push(*window_outputs([LEFT, RIGHT], [0.9, 0.1], 4))
    second = linker.push(*window_outputs([LEFT, RIGHT], [0.1, 0.9], 4))
    assert all(torch.equal(f.mask, half_mask("left")) for f in first)
    assert all(torch.equal(f.mask, half_mask("right")) for f in second)


def test_top1_is_the_default_and_bad_selections_are_refused() -> None:
    frames = make_linker(2, 2, 0).push(*window_outputs([LEFT, RIGHT], [0.6, 0.9], 2))
    assert all(torch.equal(f.mask, half_mask("right")) for f in frames)
    with pytest.raises(RvosError, match="--select 'all': expected one of top1, threshold"):
        WindowLinker(2, 2, 0, (8, 8), (8, 8), (8, 8), select="all")
    with pytest.raises(RvosError, match=r"--score-threshold 1\.5: expected a value between 0 and 1"):
        threshold_linker(2, 2, 0, tau=1.5)


def test_linker_of_unknown_length_gives_the_planned_linker_frames() -> None:
    gen = torch.Generator().manual_seed(3)
    plan = plan_windows(11, 4, 1)  # (0, 4), (3, 7), (6, 10), (9, 11)
    outputs = [(torch.randn(e - s, 3, 2, 2, generator=gen), torch.randn(e - s, 3, 2)) for s, e in plan]
    planned, open_ended = make_linker(11, 4, 1), WindowLinker(None, 4, 1, (8, 8), (8, 8), (8, 8))
    for window in outputs:
        for a, b in zip(planned.push(*window), open_ended.push(*window), strict=True):
            assert (a.frame_index, a.query, a.score) == (b.frame_index, b.query, b.score)
            assert torch.equal(a.mask, b.mask)
    assert open_ended.windows == plan and not open_ended.done


def test_linker_of_unknown_length_refuses_a_window_bringing_no_new_frame() -> None:
    linker = WindowLinker(None, 4, 2, (8, 8), (8, 8), (8, 8))
    linker.push(torch.zeros(4, 1, 2, 2), torch.zeros(4, 1, 2))
    with pytest.raises(ValueError, match=r"window 1 of 2 frames: expected 3\.\.4"):
        linker.push(torch.zeros(2, 1, 2, 2), torch.zeros(2, 1, 2))
