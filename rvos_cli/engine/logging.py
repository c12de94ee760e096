"""What a training run reports: the metrics log (JSON lines), optional TensorBoard events, a progress bar
on stderr and the closing summary table.

The log has one object per line. Step records: {"kind": "step", "epoch", "step" (global), "loss", "lr",
"time" (seconds of training so far), one entry per weighted loss term}. Epoch records: {"kind": "epoch",
"epoch", "loss" (mean total loss of the epoch's steps), "lr", "time", evaluation metrics...}.
Every line is flushed as it is written, so a killed run loses at most the line being written; only the
main process (rank 0) writes.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from types import TracebackType
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table


def _plain(value: Any) -> Any:
    """JSON-safe number: NaN and infinities become strings ("nan", "inf") instead of invalid JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


class MetricsLog:
    """Append-only `metrics.jsonl` writer (and TensorBoard scalars when `tensorboard` is installed).

    `enabled` False (ranks other than 0) makes every method a no-op. `truncate_to` cuts an existing file
    back to a byte offset recorded in a checkpoint, so a resumed run does not repeat the steps logged
    after that checkpoint.
    """

    def __init__(
        self,
        path: Path,
        enabled: bool = True,
        truncate_to: int | None = None,
        tensorboard_dir: Path | None = None,
    ) -> None:
        self.path = Path(path)
        self.enabled = enabled
        self._handle = None
        self._tensorboard: Any = None
        if not enabled:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if truncate_to is not None and self.path.is_file() and self.path.stat().st_size >= truncate_to:
            with open(self.path, "r+b") as handle:
                handle.truncate(truncate_to)
        self._handle = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 (closed in close())
        if tensorboard_dir is not None:
            self._tensorboard = _tensorboard_writer(tensorboard_dir)

    def offset(self) -> int:
        """Bytes written so far (0 when disabled): the point a resumed run truncates back to."""
        return self._handle.tell() if self._handle is not None else 0

    def write(self, record: dict[str, Any]) -> None:
        """Append `record` as one JSON line and flush; also send its numbers to TensorBoard."""
        if self._handle is None:
            return
        self._handle.write(json.dumps({k: _plain(v) for k, v in record.items()}) + "\n")
        self._handle.flush()
        if self._tensorboard is not None:
            kind = record.get("kind", "step")
            x = record["step"] if kind == "step" else record.get("epoch", 0)
            for key, value in record.items():
                if key not in ("kind", "epoch", "step", "time") and isinstance(value, int | float):
                    self._tensorboard.add_scalar(f"{kind}/{key}", value, x)

    def close(self) -> None:
        """Close the file (and TensorBoard writer)."""
        if self._handle is not None:
            self._handle.close()
            self._handle = None
        if self._tensorboard is not None:
            self._tensorboard.close()
            self._tensorboard = None


def _tensorboard_writer(folder: Path) -> Any:
    """A `SummaryWriter` into `folder`, or None when tensorboard is not installed."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        return None
    return SummaryWriter(log_dir=str(folder))


class TrainProgress:
    """A rich progress bar over all steps of the run: epoch, step, loss, learning rate, speed and ETA.

    Used as a context manager; `enabled` False (other ranks, `--quiet`) shows nothing.
    """

    def __init__(
        self, total_steps: int, completed: int, enabled: bool = True, console: Console | None = None
    ):
        self.enabled = enabled
        self._progress = Progress(
            TextColumn("epoch {task.fields[epoch]}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("steps  loss {task.fields[loss]}  lr {task.fields[lr]}  {task.fields[speed]}"),
            TimeRemainingColumn(),
            console=console or Console(stderr=True),
            disable=not enabled,
        )
        self._task = self._progress.add_task(
            "train", total=total_steps, completed=completed, epoch="-", loss="-", lr="-", speed=""
        )

    def __enter__(self) -> TrainProgress:
        self._progress.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self._progress.stop()

    def update(self, step: int, epoch: str, loss: float, lr: float, steps_per_second: float) -> None:
        """Show `step` steps done, in epoch label `epoch` (e.g. "3/30"), with the last loss and lr."""
        self._progress.update(
            self._task,
            completed=step,
            epoch=epoch,
            loss=f"{loss:.4f}",
            lr=f"{lr:.2e}",
            speed=f"{steps_per_second:.2f} steps/s",
        )


def summary_table(rows: list[tuple[str, str]], title: str = "rvos train") -> Table:
    """A two-column rich table (label, value) for the end of a run."""
    table = Table(title=title, show_header=False)
    table.add_column(style="bold")
    table.add_column(overflow="fold")  # paths wrap instead of being cut with an ellipsis
    for label, value in rows:
        table.add_row(label, value)
    return table
