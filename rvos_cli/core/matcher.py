"""Sequence-level Hungarian matching between MTTR's object queries and the ground-truth instances.

Shape letters: T = annotated frames in the window, B = batch, Nq = object queries, n_b = GT instances
of sample b, N = Σ_b n_b, h×w = predicted mask size (H/4×W/4), Hgt×Wgt = padded GT mask size.

Targets layout (shared with `rvos_cli.core.losses`): a list over the T annotated frames; each item is a
tuple over the B samples of dicts with
    'masks'                  [n_b, Hgt_b, Wgt_b] bool/uint8/float, the same instances in the same order
                             in every frame (an instance absent from a frame has an all-zero mask),
    'referred_instance_idx'  int tensor, the referred instances as indices into the n_b instances (same
                             in every frame): a scalar (one referred instance, A2D/JHMDB/Ref-YouTube-VOS)
                             or `[R]`, a set of R ≥ 0 instances (MeViS: several objects, or none),
    'is_ref_inst_visible'    optional bool tensor shaped like 'referred_instance_idx' (Ref-YouTube-VOS,
                             MeViS): is each referred instance visible in this frame; missing means visible.
"""

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from scipy.optimize import linear_sum_assignment
from torch import Tensor, nn

Targets = Sequence[Sequence[dict[str, Tensor]]]


def concat_padded_masks(masks: Sequence[Tensor], device: torch.device, dtype: torch.dtype) -> Tensor:
    """Concatenate per-frame mask stacks after zero-padding each one bottom/right to the largest size.

    Takes a sequence of `[n_i, H_i, W_i]` masks (any dtype, n_i may be 0) and returns
    `[Σn_i, max H_i, max W_i]` in `dtype` on `device`.
    """
    height = max(m.shape[-2] for m in masks)
    width = max(m.shape[-1] for m in masks)
    out = torch.zeros(sum(m.shape[0] for m in masks), height, width, device=device, dtype=dtype)
    start = 0
    for m in masks:
        n, mh, mw = m.shape
        out[start : start + n, :mh, :mw] = m.to(device=device, dtype=dtype)
        start += n
    return out


def referred_indices(frame_target: dict[str, Tensor]) -> list[int]:
    """The referred instances of a sample: 'referred_instance_idx' as a list (a scalar gives one index)."""
    return [int(i) for i in torch.as_tensor(frame_target["referred_instance_idx"]).reshape(-1)]


def is_ref_visible(frame_target: dict[str, Tensor], position: int = 0) -> bool:
    """Whether referred instance number `position` (in `referred_indices` order) is visible in this frame.

    True unless 'is_ref_inst_visible' (a scalar for one referred instance, `[R]` for a set) says no.
    """
    visible = frame_target.get("is_ref_inst_visible")
    return True if visible is None else bool(torch.as_tensor(visible).reshape(-1)[position])


def dice_coefficient_matrix(pred_logits: Tensor, gt_masks: Tensor) -> Tensor:
    """Dice coefficient (smooth 1) between every prediction and every GT mask of one frame.

    pred_logits: `[Q, P]` mask logits flattened over pixels; gt_masks: `[N, P]` binary float masks.
    Returns `[Q, N]` with (2·Σσ(p)g + 1) / (Σσ(p) + Σg + 1), sums over all P pixels.
    """
    probs = pred_logits.sigmoid()  # [Q, P]
    numerator = 2 * probs @ gt_masks.T + 1  # [Q, N]
    denominator = probs.sum(-1)[:, None] + gt_masks.sum(-1)[None, :] + 1  # [Q, N]
    return numerator / denominator


class HungarianMatcher(nn.Module):
    """One-to-one assignment of object queries to GT instance sequences, shared by all frames.

    There are more queries (Nq) than GT instances (n_b ≤ Nq), so each GT instance gets exactly one query
    and the remaining queries are left unmatched (they are trained towards "not referred"). A query is
    matched to a whole instance sequence, not frame by frame: the costs are averaged over the T frames
    and the resulting assignment is used in every frame.
    """

    def __init__(self, cost_is_referred: float = 2.0, cost_dice: float = 5.0) -> None:
        super().__init__()
        self.cost_is_referred = cost_is_referred
        self.cost_dice = cost_dice

    @torch.no_grad()
    def cost_matrix(self, outputs: dict[str, Tensor], targets: Targets) -> Tensor:
        """Matching cost C = cost_is_referred·Cost_ref + cost_dice·Cost_dice of every query vs every GT.

        outputs: 'pred_masks' `[T, B, Nq, h, w]` logits and 'pred_is_referred' `[T, B, Nq, 2]` logits
        (class 0 = referred, 1 = not referred); targets: see the module docstring.
        Returns `[B, Nq, N]` (float32), GT instances of all samples concatenated along the last axis.
        """
        pred_masks = outputs["pred_masks"].float()  # [T, B, Nq, h, w]
        T, B, Nq = pred_masks.shape[:3]
        device = pred_masks.device
        pred_masks = pred_masks.flatten(1, 2)  # [T, B·Nq, h, w]

        # Cost_dice: -dice at the padded GT size of each frame, averaged over time.
        dice_per_frame = []
        for t, frame_targets in enumerate(targets):
            gt = concat_padded_masks([tgt["masks"] for tgt in frame_targets], device, torch.float32)
            pred = F.interpolate(
                pred_masks[t][None], size=gt.shape[-2:], mode="bilinear", align_corners=False
            )  # [1, B·Nq, Hgt, Wgt]
            dice_per_frame.append(dice_coefficient_matrix(pred[0].flatten(1), gt.flatten(1)))  # [B·Nq, N]
        cost_dice = -torch.stack(dice_per_frame).mean(0)  # [B·Nq, N]

        # Cost_ref: per-frame one-hot target of every GT instance, [0,1] unless it is a referred one and
        # visible. The cost uses -p (the constant in 1-p cannot change the assignment), not the
        # log-likelihood of the loss: p is bounded in [0, 1] like the dice term, so neither cost swamps
        # the other, whereas -log p grows without bound for a confident wrong prediction.
        probs = outputs["pred_is_referred"].float().softmax(-1).flatten(1, 2)  # [T, B·Nq, 2]
        ref_targets = torch.zeros(T, cost_dice.shape[1], 2, device=device)  # [T, N, 2]
        ref_targets[..., 1] = 1
        offset = 0
        for b in range(B):
            n_b = len(targets[0][b]["masks"])
            if n_b > 0:
                for position, referred in enumerate(referred_indices(targets[0][b])):
                    for t in range(T):
                        if is_ref_visible(targets[t][b], position):
                            ref_targets[t, offset + referred] = torch.tensor([1.0, 0.0], device=device)
            offset += n_b
        cost_ref = -torch.einsum("tqc,tnc->qn", probs, ref_targets) / T  # [B·Nq, N]

        cost = self.cost_is_referred * cost_ref + self.cost_dice * cost_dice
        return cost.view(B, Nq, cost.shape[-1])

    @torch.no_grad()
    def forward(self, outputs: dict[str, Tensor], targets: Targets) -> list[tuple[Tensor, Tensor]]:
        """Match queries to GT instance sequences.

        outputs: 'pred_masks' `[T, B, Nq, h, w]` mask logits and 'pred_is_referred' `[T, B, Nq, 2]`
        reference logits; targets: list over the T frames of per-sample dicts (see the module docstring).
        Returns one (query indices, GT indices) pair of int64 tensors of length n_b per sample, sorted by
        query index; the same pairs apply to every frame.
        """
        cost = self.cost_matrix(outputs, targets).cpu()  # [B, Nq, N]
        sizes = [len(tgt["masks"]) for tgt in targets[0]]
        indices = []
        for b, block in enumerate(cost.split(sizes, dim=-1)):
            query_idx, gt_idx = linear_sum_assignment(block[b].numpy())
            indices.append(
                (torch.as_tensor(query_idx, dtype=torch.int64), torch.as_tensor(gt_idx, dtype=torch.int64))
            )
        return indices
