"""The `rvos` command line: one verb per job, each thin over the core and engine packages.

Heavy imports (torch, transformers) happen inside the commands so `rvos --help` answers at once.
"""

from __future__ import annotations

import importlib

import typer

app = typer.Typer(
    name="rvos",
    help="Referring video object segmentation with MTTR: segment the object a sentence refers to in a video.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

# Each module registers its command(s) on `app` with `register(app)`; a command exists only once it works.
COMMAND_MODULES = ("prepare", "train", "eval", "infer", "viz")


def _register_commands() -> None:
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(f"rvos_cli.cli.{name}_cmd")
        except ModuleNotFoundError as err:
            if err.name == f"rvos_cli.cli.{name}_cmd":
                continue
            raise
        module.register(app)


_register_commands()


def main() -> None:
    """Entry point of the `rvos` console script."""
    app()
