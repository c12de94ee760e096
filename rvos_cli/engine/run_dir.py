"""Run folders: naming a new one (`runs/<verb>/<name>`, `-2`, `-3` on repeats), the layout of a training
run's folder, finding what to resume, and keeping `best`/`last` up to date.

    RUN/
      config.yaml                 the resolved config the run trains with
      metrics.jsonl               one JSON record per step and per epoch (`engine.logging.MetricsLog`)
      tensorboard/                the same numbers as TensorBoard events (when tensorboard is installed)
      validation_outputs/epoch_NN  Ref-YouTube-VOS masks of each epoch's evaluation
      checkpoints/
        NN.pth.tar                after every epoch (epochs numbered from 0, like the reference)
        last.pth.tar              the newest state: an epoch file's twin, or a mid-epoch checkpoint
        best.pth.tar              the epoch with the best score so far
        best.safetensors          its weights alone, with the config in the metadata (nothing to unpickle)
        final.safetensors         the weights after the last epoch, likewise

Checkpoint files are written whole or not at all (`write_checkpoint`); `last`/`best` are hard links to an
epoch file where the filesystem allows it, copies elsewhere.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Collection
from pathlib import Path
from typing import Any

from rvos_cli.core.config import Config, config_from_dict, load_config
from rvos_cli.errors import RvosError
from rvos_cli.fileio import atomic_path

RUNS_ROOT = Path("runs")
CHECKPOINTS = "checkpoints"
CONFIG_FILE = "config.yaml"
METRICS_FILE = "metrics.jsonl"
TENSORBOARD_DIR = "tensorboard"
VALIDATION_DIR = "validation_outputs"
LAST = "last.pth.tar"
BEST = "best.pth.tar"
BEST_WEIGHTS = "best.safetensors"
FINAL_WEIGHTS = "final.safetensors"
EPOCH_GLOB = "[0-9]*.pth.tar"


def checkpoint_dir(run_dir: Path) -> Path:
    """`RUN/checkpoints`."""
    return Path(run_dir) / CHECKPOINTS


def epoch_checkpoint(run_dir: Path, epoch: int) -> Path:
    """`RUN/checkpoints/NN.pth.tar` for the epoch index `epoch` (from 0)."""
    return checkpoint_dir(run_dir) / f"{epoch:02d}.pth.tar"


def next_run_dir(verb: str, name: str, root: Path = RUNS_ROOT, taken: Collection[Path] = ()) -> Path:
    """The folder for a new run of `rvos <verb>`: `root/verb/name`, or when an earlier run has that name the
    first free one of `name-2`, `name-3`, ... (so no run's outputs are ever replaced by the next one).

    `taken` lists folders already handed out but not created yet (several videos of one batch). Only picks
    the name; the command creates the folder when it writes. Returns the path.
    """
    parent = Path(root) / verb
    candidate, number = parent / name, 2
    while candidate.exists() or candidate in taken:
        candidate, number = parent / f"{name}-{number}", number + 1
    return candidate


def output_dir(out: Path | None, overwrite: bool, verb: str, name: str, root: Path = RUNS_ROOT) -> Path:
    """Where a command writes: the explicit `--out` folder, else `next_run_dir(verb, name, root)`.

    An explicit folder that exists and is not empty is refused with RvosError unless `overwrite` (then the
    command replaces its own outputs in it); a file at that path is always refused. Returns the folder.
    """
    if out is None:
        return next_run_dir(verb, name, root)
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise RvosError(f"--out {out}: is a file; expected a folder for the outputs")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise RvosError(
            f"--out {out}: already holds outputs; pass --overwrite to replace them, or leave out --out "
            f"to write a new runs/{verb}/{name}[-N] folder"
        )
    return out


def output_file(out: Path, overwrite: bool) -> Path:
    """An explicit output file (`--out clip.mp4`): RvosError when it exists, unless `overwrite`; else
    `out`."""
    out = Path(out)
    if out.is_dir():
        raise RvosError(f"--out {out}: is a folder; expected a file name such as {out / 'overlay.mp4'}")
    if out.exists() and not overwrite:
        raise RvosError(f"--out {out}: already exists; pass --overwrite to replace it")
    return out


def default_run_dir(name: str) -> Path:
    """`runs/train/<name>` (`-2`, `-3`, ... on repeats) under the current folder: rank 0 picks the name and
    every rank gets the same one."""
    from rvos_cli.engine import distributed as D

    return Path(D.broadcast_object(str(next_run_dir("train", name))))


def clear_earlier_run(run_dir: Path) -> None:
    """Remove what an earlier training run left in `run_dir` (checkpoints, logs, config, validation masks)
    before a fresh run reuses the folder (`rvos train --out RUN --overwrite`); nothing else is touched."""
    for name in (CHECKPOINTS, TENSORBOARD_DIR, VALIDATION_DIR):
        shutil.rmtree(Path(run_dir) / name, ignore_errors=True)
    for name in (CONFIG_FILE, METRICS_FILE):
        (Path(run_dir) / name).unlink(missing_ok=True)


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
    """`torch.save` `payload` to `path` atomically (a crash or a full disk leaves the previous file; the
    latter raises RvosError naming `path`); returns `path`."""
    from rvos_cli.core.checkpoints import write_torch_file

    return write_torch_file(payload, path)


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
