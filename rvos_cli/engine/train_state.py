"""The training state a checkpoint holds, as one typed object: `TrainState.state_dict()` writes it,
`TrainState.load_state_dict()` continues from it.

A checkpoint keeps the official MTTR `.pth.tar` layout (`model_state_dict`, `optimizer_state_dict`,
`scheduler_state_dict`, `grad_scaler_state_dict`, `epoch`, `total_epochs`, `config`) and adds what rvos
needs to continue bit-identically: the `RunProgress` fields (where the run stands), every rank's RNG
states, the sampler position, the process layout and the metrics-log offset.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn

from rvos_cli.core.config import Config, config_to_dict
from rvos_cli.engine.distributed import EpochSampler
from rvos_cli.engine.seeding import seed_everything, set_rng_state
from rvos_cli.errors import RvosError

# Evaluation metrics that choose best.pth.tar (higher is better), in order of preference; without any,
# the epoch's mean training loss decides (lower is better).
BEST_METRICS = ("mAP", "J&F")


@dataclass
class RunProgress:
    """Where a run stands. Saved under these field names in every checkpoint.

    At an epoch boundary (`step_in_epoch` 0) the file names the epoch just finished, with
    `epoch_complete` true, as the reference's epoch checkpoints do; mid-epoch it names the epoch being
    trained and how many optimizer steps of it are done.
    """

    epoch: int = 0  # the epoch being trained (from 0)
    step_in_epoch: int = 0  # optimizer steps done in `epoch`
    global_step: int = 0
    best_score: float | None = None
    best_metric: str = "loss"  # the metric `best_score` is of: "mAP", "J&F" or the epoch's mean "loss"
    elapsed: float = 0.0  # seconds of training in earlier sessions
    epoch_sums: dict[str, float] = field(default_factory=dict)  # running sums of the logged losses

    def update_best(self, epoch_loss: float, metrics: Mapping[str, float]) -> bool:
        """Keep the best score so far: an evaluation metric of `BEST_METRICS` if `metrics` has one, else
        the epoch's mean loss. Returns True when this epoch is the new best."""
        name = next((m for m in BEST_METRICS if m in metrics), "loss")
        score = metrics[name] if name != "loss" else epoch_loss
        previous = self.best_score if self.best_metric == name else None
        better = previous is None or (score < previous if name == "loss" else score > previous)
        if better:
            self.best_score, self.best_metric = score, name
        return better

    @property
    def at_epoch_boundary(self) -> bool:
        """True when no step of `epoch` is done yet (the previous epoch, if any, is complete)."""
        return self.step_in_epoch == 0

    def state_dict(self) -> dict[str, Any]:
        """The checkpoint entries of the progress: every field, plus `epoch_complete`."""
        saved = dataclasses.asdict(self)
        saved["epoch_complete"] = self.at_epoch_boundary
        if self.at_epoch_boundary:
            saved["epoch"] = self.epoch - 1
        return saved

    @classmethod
    def from_state_dict(cls, saved: Mapping[str, Any]) -> RunProgress:
        """The progress a checkpoint written by `state_dict` describes (entries a file lacks keep their
        defaults; the other checkpoint entries are ignored)."""
        names = {f.name for f in dataclasses.fields(cls)}
        progress = cls(**copy.deepcopy({k: v for k, v in saved.items() if k in names}))
        if saved.get("epoch_complete", True):
            progress.epoch, progress.step_in_epoch, progress.epoch_sums = progress.epoch + 1, 0, {}
        return progress


@dataclass
class TrainState:
    """Everything one process trains with that a checkpoint must carry.

    model: the bare network (not a DDP wrapper: its state dict has the official names); optimizer,
    scheduler and scaler: the recipe's objects; sampler: this rank's sample order; config: the resolved
    run config; rank/world_size: this process and the number of processes.
    """

    # checkpoint key → the attribute whose own state_dict()/load_state_dict() it holds
    COMPONENTS: ClassVar[dict[str, str]] = {
        "model_state_dict": "model",
        "optimizer_state_dict": "optimizer",
        "scheduler_state_dict": "scheduler",
        "grad_scaler_state_dict": "scaler",
    }

    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler
    sampler: EpochSampler
    config: Config
    rank: int = 0
    world_size: int = 1
    progress: RunProgress = field(default_factory=RunProgress)

    def state_dict(
        self, *, rng_states: list[dict[str, Any]], elapsed: float, metrics_offset: int
    ) -> dict[str, Any]:
        """The checkpoint payload.

        rng_states: every rank's `seeding.rng_state()`, in rank order; elapsed: seconds trained in all
        sessions so far; metrics_offset: bytes of `metrics.jsonl` written up to this state.
        """
        from rvos_cli import __version__

        progress = self.progress.state_dict()
        consumed = 0 if self.progress.at_epoch_boundary else self.progress.step_in_epoch * self.batch_size
        payload: dict[str, Any] = {
            key: getattr(self, attribute).state_dict() for key, attribute in self.COMPONENTS.items()
        }
        payload.update(progress)
        payload.update(
            config=config_to_dict(self.config),
            rvos_version=__version__,
            total_epochs=self.config.train.epochs,
            elapsed=elapsed,
            sampler_state_dict={**self.sampler.state_dict(), "epoch": progress["epoch"], "start": consumed},
            rng_states=rng_states,
            world_size=self.world_size,
            batch_size=self.batch_size,
            metrics_offset=metrics_offset,
        )
        return payload

    @property
    def batch_size(self) -> int:
        """Clips per optimizer step on this process (`train.batch_size`)."""
        return self.config.train.batch_size

    def load_state_dict(self, saved: Mapping[str, Any], source: Path | str) -> None:
        """Continue from the checkpoint `saved` (read from `source`, named in errors): load every component,
        the progress and this rank's RNG states.

        A mid-epoch checkpoint needs the batch size and process count it was saved with; another count of
        processes at an epoch boundary starts a fresh random stream instead. Raises RvosError when the
        file holds weights only or does not fit this config.
        """
        if "optimizer_state_dict" not in saved:
            raise RvosError(f"{source}: holds weights only, not a training state to resume from")
        self._load_components(saved, source)
        progress = RunProgress.from_state_dict(saved)
        layout = (saved.get("batch_size"), saved.get("world_size"))
        if not progress.at_epoch_boundary and layout != (self.batch_size, self.world_size):
            raise RvosError(
                f"{source}: saved mid-epoch with batch size {layout[0]} on {layout[1]} process(es); "
                "resume it with the same, or resume from an epoch checkpoint (checkpoints/NN.pth.tar)"
            )
        self.progress = progress
        rng_states = saved.get("rng_states") or []
        if len(rng_states) == self.world_size:
            set_rng_state(rng_states[self.rank])
        else:
            # Another number of processes: the exact random stream cannot continue; start a fresh one.
            seed_everything(self.config.train.seed + self.rank + progress.global_step)

    def _load_components(self, saved: Mapping[str, Any], source: Path | str) -> None:
        from rvos_cli.core.checkpoints import strict_load

        weights = {k.removeprefix("module."): v for k, v in saved["model_state_dict"].items()}
        strict_load(self.model, weights, str(source))
        try:
            self.optimizer.load_state_dict(saved["optimizer_state_dict"])
        except ValueError as err:
            raise RvosError(f"{source}: optimizer state does not fit this config ({err})") from None
        self.scheduler.load_state_dict(saved["scheduler_state_dict"])
        if saved.get("grad_scaler_state_dict"):  # empty when the run had no float16 scaler
            self.scaler.load_state_dict(saved["grad_scaler_state_dict"])
