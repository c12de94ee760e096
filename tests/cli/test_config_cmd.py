"""`rvos config show`: a preset or a config file as commented YAML that trains the same run."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from rvos_cli.cli.app import app
from rvos_cli.core.config import apply_overrides, get_preset, load_config, save_config
from rvos_cli.core.config_docs import commented_yaml

runner = CliRunner()


def test_show_prints_the_documented_preset(tmp_path: Path) -> None:
    result = runner.invoke(app, ["config", "show", "mttr-ytvos"])
    assert result.exit_code == 0, result.output
    assert result.stdout == commented_yaml(get_preset("mttr-ytvos"), "rvos config: preset mttr-ytvos")
    (tmp_path / "ytvos.yaml").write_text(result.stdout)
    assert load_config(tmp_path / "ytvos.yaml") == get_preset("mttr-ytvos")


def test_show_applies_set_and_says_so(tmp_path: Path) -> None:
    result = runner.invoke(
        app, ["config", "show", "tiny", "--set", "train.lr=0.002", "--set", "train.window=3"]
    )
    assert result.exit_code == 0, result.output
    assert (
        result.stdout.splitlines()[0]
        == "# rvos config: preset tiny, with --set train.lr=0.002 train.window=3"
    )
    (tmp_path / "t.yaml").write_text(result.stdout)
    assert load_config(tmp_path / "t.yaml") == apply_overrides(
        get_preset("tiny"), ["train.lr=0.002", "train.window=3"]
    )


def test_show_reads_a_run_config_file(tmp_path: Path) -> None:
    config = apply_overrides(get_preset("tiny"), ["train.epochs=3"])
    save_config(config, tmp_path / "config.yaml")
    result = runner.invoke(app, ["config", "show", str(tmp_path / "config.yaml")])
    assert result.exit_code == 0, result.output
    assert result.stdout == commented_yaml(config, f"rvos config: config file {tmp_path / 'config.yaml'}")


def test_an_unknown_preset_is_one_line_with_a_suggestion() -> None:
    result = runner.invoke(app, ["config", "show", "tiny2"])
    assert result.exit_code == 2
    assert (
        result.stderr
        == "error: unknown preset 'tiny2': choose one of mttr-a2d, mttr-ytvos, tiny (did you mean 'tiny'?)\n"
    )
