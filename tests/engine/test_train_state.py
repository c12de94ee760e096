"""What a checkpoint holds: the run's progress round trip (mid-epoch and at an epoch boundary) and the
typed state's official layout, with the refusals of files that cannot be continued."""

from __future__ import annotations

import pytest
import torch

from rvos_cli.core.config import get_preset
from rvos_cli.engine.distributed import EpochSampler
from rvos_cli.engine.seeding import rng_state
from rvos_cli.engine.train_state import RunProgress, TrainState
from rvos_cli.errors import RvosError


def test_mid_epoch_progress_round_trips_with_its_loss_sums() -> None:
    progress = RunProgress(epoch=3, step_in_epoch=2, global_step=14, best_score=0.5, best_metric="mAP",
                           elapsed=12.5, epoch_sums={"loss": 3.0})  # fmt: skip
    saved = progress.state_dict()
    assert (saved["epoch"], saved["epoch_complete"], saved["step_in_epoch"]) == (3, False, 2)
    assert RunProgress.from_state_dict(saved) == progress


def test_an_epoch_boundary_names_the_finished_epoch_and_resumes_at_the_next() -> None:
    saved = RunProgress(epoch=4, step_in_epoch=0, global_step=16).state_dict()
    assert (saved["epoch"], saved["epoch_complete"]) == (3, True)
    restored = RunProgress.from_state_dict({**saved, "epoch_sums": {"loss": 9.0}})
    assert (restored.epoch, restored.step_in_epoch, restored.global_step) == (4, 0, 16)
    assert restored.epoch_sums == {}


def _state(batch_size: int = 2, world_size: int = 1) -> TrainState:
    config = get_preset("tiny")
    config.train.batch_size = batch_size
    model = torch.nn.Linear(3, 2)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=[2], gamma=0.5)
    scaler = torch.amp.GradScaler("cuda", enabled=False)
    sampler = EpochSampler(10, seed=0, num_replicas=world_size)
    return TrainState(model, optimizer, scheduler, scaler, sampler, config, world_size=world_size)


def test_state_dict_has_the_official_layout_and_loads_into_a_fresh_state() -> None:
    torch.manual_seed(0)
    source = _state()
    source.progress = RunProgress(epoch=1, step_in_epoch=3, global_step=8)
    saved = source.state_dict(rng_states=[rng_state()], elapsed=5.0, metrics_offset=123)
    for key in ("model_state_dict", "optimizer_state_dict", "scheduler_state_dict", "epoch", "total_epochs"):
        assert key in saved
    layout = (saved["batch_size"], saved["world_size"], saved["metrics_offset"], saved["elapsed"])
    assert layout == (2, 1, 123, 5.0)
    assert (saved["sampler_state_dict"]["epoch"], saved["sampler_state_dict"]["start"]) == (1, 6)
    target = _state()
    target.load_state_dict(saved, "ck.pth.tar")
    assert torch.equal(target.model.weight, source.model.weight)
    assert target.progress == RunProgress(epoch=1, step_in_epoch=3, global_step=8, elapsed=5.0)


def test_weights_only_files_and_other_mid_epoch_layouts_are_refused() -> None:
    saved = _state().state_dict(rng_states=[rng_state()], elapsed=0.0, metrics_offset=0)
    with pytest.raises(RvosError, match="ck: holds weights only"):
        _state().load_state_dict({"model_state_dict": saved["model_state_dict"]}, "ck")
    mid = {**saved, "epoch": 0, "epoch_complete": False, "step_in_epoch": 1}
    with pytest.raises(RvosError, match="saved mid-epoch with batch size 2 on 1 process"):
        _state(batch_size=3).load_state_dict(mid, "ck")
