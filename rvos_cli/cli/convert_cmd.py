"""`rvos convert CKPT OUT.safetensors`: an official MTTR, rvos or Kinetics checkpoint as plain weights."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from rvos_cli.cli.common import out_console
from rvos_cli.cli.options import TrustCheckpointOption


def register(app: typer.Typer) -> None:
    """Add the `convert` command to `app`."""
    app.command("convert")(convert)


def convert(
    checkpoint: Annotated[Path, typer.Argument(help="Official MTTR, rvos or Kinetics checkpoint.")],
    out: Annotated[Path, typer.Argument(help="The .safetensors file to write.")],
    preset: Annotated[
        str | None,
        typer.Option(
            help="Store this preset's config with the weights (official checkpoints hold none: "
            "mttr-a2d or mttr-ytvos); default: the checkpoint's own config."
        ),
    ] = None,
    trust_checkpoint: TrustCheckpointOption = False,
) -> None:
    """Write the weights of CHECKPOINT to OUT.safetensors with its config in the metadata.

    The result loads with every command that takes a checkpoint (`-c OUT.safetensors`) and never runs
    code when read. Optimizer and RNG state are left out: resume training from the `.pth.tar` file.
    """
    from rvos_cli.core.checkpoints import convert_checkpoint, trusted_checkpoints
    from rvos_cli.core.config import config_to_dict, get_preset

    config = config_to_dict(get_preset(preset)) if preset else None
    with trusted_checkpoints(trust_checkpoint):
        report = convert_checkpoint(checkpoint, out, config)
    stored = f"config {report.config.get('preset', 'stored')!r}" if report.config else "no config"
    summary = f"wrote {out}: {report.num_tensors} tensors ({report.kind}), {stored}"
    out_console.print(summary, highlight=False, soft_wrap=True)
