"""What every command shares: consoles, the error boundary, and option types defined once."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console

from rvos_cli.errors import RvosError

# Results go to stdout, progress and messages to stderr.
out_console = Console()
err_console = Console(stderr=True)

F = TypeVar("F", bound=Callable[..., Any])

# `--trust-checkpoint`, shared by every command that reads a checkpoint.
TrustCheckpoint = Annotated[
    bool,
    typer.Option(
        "--trust-checkpoint",
        help="Load a checkpoint that holds Python objects beyond tensors. This RUNS CODE FROM THE FILE: "
        "use it only for a file from a source you trust (by default such files are refused).",
    ),
]


def user_errors_exit_2(func: F) -> F:
    """Turn an `RvosError` raised by a command into one red line on stderr and exit code 2."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except RvosError as err:
            err_console.print(f"[bold red]error:[/] {err}", highlight=False, soft_wrap=True)
            raise typer.Exit(code=2) from None
        except KeyboardInterrupt:
            err_console.print("[yellow]interrupted[/]")
            raise typer.Exit(code=130) from None

    return wrapper  # type: ignore[return-value]


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
