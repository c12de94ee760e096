"""Progress a batch job can read: plain lines at most every N seconds with step, epoch, loss, lr,
samples/s, ETA and peak memory when stderr is not a terminal; nothing when disabled."""

from __future__ import annotations

import io

from rich.console import Console

from rvos_cli.engine.logging import (
    JobProgress,
    ProgressReporter,
    format_bytes,
    format_duration,
    peak_memory_bytes,
)


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _reporter(clock: FakeClock, **options: object) -> tuple[ProgressReporter, io.StringIO]:
    stream = io.StringIO()
    console = Console(file=stream, width=400)
    return ProgressReporter(10, title="train", console=console, clock=clock, **options), stream  # type: ignore[arg-type]


def test_plain_lines_come_at_most_every_log_every_seconds() -> None:
    clock = FakeClock()
    reporter, stream = _reporter(clock, log_every=30.0)
    assert reporter.plain  # a StringIO is no terminal
    with reporter:
        for step, now in enumerate((100.0, 110.0, 129.9, 130.0, 150.0), start=1):
            clock.now = now
            reporter.update(step, samples=4, epoch="1/2", loss=f"{1 / step:.4f}", lr="1.00e-04")
    lines = stream.getvalue().splitlines()
    assert [line.split("  ")[1] for line in lines] == ["step 1/10", "step 4/10"]
    # step 4 at 30 s: 16 samples / 30 s, and 6 steps left at 4 steps per 30 s → 45 s
    head = "train  step 4/10  epoch 1/2  loss 0.2500  lr 1.00e-04  0.533 samples/s  ETA 0:00:45  peak "
    assert lines[1].startswith(head)
    assert lines[1].endswith("MiB") or lines[1].endswith("GiB")


def test_log_every_zero_prints_every_update_and_a_resumed_run_counts_from_its_step() -> None:
    clock = FakeClock()
    reporter, stream = _reporter(clock, log_every=0.0, completed=6)
    with reporter:
        for step in (7, 8):
            clock.now += 10.0
            reporter.update(step, loss="0.1")
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2 and "step 8/10  loss 0.1  ETA 0:00:20" in lines[1]  # 2 steps in 20 s, 2 left


def test_disabled_progress_prints_nothing() -> None:
    clock = FakeClock()
    reporter, stream = _reporter(clock, enabled=False, log_every=0.0)
    with reporter:
        reporter.update(1, loss="1.0")
    assert stream.getvalue() == ""


def test_formats_and_peak_memory() -> None:
    assert (format_duration(3725.4), format_bytes(812 * 1024**2), format_bytes(1.25 * 1024**3)) == (
        "1:02:05", "812 MiB", "1.25 GiB",
    )
    assert peak_memory_bytes("cpu") > 10 * 1024**2  # this process's peak RSS: torch alone is bigger


def test_evaluation_counter_prints_plain_lines_off_a_terminal(capsys) -> None:
    # capsys' stderr is no terminal: the first item prints a line at once, the rest wait for log_every.
    items = list(JobProgress(["a", "b", "c"], desc="J&F", unit="expr", log_every=3600))
    lines = capsys.readouterr().err.splitlines()
    assert items == ["a", "b", "c"]
    assert len(lines) == 1 and lines[0].startswith("J&F  expr 1/3  ETA ")


def test_evaluation_counter_is_a_tqdm_bar_on_a_terminal(capsys) -> None:
    counter = JobProgress(total=4, desc="predict", unit="clip", plain=False)
    counter.update(3)
    counter.close()
    assert counter.count == 3 and "predict" in capsys.readouterr().err
    silent = JobProgress(total=2, desc="predict", disable=True)
    silent.update(2)
    assert capsys.readouterr().err == ""
