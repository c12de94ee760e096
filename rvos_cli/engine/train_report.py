"""What a training run says about itself: the lines before its first step (device, precision, batch,
weights) and how it ended (`TrainResult` and the closing table)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rvos_cli.core.config import Config
from rvos_cli.engine.logging import format_duration, summary_table
from rvos_cli.engine.recipe import batch_report, precision_label


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
        return [
            ("status", self.status + (f": {self.message}" if self.message else "")),
            ("epochs", f"{self.epochs_completed}/{self.total_epochs}"),
            ("steps", str(self.steps)),
            ("final loss", loss),
            ("best score", best),
            ("time", format_duration(self.seconds)),
            ("run folder", str(self.run_dir)),
            ("last checkpoint", str(self.last_checkpoint or "-")),
            ("best checkpoint", str(self.best_checkpoint or "-")),
        ]


def summary(result: TrainResult) -> Any:
    """The closing rich table of a run."""
    return summary_table(result.summary_rows())


def start_lines(config: Config, device: str, world_size: int, checkpoint: Path | None) -> list[str]:
    """What a run says before its first step: device and precision, the effective batch (and a warning
    when it is not the paper's), and where the weights start from."""
    lines = [f"device: {device}, {precision_label(device, config.train.amp)}"]
    lines.extend(line for line in batch_report(config.train, world_size) if line is not None)
    if checkpoint is not None:
        lines.append(f"resuming from {checkpoint}")
    elif config.model.backbone_weights is None:
        lines.append("backbone: random init (no model.backbone_weights)")
    return lines
