"""The options several commands share, declared once; a command uses them as parameter annotations:

    def infer(checkpoint: CheckpointOption = None, device: DeviceOption = "auto", ...)

Each carries its help panel, so `rvos CMD -h` groups model, data, output and run options the same way in
every command. Only typer is imported here (no torch), so `--help` stays fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

MODEL_PANEL = "Model"
DATA_PANEL = "Data"
OUTPUT_PANEL = "Outputs"
RUN_PANEL = "Run"

CheckpointOption = Annotated[
    Path | None,
    typer.Option(
        "--checkpoint",
        "-c",
        help="Weights: an official MTTR checkpoint, one written by `rvos train`, or a .safetensors file.",
        rich_help_panel=MODEL_PANEL,
    ),
]
PresetOption = Annotated[
    str | None,
    typer.Option(
        "--preset",
        help="Config preset: mttr-a2d, mttr-ytvos or tiny (`rvos config show PRESET` explains each value); "
        "default: the config an rvos checkpoint stores.",
        rich_help_panel=MODEL_PANEL,
        show_default=False,
    ),
]
TextEncoderOption = Annotated[
    str | None,
    typer.Option(
        "--text-encoder",
        help="Text encoder: a Hugging Face name or a local folder (tokenizer + config), or minilm.",
        rich_help_panel=MODEL_PANEL,
    ),
]
SetOption = Annotated[
    list[str] | None,
    typer.Option(
        "--set",
        help="Override a config value: key.path=value, e.g. data.eval_short_size=360 (repeatable).",
        rich_help_panel=MODEL_PANEL,
    ),
]
TrustCheckpointOption = Annotated[
    bool,
    typer.Option(
        "--trust-checkpoint",
        help="Load a checkpoint that holds Python objects beyond tensors. This RUNS CODE FROM THE FILE: "
        "use it only for a file from a source you trust (by default such files are refused).",
        rich_help_panel=MODEL_PANEL,
    ),
]
DataOption = Annotated[
    Path | None,
    typer.Option(
        "--data",
        help="Dataset root as downloaded, prepared with `rvos prepare` (its format is told by its layout).",
        rich_help_panel=DATA_PANEL,
        show_default=False,
    ),
]
DeviceOption = Annotated[
    str,
    typer.Option(
        "--device",
        help="auto (a GPU when there is one; under torchrun the local rank's), cpu, cuda or cuda:N.",
        rich_help_panel=RUN_PANEL,
    ),
]
OverwriteOption = Annotated[
    bool,
    typer.Option(
        "--overwrite",
        help="Allow an --out folder that already holds outputs: replace them.",
        rich_help_panel=OUTPUT_PANEL,
    ),
]


def out_option(default: str) -> object:
    """The `--out` option of a command whose outputs go to `default` (e.g. "runs/infer/<video name>")
    when it is not given; -2, -3, ... are appended on repeats. Returns the `typer.Option` to annotate with."""
    return typer.Option(
        "--out",
        help=f"Output folder (default: {default}, then -2, -3, ... so no run replaces another).",
        rich_help_panel=OUTPUT_PANEL,
        show_default=False,
    )
