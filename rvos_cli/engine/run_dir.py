"""The layout of a training run's folder, finding what to resume, and keeping `best`/`last` up to date.

    RUN/
      config.yaml                 the resolved config the run trains with
      metrics.jsonl               one JSON record per step and per epoch (`engine.logging.MetricsLog`)
      tensorboard/                the same numbers as TensorBoard events (when tensorboard is installed)
      checkpoints/
        NN.pth.tar                after every epoch (epochs numbered from 0, like the reference)
        last.pth.tar              the newest state: an epoch file's twin, or a mid-epoch checkpoint
        best.pth.tar              the epoch with the best score so far

Checkpoint files are written whole or not at all (`write_checkpoint`); `last`/`best` are hard links to an
epoch file where the filesystem allows it, copies elsewhere.
"""

from __future__ import annotations

import os
import shutil
from datetime import datetime
from pathlib import Path
from typing import Any

from rvos_cli.core.config import Config, config_from_dict, load_config
from rvos_cli.errors import RvosError
from rvos_cli.fileio import atomic_open, atomic_path

CHECKPOINTS = "checkpoints"
CONFIG_FILE = "config.yaml"
METRICS_FILE = "metrics.jsonl"
TENSORBOARD_DIR = "tensorboard"
LAST = "last.pth.tar"
BEST = "best.pth.tar"
EPOCH_GLOB = "[0-9]*.pth.tar"


def checkpoint_dir(run_dir: Path) -> Path:
    """`RUN/checkpoints`."""
    return Path(run_dir) / CHECKPOINTS


def epoch_checkpoint(run_dir: Path, epoch: int) -> Path:
    """`RUN/checkpoints/NN.pth.tar` for the epoch index `epoch` (from 0)."""
    return checkpoint_dir(run_dir) / f"{epoch:02d}.pth.tar"


def default_run_dir() -> Path:
    """`runs/<YYYY_MM_DD-HH_MM_SS>` under the current folder (rank 0's name, shared with every rank)."""
    from rvos_cli.engine import distributed as D

    name = datetime.now().strftime("%Y_%m_%d-%H_%M_%S")
    return Path(D.broadcast_object(str(Path("runs") / name)))


def refuse_earlier_run(run_dir: Path) -> None:
    """Raise RvosError when `run_dir` already holds checkpoints (a fresh run would mix with them)."""
    if any(checkpoint_dir(run_dir).glob("*.pth.tar")):
        raise RvosError(
            f"{run_dir}: holds checkpoints of an earlier run; continue it with --resume {run_dir} "
            "or start a new run in another --out folder"
        )


def resolve_resume(resume: Path) -> Path:
    """The checkpoint to resume from: the file itself, or in a run folder `checkpoints/last.pth.tar`,
    else its newest `<epoch>.pth.tar`. RvosError when there is none."""
    path = Path(resume)
    if path.is_file():
        return path
    if not path.is_dir():
        raise RvosError(f"--resume {path}: no such run folder or checkpoint file")
    folder = checkpoint_dir(path)
    if (folder / LAST).is_file():
        return folder / LAST
    epochs = sorted(folder.glob(EPOCH_GLOB)) if folder.is_dir() else []
    if not epochs:
        raise RvosError(f"--resume {path}: no checkpoint in {folder} (expected {LAST} or NN.pth.tar)")
    return epochs[-1]


def run_dir_of(checkpoint: Path) -> Path | None:
    """The run folder a checkpoint sits in (`RUN/checkpoints/x.pth.tar` → RUN), else None."""
    checkpoint = Path(checkpoint)
    return checkpoint.parent.parent if checkpoint.parent.name == CHECKPOINTS else None


def resume_config(resume: Path) -> Config:
    """The config a run being resumed was trained with: its run folder's config.yaml, else the one saved
    in the checkpoint. `resume` is a run folder or a checkpoint file; RvosError when neither has one."""
    from rvos_cli.core.checkpoints import read_checkpoint_file

    checkpoint = resolve_resume(resume)
    run = run_dir_of(checkpoint)
    if run is not None and (run / CONFIG_FILE).is_file():
        return load_config(run / CONFIG_FILE)
    saved = read_checkpoint_file(checkpoint).get("config")
    if not isinstance(saved, dict):
        raise RvosError(f"{checkpoint}: holds no config; give --preset or --config as well")
    return config_from_dict(saved)


def write_checkpoint(payload: dict[str, Any], path: Path) -> Path:
    """`torch.save` `payload` to `path` atomically (a crash leaves the previous file); returns `path`."""
    import torch

    with atomic_open(path, "wb") as handle:
        torch.save(payload, handle)
    return Path(path)


def link_or_copy(source: Path, target: Path) -> None:
    """Make `target` the same file as `source` (hard link, else a copy), replacing it atomically."""
    with atomic_path(target) as temp:
        temp.unlink(missing_ok=True)
        try:
            os.link(source, temp)
        except OSError:
            shutil.copyfile(source, temp)


def prune_epoch_checkpoints(run_dir: Path, keep: int) -> list[Path]:
    """Delete all but the newest `keep` (at least 1) epoch files; `last`/`best` links keep their data.
    Returns the deleted paths."""
    old = sorted(checkpoint_dir(run_dir).glob(EPOCH_GLOB))[: -max(keep, 1)]
    for path in old:
        path.unlink()
    return old
