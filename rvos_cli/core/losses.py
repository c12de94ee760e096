"""MTTR's training losses: sigmoid focal and dice on matched masks, weighted reference CE, the criterion.

Shape letters: T = annotated frames, B = batch, Nq = object queries, M = matched masks, P = pixels,
h×w = predicted mask size (H/4×W/4), Hgt×Wgt = GT size padded over all T·B frames of the batch.
Targets follow the layout documented in `rvos_cli.core.matcher`.
"""

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor, nn

from rvos_cli.core.config import LossConfig
from rvos_cli.core.matcher import (
    HungarianMatcher,
    Targets,
    concat_padded_masks,
    is_ref_visible,
    referred_indices,
)

DEFAULT_WEIGHTS = {"loss_is_referred": 2.0, "loss_dice": 5.0, "loss_sigmoid_focal": 2.0}


def dice_loss(inputs: Tensor, targets: Tensor, num_masks: float) -> Tensor:
    """Dice loss 1 − (2Σσ(p)g + 1)/(Σσ(p) + Σg + 1) per mask, summed over masks, divided by num_masks.

    inputs: `[M, ...]` mask logits; targets: `[M, ...]` binary float masks of the same shape.
    Returns a scalar tensor.
    """
    probs = inputs.sigmoid().flatten(1)  # [M, P]
    targets = targets.flatten(1)  # [M, P]
    numerator = 2 * (probs * targets).sum(-1) + 1
    denominator = probs.sum(-1) + targets.sum(-1) + 1
    return (1 - numerator / denominator).sum() / num_masks


def sigmoid_focal_loss(
    inputs: Tensor, targets: Tensor, num_masks: float, alpha: float = 0.25, gamma: float = 2.0
) -> Tensor:
    """Sigmoid focal loss: mean over pixels of each mask, summed over masks, divided by num_masks.

    Per pixel BCE-with-logits · (1 − p_t)^gamma · alpha_t, alpha_t = alpha on positives, 1 − alpha on
    negatives. inputs: `[M, ...]` mask logits; targets: `[M, ...]` binary float masks of the same shape.
    Returns a scalar tensor.
    """
    probs = inputs.sigmoid()
    bce = F.binary_cross_entropy_with_logits(inputs, targets, reduction="none")
    p_t = probs * targets + (1 - probs) * (1 - targets)
    alpha_t = alpha * targets + (1 - alpha) * (1 - targets)
    loss = alpha_t * bce * (1 - p_t) ** gamma
    return loss.flatten(1).mean(-1).sum() / num_masks


def is_referred_loss(
    pred_is_referred: Tensor, targets: Targets, indices: list[tuple[Tensor, Tensor]], eos_coef: float = 0.1
) -> Tensor:
    """Weighted 2-class cross-entropy over all queries of every frame, normalised by the T·B frames.

    pred_is_referred: `[T, B, Nq, 2]` logits (class 0 = referred, 1 = not referred); targets: list over
    the T frames of per-sample dicts; indices: per sample (query indices, GT indices) from the matcher.
    Every query is targeted "not referred" with weight eos_coef, except the queries matched to the referred
    instances (one, several or none; see `rvos_cli.core.matcher`): weight 1 in every frame, target
    "referred" only in frames where that instance is visible. With one referred instance this is MTTR's
    loss (spec §7); with none every query is "not referred" at weight eos_coef. Returns a scalar tensor.
    """
    T, B, Nq, _ = pred_is_referred.shape
    device = pred_is_referred.device
    target = torch.zeros(T, B, Nq, 2, device=device)  # [T, B, Nq, 2]
    target[..., 1] = 1
    weight = torch.full((T, B, Nq), eos_coef, device=device)  # [T, B, Nq]
    for b, (query_idx, gt_idx) in enumerate(indices):
        if len(gt_idx) == 0:
            continue
        for position, referred in enumerate(referred_indices(targets[0][b])):
            query = int(query_idx[gt_idx == referred][0])
            weight[:, b, query] = 1.0
            for t in range(T):
                if is_ref_visible(targets[t][b], position):
                    target[t, b, query] = torch.tensor([1.0, 0.0], device=device)
    cross_entropy = -(target * pred_is_referred.log_softmax(-1)).sum(-1)  # [T, B, Nq]
    return (weight * cross_entropy).sum() / (T * B)


def count_num_masks(targets: Targets, device: torch.device) -> float:
    """Number of GT masks over all T·B frames, averaged over processes when distributed, at least 1."""
    num_masks = torch.tensor(
        float(sum(len(tgt["masks"]) for frame in targets for tgt in frame)), device=device
    )
    if dist.is_available() and dist.is_initialized():
        dist.all_reduce(num_masks)
        num_masks = num_masks / dist.get_world_size()
    return max(num_masks.item(), 1.0)


class SetCriterion(nn.Module):
    """MTTR's loss: Hungarian-match every decoder layer's prediction, then mask and reference losses.

    weight_dict maps 'loss_is_referred', 'loss_dice', 'loss_sigmoid_focal' to weights (default 2, 5, 2;
    a missing key counts as 0); a loss is computed only when its weight is > 0. The auxiliary decoder
    layers get the same losses and weights under keys suffixed `_0`, `_1`, ...
    """

    def __init__(
        self, matcher: HungarianMatcher, weight_dict: dict[str, float] | None = None, eos_coef: float = 0.1
    ) -> None:
        super().__init__()
        self.matcher = matcher
        self.weight_dict = dict(DEFAULT_WEIGHTS if weight_dict is None else weight_dict)
        self.eos_coef = eos_coef

    def layer_losses(
        self, outputs: dict[str, Tensor], targets: Targets, num_masks: float
    ) -> dict[str, Tensor]:
        """Unweighted losses of one decoder layer with its own matching.

        outputs: 'pred_masks' `[T, B, Nq, h, w]`, 'pred_is_referred' `[T, B, Nq, 2]` logits.
        Returns {loss name: scalar tensor} for the losses whose weight is > 0.
        """
        indices = self.matcher(outputs, targets)
        losses = {}
        if self.weight_dict.get("loss_is_referred", 0) > 0:
            losses["loss_is_referred"] = is_referred_loss(
                outputs["pred_is_referred"], targets, indices, self.eos_coef
            )
        if self.weight_dict.get("loss_dice", 0) > 0 or self.weight_dict.get("loss_sigmoid_focal", 0) > 0:
            src, tgt = self.matched_masks(outputs["pred_masks"], targets, indices)
            if self.weight_dict.get("loss_sigmoid_focal", 0) > 0:
                losses["loss_sigmoid_focal"] = sigmoid_focal_loss(src, tgt, num_masks)
            if self.weight_dict.get("loss_dice", 0) > 0:
                losses["loss_dice"] = dice_loss(src, tgt, num_masks)
        return losses

    @staticmethod
    def matched_masks(
        pred_masks: Tensor, targets: Targets, indices: list[tuple[Tensor, Tensor]]
    ) -> tuple[Tensor, Tensor]:
        """Matched prediction/GT mask pairs of all T·B frames (t-major), at the batch's padded GT size.

        pred_masks: `[T, B, Nq, h, w]` logits. Returns (predicted logits `[M, Hgt·Wgt]` bilinearly
        upsampled, GT masks `[M, Hgt·Wgt]` float), M = T·Σ_b n_b.
        """
        T, B = pred_masks.shape[:2]
        src = torch.cat([pred_masks[t, b, indices[b][0]] for t in range(T) for b in range(B)])  # [M, h, w]
        gt_masks = [targets[t][b]["masks"][indices[b][1]] for t in range(T) for b in range(B)]
        tgt = concat_padded_masks(gt_masks, pred_masks.device, pred_masks.dtype)  # [M, Hgt, Wgt]
        src = F.interpolate(src[:, None], size=tgt.shape[-2:], mode="bilinear", align_corners=False)
        return src.flatten(1), tgt.flatten(1)

    def forward(self, outputs: dict, targets: Targets) -> tuple[dict[str, Tensor], Tensor]:
        """Losses of the main output and of every entry of outputs['aux_outputs'] (if present).

        outputs: 'pred_masks' `[T, B, Nq, h, w]`, 'pred_is_referred' `[T, B, Nq, 2]` logits and optionally
        'aux_outputs', a list of dicts with the same two keys; targets: list over the T frames of
        per-sample dicts. Returns (unweighted losses keyed 'loss_sigmoid_focal', 'loss_dice',
        'loss_is_referred' and the same with suffix `_i` for aux layer i, total weighted loss as a
        scalar tensor).
        """
        device = outputs["pred_masks"].device
        num_masks = count_num_masks(targets, device)
        losses = self.layer_losses(outputs, targets, num_masks)
        weighted = {name: self.weight_dict[name] * value for name, value in losses.items()}
        for i, aux in enumerate(outputs.get("aux_outputs", [])):
            for name, value in self.layer_losses(aux, targets, num_masks).items():
                losses[f"{name}_{i}"] = value
                weighted[f"{name}_{i}"] = self.weight_dict[name] * value
        total = sum(weighted.values(), torch.zeros((), device=device))
        return losses, total


def build_criterion(loss: LossConfig) -> SetCriterion:
    """The MTTR criterion of a config: its matcher costs, loss weights and eos_coef (spec §6–7)."""
    matcher = HungarianMatcher(cost_is_referred=loss.set_cost_is_referred, cost_dice=loss.set_cost_dice)
    weights = {
        "loss_is_referred": loss.is_referred_loss_coef,
        "loss_dice": loss.dice_loss_coef,
        "loss_sigmoid_focal": loss.sigmoid_focal_loss_coef,
    }
    return SetCriterion(matcher, weight_dict=weights, eos_coef=loss.eos_coef)
