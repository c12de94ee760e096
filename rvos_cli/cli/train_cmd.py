"""`rvos train`: train MTTR with the paper's recipe on prepared data, resumable, on one CPU or many GPUs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from rvos_cli.cli.common import err_console, out_console
from rvos_cli.cli.options import (
    MODEL_PANEL,
    DataOption,
    DeviceOption,
    OverwriteOption,
    PresetOption,
    SetOption,
    TrustCheckpointOption,
    out_option,
)
from rvos_cli.core.config import Config
from rvos_cli.errors import RvosError

EXIT_NON_FINITE = 1
EXIT_INTERRUPTED = 130


def register(app: typer.Typer) -> None:
    """Add the `train` command to `app`."""
    app.command("train")(train)


def resolve_train_config(
    preset: str | None,
    config_file: Path | None,
    resume: Path | None,
    assignments: list[str],
    shorthands: dict[str, object],
) -> Config:
    """The run's `Config`: `--preset` or `--config` (or, when resuming without either, the resumed run's),
    then `--set key=value`, then the shorthand flags (`train.window=...`) that were given.

    Raises RvosError when none or both of --preset/--config are given, or a value is out of range.
    """
    from rvos_cli.core.config import apply_overrides, get_preset, load_config
    from rvos_cli.engine.run_dir import resume_config

    if preset is not None and config_file is not None:
        raise RvosError("give either --preset NAME or --config FILE, not both")
    if preset is not None:
        config = get_preset(preset)
    elif config_file is not None:
        config = load_config(config_file)
    elif resume is not None:
        config = resume_config(resume)
    else:
        raise RvosError("no model given: pass --preset NAME (mttr-a2d, mttr-ytvos, tiny) or --config FILE")
    config = apply_overrides(config, list(assignments))
    given = [f"train.{key}={value}" for key, value in shorthands.items() if value is not None]
    config = apply_overrides(
        config, [item.replace("=True", "=true").replace("=False", "=false") for item in given]
    )
    _check_ranges(config)
    return config


def _check_ranges(config: Config) -> None:
    train = config.train
    for key in ("window", "batch_size", "epochs"):
        if getattr(train, key) < 1:
            raise RvosError(f"train.{key} must be at least 1, got {getattr(train, key)}")
    if train.num_workers < 0:
        raise RvosError(f"train.num_workers must be 0 or more, got {train.num_workers}")
    if train.lr_drop_gamma <= 0:
        raise RvosError(f"train.lr_drop_gamma must be positive, got {train.lr_drop_gamma}")


def train(
    data: DataOption,
    preset: PresetOption = None,
    config: Annotated[
        Path | None,
        typer.Option(
            "--config", help="YAML config file (e.g. a run's config.yaml).", rich_help_panel=MODEL_PANEL
        ),
    ] = None,
    assignments: SetOption = None,
    window: Annotated[int | None, typer.Option(help="Frames per training clip (train.window).")] = None,
    batch_size: Annotated[
        int | None, typer.Option(help="Clips per step per process (train.batch_size).")
    ] = None,
    epochs: Annotated[int | None, typer.Option(help="Number of epochs (train.epochs).")] = None,
    seed: Annotated[
        int | None, typer.Option(help="Random seed (train.seed); each process adds its rank.")
    ] = None,
    amp: Annotated[
        bool | None,
        typer.Option(
            "--amp/--no-amp",
            help="Mixed precision (train.amp): fp16 + GradScaler on CUDA, bf16 autocast on the CPU "
            "(default on a CPU: only where it runs bf16 natively).",
        ),
    ] = None,
    grad_checkpoint: Annotated[
        bool | None,
        typer.Option(
            "--grad-checkpoint/--no-grad-checkpoint",
            help="Recompute Swin blocks and transformer layers in backward: less memory, same gradients, "
            "slower steps (model.grad_checkpoint).",
        ),
    ] = None,
    backbone_weights: Annotated[
        Path | None,
        typer.Option(
            "--backbone-weights",
            help="Kinetics-400 Video Swin-T checkpoint (swin_tiny_patch244_window877_kinetics400_1k.pth) "
            "loaded into the backbone of a fresh run (model.backbone_weights).",
        ),
    ] = None,
    from_scratch: Annotated[
        bool,
        typer.Option("--from-scratch", help="Let an mttr-* preset start from random backbone weights."),
    ] = False,
    out: Annotated[Path | None, out_option("runs/train/<preset>; a resumed run: its own folder")] = None,
    overwrite: OverwriteOption = False,
    resume: Annotated[
        Path | None, typer.Option(help="Continue a run: its folder or one of its checkpoint files.")
    ] = None,
    device: DeviceOption = "auto",
    prepared: Annotated[
        Path | None, typer.Option(help="Prepared-data folder (default: DATA/rvos_prepared).")
    ] = None,
    checkpoint_every: Annotated[
        int, typer.Option(help="Steps between mid-epoch checkpoints (last.pth.tar); 0 = epoch ends only.")
    ] = 200,
    max_steps: Annotated[
        int | None, typer.Option(help="Stop (with a checkpoint) after this many steps in total.")
    ] = None,
    time_limit: Annotated[
        float | None, typer.Option(help="Stop (with a checkpoint) after this many minutes.")
    ] = None,
    evaluate: Annotated[
        bool,
        typer.Option("--eval/--no-eval", help="Evaluate after every epoch (A2D test split; YTVOS with GT)."),
    ] = True,
    progress: Annotated[
        bool, typer.Option("--progress/--no-progress", help="Report progress (a bar, or lines in a log).")
    ] = True,
    log_every: Annotated[
        float,
        typer.Option(help="Seconds between progress lines when stderr is not a terminal (0: every step)."),
    ] = 30.0,
    trust_checkpoint: TrustCheckpointOption = False,
) -> None:
    """Train MTTR on prepared data; every run gets a folder with its config, metrics and checkpoints.

    Ctrl-C saves a checkpoint and exits (130); `--resume RUN_DIR` continues exactly where it stopped.
    Under `torchrun --nproc-per-node N` the same command trains with DistributedDataParallel.
    """
    _check_run_limits(checkpoint_every, max_steps, time_limit, log_every)
    from rvos_cli.core.checkpoints import trusted_checkpoints

    shorthands = {"window": window, "batch_size": batch_size, "epochs": epochs, "seed": seed, "amp": amp}
    assignments = list(assignments or [])
    if grad_checkpoint is not None:
        assignments.append(f"model.grad_checkpoint={str(grad_checkpoint).lower()}")
    with trusted_checkpoints(trust_checkpoint):
        run_config = resolve_train_config(preset, config, resume, assignments, shorthands)
    if backbone_weights is not None and resume is not None:
        err_console.print("[yellow]note:[/] a resumed run keeps its weights; --backbone-weights is ignored")
    elif backbone_weights is not None:
        run_config.model.backbone_weights = str(backbone_weights)
    from rvos_cli.core.devices import native_bf16, resolve_device

    device = resolve_device(device)
    if run_config.train.amp and amp is None and device == "cpu" and not native_bf16(device):
        run_config.train.amp = False  # the presets' AMP is the CUDA recipe; emulated bf16 is slower here
        err_console.print("[yellow]note:[/] no native bf16 on this CPU: training in fp32 (--amp forces bf16)")

    if out is not None and resume is None:
        from rvos_cli.engine.run_dir import clear_earlier_run, output_dir

        output_dir(out, overwrite, "train", run_config.preset)
        if overwrite:
            clear_earlier_run(out)  # on every rank, all before the process group forms: no rank writes yet

    from rvos_cli.engine.distributed import env_dist_info
    from rvos_cli.engine.train_report import summary
    from rvos_cli.engine.trainer import train as run_training

    with trusted_checkpoints(trust_checkpoint):
        result = run_training(
            run_config,
            data,
            run_dir=out,
            resume=resume,
            device=device,
            prepared=prepared,
            checkpoint_every=checkpoint_every,
            max_steps=max_steps,
            time_limit_minutes=time_limit,
            evaluate=evaluate,
            show_progress=progress,
            log_every=log_every,
            from_scratch=from_scratch,
        )
    if env_dist_info().is_main:
        out_console.print(summary(result))
    _exit_for(result)


def _check_run_limits(
    checkpoint_every: int, max_steps: int | None, time_limit: float | None, log_every: float
) -> None:
    """RvosError for a stopping or reporting option out of range (checked before anything loads)."""
    if checkpoint_every < 0:
        raise RvosError(f"--checkpoint-every must be 0 or more, got {checkpoint_every}")
    if max_steps is not None and max_steps < 1:
        raise RvosError(f"--max-steps must be at least 1, got {max_steps}")
    if time_limit is not None and time_limit <= 0:
        raise RvosError(f"--time-limit must be a positive number of minutes, got {time_limit}")
    if log_every < 0:
        raise RvosError(f"--log-every must be 0 or more seconds, got {log_every}")


def _exit_for(result: Any) -> None:
    """Exit with the code of a run that did not finish: non-finite loss or interrupted (checkpoint saved)."""
    if result.status == "non_finite":
        err_console.print(
            f"[bold red]error:[/] training stopped: {result.message}", highlight=False, soft_wrap=True
        )
        raise typer.Exit(code=EXIT_NON_FINITE)
    if result.status == "interrupted":
        err_console.print(
            f"[yellow]interrupted:[/] checkpoint saved to {result.last_checkpoint}", highlight=False
        )
        raise typer.Exit(code=EXIT_INTERRUPTED)
