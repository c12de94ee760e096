"""What a long run reports: the metrics log (JSON lines), optional TensorBoard events, progress on stderr
(`ProgressReporter`: a bar on a terminal, plain lines in a log file) and the closing summary table.

The log has one object per line. Step records: {"kind": "step", "epoch", "step" (global), "loss", "lr",
"time" (seconds of training so far), one entry per weighted loss term}. Epoch records: {"kind": "epoch",
"epoch", "loss" (mean total loss of the epoch's steps), "lr", "time", evaluation metrics...}.
Every line is flushed as it is written, so a killed run loses at most the line being written; only the
main process (rank 0) writes.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table

from rvos_cli.fileio import write_error


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
        # Unbuffered bytes: a record is on disk once `write` returns, and a failed one can be cut off again.
        self._handle = open(self.path, "ab", buffering=0)  # noqa: SIM115 (closed in close())
        if tensorboard_dir is not None:
            self._tensorboard = _tensorboard_writer(tensorboard_dir)

    def offset(self) -> int:
        """Bytes written so far (0 when disabled): the point a resumed run truncates back to."""
        return self._handle.tell() if self._handle is not None else 0

    def write(self, record: dict[str, Any]) -> None:
        """Append `record` as one JSON line (whole, or not at all: a write error raises `RvosError` naming
        the file and leaves the log as it was); also send its numbers to TensorBoard."""
        if self._handle is None:
            return
        data = (json.dumps({k: _plain(v) for k, v in record.items()}) + "\n").encode("utf-8")
        start = self._handle.tell()
        try:
            written = 0
            while written < len(data):
                written += self._handle.write(data[written:])
        except OSError as error:  # a full disk: no torn line stays behind, the error names the file
            with contextlib.suppress(OSError):
                os.ftruncate(self._handle.fileno(), start)
            raise write_error(self.path, error) from error
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


def peak_memory_bytes(device: str = "cpu") -> int:
    """The process's peak memory so far: max allocated CUDA memory on a `cuda` device, else peak RSS."""
    if device.startswith("cuda"):
        import torch

        return int(torch.cuda.max_memory_allocated(device))
    import resource
    import sys

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)  # Linux reports KiB, macOS bytes


def format_bytes(count: float) -> str:
    """'812 MiB', '1.25 GiB': a byte count for a progress line."""
    if count < 1024**3:
        return f"{count / 1024**2:.0f} MiB"
    return f"{count / 1024**3:.2f} GiB"


def format_duration(seconds: float) -> str:
    """'h:mm:ss' (seconds rounded), e.g. 3725.4 → '1:02:05'."""
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}"


class ProgressReporter:
    """Progress of a long job on stderr: a rich bar on a terminal, plain lines when stderr is not one.

    Plain lines (CI, `nohup`, a scheduler's log file) come at most one every `log_every` seconds (the
    first update always prints), e.g.
    `train  step 12/64  epoch 1/8  loss 0.4127  lr 1.00e-04  6.1 samples/s  ETA 0:02:13  peak 1.21 GiB`.
    The bar shows the same fields. total: units of the whole job (steps, clips, windows); completed: units
    already done when this session starts (a resumed run); unit: the units' name in lines; title: the
    first word of a line; enabled False (other ranks, `--no-progress`) shows nothing; device: whose peak
    memory to show ('cpu' → peak RSS, 'cuda:N' → max allocated); plain: force lines (True) or the bar
    (False) instead of asking the console; clock: seconds source (tests).
    """

    def __init__(
        self,
        total: int,
        *,
        completed: int = 0,
        unit: str = "step",
        title: str = "",
        enabled: bool = True,
        log_every: float = 30.0,
        device: str = "cpu",
        plain: bool | None = None,
        console: Console | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.total, self.completed, self.unit, self.title = total, completed, unit, title
        self.enabled, self.log_every, self.device, self.clock = enabled, log_every, device, clock
        self.console = console or Console(stderr=True)
        self.plain = (not self.console.is_terminal) if plain is None else plain
        self._start_units, self._start_time, self._samples = completed, clock(), 0
        self._last_line: float | None = None
        self._fields: dict[str, str] = {}
        self._bar = Progress(
            TextColumn(title), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[info]}"),
            console=self.console, disable=not enabled or self.plain,
        )  # fmt: skip
        self._task = self._bar.add_task(title, total=total, completed=completed, info="")

    def __enter__(self) -> ProgressReporter:
        self._start_time = self.clock()
        self._bar.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self._bar.stop()

    def update(self, completed: int, *, samples: int = 0, **fields: str) -> None:
        """Record `completed` units done in total, `samples` more samples processed since the last
        update, and `fields` (label → formatted value, shown in order: epoch="1/8", loss="0.4127")."""
        self.completed, self._samples = completed, self._samples + samples
        self._fields = fields
        if not self.enabled:
            return
        if not self.plain:
            self._bar.update(self._task, completed=completed, info=self._info(with_units=False))
            return
        now = self.clock()
        if self._last_line is None or now - self._last_line >= self.log_every:
            self._last_line = now
            self.console.print(self.line(), highlight=False, markup=False, soft_wrap=True)

    def line(self) -> str:
        """The plain progress line of the current state."""
        head = f"{self.title}  " if self.title else ""
        return head + self._info(with_units=True)

    def _info(self, with_units: bool) -> str:
        elapsed = max(self.clock() - self._start_time, 1e-9)
        done = self.completed - self._start_units
        parts = [f"{self.unit} {self.completed}/{self.total}"] if with_units else []
        parts += [f"{label} {value}" for label, value in self._fields.items()]
        if self._samples:
            parts.append(f"{self._samples / elapsed:.3g} samples/s")
        eta = (self.total - self.completed) * elapsed / done if done > 0 else None
        parts.append("ETA " + ("-" if eta is None else format_duration(eta)))
        parts.append("peak " + format_bytes(peak_memory_bytes(self.device)))
        return "  ".join(parts)


def summary_table(rows: list[tuple[str, str]], title: str = "rvos train") -> Table:
    """A two-column rich table (label, value) for the end of a run."""
    table = Table(title=title, show_header=False)
    table.add_column(style="bold")
    table.add_column(overflow="fold")  # paths wrap instead of being cut with an ellipsis
    for label, value in rows:
        table.add_row(label, value)
    return table


def notice(message: str) -> None:
    """Print one plain status line to stderr (device, batch, loaded weights at the start of a run)."""
    import sys

    print(message, file=sys.stderr, flush=True)


class JobProgress:
    """A counter of finished items for the evaluation loops: a tqdm bar on a terminal (bars may nest
    there), plain `ProgressReporter` lines at most every `log_every` seconds when stderr is not one.

    Supports the few tqdm calls the loops use: `update(n)`, `close()` and iteration. iterable: items to
    yield (its len() is the total unless `total` is given); desc: the line's title; unit: the items' name
    ('clip', 'expr'); disable: show nothing (other ranks, `progress=False`); plain: force lines (True) or
    the bar (False) instead of asking the console.
    """

    def __init__(
        self,
        iterable: Any = None,
        *,
        total: int | None = None,
        desc: str = "",
        unit: str = "item",
        disable: bool = False,
        log_every: float = 30.0,
        plain: bool | None = None,
    ) -> None:
        import sys

        from tqdm import tqdm

        self._iterable = iterable
        if total is None:
            total = len(iterable) if iterable is not None else 0
        self.count = 0
        self.plain = (not Console(stderr=True).is_terminal) if plain is None else plain
        self._bar = None
        if not self.plain:
            self._bar = tqdm(total=total, desc=desc, unit=unit, file=sys.stderr, disable=disable)
        self._lines = ProgressReporter(
            total, unit=unit, title=desc, enabled=self.plain and not disable, log_every=log_every, plain=True
        )

    def update(self, count: int = 1) -> None:
        """Record `count` more finished items."""
        self.count += count
        if self._bar is not None:
            self._bar.update(count)
        else:
            self._lines.update(self.count)

    def close(self) -> None:
        """Close the bar (plain lines need no closing)."""
        if self._bar is not None:
            self._bar.close()

    def __iter__(self) -> Any:
        try:
            for item in self._iterable:
                yield item
                self.update(1)
        finally:
            self.close()
