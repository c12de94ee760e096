"""MTTR training as the paper's recipe (spec §9): a plain PyTorch loop, resumable to the step.

Beside it: optimizer groups, schedule and a batch's loss in `engine.recipe` (the criterion in
`core.losses`), seeds in `engine.seeding`, the run folder in `engine.run_dir`, what a checkpoint holds in
`engine.train_state`, the Kinetics backbone in `engine.pretrained`. This module is the loop: optimizer
steps with gradient clipping and AMP (fp16 on CUDA, bf16 on the CPU), `last.pth.tar` every
`checkpoint_every` steps and on an early stop, an epoch checkpoint (and evaluation) after every epoch, and
the stop conditions (max steps, time limit, SIGINT/SIGTERM, a non-finite loss).
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from rvos_cli.core.checkpoints import read_checkpoint_file, save_model_safetensors
from rvos_cli.core.config import Config, config_to_dict, save_config
from rvos_cli.core.losses import build_criterion
from rvos_cli.engine import distributed as D
from rvos_cli.engine import run_dir as R
from rvos_cli.engine.logging import MetricsLog, ProgressReporter, notice
from rvos_cli.engine.pretrained import load_backbone_weights, require_backbone_weights
from rvos_cli.engine.recipe import build_optimizer, build_scheduler, compute_loss, tune_cpu_memory
from rvos_cli.engine.seeding import rng_state, seed_everything
from rvos_cli.engine.stopping import STOP_INTERRUPTED, StopFlag, agreed_stop, stop_message, stop_on_signals
from rvos_cli.engine.train_data import (
    EvaluateEpoch,
    build_train_dataset,
    detect_dataset,
    epoch_evaluator,
    train_loader,
)
from rvos_cli.engine.train_report import TrainResult, start_lines
from rvos_cli.engine.train_state import RunProgress, TrainState
from rvos_cli.errors import RvosError


@dataclass
class SessionOptions:
    """How long this session trains and how it reports (none of it changes the arithmetic).

    checkpoint_every: steps between `last.pth.tar` writes (0 = epoch ends and stops only); max_steps:
    stop after this global step; time_limit_minutes: stop after this wall time; show_progress: report
    progress on rank 0 (a bar on a terminal, else a plain line at most every `log_every` seconds).
    """

    checkpoint_every: int = 200
    max_steps: int | None = None
    time_limit_minutes: float | None = None
    show_progress: bool = True
    log_every: float = 30.0


class _Trainer:
    """One training session; `train` is its public face."""

    def __init__(
        self,
        config: Config,
        data_root: Path,
        run_dir: Path,
        device: str,
        info: D.DistInfo,
        prepared: Path | None,
        options: SessionOptions,
        evaluate_epoch: EvaluateEpoch | None,
    ) -> None:
        from rvos_cli.core.model import build_model, build_tokenizer

        self.config, self.run_dir, self.device, self.info = config, Path(run_dir), device, info
        self.options, self.evaluate_epoch = options, evaluate_epoch
        limit = options.time_limit_minutes
        self.time_limit = None if limit is None else limit * 60.0
        train = config.train
        self.amp = train.amp

        seed_everything(train.seed + info.rank)
        self.dataset = build_train_dataset(config, data_root, prepared)
        if len(self.dataset) == 0:
            raise RvosError(f"--data {data_root}: the training split has no samples")
        model = build_model(config.model).to(device)
        self.tokenizer = build_tokenizer(config.model)
        self.criterion = build_criterion(config.loss)
        optimizer = build_optimizer(model, train)
        self.state = TrainState(
            model=model,
            optimizer=optimizer,
            scheduler=build_scheduler(optimizer, train),
            scaler=torch.amp.GradScaler("cuda", enabled=self.amp and device.startswith("cuda")),
            sampler=D.EpochSampler(len(self.dataset), train.seed, info.rank, info.world_size),
            config=config,
            rank=info.rank,
            world_size=info.world_size,
        )
        self.model: nn.Module = model  # DDP-wrapped in `run`; `self.state.model` stays the bare network
        self.steps_per_epoch = math.ceil(self.state.sampler.per_rank / train.batch_size)
        self.last_checkpoint: Path | None = None
        self.best_checkpoint: Path | None = None
        self.last_loss: float | None = None

    @property
    def progress(self) -> RunProgress:
        """The run's `RunProgress` (epoch, steps, best score, loss sums)."""
        return self.state.progress

    # ------------------------------------------------------------------ checkpoints
    def restore(self, checkpoint: Path) -> int | None:
        """Load every piece of training state from `checkpoint`; returns the metrics-log offset to
        truncate to (None when the checkpoint comes from another run folder)."""
        saved = read_checkpoint_file(checkpoint)
        self.state.load_state_dict(saved, checkpoint)
        same_run = R.run_dir_of(Path(checkpoint)) == self.run_dir
        return int(saved["metrics_offset"]) if same_run and "metrics_offset" in saved else None

    def save(self, path: Path, log: MetricsLog) -> None:
        """Write the full training state to `path` (rank 0; every rank contributes its RNG state)."""
        rng_states = D.all_gather_object(rng_state())
        if self.info.is_main:
            payload = self.state.state_dict(
                rng_states=rng_states, elapsed=self.elapsed(), metrics_offset=log.offset()
            )
            R.write_checkpoint(payload, path)
            self.last_checkpoint = path
        D.barrier()

    def save_last(self, log: MetricsLog) -> None:
        """Mid-epoch state to `checkpoints/last.pth.tar`."""
        self.save(R.checkpoint_dir(self.run_dir) / R.LAST, log)

    def save_epoch(self, epoch: int, improved: bool, log: MetricsLog) -> None:
        """`<epoch>.pth.tar`, linked as last (and best when `improved`), then prune old epoch files.

        The best and the final (last epoch's) weights are also written as `.safetensors`, which load
        without unpickling anything.
        """
        path = R.epoch_checkpoint(self.run_dir, epoch)
        self.save(path, log)
        if self.info.is_main:
            folder = R.checkpoint_dir(self.run_dir)
            R.link_or_copy(path, folder / R.LAST)
            self.last_checkpoint = folder / R.LAST
            config = config_to_dict(self.config)
            if improved:
                R.link_or_copy(path, folder / R.BEST)
                self.best_checkpoint = folder / R.BEST
                save_model_safetensors(self.state.model, folder / R.BEST_WEIGHTS, config)
            if epoch == self.config.train.epochs - 1:
                save_model_safetensors(self.state.model, folder / R.FINAL_WEIGHTS, config)
            R.prune_epoch_checkpoints(self.run_dir, self.config.train.keep_checkpoints)
        D.barrier()

    # ------------------------------------------------------------------ loop
    def elapsed(self) -> float:
        """Seconds trained in all sessions of the run so far."""
        return self.progress.elapsed + (time.perf_counter() - self.session_start)

    def run(self, metrics_offset: int | None) -> TrainResult:
        """Train until the last epoch or a stop condition; returns the outcome."""
        self.session_start = time.perf_counter()
        if self.info.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            save_config(self.config, self.run_dir / R.CONFIG_FILE)
        log = MetricsLog(
            self.run_dir / R.METRICS_FILE,
            enabled=self.info.is_main,
            truncate_to=metrics_offset,
            tensorboard_dir=self.run_dir / R.TENSORBOARD_DIR,
        )
        best = R.checkpoint_dir(self.run_dir) / R.BEST
        if self.info.is_main and best.is_file():
            self.best_checkpoint = best
        self.model = D.wrap_model(self.model, self.device)
        flag = StopFlag()
        status, message = "completed", ""
        progress = ProgressReporter(
            self.config.train.epochs * self.steps_per_epoch,
            completed=self.progress.global_step,
            title="train",
            enabled=self.options.show_progress and self.info.is_main,
            log_every=self.options.log_every,
            device=self.device,
        )
        try:
            with progress, stop_on_signals(flag):
                status, message = self._loop(log, progress, flag)
        finally:
            log.close()
        return self._result(status, message)

    def _result(self, status: str, message: str) -> TrainResult:
        total_epochs = self.config.train.epochs
        return TrainResult(
            run_dir=self.run_dir,
            status=status,
            epochs_completed=min(self.progress.epoch, total_epochs),
            total_epochs=total_epochs,
            steps=self.progress.global_step,
            final_loss=self.last_loss,
            best_score=self.progress.best_score,
            best_metric=self.progress.best_metric,
            last_checkpoint=self.last_checkpoint,
            best_checkpoint=self.best_checkpoint,
            seconds=self.elapsed(),
            message=message,
        )

    def _loop(self, log: MetricsLog, progress: ProgressReporter, flag: StopFlag) -> tuple[str, str]:
        """The epochs; returns (status, message) for the `TrainResult`."""
        max_steps = self.options.max_steps
        if max_steps is not None and self.progress.global_step >= max_steps:
            return "max_steps", f"already at step {self.progress.global_step}"
        for epoch in range(self.progress.epoch, self.config.train.epochs):
            self.progress.epoch = epoch
            start = self.progress.step_in_epoch * self.config.train.batch_size
            loader = train_loader(
                self.dataset, self.state.sampler, self.config.train, epoch, start, self.device
            )
            self.model.train()
            stop = ""
            for batch in loader:
                stop = self._step(batch, epoch, log, progress, flag)
                if stop:
                    break
            if stop == "non_finite":
                where = self.last_checkpoint or "none was written yet"
                step = self.progress.global_step + 1
                return stop, f"non-finite loss at step {step}; last good checkpoint: {where}"
            if self.progress.step_in_epoch >= self.steps_per_epoch:
                self._end_epoch(epoch, log)
            elif stop:
                self.save_last(log)
            if stop:
                return stop, stop_message(stop, self.progress.global_step)
        return "completed", ""

    def _step(
        self, batch: dict, epoch: int, log: MetricsLog, progress: ProgressReporter, flag: StopFlag
    ) -> str:
        """One optimizer step; returns a stop reason ("" to go on)."""
        weighted, total = compute_loss(
            self.model, self.criterion, self.tokenizer, batch, self.device, self.amp
        )
        names = sorted(weighted)
        packed = torch.stack([total.detach().float(), *(weighted[n].detach().float() for n in names)])
        packed = D.all_reduce_mean(packed)
        limit = self.time_limit
        out_of_time = limit is not None and time.perf_counter() - self.session_start >= limit
        stop_vote = agreed_stop(flag, out_of_time, packed.device)
        values = packed.tolist()
        if not all(math.isfinite(v) for v in values) or not self._optimizer_step(total):
            return "non_finite"
        self.progress.step_in_epoch += 1
        self.progress.global_step += 1
        terms = dict(zip(names, values[1:], strict=True))
        clips = batch["frames"].shape[1] * self.info.world_size  # frames [T, B, 3, H, W] on each rank
        self._record_step(epoch, values[0], terms, log, progress, clips)
        if stop_vote:
            return "interrupted" if stop_vote == STOP_INTERRUPTED else "time_limit"
        max_steps, every = self.options.max_steps, self.options.checkpoint_every
        if max_steps is not None and self.progress.global_step >= max_steps:
            return "max_steps"
        finished_epoch = self.progress.step_in_epoch == self.steps_per_epoch
        if not finished_epoch and every > 0 and self.progress.global_step % every == 0:
            self.save_last(log)
        return ""

    def _optimizer_step(self, total: torch.Tensor) -> bool:
        """Backward, clip and step; False (no step taken) when the gradient norm is not finite."""
        optimizer, scaler = self.state.optimizer, self.state.scaler
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(total).backward()
        scaler.unscale_(optimizer)
        # clip_max_norm 0 turns clipping off; the norm is still computed to catch inf/NaN gradients.
        clip = self.config.train.clip_max_norm
        norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), clip if clip > 0 else math.inf)
        if not scaler.is_enabled() and not torch.isfinite(norm):  # a scaler skips such steps itself
            return False
        scaler.step(optimizer)
        scaler.update()
        return True

    def _record_step(
        self,
        epoch: int,
        loss: float,
        terms: dict[str, float],
        log: MetricsLog,
        progress: ProgressReporter,
        clips: int,
    ) -> None:
        """Add the step's losses to the epoch sums, log them and report progress (`clips`: the step's
        samples over all ranks)."""
        self.last_loss = loss
        for key, value in {"loss": loss, **terms}.items():
            self.progress.epoch_sums[key] = self.progress.epoch_sums.get(key, 0.0) + value
        lr = self.state.optimizer.param_groups[0]["lr"]
        step = self.progress.global_step
        log.write({
            "kind": "step", "epoch": epoch, "step": step, "loss": loss, "lr": lr,
            "time": round(self.elapsed(), 3), **terms,
        })  # fmt: skip
        epochs = f"{epoch + 1}/{self.config.train.epochs}"
        progress.update(step, samples=clips, epoch=epochs, loss=f"{loss:.4f}", lr=f"{lr:.2e}")

    def _end_epoch(self, epoch: int, log: MetricsLog) -> None:
        """Scheduler step, evaluation, the epoch record and the epoch checkpoint."""
        self.state.scheduler.step()
        steps = max(self.progress.step_in_epoch, 1)
        record: dict[str, Any] = {"kind": "epoch", "epoch": epoch}
        record.update({key: value / steps for key, value in self.progress.epoch_sums.items()})
        record["lr"] = self.state.optimizer.param_groups[0]["lr"]
        metrics = self._evaluate(epoch)
        record.update(metrics)
        record["time"] = round(self.elapsed(), 3)
        improved = self.progress.update_best(record["loss"], metrics)
        log.write(record)
        self.progress.epoch, self.progress.step_in_epoch, self.progress.epoch_sums = epoch + 1, 0, {}
        self.save_epoch(epoch, improved, log)

    def _evaluate(self, epoch: int) -> dict[str, float]:
        """Run the evaluation hook on rank 0 (others wait) and share its metrics with every rank."""
        if self.evaluate_epoch is None:
            return {}
        metrics: dict[str, float] = {}
        if self.info.is_main:
            bare = self.state.model
            bare.eval()
            with torch.no_grad():
                metrics = {k: float(v) for k, v in self.evaluate_epoch(bare, epoch).items()}
            bare.train()
        return D.broadcast_object(metrics)


def train(
    config: Config,
    data_root: Path,
    run_dir: Path | None = None,
    resume: Path | None = None,
    device: str = "cpu",
    *,
    prepared: Path | None = None,
    checkpoint_every: int = 200,
    max_steps: int | None = None,
    time_limit_minutes: float | None = None,
    evaluate: bool = False,
    evaluate_epoch: EvaluateEpoch | None = None,
    show_progress: bool = True,
    log_every: float = 30.0,
    from_scratch: bool = False,
) -> TrainResult:
    """Train MTTR with `config` on the prepared training split found at `data_root`.

    run_dir: the run folder (default `runs/<timestamp>`, or the resumed run's folder). resume: a run
    folder or checkpoint to continue from, to the step. device: cpu, cuda or cuda:N (under torchrun each
    process takes `cuda:LOCAL_RANK`). prepared: the prepared-data folder (default
    `<data_root>/rvos_prepared`). checkpoint_every: steps between `last.pth.tar` writes (0 = only at
    epoch ends and stops). max_steps: stop after this global step; time_limit_minutes: stop after this
    wall time (both leave a checkpoint). evaluate: score every epoch with `epoch_evaluator` (the test
    split), unless `evaluate_epoch` is given: called after every epoch on rank 0 with the bare model in
    eval mode and the epoch index. Its "mAP" or "J&F" picks best.pth.tar (else the epoch loss).
    show_progress/log_every: see `SessionOptions`. A fresh run loads `config.model.backbone_weights`
    into the backbone (recording its SHA-256 in the run's config); the `mttr-*` presets need it unless
    `from_scratch`. Start lines (device, precision, batch, backbone) go to stderr on rank 0.
    Returns a `TrainResult`; a non-finite loss ends with status "non_finite", SIGINT/SIGTERM with
    "interrupted" after saving `last.pth.tar`. Bad input raises RvosError.
    """
    config = copy.deepcopy(config)
    options = SessionOptions(checkpoint_every, max_steps, time_limit_minutes, show_progress, log_every)
    info, device, created = D.init_distributed(device)
    memory_line = tune_cpu_memory(device, config.model.grad_checkpoint)  # before the model is built
    try:
        checkpoint = R.resolve_resume(resume) if resume is not None else None
        if run_dir is None:
            run_dir = R.run_dir_of(checkpoint) if checkpoint is not None else None
        run_dir = Path(run_dir) if run_dir is not None else R.default_run_dir(config.preset)
        if checkpoint is None:
            R.refuse_earlier_run(run_dir)
            require_backbone_weights(config, from_scratch)
        config.data.dataset = detect_dataset(data_root, config.data.dataset)
        if evaluate and evaluate_epoch is None and info.is_main:
            evaluate_epoch = epoch_evaluator(config, data_root, run_dir, device, prepared)
        trainer = _Trainer(config, data_root, run_dir, device, info, prepared, options, evaluate_epoch)
        offset = trainer.restore(checkpoint) if checkpoint is not None else None
        if info.is_main:
            for line in start_lines(config, device, info.world_size, checkpoint):
                notice(line)
            if memory_line is not None:
                notice(memory_line)
        if checkpoint is None and config.model.backbone_weights is not None:
            loaded = load_backbone_weights(trainer.state.model, config.model.backbone_weights)
            config.model.backbone_weights = str(loaded.path.resolve())
            config.model.backbone_weights_sha256 = loaded.sha256
            if info.is_main:
                notice(loaded.summary())
        return trainer.run(offset)
    finally:
        D.cleanup(created)
