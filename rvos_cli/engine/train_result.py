"""How a training run ended (`TrainResult`) and the closing table that says so."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rvos_cli.engine.logging import summary_table


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
            ("time", _duration(self.seconds)),
            ("run folder", str(self.run_dir)),
            ("last checkpoint", str(self.last_checkpoint or "-")),
            ("best checkpoint", str(self.best_checkpoint or "-")),
        ]


def _duration(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}"


def summary(result: TrainResult) -> Any:
    """The closing rich table of a run."""
    return summary_table(result.summary_rows())
