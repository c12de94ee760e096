"""Training curves from a run's metrics log (JSON lines) drawn with matplotlib.

Step records `{"kind": "step", "epoch", "step", "loss", "lr", "time"}` give the loss (raw and smoothed)
and learning rate against the step; epoch records `{"kind": "epoch", "epoch", "loss", "mAP", ...}` give
one small panel per numeric metric against the epoch. Records of other kinds are ignored.
"""

from __future__ import annotations

import itertools
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from rvos_cli.errors import RvosError
from rvos_cli.fileio import atomic_path

SMOOTHING = 0.9
METRIC_COLUMNS = 3
# Fields of an epoch record that get no panel: bookkeeping, the lr (plotted per step) and the individual
# loss terms (`loss_dice_0`, ...: a dozen panels that hide the metrics; the total `loss` stays).
NOT_METRICS = frozenset({"kind", "epoch", "step", "time", "lr"})


@dataclass
class TrainingLog:
    """The parsed log: step-wise loss and lr, and per-metric (epoch, value) series."""

    steps: list[float] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)
    lr_steps: list[float] = field(default_factory=list)
    lrs: list[float] = field(default_factory=list)
    metrics: dict[str, list[tuple[float, float]]] = field(default_factory=dict)
    step_label: str = "step"


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def read_training_log(metrics_jsonl: Path) -> TrainingLog:
    """Parse a metrics JSON-lines file; blank lines are skipped, anything else malformed raises RvosError.

    Step x-values are the records' `step` if they increase strictly through the file, else the running
    count of step records (so a step counter that restarts each epoch still gives one increasing axis).
    """
    path = Path(metrics_jsonl)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as error:
        raise RvosError(f"{path}: cannot read the metrics log ({error.strerror})") from error
    log = TrainingLog()
    raw_steps: list[float] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise RvosError(f"{where}: not a JSON object ({error.msg})") from error
        if not isinstance(record, dict):
            raise RvosError(f"{where}: expected a JSON object per line, got {type(record).__name__}")
        kind = record.get("kind")
        if kind == "step":
            if not _is_number(record.get("loss")):
                raise RvosError(f"{where}: a step record needs a numeric 'loss'")
            step = record.get("step", len(raw_steps))
            if not _is_number(step):
                raise RvosError(f"{where}: 'step' must be a number, got {step!r}")
            raw_steps.append(float(step))
            log.losses.append(float(record["loss"]))
            if _is_number(record.get("lr")):
                log.lr_steps.append(float(len(raw_steps) - 1))
                log.lrs.append(float(record["lr"]))
        elif kind == "epoch":
            epoch = record.get("epoch")
            if not _is_number(epoch):
                raise RvosError(f"{where}: an epoch record needs a numeric 'epoch'")
            for key, value in record.items():
                if key not in NOT_METRICS and not key.startswith("loss_") and _is_number(value):
                    log.metrics.setdefault(key, []).append((float(epoch), float(value)))
    increasing = all(b > a for a, b in itertools.pairwise(raw_steps))
    log.steps = raw_steps if increasing else [float(i) for i in range(len(raw_steps))]
    log.step_label = "step" if increasing else "logged step"
    log.lr_steps = [log.steps[int(i)] for i in log.lr_steps]
    if not log.losses and not log.metrics:
        raise RvosError(f'{path}: no step or epoch records (lines with "kind": "step" or "epoch")')
    return log


def smooth(values: list[float], weight: float = SMOOTHING) -> list[float]:
    """Bias-corrected exponential moving average: s_t = Σ w^(t−i)(1−w)x_i / (1 − w^(t+1)); NaNs skipped."""
    smoothed: list[float] = []
    average, norm = 0.0, 0.0
    for value in values:
        if math.isfinite(value):
            average = weight * average + (1 - weight) * value
            norm = weight * norm + (1 - weight)
        smoothed.append(average / norm if norm > 0 else math.nan)
    return smoothed


def plot_training_curves(metrics_jsonl: Path, out_png: Path) -> Path:
    """Plot a run's metrics log into one PNG and return `out_png`.

    Top row: loss per logged step (raw, faint) with its smoothed curve, and the learning rate (log scale)
    if logged. Below: one panel per numeric epoch metric (loss, mAP, mean_iou, ...) against the epoch.
    Needs matplotlib (Agg, no display); the file is written under a temporary name and renamed.
    """
    try:
        from matplotlib.figure import Figure
    except ImportError as error:
        raise RvosError(
            "plotting training curves needs matplotlib: pip install matplotlib "
            "(or pip install 'rvos-cli[dev]')"
        ) from error
    log = read_training_log(metrics_jsonl)
    out_png = Path(out_png)

    metric_rows = math.ceil(len(log.metrics) / METRIC_COLUMNS)
    rows = (1 if log.losses else 0) + metric_rows
    figure = Figure(figsize=(4.2 * METRIC_COLUMNS, 3.2 * rows), layout="constrained")
    grid = figure.add_gridspec(rows, METRIC_COLUMNS)
    row = 0
    if log.losses:
        x_label = log.step_label
        axes = figure.add_subplot(grid[0, : 2 if log.lrs else METRIC_COLUMNS])
        axes.plot(log.steps, log.losses, color="tab:blue", alpha=0.3, linewidth=0.8, label="raw")
        axes.plot(log.steps, smooth(log.losses), color="tab:blue", linewidth=1.6, label="smoothed")
        axes.set(title="training loss", xlabel=x_label, ylabel="loss")
        axes.grid(alpha=0.3)
        axes.legend()
        if log.lrs:
            lr_axes = figure.add_subplot(grid[0, 2:])
            lr_axes.plot(log.lr_steps, log.lrs, color="tab:orange")
            lr_axes.set(title="learning rate", xlabel=x_label, yscale="log")
            lr_axes.grid(alpha=0.3)
        row = 1
    for index, (name, points) in enumerate(log.metrics.items()):
        axes = figure.add_subplot(grid[row + index // METRIC_COLUMNS, index % METRIC_COLUMNS])
        epochs, values = zip(*points, strict=True)
        axes.plot(epochs, values, marker="o", markersize=3, color="tab:green")
        axes.set(title=name, xlabel="epoch")
        axes.grid(alpha=0.3)

    with atomic_path(out_png) as temp:
        figure.savefig(temp, format="png", dpi=100)
    return out_png
