"""The paper's recipe (spec §9): AdamW groups chosen by parameter name, and the MultiStepLR schedule with
the intended milestones."""

from __future__ import annotations

import pytest
import torch

from rvos_cli.core.config import Config, TrainConfig, apply_overrides, get_preset
from rvos_cli.core.model import build_model
from rvos_cli.engine.recipe import (
    autocast_dtype,
    batch_report,
    build_optimizer,
    build_scheduler,
    paper_run,
    param_groups,
    precision_label,
)


def small_config(*extra: str) -> Config:
    """The tiny preset (its model only matters here), plus `extra` overrides."""
    return apply_overrides(get_preset("tiny"), list(extra))



def test_param_groups_follow_names_and_skip_frozen_text_encoder() -> None:
    torch.manual_seed(0)
    model = build_model(small_config().model)
    groups = {g["name"]: g for g in param_groups(model, TrainConfig(lr=1e-4, lr_backbone=1e-5))}
    names = {id(p): n for n, p in model.named_parameters()}
    assert sorted(groups) == ["backbone", "rest"]
    assert groups["rest"]["lr"] == 1e-4 and groups["backbone"]["lr"] == 1e-5
    assert all(names[id(p)].startswith("backbone.") for p in groups["backbone"]["params"])
    rest = [names[id(p)] for p in groups["rest"]["params"]]
    assert "obj_queries.weight" in rest and not any("backbone" in n or "text_encoder" in n for n in rest)
    trainable = [p for p in model.parameters() if p.requires_grad]
    assert len(trainable) == len(groups["rest"]["params"]) + len(groups["backbone"]["params"])


def test_unfrozen_text_encoder_gets_its_own_lr_and_all_groups_decay() -> None:
    torch.manual_seed(0)
    model = build_model(small_config("model.text_encoder.freeze=false").model)
    optimizer = build_optimizer(model, TrainConfig(text_encoder_lr=5e-5, weight_decay=1e-4))
    groups = {g["name"]: g for g in optimizer.param_groups}
    assert groups["text_encoder"]["lr"] == 5e-5
    assert {g["weight_decay"] for g in optimizer.param_groups} == {1e-4}
    assert isinstance(optimizer, torch.optim.AdamW)


@pytest.mark.filterwarnings("ignore:Detected call of `lr_scheduler.step\\(\\)`")
def test_schedule_drops_by_gamma_exactly_from_the_milestone_epoch() -> None:
    param = torch.nn.Parameter(torch.zeros(1))
    config = TrainConfig(lr=1e-4, lr_drop_milestones=(3,), lr_drop_gamma=0.4)
    optimizer = torch.optim.AdamW([{"params": [param], "lr": config.lr}])
    scheduler = build_scheduler(optimizer, config)
    lrs = []
    for _ in range(5):  # the lr each epoch trains with; the trainer steps once after each epoch
        lrs.append(optimizer.param_groups[0]["lr"])
        scheduler.step()
    assert lrs == [1e-4, 1e-4, 1e-4, 1e-4 * 0.4, 1e-4 * 0.4]


@pytest.mark.filterwarnings("ignore:Detected call of `lr_scheduler.step\\(\\)`")
def test_ytvos_preset_decays_at_epoch_20_not_after_epoch_1() -> None:
    config = get_preset("mttr-ytvos").train
    param = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.AdamW([{"params": [param], "lr": config.lr}])
    scheduler = build_scheduler(optimizer, config)
    lrs = []
    for _ in range(config.epochs):
        lrs.append(optimizer.param_groups[0]["lr"])
        scheduler.step()
    assert lrs[:20] == [1e-4] * 20 and lrs[20:] == [1e-4 * 0.4] * 10


# ------------------------------------------------------------------------------------------ paper batches


def test_presets_carry_the_published_batches_per_window() -> None:
    a2d, ytvos = get_preset("mttr-a2d"), get_preset("mttr-ytvos")
    assert (a2d.train.window, a2d.train.batch_size, paper_run(a2d.train)) == (10, 3, (3, 2))
    assert paper_run(apply_overrides(a2d, ["train.window=8"]).train) == (2, 3)
    assert (ytvos.train.window, ytvos.train.batch_size, paper_run(ytvos.train)) == (12, 1, (1, 4))
    assert (a2d.data.eval_batch_size, ytvos.data.eval_batch_size) == (3, 1)
    assert paper_run(get_preset("tiny").train) is None


def test_the_effective_batch_is_reported_and_a_difference_warned() -> None:
    train = get_preset("mttr-a2d").train
    line, warning = batch_report(train, world_size=2)
    assert (line, warning) == ("batch: 3 per process × 2 processes = 6 clips per step", None)
    line, warning = batch_report(train, world_size=1)
    assert line == "batch: 3 per process × 1 process = 3 clips per step"
    assert warning == (
        "warning: effective batch 3 differs from the paper's 6 at window 10 (3 per GPU × 2 GPUs); reproduce "
        "it with `torchrun --nproc-per-node 2 -m rvos_cli train ... --window 10 --batch-size 3`"
    )
    six_on_one = apply_overrides(get_preset("mttr-a2d"), ["train.batch_size=6"]).train
    assert batch_report(six_on_one, world_size=1)[1] is None  # the same 6 clips per step
    assert batch_report(get_preset("tiny").train, world_size=1)[1] is None  # no published run


def test_amp_is_fp16_on_cuda_and_bf16_on_the_cpu() -> None:
    assert (autocast_dtype("cuda:0"), autocast_dtype("cpu")) == (torch.float16, torch.bfloat16)
    assert precision_label("cpu", True) == "bf16 autocast"
    assert precision_label("cuda:1", True) == "fp16 autocast + GradScaler"
    assert precision_label("cuda:1", False) == "fp32"
