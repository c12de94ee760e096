"""MTTR training as the paper's recipe (spec §9): a plain PyTorch loop, resumable to the step.

AdamW over three parameter groups chosen by name, MultiStepLR stepped once per epoch with the INTENDED
milestones (the reference's Ref-YouTube-VOS run decayed after epoch 1 by mistake, see the README),
gradient clipping, AMP on CUDA, seeds in one place, a seeded sample order. A run folder holds the
resolved config, `metrics.jsonl` and `checkpoints/`: `<epoch:02d>.pth.tar` after every epoch (epochs are
numbered from 0 like the reference), `best.pth.tar`, and `last.pth.tar`, rewritten every
`checkpoint_every` steps and whenever the run stops early. A checkpoint holds everything needed to
continue bit-identically on the CPU: model, optimizer, scheduler, grad scaler, every rank's RNG states,
the sampler position and the epoch's running loss sums.
"""

from __future__ import annotations

import copy
import math
import os
import random
import signal
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset

from rvos_cli.core.checkpoints import read_checkpoint_file, save_model_checkpoint, strict_load
from rvos_cli.core.config import Config, LossConfig, TrainConfig, config_to_dict, load_config, save_config
from rvos_cli.core.losses import SetCriterion
from rvos_cli.core.matcher import HungarianMatcher
from rvos_cli.data import PREPARED_DIRNAME
from rvos_cli.engine import distributed as D
from rvos_cli.engine.logging import MetricsLog, TrainProgress, summary_table
from rvos_cli.errors import RvosError

CHECKPOINTS = "checkpoints"
LAST = "last.pth.tar"
BEST = "best.pth.tar"
# Evaluation metrics that choose best.pth.tar (higher is better), in order of preference; without any,
# the epoch's mean training loss decides (lower is better).
BEST_METRICS = ("mAP", "J&F")
STOP_TIME_LIMIT, STOP_INTERRUPTED = 1, 2

# (model in eval mode, epoch index) → metrics such as {"mAP": ..} or {"J&F": ..}; runs on rank 0 only.
EvaluateEpoch = Callable[[nn.Module, int], dict[str, float]]


@dataclass
class TrainResult:
    """How a call to `train` ended.

    status: "completed", "max_steps", "time_limit", "interrupted" (SIGINT/SIGTERM) or "non_finite"
    (the loss or gradient norm became NaN/inf; nothing after the last good checkpoint was saved).
    """

    run_dir: Path
    status: str
    epochs_completed: int
    total_epochs: int
    steps: int
    final_loss: float | None
    best_score: float | None
    best_metric: str
    last_checkpoint: Path | None
    best_checkpoint: Path | None
    seconds: float
    message: str = ""

    def summary_rows(self) -> list[tuple[str, str]]:
        """(label, value) rows for the closing table."""
        best = "-" if self.best_score is None else f"{self.best_score:.4f} ({self.best_metric})"
        loss = "-" if self.final_loss is None else f"{self.final_loss:.4f}"
        rows = [
            ("status", self.status + (f": {self.message}" if self.message else "")),
            ("epochs", f"{self.epochs_completed}/{self.total_epochs}"),
            ("steps", str(self.steps)),
            ("final loss", loss),
            ("best score", best),
            ("time", _duration(self.seconds)),
            ("run folder", str(self.run_dir)),
            ("last checkpoint", str(self.last_checkpoint or "-")),
            ("best checkpoint", str(self.best_checkpoint or "-")),
        ]
        return rows


def _duration(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}"


# ---------------------------------------------------------------------------------------------- recipe


def param_groups(model: nn.Module, train: TrainConfig) -> list[dict[str, Any]]:
    """The spec §9 AdamW groups, chosen by parameter name among parameters that require grad.

    "rest" (names with neither "backbone" nor "text_encoder") at `train.lr`, "backbone" at
    `train.lr_backbone`, "text_encoder" at `train.text_encoder_lr` (only present when the encoder is
    trained). Weight decay applies to every parameter, norms and biases included, as in the reference.
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


def build_criterion(loss: LossConfig) -> SetCriterion:
    """The MTTR criterion with the config's matcher costs, loss weights and eos_coef."""
    matcher = HungarianMatcher(cost_is_referred=loss.set_cost_is_referred, cost_dice=loss.set_cost_dice)
    weights = {
        "loss_is_referred": loss.is_referred_loss_coef,
        "loss_dice": loss.dice_loss_coef,
        "loss_sigmoid_focal": loss.sigmoid_focal_loss_coef,
    }
    return SetCriterion(matcher, weight_dict=weights, eos_coef=loss.eos_coef)


def seed_everything(seed: int) -> None:
    """Seed python `random`, numpy and torch (all devices): the one place the run's seed is applied."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def rng_state() -> dict[str, Any]:
    """This process's RNG states as tensors and plain values (loadable with `weights_only=True`)."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(cached)],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what `rng_state` returned."""
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# ---------------------------------------------------------------------------------------------- data


def detect_dataset(data_root: Path, configured: str) -> str:
    """The dataset format of `data_root` from its layout ("a2d", "ytvos", "jhmdb"), else `configured`.

    Raises RvosError when the folder does not exist.
    """
    root = Path(data_root)
    if not root.is_dir():
        raise RvosError(f"--data {root}: no such folder")
    if (root / "Release" / "videoset.csv").is_file():
        return "a2d"
    if (root / "meta_expressions").is_dir():
        return "ytvos"
    if (root / "Rename_Images").is_dir():
        return "jhmdb"
    return configured


def build_train_dataset(config: Config, data_root: Path, prepared: Path | None = None) -> Dataset:
    """The training split of `config.data.dataset` at `data_root`, prepared into `prepared`
    (default `<data_root>/rvos_prepared`); RvosError naming the `rvos prepare` command if it is not."""
    from rvos_cli.data.transforms import VideoTransforms

    root = Path(data_root)
    folder = Path(prepared) if prepared is not None else root / PREPARED_DIRNAME
    name, window = config.data.dataset, config.train.window
    out_flag = f" --out {folder}" if prepared is not None else ""
    transforms = VideoTransforms(
        config.data.train_short_size, config.data.train_max_size, config.data.horizontal_flip
    )
    if name == "a2d":
        _require_prepared(folder / "samples_train.json", f"rvos prepare a2d --root {root}{out_flag}")
        from rvos_cli.data.a2d import A2DSentencesDataset

        return A2DSentencesDataset(folder, root, "train", window, transforms, seed=config.train.seed)
    if name == "ytvos":
        command = f"rvos prepare ytvos --root {root} --window {window}{out_flag}"
        _require_prepared(folder / f"samples_train_w{window}.json", command)
        from rvos_cli.data.ytvos import ReferYouTubeVOSDataset

        return ReferYouTubeVOSDataset(
            folder, root, "train", transforms, window=window, seed=config.train.seed
        )
    if name == "jhmdb":
        raise RvosError(
            f"--data {root}: JHMDB-Sentences is for evaluation only (its train split is a dummy); "
            "train on A2D-Sentences and score with `rvos eval jhmdb`"
        )
    raise RvosError(f"config data.dataset {name!r}: expected a2d or ytvos")


def _require_prepared(path: Path, command: str) -> None:
    if not path.is_file():
        raise RvosError(f"{path}: missing, the data is not prepared yet; run `{command}` first")


def epoch_evaluator(
    config: Config, data_root: Path, run_dir: Path, device: str, prepared: Path | None = None
) -> EvaluateEpoch | None:
    """The per-epoch evaluation of the reference (spec §9), or None when there is nothing to score.

    A2D-Sentences: mAP, P@K and IoUs on the prepared test split (`engine.evaluator.evaluate_a2d`).
    Ref-YouTube-VOS: J, F, J&F on the valid split when it has local ground truth (synthetic or held-out
    data), its masks written under `run_dir/validation_outputs/epoch_NN`; the real valid split has no
    ground truth, so there the training loss picks best.pth.tar. Metrics that are None are left out.
    """
    from rvos_cli.core.model import build_tokenizer
    from rvos_cli.data.prepare import read_json
    from rvos_cli.data.transforms import VideoTransforms
    from rvos_cli.engine import evaluator

    root = Path(data_root)
    folder = Path(prepared) if prepared is not None else root / PREPARED_DIRNAME
    transforms = VideoTransforms(config.data.eval_short_size, config.data.eval_max_size, False)
    tokenizer = build_tokenizer(config.model)
    batch_size = config.train.batch_size
    name = detect_dataset(root, config.data.dataset)
    if name == "a2d":
        from rvos_cli.data.a2d import A2DSentencesDataset

        if not (folder / "samples_test.json").is_file():
            return None
        dataset = A2DSentencesDataset(folder, root, "test", config.train.window, transforms)
        coco_gt = read_json(folder / "coco_gt_test.json")
        if len(dataset) == 0:
            return None

        def evaluate_a2d(model: nn.Module, epoch: int) -> dict[str, float]:
            metrics = evaluator.evaluate_a2d(model, tokenizer, dataset, coco_gt, device, batch_size, False)  # type: ignore[arg-type]
            return {k: v for k, v in metrics.items() if v is not None}

        return evaluate_a2d
    if name == "ytvos":
        from rvos_cli.data.ytvos import ReferYouTubeVOSDataset

        if not (folder / "samples_valid.json").is_file():
            return None
        valid = ReferYouTubeVOSDataset(folder, root, "valid", transforms)
        if not valid.has_gt or len(valid) == 0:
            return None

        def evaluate_ytvos(model: nn.Module, epoch: int) -> dict[str, float]:
            out = Path(run_dir) / "validation_outputs" / f"epoch_{epoch:02d}"
            metrics = evaluator.evaluate_ytvos(model, tokenizer, valid, out, device, progress=False)  # type: ignore[arg-type]
            return {k: v for k, v in metrics.items() if v is not None}

        return evaluate_ytvos
    return None


def _to_device(batch: dict, device: str) -> dict:
    """Move the batch's tensors (frames, masks, targets) to `device`; strings stay as they are."""
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


# ---------------------------------------------------------------------------------------------- a step


def compute_loss(
    model: nn.Module, criterion: SetCriterion, tokenizer: Callable, batch: dict, device: str, amp: bool
) -> tuple[dict[str, Tensor], Tensor]:
    """Forward one collated batch and its losses.

    batch: `collate` output (frames `[T,B,3,H,W]`, padding_mask `[T,B,H,W]`, texts, valid_indices `[T']`,
    targets). Returns ({weighted loss term: scalar}, total loss scalar); under `amp` the forward and the
    criterion run in float16 autocast (CUDA only).
    """
    batch = _to_device(batch, device)
    text = {k: v.to(device) for k, v in tokenizer(batch["texts"]).items()}
    device_type = "cuda" if device.startswith("cuda") else "cpu"
    with torch.autocast(device_type=device_type, dtype=torch.float16, enabled=amp):
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


# ---------------------------------------------------------------------------------------------- state


@dataclass
class _Progress:
    """Where the run stands; saved in every checkpoint."""

    epoch: int = 0  # the epoch being trained (from 0)
    step_in_epoch: int = 0  # optimizer steps done in `epoch`
    global_step: int = 0
    best_score: float | None = None
    best_metric: str = "loss"
    elapsed: float = 0.0  # seconds of training in earlier sessions
    epoch_sums: dict[str, float] = field(default_factory=dict)  # running sums of the logged losses


class _StopFlag:
    """Set by SIGINT/SIGTERM during the loop; a second SIGINT interrupts at once."""

    def __init__(self) -> None:
        self.requested = False

    def handle(self, signum: int, frame: Any) -> None:
        if self.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.requested = True


@contextmanager
def _stop_on_signals(flag: _StopFlag) -> Iterator[None]:
    """Route SIGINT and SIGTERM to `flag` (main thread only), restoring the previous handlers after."""
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, flag.handle) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def default_run_dir() -> Path:
    """`runs/<YYYY_MM_DD-HH_MM_SS>` under the current folder (the same name on every rank)."""
    name = datetime.now().strftime("%Y_%m_%d-%H_%M_%S")
    return Path(D.broadcast_object(str(Path("runs") / name)))


def resolve_resume(resume: Path) -> Path:
    """The checkpoint to resume from: the file itself, or in a run folder `checkpoints/last.pth.tar`,
    else its newest `<epoch>.pth.tar`. RvosError when there is none."""
    path = Path(resume)
    if path.is_file():
        return path
    if not path.is_dir():
        raise RvosError(f"--resume {path}: no such run folder or checkpoint file")
    folder = path / CHECKPOINTS
    if (folder / LAST).is_file():
        return folder / LAST
    epochs = sorted(folder.glob("[0-9]*.pth.tar")) if folder.is_dir() else []
    if not epochs:
        raise RvosError(f"--resume {path}: no checkpoint in {folder} (expected {LAST} or NN.pth.tar)")
    return epochs[-1]


def run_dir_of(checkpoint: Path) -> Path | None:
    """The run folder a checkpoint sits in (`RUN/checkpoints/x.pth.tar` → RUN), else None."""
    checkpoint = Path(checkpoint)
    return checkpoint.parent.parent if checkpoint.parent.name == CHECKPOINTS else None


def resume_config(resume: Path) -> Config:
    """The config a run being resumed was trained with: its run folder's config.yaml, else the one saved
    in the checkpoint."""
    checkpoint = resolve_resume(resume)
    run = run_dir_of(checkpoint)
    if run is not None and (run / "config.yaml").is_file():
        return load_config(run / "config.yaml")
    saved = read_checkpoint_file(checkpoint).get("config")
    if not isinstance(saved, dict):
        raise RvosError(f"{checkpoint}: holds no config; give --preset or --config as well")
    from rvos_cli.core.config import config_from_dict

    return config_from_dict(saved)


# ---------------------------------------------------------------------------------------------- trainer


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
        checkpoint_every: int,
        max_steps: int | None,
        time_limit_minutes: float | None,
        evaluate_epoch: EvaluateEpoch | None,
        show_progress: bool,
    ) -> None:
        from rvos_cli.core.model import build_model, build_tokenizer
        from rvos_cli.data.collate import collate

        self.config, self.run_dir, self.device, self.info = config, Path(run_dir), device, info
        self.checkpoint_dir = self.run_dir / CHECKPOINTS
        self.checkpoint_every, self.max_steps = checkpoint_every, max_steps
        self.time_limit = None if time_limit_minutes is None else time_limit_minutes * 60.0
        self.evaluate_epoch, self.show_progress = evaluate_epoch, show_progress
        train = config.train
        self.amp = train.amp and device.startswith("cuda")

        seed_everything(train.seed + info.rank)
        self.dataset = build_train_dataset(config, data_root, prepared)
        if len(self.dataset) == 0:
            raise RvosError(f"--data {data_root}: the training split has no samples")
        self.model = build_model(config.model).to(device)
        self.tokenizer = build_tokenizer(config.model)
        self.criterion = build_criterion(config.loss)
        self.optimizer = build_optimizer(self.model, train)
        self.scheduler = build_scheduler(self.optimizer, train)
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp)
        self.sampler = D.EpochSampler(len(self.dataset), train.seed, info.rank, info.world_size)
        self.steps_per_epoch = math.ceil(self.sampler.per_rank / train.batch_size)
        self.collate = collate
        self.state = _Progress(best_metric="loss")
        self.last_checkpoint: Path | None = None
        self.best_checkpoint: Path | None = None
        self.last_loss: float | None = None

    # ------------------------------------------------------------------ resume
    def restore(self, checkpoint: Path) -> int | None:
        """Load every piece of training state from `checkpoint`; returns the metrics-log offset."""
        saved = read_checkpoint_file(checkpoint)
        if "optimizer_state_dict" not in saved:
            raise RvosError(f"{checkpoint}: holds weights only, not a training state to resume from")
        state = {k.removeprefix("module."): v for k, v in saved["model_state_dict"].items()}
        strict_load(self.model, state, str(checkpoint))
        try:
            self.optimizer.load_state_dict(saved["optimizer_state_dict"])
        except ValueError as err:
            raise RvosError(f"{checkpoint}: optimizer state does not fit this config ({err})") from None
        self.scheduler.load_state_dict(saved["scheduler_state_dict"])
        if saved.get("grad_scaler_state_dict"):
            self.scaler.load_state_dict(saved["grad_scaler_state_dict"])
        complete = bool(saved.get("epoch_complete", True))
        epoch = int(saved["epoch"])
        layout = (saved.get("batch_size"), saved.get("world_size"))
        if not complete and layout != (self.config.train.batch_size, self.info.world_size):
            raise RvosError(
                f"{checkpoint}: saved mid-epoch with batch size {layout[0]} on {layout[1]} process(es); "
                "resume it with the same, or resume from an epoch checkpoint (checkpoints/NN.pth.tar)"
            )
        self.state = _Progress(
            epoch=epoch + 1 if complete else epoch,
            step_in_epoch=0 if complete else int(saved.get("step_in_epoch", 0)),
            global_step=int(saved.get("global_step", 0)),
            best_score=saved.get("best_score"),
            best_metric=str(saved.get("best_metric", "loss")),
            elapsed=float(saved.get("elapsed", 0.0)),
            epoch_sums={} if complete else dict(saved.get("epoch_sums", {})),
        )
        rng_states = saved.get("rng_states") or []
        if len(rng_states) == self.info.world_size:
            set_rng_state(rng_states[self.info.rank])
        else:
            # Another number of processes: the exact random stream cannot continue; start a fresh one.
            seed_everything(self.config.train.seed + self.info.rank + self.state.global_step)
        same_run = run_dir_of(Path(checkpoint)) == self.run_dir
        return int(saved["metrics_offset"]) if same_run and "metrics_offset" in saved else None

    # ------------------------------------------------------------------ checkpoints
    def save(self, path: Path, epoch_complete: bool, log: MetricsLog) -> None:
        """Write the full training state to `path` (rank 0; every rank contributes its RNG state)."""
        rng_states = D.all_gather_object(rng_state())
        if self.info.is_main:
            bare = D.unwrap(self.model)
            epoch = self.state.epoch - 1 if epoch_complete else self.state.epoch
            consumed = 0 if epoch_complete else self.state.step_in_epoch * self.config.train.batch_size
            save_model_checkpoint(
                bare,
                path,
                config=config_to_dict(self.config),
                epoch=epoch,
                total_epochs=self.config.train.epochs,
                optimizer_state_dict=self.optimizer.state_dict(),
                scheduler_state_dict=self.scheduler.state_dict(),
                grad_scaler_state_dict=self.scaler.state_dict(),
                best_score=self.state.best_score,
                best_metric=self.state.best_metric,
                epoch_complete=epoch_complete,
                step_in_epoch=0 if epoch_complete else self.state.step_in_epoch,
                global_step=self.state.global_step,
                sampler_state_dict={**self.sampler.state_dict(), "epoch": epoch, "start": consumed},
                rng_states=rng_states,
                world_size=self.info.world_size,
                batch_size=self.config.train.batch_size,
                epoch_sums=dict(self.state.epoch_sums),
                elapsed=self.elapsed(),
                metrics_offset=log.offset(),
            )
            self.last_checkpoint = path
        D.barrier()

    def save_last(self, log: MetricsLog) -> None:
        """Mid-epoch state to `checkpoints/last.pth.tar`."""
        self.save(self.checkpoint_dir / LAST, epoch_complete=False, log=log)

    def save_epoch(self, epoch: int, improved: bool, log: MetricsLog) -> None:
        """`<epoch>.pth.tar`, linked as last (and best when `improved`), then prune old epoch files."""
        path = self.checkpoint_dir / f"{epoch:02d}.pth.tar"
        self.save(path, epoch_complete=True, log=log)
        if self.info.is_main:
            _link_or_copy(path, self.checkpoint_dir / LAST)
            self.last_checkpoint = self.checkpoint_dir / LAST
            if improved:
                _link_or_copy(path, self.checkpoint_dir / BEST)
                self.best_checkpoint = self.checkpoint_dir / BEST
            keep = max(self.config.train.keep_checkpoints, 1)
            for old in sorted(self.checkpoint_dir.glob("[0-9]*.pth.tar"))[:-keep]:
                old.unlink()
        D.barrier()

    # ------------------------------------------------------------------ loop
    def elapsed(self) -> float:
        return self.state.elapsed + (time.perf_counter() - self.session_start)

    def run(self, metrics_offset: int | None) -> TrainResult:
        """Train until the last epoch or a stop condition; returns the outcome."""
        self.session_start = time.perf_counter()
        self.session_first_step = self.state.global_step
        if self.info.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            save_config(self.config, self.run_dir / "config.yaml")
        log = MetricsLog(
            self.run_dir / "metrics.jsonl",
            enabled=self.info.is_main,
            truncate_to=metrics_offset,
            tensorboard_dir=self.run_dir / "tensorboard",
        )
        if self.info.is_main and (self.checkpoint_dir / BEST).is_file():
            self.best_checkpoint = self.checkpoint_dir / BEST
        self.model = D.wrap_model(self.model, self.device)
        total_epochs = self.config.train.epochs
        flag = _StopFlag()
        status, message = "completed", ""
        progress = TrainProgress(
            total_epochs * self.steps_per_epoch,
            self.state.global_step,
            enabled=self.show_progress and self.info.is_main,
        )
        try:
            with progress, _stop_on_signals(flag):
                status, message = self._loop(log, progress, flag)
        finally:
            log.close()
        epochs_done = self.state.epoch
        return TrainResult(
            run_dir=self.run_dir,
            status=status,
            epochs_completed=min(epochs_done, total_epochs),
            total_epochs=total_epochs,
            steps=self.state.global_step,
            final_loss=self.last_loss,
            best_score=self.state.best_score,
            best_metric=self.state.best_metric,
            last_checkpoint=self.last_checkpoint,
            best_checkpoint=self.best_checkpoint,
            seconds=self.elapsed(),
            message=message,
        )

    def _loop(self, log: MetricsLog, progress: TrainProgress, flag: _StopFlag) -> tuple[str, str]:
        train = self.config.train
        if self.max_steps is not None and self.state.global_step >= self.max_steps:
            return "max_steps", f"already at step {self.state.global_step}"
        for epoch in range(self.state.epoch, train.epochs):
            self.state.epoch = epoch
            self.dataset.set_epoch(epoch)  # type: ignore[attr-defined]
            self.sampler.set_epoch(epoch, start=self.state.step_in_epoch * train.batch_size)
            loader = DataLoader(
                self.dataset,
                batch_size=train.batch_size,
                sampler=self.sampler,
                collate_fn=self.collate,
                num_workers=train.num_workers,
                pin_memory=self.device.startswith("cuda"),
                # The loader's worker seeds come from here, not from the global RNG the model uses.
                generator=torch.Generator().manual_seed(train.seed + epoch),
            )
            self.model.train()
            stop = ""
            for batch in loader:
                stop = self._step(batch, epoch, log, progress, flag)
                if stop:
                    break
            if stop == "non_finite":
                where = self.last_checkpoint or "none was written yet"
                return (
                    stop,
                    f"non-finite loss at step {self.state.global_step + 1}; last good checkpoint: {where}",
                )
            if self.state.step_in_epoch >= self.steps_per_epoch:
                self._end_epoch(epoch, log)
            elif stop:
                self.save_last(log)
            if stop:
                return stop, _stop_message(stop, self.state.global_step)
        return "completed", ""

    def _step(
        self, batch: dict, epoch: int, log: MetricsLog, progress: TrainProgress, flag: _StopFlag
    ) -> str:
        """One optimizer step; returns a stop reason ("" to go on)."""
        train = self.config.train
        weighted, total = compute_loss(
            self.model, self.criterion, self.tokenizer, batch, self.device, self.amp
        )
        names = sorted(weighted)
        out_of_time = (
            self.time_limit is not None and time.perf_counter() - self.session_start >= self.time_limit
        )
        # Every rank must stop at the same step: the strongest reason of any rank wins.
        vote = STOP_INTERRUPTED if flag.requested else STOP_TIME_LIMIT if out_of_time else 0
        packed = torch.stack([total.detach().float(), *(weighted[n].detach().float() for n in names)])
        packed = D.all_reduce_mean(packed)
        stop_vote = int(D.all_reduce_max(torch.tensor([float(vote)], device=packed.device)).item())
        values = packed.tolist()
        if not all(math.isfinite(v) for v in values):
            return "non_finite"
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(total).backward()
        self.scaler.unscale_(self.optimizer)
        # clip_max_norm 0 turns clipping off; the norm is still computed to catch inf/NaN gradients.
        max_norm = train.clip_max_norm if train.clip_max_norm > 0 else math.inf
        norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), max_norm)
        if not self.amp and not torch.isfinite(norm):  # under AMP the scaler skips such steps itself
            return "non_finite"
        self.scaler.step(self.optimizer)
        self.scaler.update()

        self.state.step_in_epoch += 1
        self.state.global_step += 1
        loss = values[0]
        self.last_loss = loss
        terms = dict(zip(names, values[1:], strict=True))
        for key, value in {"loss": loss, **terms}.items():
            self.state.epoch_sums[key] = self.state.epoch_sums.get(key, 0.0) + value
        lr = self.optimizer.param_groups[0]["lr"]
        elapsed = self.elapsed()
        log.write({
            "kind": "step", "epoch": epoch, "step": self.state.global_step, "loss": loss, "lr": lr,
            "time": round(elapsed, 3), **terms,
        })  # fmt: skip
        speed = (self.state.global_step - self.session_first_step) / max(
            time.perf_counter() - self.session_start, 1e-9
        )
        progress.update(self.state.global_step, f"{epoch + 1}/{train.epochs}", loss, lr, speed)
        if stop_vote:
            return "interrupted" if stop_vote == STOP_INTERRUPTED else "time_limit"
        if self.max_steps is not None and self.state.global_step >= self.max_steps:
            return "max_steps"
        finished_epoch = self.state.step_in_epoch == self.steps_per_epoch
        if (
            not finished_epoch
            and self.checkpoint_every > 0
            and self.state.global_step % self.checkpoint_every == 0
        ):
            self.save_last(log)
        return ""

    def _end_epoch(self, epoch: int, log: MetricsLog) -> None:
        """Scheduler step, evaluation, the epoch record and the epoch checkpoint."""
        self.scheduler.step()
        steps = max(self.state.step_in_epoch, 1)
        record: dict[str, Any] = {"kind": "epoch", "epoch": epoch}
        record.update({key: value / steps for key, value in self.state.epoch_sums.items()})
        record["lr"] = self.optimizer.param_groups[0]["lr"]
        metrics = self._evaluate(epoch)
        record.update(metrics)
        record["time"] = round(self.elapsed(), 3)
        improved = self._update_best(record["loss"], metrics)
        log.write(record)
        self.state.epoch, self.state.step_in_epoch, self.state.epoch_sums = epoch + 1, 0, {}
        self.save_epoch(epoch, improved, log)

    def _evaluate(self, epoch: int) -> dict[str, float]:
        """Run the evaluation hook on rank 0 (others wait) and share its metrics with every rank."""
        if self.evaluate_epoch is None:
            return {}
        metrics: dict[str, float] = {}
        if self.info.is_main:
            bare = D.unwrap(self.model)
            bare.eval()
            with torch.no_grad():
                metrics = {k: float(v) for k, v in self.evaluate_epoch(bare, epoch).items()}
            bare.train()
        return D.broadcast_object(metrics)

    def _update_best(self, epoch_loss: float, metrics: dict[str, float]) -> bool:
        """Track the best score (an evaluation metric if there is one, else the epoch loss)."""
        name = next((m for m in BEST_METRICS if m in metrics), "loss")
        score = metrics[name] if name != "loss" else epoch_loss
        previous = self.state.best_score if self.state.best_metric == name else None
        better = previous is None or (score < previous if name == "loss" else score > previous)
        if better:
            self.state.best_score, self.state.best_metric = score, name
        return better


def _stop_message(reason: str, step: int) -> str:
    return {
        "max_steps": f"stopped after step {step} (--max-steps)",
        "time_limit": f"time limit reached after step {step}",
        "interrupted": f"interrupted after step {step}",
    }.get(reason, "")


def _link_or_copy(source: Path, target: Path) -> None:
    """Make `target` the same file as `source` (hard link, else a copy), replacing it atomically."""
    import shutil

    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    tmp.unlink(missing_ok=True)
    try:
        os.link(source, tmp)
    except OSError:
        shutil.copyfile(source, tmp)
    os.replace(tmp, target)


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
    Returns a `TrainResult`; a non-finite loss ends with status "non_finite", SIGINT/SIGTERM with
    "interrupted" after saving `last.pth.tar`. Bad input raises RvosError.
    """
    config = copy.deepcopy(config)
    info, device, created = D.init_distributed(device)
    try:
        checkpoint = resolve_resume(resume) if resume is not None else None
        if run_dir is None:
            run_dir = run_dir_of(checkpoint) if checkpoint is not None else None
        run_dir = Path(run_dir) if run_dir is not None else default_run_dir()
        if checkpoint is None and any((run_dir / CHECKPOINTS).glob("*.pth.tar")):
            raise RvosError(
                f"{run_dir}: holds checkpoints of an earlier run; continue it with --resume {run_dir} "
                "or start a new run in another --out folder"
            )
        config.data.dataset = detect_dataset(data_root, config.data.dataset)
        if evaluate and evaluate_epoch is None and info.is_main:
            evaluate_epoch = epoch_evaluator(config, data_root, run_dir, device, prepared)
        trainer = _Trainer(
            config, data_root, run_dir, device, info, prepared, checkpoint_every, max_steps,
            time_limit_minutes, evaluate_epoch, show_progress,
        )  # fmt: skip
        offset = trainer.restore(checkpoint) if checkpoint is not None else None
        return trainer.run(offset)
    finally:
        D.cleanup(created)


def summary(result: TrainResult) -> Any:
    """The closing rich table of a run."""
    return summary_table(result.summary_rows())
