"""MTTR losses: focal, dice and reference CE against hand-computed values, and the set criterion."""

import math

import pytest
import torch

from rvos_cli.core import losses as losses_module
from rvos_cli.core.losses import (
    SetCriterion,
    count_num_masks,
    dice_loss,
    is_referred_loss,
    sigmoid_focal_loss,
)
from rvos_cli.core.matcher import HungarianMatcher

LN2, LN3, LN4, LN4_3 = math.log(2.0), math.log(3.0), math.log(4.0), math.log(4.0 / 3.0)
# Mask logits [[0, ln3], [-ln3, 0]] -> sigmoid [[1/2, 3/4], [1/4, 1/2]].
LOGITS = torch.tensor([[[0.0, LN3], [-LN3, 0.0]]])  # [1, 2, 2]
TOP_ROW = torch.tensor([[[1.0, 1.0], [0.0, 0.0]]])  # [1, 2, 2]
EMPTY = torch.zeros(1, 2, 2)
# Focal terms alpha_t * BCE * (1 - p_t)^2 per pixel for the top-row target:
#   logit 0, g=1: 1/4 * ln2 * 1/4       logit ln3, g=1: 1/4 * ln(4/3) * 1/16
#   logit -ln3, g=0: 3/4 * ln(4/3) * 1/16   logit 0, g=0: 3/4 * ln2 * 1/4
# mean over the 4 pixels = ln2/16 + ln(4/3)/64.
FOCAL_TOP_ROW = LN2 / 16 + LN4_3 / 64
# Empty target (all g=0): 3/4*ln2/4 (twice), logit ln3: 3/4 * ln4 * 9/16, logit -ln3: 3/4 * ln(4/3) / 16;
# mean over 4 pixels = 39 ln2/128 + 3 ln(4/3)/256.
FOCAL_EMPTY = 39 * LN2 / 128 + 3 * LN4_3 / 256
# Dice: top row (2*(1/2+3/4) + 1) / (2 + 2 + 1) = 0.7 -> loss 0.3; empty: (0 + 1) / (2 + 0 + 1) -> loss 2/3.
DICE_TOP_ROW, DICE_EMPTY = 0.3, 2 / 3


def frame_target(
    masks: torch.Tensor, referred: int = 0, visible: bool | None = None
) -> dict[str, torch.Tensor]:
    """One sample's dict for one frame; masks `[n, H, W]`."""
    target = {"masks": masks.bool(), "referred_instance_idx": torch.tensor(referred)}
    if visible is not None:
        target["is_ref_inst_visible"] = torch.tensor(visible)
    return target


def close(actual: torch.Tensor, expected: float) -> None:
    torch.testing.assert_close(actual, torch.tensor(expected), rtol=1e-5, atol=1e-6)


def test_sigmoid_focal_loss_hand_values() -> None:
    close(sigmoid_focal_loss(LOGITS, TOP_ROW, num_masks=1), FOCAL_TOP_ROW)


def test_sigmoid_focal_loss_on_an_empty_gt_mask() -> None:
    close(sigmoid_focal_loss(LOGITS, EMPTY, num_masks=1), FOCAL_EMPTY)


def test_dice_loss_hand_values() -> None:
    close(dice_loss(LOGITS, TOP_ROW, num_masks=1), DICE_TOP_ROW)


def test_dice_loss_on_an_empty_gt_mask() -> None:
    close(dice_loss(LOGITS, EMPTY, num_masks=1), DICE_EMPTY)


def test_mask_losses_sum_over_masks_and_divide_by_num_masks() -> None:
    inputs = torch.cat([LOGITS, LOGITS])
    targets = torch.cat([TOP_ROW, EMPTY])
    close(dice_loss(inputs, targets, num_masks=4), (DICE_TOP_ROW + DICE_EMPTY) / 4)
    close(sigmoid_focal_loss(inputs, targets, num_masks=4), (FOCAL_TOP_ROW + FOCAL_EMPTY) / 4)


def test_is_referred_loss_with_zero_logits_is_the_spec_value_per_frame() -> None:
    # 50 queries, CE ln2 each: 49 weighted 0.1 + the referred one weighted 1, per frame; 4 frames / 4.
    T, B, Nq = 2, 2, 50
    targets = [tuple(frame_target(TOP_ROW) for _ in range(B)) for _ in range(T)]
    indices = [(torch.tensor([7]), torch.tensor([0])), (torch.tensor([31]), torch.tensor([0]))]
    loss = is_referred_loss(torch.zeros(T, B, Nq, 2), targets, indices)
    close(loss, (49 * 0.1 + 1) * LN2)


def test_is_referred_loss_invisible_frame_keeps_weight_one_and_targets_not_referred() -> None:
    # Query 1 (matched to the referred instance) has logits [ln3, 0] -> p = [3/4, 1/4]; others are 0 -> ln2.
    # Frame 0 (visible): target referred, CE ln(4/3), weight 1. Frame 1 (invisible): target not referred,
    # CE ln4, still weight 1. Queries 0 and 2: 0.1*ln2 each per frame. Sum over 2 frames / 2.
    logits = torch.zeros(2, 1, 3, 2)
    logits[:, 0, 1, 0] = LN3
    targets = [(frame_target(TOP_ROW, visible=True),), (frame_target(EMPTY, visible=False),)]
    loss = is_referred_loss(logits, targets, [(torch.tensor([1]), torch.tensor([0]))])
    close(loss, (4 * 0.1 * LN2 + LN4_3 + LN4) / 2)


def test_is_referred_loss_targets_matched_non_referred_queries_as_not_referred() -> None:
    # Referred instance 1 is matched to query 0, instance 0 to query 2; both have logits [ln3, 0].
    # Query 0: target referred, CE ln(4/3), weight 1. Query 2: target not referred, CE ln4, weight 0.1.
    # Query 1: logits 0, CE ln2, weight 0.1. One frame.
    logits = torch.zeros(1, 1, 3, 2)
    logits[0, 0, [0, 2], 0] = LN3
    targets = [(frame_target(torch.cat([TOP_ROW, EMPTY]), referred=1),)]
    loss = is_referred_loss(logits, targets, [(torch.tensor([0, 2]), torch.tensor([1, 0]))])
    close(loss, LN4_3 + 0.1 * LN4 + 0.1 * LN2)


def test_is_referred_loss_without_gt_instances_targets_every_query_not_referred() -> None:
    targets = [(frame_target(torch.zeros(0, 2, 2)),)]
    loss = is_referred_loss(torch.zeros(1, 1, 5, 2), targets, [(torch.zeros(0, dtype=torch.int64),) * 2])
    close(loss, 5 * 0.1 * LN2)


def constant_outputs(T: int, B: int, Nq: int, size: int = 2) -> dict[str, torch.Tensor]:
    """Zero logits: every query predicts sigmoid 1/2 everywhere and p(referred) = 1/2."""
    return {"pred_masks": torch.zeros(T, B, Nq, size, size), "pred_is_referred": torch.zeros(T, B, Nq, 2)}


def test_num_masks_counts_every_gt_mask_of_every_frame() -> None:
    # Sample 0 has 1 instance, sample 1 has 2; T = 2 -> num_masks = 6.
    # Dice per mask with k GT pixels against sigmoid 1/2 on 4 pixels: 1 - (k + 1)/(k + 3) = 2/(k + 3).
    # Masks have k = 2, 1, 0 -> per frame 2/5 + 2/4 + 2/3; two frames; divided by 6 -> 47/90.
    one_pixel = torch.tensor([[[1.0, 0.0], [0.0, 0.0]]])
    targets = [(frame_target(TOP_ROW), frame_target(torch.cat([one_pixel, EMPTY]))) for _ in range(2)]
    assert count_num_masks(targets, torch.device("cpu")) == 6
    criterion = SetCriterion(HungarianMatcher())
    losses, _ = criterion(constant_outputs(T=2, B=2, Nq=5), targets)
    close(losses["loss_dice"], 47 / 90)


def test_num_masks_is_clamped_to_one_without_gt() -> None:
    targets = [(frame_target(torch.zeros(0, 2, 2)),)]
    assert count_num_masks(targets, torch.device("cpu")) == 1
    losses, _ = SetCriterion(HungarianMatcher())(constant_outputs(T=1, B=1, Nq=5), targets)
    close(losses["loss_dice"], 0.0)
    close(losses["loss_sigmoid_focal"], 0.0)
    close(losses["loss_is_referred"], 5 * 0.1 * LN2)


def test_num_masks_is_averaged_over_processes(monkeypatch: pytest.MonkeyPatch) -> None:
    # Simulate a second process holding 4 masks: all-reduce gives 2 + 4, divided by world size 2 -> 3.
    monkeypatch.setattr(losses_module.dist, "is_initialized", lambda: True)
    monkeypatch.setattr(losses_module.dist, "get_world_size", lambda: 2)
    monkeypatch.setattr(losses_module.dist, "all_reduce", lambda tensor: tensor.add_(4))
    targets = [(frame_target(TOP_ROW), frame_target(TOP_ROW))]
    assert count_num_masks(targets, torch.device("cpu")) == 3


def test_matched_masks_are_upsampled_to_the_padded_batch_size() -> None:
    # Zero logits upsampled to 4x4: sigmoid 1/2 on 16 pixels (sum 8). Sample 0's 2x2 top row padded:
    # dice (2 + 1)/(8 + 2 + 1) -> loss 8/11; sample 1's 4x4 mask of 4 pixels: (4 + 1)/(8 + 4 + 1) -> 8/13.
    big = torch.zeros(1, 4, 4)
    big[0, 2:, 2:] = 1
    targets = [(frame_target(TOP_ROW), frame_target(big))]
    losses, _ = SetCriterion(HungarianMatcher())(constant_outputs(T=1, B=2, Nq=3), targets)
    close(losses["loss_dice"], (8 / 11 + 8 / 13) / 2)


def test_matched_masks_are_upsampled_bilinearly_without_align_corners() -> None:
    # Rows of logits -2ln3 and 2ln3 upsampled 2x2 -> 4x4 (align_corners=False) give rows
    # -2ln3, -ln3, ln3, 2ln3 -> sigmoid 1/10, 1/4, 3/4, 9/10 (sum 8). GT: bottom half (8 pixels),
    # overlap 4*(3/4 + 9/10) = 6.6 -> dice loss 1 - (13.2 + 1)/(8 + 8 + 1) = 2.8/17.
    big = torch.zeros(1, 4, 4)
    big[0, 2:] = 1
    outputs = constant_outputs(T=1, B=1, Nq=1)
    outputs["pred_masks"] = torch.tensor([[-2 * LN3, -2 * LN3], [2 * LN3, 2 * LN3]]).reshape(1, 1, 1, 2, 2)
    losses, _ = SetCriterion(HungarianMatcher())(outputs, [(frame_target(big),)])
    close(losses["loss_dice"], 2.8 / 17)


def random_batch(seed: int = 0, aux_layers: int = 2) -> tuple[dict, list]:
    """Random logits (T=2, B=2, Nq=5, 4x4 masks, aux outputs) and targets with 2 and 1 instances."""
    generator = torch.Generator().manual_seed(seed)

    def layer() -> dict[str, torch.Tensor]:
        return {
            "pred_masks": torch.randn(2, 2, 5, 4, 4, generator=generator).requires_grad_(),
            "pred_is_referred": torch.randn(2, 2, 5, 2, generator=generator).requires_grad_(),
        }

    outputs = layer()
    outputs["aux_outputs"] = [layer() for _ in range(aux_layers)]
    gt = [torch.rand(2, 8, 8, generator=generator) > 0.5, torch.rand(1, 8, 8, generator=generator) > 0.5]
    targets = [(frame_target(gt[0], referred=1), frame_target(gt[1], visible=t == 0)) for t in range(2)]
    return outputs, targets


def test_losses_of_every_decoder_layer_are_returned_with_suffixes() -> None:
    outputs, targets = random_batch()
    losses, _ = SetCriterion(HungarianMatcher())(outputs, targets)
    names = ["loss_sigmoid_focal", "loss_dice", "loss_is_referred"]
    assert set(losses) == {f"{name}{suffix}" for name in names for suffix in ["", "_0", "_1"]}


def test_total_is_the_weighted_sum_of_all_terms() -> None:
    outputs, targets = random_batch()
    losses, total = SetCriterion(HungarianMatcher())(outputs, targets)
    weights = {"loss_is_referred": 2, "loss_dice": 5, "loss_sigmoid_focal": 2}
    expected = sum(weights[name.rstrip("_01")] * value for name, value in losses.items())
    assert total.shape == ()
    torch.testing.assert_close(total, expected)


def test_a_loss_with_zero_weight_is_not_computed() -> None:
    outputs, targets = random_batch(aux_layers=1)
    criterion = SetCriterion(
        HungarianMatcher(), {"loss_is_referred": 2, "loss_dice": 5, "loss_sigmoid_focal": 0}
    )
    losses, total = criterion(outputs, targets)
    assert set(losses) == {"loss_dice", "loss_is_referred", "loss_dice_0", "loss_is_referred_0"}
    torch.testing.assert_close(total, sum(5 * v if "dice" in k else 2 * v for k, v in losses.items()))


def test_aux_layers_are_matched_on_their_own() -> None:
    # The GT (top row) is predicted by query 0 in the last layer and by query 1 in the aux layer; with its
    # own matching the aux layer's dice loss equals the last layer's (small), with the last layer's
    # matching it would be near 1.
    good = torch.tensor([[10.0, 10.0], [-10.0, -10.0]])
    layer_masks = torch.stack([good, -good])  # [Nq, 2, 2]
    outputs = {
        "pred_masks": layer_masks.reshape(1, 1, 2, 2, 2),
        "pred_is_referred": torch.zeros(1, 1, 2, 2),
        "aux_outputs": [
            {
                "pred_masks": layer_masks.flip(0).reshape(1, 1, 2, 2, 2),
                "pred_is_referred": torch.zeros(1, 1, 2, 2),
            }
        ],
    }
    losses, _ = SetCriterion(HungarianMatcher())(outputs, [(frame_target(TOP_ROW),)])
    torch.testing.assert_close(losses["loss_dice_0"], losses["loss_dice"])
    assert losses["loss_dice"] < 0.01


def test_gradients_flow_to_predictions_of_every_layer() -> None:
    outputs, targets = random_batch()
    _, total = SetCriterion(HungarianMatcher())(outputs, targets)
    total.backward()
    for layer in [outputs, *outputs["aux_outputs"]]:
        for key in ["pred_masks", "pred_is_referred"]:
            grad = layer[key].grad
            assert grad is not None
            assert torch.isfinite(grad).all()
            assert grad.abs().sum() > 0


# ---------------------------------------------------------------------- sets of referred instances (MeViS)


def as_set(targets: list, referred: list[list[int]], visible: list[list[list[bool]]] | None = None) -> list:
    """The same targets with 'referred_instance_idx' as `[R]` sets (and `[R]` visibility per frame)."""
    out = []
    for t, frame in enumerate(targets):
        row = []
        for b, target in enumerate(frame):
            target = dict(target, referred_instance_idx=torch.tensor(referred[b], dtype=torch.int64))
            if visible is not None:
                target["is_ref_inst_visible"] = torch.tensor(visible[t][b], dtype=torch.bool)
            elif "is_ref_inst_visible" in target:
                target["is_ref_inst_visible"] = target["is_ref_inst_visible"].reshape(1)
            row.append(target)
        out.append(tuple(row))
    return out


def test_a_one_element_referred_set_gives_exactly_the_single_instance_loss() -> None:
    outputs, targets = random_batch(seed=3)
    single, single_total = SetCriterion(HungarianMatcher())(outputs, targets)
    as_sets, set_total = SetCriterion(HungarianMatcher())(outputs, as_set(targets, [[1], [0]]))
    assert set(single) == set(as_sets)
    for name in single:
        assert torch.equal(single[name], as_sets[name]), name
    assert torch.equal(single_total, set_total)


def test_two_referred_instances_each_get_weight_one_and_their_own_visibility() -> None:
    # Every query has logits [ln3, 0] -> p = [3/4, 1/4]: CE ln(4/3) if targeted referred, ln4 if not.
    # Instances 0 and 2 are referred (queries 3 and 1). Frame 0: both visible -> 2 ln(4/3);
    # frame 1: instance 2 invisible -> ln(4/3) + ln4 (weight still 1). Queries 0 and 2 (instance 1 and
    # unmatched): 0.1 ln4 each per frame. Sum over 2 frames / 2.
    logits = torch.zeros(2, 1, 4, 2)
    logits[..., 0] = LN3
    masks = torch.cat([TOP_ROW, EMPTY, TOP_ROW])
    targets = [(frame_target(masks),), (frame_target(masks),)]
    targets = as_set(targets, [[0, 2]], visible=[[[True, True]], [[True, False]]])
    indices = [(torch.tensor([0, 1, 3]), torch.tensor([1, 2, 0]))]
    loss = is_referred_loss(logits, targets, indices)
    close(loss, (2 * LN4_3 + (LN4_3 + LN4) + 2 * 2 * 0.1 * LN4) / 2)


def test_an_empty_referred_set_targets_every_query_not_referred() -> None:
    # Two GT instances are matched (queries 0, 1) but nothing is referred: all 3 queries at weight 0.1.
    logits = torch.zeros(1, 1, 3, 2)
    logits[..., 0] = LN3
    targets = as_set([(frame_target(torch.cat([TOP_ROW, EMPTY])),)], [[]], visible=[[[]]])
    loss = is_referred_loss(logits, targets, [(torch.tensor([0, 1]), torch.tensor([0, 1]))])
    close(loss, 3 * 0.1 * LN4)
