"""What every command shares: consoles and option types defined once (the error boundary is in app.py)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console

from rvos_cli.errors import RvosError

# Results go to stdout, progress and messages to stderr.
out_console = Console()
err_console = Console(stderr=True)

# `--trust-checkpoint`, shared by every command that reads a checkpoint.
TrustCheckpoint = Annotated[
    bool,
    typer.Option(
        "--trust-checkpoint",
        help="Load a checkpoint that holds Python objects beyond tensors. This RUNS CODE FROM THE FILE: "
        "use it only for a file from a source you trust (by default such files are refused).",
    ),
]


def parse_device(device: str) -> str:
    """Validate `--device` (cpu, cuda, cuda:N) and return it; CUDA must be available when asked for."""
    import torch

    if device == "cpu":
        return device
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise RvosError(f"--device {device}: CUDA is not available on this machine; use --device cpu")
        return device
    raise RvosError(f"--device {device!r}: expected cpu, cuda or cuda:N")
