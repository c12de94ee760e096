"""The `rvos` command line: one verb per job, each thin over the core and engine packages.

Heavy imports (torch, transformers) happen inside the commands so `rvos --help` answers at once.
User mistakes (`RvosError`) and Ctrl-C are handled here, once for every command: see `RvosGroup`.
"""

from __future__ import annotations

import importlib
from typing import Annotated, Any

import click
import typer
from typer.core import TyperGroup

from rvos_cli import __version__
from rvos_cli.cli.common import err_console
from rvos_cli.errors import RvosError

EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT, what shells report for Ctrl-C


class RvosGroup(TyperGroup):
    """The root command group; every command (and sub-group) runs inside its `invoke`, so this is the
    one error boundary: an `RvosError` becomes one red line on stderr and exit code 2, Ctrl-C exit 130."""

    def invoke(self, ctx: click.Context) -> Any:
        """Run the chosen command; returns what it returns, or exits 2 / 130 as described above."""
        try:
            return super().invoke(ctx)
        except RvosError as err:
            err_console.print(f"[bold red]error:[/] {err}", highlight=False, soft_wrap=True)
            ctx.exit(EXIT_USER_ERROR)
        except KeyboardInterrupt:
            err_console.print("[yellow]interrupted[/]", highlight=False)
            ctx.exit(EXIT_INTERRUPTED)


app = typer.Typer(
    name="rvos",
    cls=RvosGroup,
    help="Referring video object segmentation with MTTR: segment the object a sentence refers to in a video.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"rvos {__version__}")
        raise typer.Exit()


@app.callback()
def _options(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_print_version, is_eager=True, help="Print the version and exit."),
    ] = False,
) -> None:
    """The options of `rvos` itself (before the command)."""


# Each module registers its command(s) on `app` with `register(app)`; a command exists only once it works.
COMMAND_MODULES = ("prepare", "train", "eval", "infer", "viz", "convert", "serve", "config")


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
