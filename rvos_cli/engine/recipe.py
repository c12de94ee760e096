"""The paper's training recipe (spec §9): AdamW over three parameter groups, the MultiStepLR schedule, and
the forward + losses of one batch.

The criterion itself (matcher costs and loss weights) is built next to the losses, by
`rvos_cli.core.losses.build_criterion`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from rvos_cli.core import allocator
from rvos_cli.core.config import TrainConfig
from rvos_cli.core.losses import SetCriterion


def param_groups(model: nn.Module, train: TrainConfig) -> list[dict[str, Any]]:
    """The spec §9 AdamW groups, chosen by parameter name among parameters that require grad.

    "rest" (names with neither "backbone" nor "text_encoder") at `train.lr`, "backbone" at
    `train.lr_backbone`, "text_encoder" at `train.text_encoder_lr` (only present when the encoder is
    trained). Weight decay applies to every parameter, norms and biases included, as in the reference.
    Returns the non-empty groups as optimizer dicts {"params", "lr", "name"}.
    """
    groups: dict[str, list[nn.Parameter]] = {"rest": [], "backbone": [], "text_encoder": []}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        if "text_encoder" in name:
            groups["text_encoder"].append(param)
        elif "backbone" in name:
            groups["backbone"].append(param)
        else:
            groups["rest"].append(param)
    lrs = {"rest": train.lr, "backbone": train.lr_backbone, "text_encoder": train.text_encoder_lr}
    return [{"params": params, "lr": lrs[name], "name": name} for name, params in groups.items() if params]


def build_optimizer(model: nn.Module, train: TrainConfig) -> torch.optim.AdamW:
    """AdamW (betas 0.9/0.999, eps 1e-8) over `param_groups`, weight decay `train.weight_decay`."""
    return torch.optim.AdamW(param_groups(model, train), lr=train.lr, weight_decay=train.weight_decay)


def build_scheduler(
    optimizer: torch.optim.Optimizer, train: TrainConfig
) -> torch.optim.lr_scheduler.MultiStepLR:
    """MultiStepLR(milestones, gamma), stepped once after each epoch: epoch e (from 0) trains at
    lr · gamma^(number of milestones ≤ e)."""
    return torch.optim.lr_scheduler.MultiStepLR(
        optimizer, milestones=list(train.lr_drop_milestones), gamma=train.lr_drop_gamma
    )


def autocast_dtype(device: str) -> torch.dtype:
    """The AMP dtype on `device`: float16 on CUDA (with a GradScaler, as the reference), bfloat16 on the
    CPU (its range needs no scaler; CPU autocast has no float16 path worth using)."""
    return torch.float16 if device.startswith("cuda") else torch.bfloat16


def precision_label(device: str, amp: bool) -> str:
    """How a run computes, for its start line: 'fp16 autocast + GradScaler', 'bf16 autocast' or 'fp32'."""
    if not amp:
        return "fp32"
    return "fp16 autocast + GradScaler" if device.startswith("cuda") else "bf16 autocast"


def tune_cpu_memory(device: str, grad_checkpoint: bool) -> str | None:
    """On a CPU run, fix glibc's mmap threshold for training (see `core.allocator`); returns the start
    line saying so, or None when nothing was changed (a GPU, not glibc, or the user's own setting)."""
    if not device.startswith("cpu"):
        return None
    threshold = allocator.training_mmap_threshold(grad_checkpoint)
    if not allocator.set_mmap_threshold(threshold):
        return None
    return (
        f"memory: tensors above {allocator.describe_threshold(threshold)} go back to the system when freed "
        "(glibc mmap threshold; MALLOC_MMAP_THRESHOLD_ overrides)"
    )


def paper_run(train: TrainConfig) -> tuple[int, int] | None:
    """(clips per process, processes) of the published run at `train.window`, None when none was published."""
    for window, per_process, processes in train.paper_runs:
        if window == train.window:
            return per_process, processes
    return None


def batch_report(train: TrainConfig, world_size: int) -> tuple[str, str | None]:
    """The start line about the effective batch (clips per process × processes), and a warning when it
    differs from the published run's at this window (None when equal or nothing was published)."""
    effective = train.batch_size * world_size
    processes = "process" if world_size == 1 else "processes"
    clips = "clip" if effective == 1 else "clips"
    line = f"batch: {train.batch_size} per process × {world_size} {processes} = {effective} {clips} per step"
    paper = paper_run(train)
    if paper is None or paper[0] * paper[1] == effective:
        return line, None
    per_process, processes = paper
    warning = (
        f"warning: effective batch {effective} differs from the paper's {per_process * processes} at window "
        f"{train.window} ({per_process} per GPU × {processes} GPUs); reproduce it with "
        f"`torchrun --nproc-per-node {processes} -m rvos_cli train ... --window {train.window} "
        f"--batch-size {per_process}`"
    )
    return line, warning


def to_device(batch: dict, device: str) -> dict:
    """A copy of the collated `batch` with its tensors (frames, padding mask, targets) on `device`;
    strings and other entries stay as they are."""
    non_blocking = device.startswith("cuda")
    moved = dict(batch)
    moved["frames"] = batch["frames"].to(device, non_blocking=non_blocking)
    moved["padding_mask"] = batch["padding_mask"].to(device, non_blocking=non_blocking)
    moved["targets"] = [
        tuple(
            {k: v.to(device) if isinstance(v, Tensor) else v for k, v in target.items()} for target in frame
        )
        for frame in batch["targets"]
    ]
    return moved


def compute_loss(
    model: nn.Module, criterion: SetCriterion, tokenizer: Callable, batch: dict, device: str, amp: bool
) -> tuple[dict[str, Tensor], Tensor]:
    """Forward one collated batch and its losses.

    batch: `collate` output (frames `[T,B,3,H,W]`, padding_mask `[T,B,H,W]`, texts, valid_indices `[T']`,
    targets). Returns ({weighted loss term: scalar}, total loss scalar); under `amp` the forward and the
    criterion run in autocast (`autocast_dtype`: float16 on CUDA, bfloat16 on the CPU).
    """
    batch = to_device(batch, device)
    text = {k: v.to(device) for k, v in tokenizer(batch["texts"]).items()}
    device_type = "cuda" if device.startswith("cuda") else "cpu"
    with torch.autocast(device_type=device_type, dtype=autocast_dtype(device), enabled=amp):
        outputs = model(
            batch["frames"],
            batch["padding_mask"],
            text["input_ids"],
            text["attention_mask"],
            batch["valid_indices"],
        )
        losses, total = criterion(outputs, batch["targets"])
    weighted = {name: criterion.weight_dict[_base_name(name)] * value for name, value in losses.items()}
    return weighted, total


def _base_name(loss_name: str) -> str:
    """'loss_dice_1' → 'loss_dice' (aux layer suffixes share the main weight)."""
    head, _, tail = loss_name.rpartition("_")
    return head if tail.isdigit() else loss_name
