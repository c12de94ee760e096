"""Seconds per training step and peak memory of `mttr-a2d` on the CPU, with and without grad checkpointing.

One step is what `rvos train` does per batch: forward in train mode (batch 1, window 8, 320×576, the
centre frame annotated as in A2D-Sentences), Hungarian matching and all losses including the auxiliary
decoder layers, backward, gradient clipping and the AdamW step; fp32, 2 torch threads, random weights
with a roberta-base-shaped text encoder built offline. Each setting runs in its own process so that its
peak resident memory is its own; the time is the median of the steps after a warm-up step.

    python benchmarks/bench_train.py [--steps 3] [--out benchmarks/results/train.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rvos_cli.fileio import write_json_atomic

HERE = Path(__file__).resolve().parent
T, H, W = 8, 320, 576
# setting: (grad checkpointing, fix glibc's mmap threshold as `rvos train` does on a CPU). The rows with
# glibc's own adaptive threshold show what `rvos_cli.core.allocator` buys.
SETTINGS: dict[str, tuple[bool, bool]] = {
    "plain": (False, True),
    "grad-checkpoint": (True, True),
    "plain, glibc's adaptive mmap threshold": (False, False),
    "grad-checkpoint, glibc's adaptive mmap threshold": (True, False),
}
REFERENCE = {"seconds": 24.8, "peak_rss_gb": 8.1}  # reference implementation, same kind of machine (issue)
TARGETS = {"plain": (12.0, 4.0), "grad-checkpoint": (None, 2.5)}  # seconds, GB (the issue's)


def target_of(setting: str) -> tuple[float | None, float]:
    """(seconds or None, GB) target of a setting: plain's or grad checkpointing's, by its first word."""
    return TARGETS["grad-checkpoint" if setting.startswith("grad-checkpoint") else "plain"]


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (falls back to `platform.processor()`)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def synthetic_batch() -> tuple:
    """Frames `[T,1,3,H,W]`, padding `[T,1,H,W]`, valid indices `[1]` (centre frame) and its targets:
    two instances (the first referred), boxes at the frame's full resolution as A2D's masks are."""
    import torch

    generator = torch.Generator().manual_seed(0)
    frames = torch.randn(T, 1, 3, H, W, generator=generator)
    padding = torch.zeros(T, 1, H, W, dtype=torch.bool)
    masks = torch.zeros(2, H, W, dtype=torch.bool)
    masks[0, 60:220, 100:300] = True
    masks[1, 150:300, 350:520] = True
    target = {"masks": masks, "referred_instance_idx": torch.tensor(0)}
    return frames, padding, torch.tensor([T // 2]), [(target,)]


def run_setting(grad_checkpoint: bool, tune_memory: bool, steps: int) -> dict:
    """Child process: build `mttr-a2d`, run one warm-up and `steps` timed training steps."""
    import torch

    sys.path.insert(0, str(HERE))
    from _offline import fake_token_ids, roberta_base_config_folder

    from rvos_cli.core.config import TextEncoderConfig, get_preset
    from rvos_cli.core.model import build_model
    from rvos_cli.engine.recipe import tune_cpu_memory
    from rvos_cli.engine.trainer import build_criterion, build_optimizer

    torch.set_num_threads(2)
    memory_line = tune_cpu_memory("cpu", grad_checkpoint) if tune_memory else None
    config = get_preset("mttr-a2d")
    folder = roberta_base_config_folder(Path(tempfile.mkdtemp()))
    config.model.text_encoder = TextEncoderConfig(name=str(folder), pretrained=False)
    config.model.grad_checkpoint = grad_checkpoint
    torch.manual_seed(0)
    model = build_model(config.model).train()
    criterion = build_criterion(config.loss)
    optimizer = build_optimizer(model, config.train)
    frames, padding, valid, targets = synthetic_batch()
    text = fake_token_ids(1)
    rss_build = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6
    times, cpu_times, losses = [], [], []
    for _ in range(steps + 1):
        start, cpu_start = time.perf_counter(), time.process_time()
        outputs = model(frames, padding, text["input_ids"], text["attention_mask"], valid)
        _, total = criterion(outputs, targets)
        optimizer.zero_grad(set_to_none=True)
        total.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), config.train.clip_max_norm)
        optimizer.step()
        times.append(time.perf_counter() - start)
        cpu_times.append(time.process_time() - cpu_start)
        losses.append(total.item())
        del outputs, total
    return {
        "seconds_per_step": statistics.median(times[1:]),
        "step_seconds": times,
        "warmup_seconds": times[0],
        # CPU seconds of both threads: less sensitive than wall time to other processes on the machine
        "cpu_seconds_per_step": statistics.median(cpu_times[1:]),
        "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6,
        "rss_after_build_gb": rss_build,
        "losses": losses,
        "allocator": memory_line or "glibc's adaptive mmap threshold",
        "torch": torch.__version__,
    }


def print_table(rows: list[dict]) -> None:
    """The results as a rich table (speed-up and memory against the reference implementation)."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"mttr-a2d training step, batch 1, {T}x{H}x{W}, fp32, 2 threads ({cpu_model()})")
    for column in ("setting", "s / step", "peak RSS GB", "target s / GB", "vs reference 24.8 s / 8.1 GB"):
        table.add_column(column)
    for row in rows:
        seconds, gb = target_of(row["setting"])
        table.add_row(
            row["setting"],
            f"{row['seconds_per_step']:.2f}",
            f"{row['peak_rss_gb']:.2f}",
            f"{'–' if seconds is None else f'≤ {seconds:.0f}'} / ≤ {gb:.1f}",
            f"{REFERENCE['seconds'] / row['seconds_per_step']:.1f}x faster, "
            f"{REFERENCE['peak_rss_gb'] / row['peak_rss_gb']:.1f}x less memory",
        )
    Console().print(table)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=3, help="timed steps after the warm-up step")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "train.json")
    parser.add_argument("--only", choices=sorted(SETTINGS), help="run one setting only")
    parser.add_argument("--child", choices=sorted(SETTINGS), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(run_setting(*SETTINGS[args.child], args.steps)))
        return

    load_at_start = list(os.getloadavg())
    rows = []
    for setting in [args.only] if args.only else list(SETTINGS):
        cmd = [sys.executable, __file__, "--steps", str(args.steps), "--child", setting]
        result = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
        rows.append({"setting": setting, **result})
        print(
            f"{setting}: {result['seconds_per_step']:.2f} s/step, {result['peak_rss_gb']:.2f} GB",
            file=sys.stderr,
        )
    print_table(rows)
    report = {
        "cpu": cpu_model(),
        "threads": 2,
        "case": f"mttr-a2d train step, batch 1, window {T}, {H}x{W}, 1 annotated frame, fp32",
        "load_average_at_start": load_at_start,  # 1/5/15-minute load: above 2 the 2 cores were shared
        "load_average_at_end": list(os.getloadavg()),
        "rows": rows,
        "reference": REFERENCE,
        "targets": {k: {"seconds": s, "peak_rss_gb": g} for k, (s, g) in TARGETS.items()},
        "note": "seconds are wall time; cpu_seconds_per_step counts both threads",
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(args.out, report)
    print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
