"""`rvos config show PRESET|FILE`: a config as YAML with every field explained (meaning, unit, paper §)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

config_app = typer.Typer(
    help="Presets and config files, printed as YAML with every field explained.", no_args_is_help=True
)


@config_app.command("show")
def show_command(
    preset: Annotated[
        str, typer.Argument(help="A preset (mttr-a2d, mttr-ytvos, tiny) or a YAML config file.")
    ],
    assignments: Annotated[
        list[str] | None, typer.Option("--set", help="Override a config value: key.path=value (repeatable).")
    ] = None,
) -> None:
    """Print PRESET (or a config FILE such as a run's config.yaml) as YAML, each field with its meaning,
    unit and paper section; save it, edit it and pass it to `rvos train --config`."""
    from rvos_cli.core.config import PRESETS, apply_overrides, get_preset, load_config
    from rvos_cli.core.config_docs import commented_yaml

    if preset not in PRESETS and Path(preset).is_file():
        config, what = load_config(Path(preset)), f"config file {preset}"
    else:
        config, what = get_preset(preset), f"preset {preset}"
    config = apply_overrides(config, assignments or [])
    edited = f", with --set {' '.join(assignments)}" if assignments else ""
    typer.echo(commented_yaml(config, f"rvos config: {what}{edited}"), nl=False)


def register(app: typer.Typer) -> None:
    """Add `rvos config ...` to the application."""
    app.add_typer(config_app, name="config")
