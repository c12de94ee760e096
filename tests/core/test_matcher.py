"""Sequence-level Hungarian matcher: exact costs on hand-built logits and the resulting assignments."""

import math

import pytest
import torch

from rvos_cli.core.matcher import HungarianMatcher

LN3 = math.log(3.0)
TOP_ROW = [[1, 1], [0, 0]]
LEFT_COLUMN = [[1, 0], [1, 0]]
EMPTY = [[0, 0], [0, 0]]


def frame_target(masks: list, referred: int = 0, visible: bool | None = None) -> dict[str, torch.Tensor]:
    """One sample's dict for one frame: 2x2 masks `[n, 2, 2]` bool from nested lists (n may be 0)."""
    target = {
        "masks": torch.tensor(masks, dtype=torch.bool).reshape(-1, 2, 2),
        "referred_instance_idx": torch.tensor(referred),
    }
    if visible is not None:
        target["is_ref_inst_visible"] = torch.tensor(visible)
    return target


def outputs(pred_masks: torch.Tensor, pred_is_referred: torch.Tensor) -> dict[str, torch.Tensor]:
    return {"pred_masks": pred_masks, "pred_is_referred": pred_is_referred}


def test_cost_matrix_matches_hand_computed_values() -> None:
    # One query: mask logits [[0, ln3], [-ln3, 0]] -> sigmoid [[1/2, 3/4], [1/4, 1/2]] (sum 2);
    # reference logits [ln3, 0] -> softmax [3/4, 1/4].
    # GT 0 (top row, not referred): dice = (2*(1/2+3/4) + 1) / (2 + 2 + 1) = 0.7, ref target [0,1] -> p = 1/4
    #   C = 2*(-1/4) + 5*(-0.7) = -4.0
    # GT 1 (empty, referred): dice = (0 + 1) / (2 + 0 + 1) = 1/3, ref target [1,0] -> p = 3/4
    #   C = 2*(-3/4) + 5*(-1/3) = -19/6
    pred_masks = torch.tensor([[0.0, LN3], [-LN3, 0.0]]).reshape(1, 1, 1, 2, 2)
    pred_is_referred = torch.tensor([LN3, 0.0]).reshape(1, 1, 1, 2)
    targets = [(frame_target([TOP_ROW, EMPTY], referred=1),)]
    cost = HungarianMatcher().cost_matrix(outputs(pred_masks, pred_is_referred), targets)
    assert cost.shape == (1, 1, 2)
    torch.testing.assert_close(cost, torch.tensor([[[-4.0, -19 / 6]]]))


def test_dice_cost_is_averaged_over_time() -> None:
    # Same prediction in both frames (dice 0.7 against the top row, 1/3 against an empty mask);
    # reference logits 0 -> p = 1/2 in both frames. C = 2*(-1/2) + 5*(-(0.7 + 1/3)/2) = -43/12.
    pred_masks = torch.tensor([[0.0, LN3], [-LN3, 0.0]]).expand(2, 1, 1, 2, 2)
    pred_is_referred = torch.zeros(2, 1, 1, 2)
    targets = [(frame_target([TOP_ROW]),), (frame_target([EMPTY]),)]
    cost = HungarianMatcher().cost_matrix(outputs(pred_masks, pred_is_referred), targets)
    torch.testing.assert_close(cost, torch.tensor([[[-43 / 12]]]))


def test_gt_masks_are_zero_padded_to_the_largest_size_and_predictions_upsampled() -> None:
    # Zero logits stay 0 when upsampled to 4x4: sigmoid 1/2 on 16 pixels, sum 8.
    # Sample 0's 2x2 top row padded to 4x4: dice = (2*1 + 1) / (8 + 2 + 1) = 3/11.
    # Sample 1's 4x4 mask with 4 pixels: dice = (2*2 + 1) / (8 + 4 + 1) = 5/13. p(ref) = 1/2 everywhere.
    big = torch.zeros(1, 4, 4, dtype=torch.bool)
    big[0, 2:, 2:] = True
    targets = [(frame_target([TOP_ROW]), {"masks": big, "referred_instance_idx": torch.tensor(0)})]
    pred = outputs(torch.zeros(1, 2, 1, 2, 2), torch.zeros(1, 2, 1, 2))
    cost = HungarianMatcher().cost_matrix(pred, targets)
    row = torch.tensor([-1 - 5 * 3 / 11, -1 - 5 * 5 / 13])
    torch.testing.assert_close(cost, row.expand(2, 1, 2))


def test_assignment_follows_mask_overlap_and_is_not_the_identity() -> None:
    # Queries 1 and 3 predict the left column and the top row (logits +-10); queries 0 and 2 predict nothing.
    off = [[-10.0, -10.0], [-10.0, -10.0]]
    masks = torch.tensor([off, [[10.0, -10.0], [10.0, -10.0]], off, [[10.0, 10.0], [-10.0, -10.0]]])
    pred = outputs(masks.reshape(1, 1, 4, 2, 2), torch.zeros(1, 1, 4, 2))
    targets = [(frame_target([TOP_ROW, LEFT_COLUMN]),)]
    ((query_idx, gt_idx),) = HungarianMatcher()(pred, targets)
    assert query_idx.tolist() == [1, 3]
    assert gt_idx.tolist() == [1, 0]
    assert query_idx.dtype == gt_idx.dtype == torch.int64


def test_reference_cost_picks_the_query_for_the_referred_instance() -> None:
    # Identical masks for all queries; only query 2 is confident it is the referred one.
    ref_logits = torch.tensor([[0.0, 5.0], [0.0, 5.0], [5.0, 0.0]]).reshape(1, 1, 3, 2)
    pred = outputs(torch.zeros(1, 1, 3, 2, 2), ref_logits)
    ((query_idx, gt_idx),) = HungarianMatcher()(pred, [(frame_target([TOP_ROW]),)])
    assert (query_idx.tolist(), gt_idx.tolist()) == ([2], [0])


@pytest.mark.parametrize(("visible_in_frame_1", "expected_query"), [(True, 0), (False, 1)])
def test_ref_ytvos_visibility_changes_the_assignment(visible_in_frame_1: bool, expected_query: int) -> None:
    # Query 0 says "referred" in both frames; query 1 says "referred" in frame 0 and "not referred" in
    # frame 1. Visible in both frames: query 0 scores mean(1, 1) = 1 vs query 1 mean(1, 0) = 1/2.
    # Invisible in frame 1 (target [0,1] there): query 0 scores 1/2 vs query 1 scores 1.
    ref_logits = torch.tensor([[[20.0, -20.0], [20.0, -20.0]], [[20.0, -20.0], [-20.0, 20.0]]])  # [T, Nq, 2]
    pred = outputs(torch.zeros(2, 1, 2, 2, 2), ref_logits[:, None])
    targets = [
        (frame_target([TOP_ROW], visible=True),),
        (frame_target([TOP_ROW], visible=visible_in_frame_1),),
    ]
    ((query_idx, _),) = HungarianMatcher()(pred, targets)
    assert query_idx.tolist() == [expected_query]


def test_batched_matching_equals_matching_each_sample_alone() -> None:
    generator = torch.Generator().manual_seed(0)
    T, B, Nq = 2, 3, 5
    pred_masks = torch.randn(T, B, Nq, 4, 4, generator=generator)
    pred_is_referred = torch.randn(T, B, Nq, 2, generator=generator)
    sizes = [2, 0, 3]
    gt = [torch.rand(n, 8, 8, generator=generator) > 0.5 for n in sizes]  # same instances in every frame
    targets = [
        tuple(
            {"masks": gt[b], "referred_instance_idx": torch.tensor(n - 1 if n else 0)}
            for b, n in enumerate(sizes)
        )
        for _ in range(T)
    ]
    matcher = HungarianMatcher()
    batched = matcher(outputs(pred_masks, pred_is_referred), targets)
    for b in range(B):
        alone = matcher(
            outputs(pred_masks[:, b : b + 1], pred_is_referred[:, b : b + 1]),
            [(frame[b],) for frame in targets],
        )[0]
        assert torch.equal(batched[b][0], alone[0])
        assert torch.equal(batched[b][1], alone[1])
        assert len(batched[b][0]) == sizes[b]


def test_samples_without_gt_instances_get_empty_indices() -> None:
    pred = outputs(torch.randn(2, 2, 5, 2, 2), torch.randn(2, 2, 5, 2))
    targets = [(frame_target([]), frame_target([])) for _ in range(2)]
    indices = HungarianMatcher()(pred, targets)
    assert len(indices) == 2
    for query_idx, gt_idx in indices:
        assert query_idx.shape == gt_idx.shape == (0,)
        assert query_idx.dtype == gt_idx.dtype == torch.int64


def test_cost_is_computed_without_gradients() -> None:
    pred_masks = torch.randn(1, 1, 3, 2, 2, requires_grad=True)
    pred_is_referred = torch.randn(1, 1, 3, 2, requires_grad=True)
    cost = HungarianMatcher().cost_matrix(outputs(pred_masks, pred_is_referred), [(frame_target([TOP_ROW]),)])
    assert not cost.requires_grad


def test_predictions_are_upsampled_bilinearly_without_align_corners() -> None:
    # Rows of logits -2ln3 and 2ln3 upsampled 2x2 -> 4x4 (align_corners=False) give rows
    # -2ln3, -ln3, ln3, 2ln3 -> sigmoid 1/10, 1/4, 3/4, 9/10 (sum 4*2 = 8). GT: bottom half of 4x4 (8 pixels),
    # overlap 4*(3/4 + 9/10) = 6.6 -> dice = (13.2 + 1)/(8 + 8 + 1) = 14.2/17. p(ref) = 1/2.
    pred_masks = torch.tensor([[-2 * LN3, -2 * LN3], [2 * LN3, 2 * LN3]]).reshape(1, 1, 1, 2, 2)
    gt = torch.zeros(1, 4, 4, dtype=torch.bool)
    gt[0, 2:] = True
    targets = [({"masks": gt, "referred_instance_idx": torch.tensor(0)},)]
    cost = HungarianMatcher().cost_matrix(outputs(pred_masks, torch.zeros(1, 1, 1, 2)), targets)
    torch.testing.assert_close(cost, torch.tensor([[[-1 - 5 * 14.2 / 17]]]))


def test_reference_cost_with_a_set_of_referred_instances_or_none() -> None:
    # As the first test: dice 0.7 (top row) and 1/3 (empty); p(referred) = 3/4, p(not) = 1/4.
    # Both referred: C = 2*(-3/4) + 5*(-0.7) = -5 and 2*(-3/4) + 5*(-1/3) = -19/6.
    # None referred: C = 2*(-1/4) + 5*(-0.7) = -4 and 2*(-1/4) + 5*(-1/3) = -13/6.
    pred_masks = torch.tensor([[0.0, LN3], [-LN3, 0.0]]).reshape(1, 1, 1, 2, 2)
    pred_is_referred = torch.tensor([LN3, 0.0]).reshape(1, 1, 1, 2)
    both = frame_target([TOP_ROW, EMPTY])
    both["referred_instance_idx"] = torch.tensor([0, 1])
    none = dict(both, referred_instance_idx=torch.zeros(0, dtype=torch.int64))
    matcher = HungarianMatcher()
    cost_both = matcher.cost_matrix(outputs(pred_masks, pred_is_referred), [(both,)])
    cost_none = matcher.cost_matrix(outputs(pred_masks, pred_is_referred), [(none,)])
    torch.testing.assert_close(cost_both, torch.tensor([[[-5.0, -19 / 6]]]))
    torch.testing.assert_close(cost_none, torch.tensor([[[-4.0, -13 / 6]]]))
