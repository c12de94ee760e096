"""`rvos prepare`: synthetic generation + preparation through the CLI, and clean failures."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from rvos_cli.cli.app import app

runner = CliRunner()


def test_prepare_synthetic_a2d_then_prepare_again_is_idempotent(tmp_path: Path) -> None:
    out = tmp_path / "syn"
    args = ["prepare", "synthetic", "--out", str(out), "--videos", "4", "--frames", "6", "--size", "48x64"]
    first = runner.invoke(app, args)
    assert first.exit_code == 0, first.output
    assert "samples (test)" in first.output
    gt = json.loads((out / "rvos_prepared" / "coco_gt_test.json").read_text())
    assert gt["images"] and len(gt["images"]) == len(gt["annotations"])
    again = runner.invoke(app, ["prepare", "a2d", "--root", str(out)])
    assert again.exit_code == 0, again.output
    assert json.loads((out / "rvos_prepared" / "coco_gt_test.json").read_text()) == gt
    reused = [line for line in again.output.splitlines() if "frame caches reused" in line]
    assert reused and reused[0].split()[-2] == "4"


def test_prepare_synthetic_ytvos(tmp_path: Path) -> None:
    out = tmp_path / "ytvos"
    args = [
        "prepare",
        "synthetic",
        "--out",
        str(out),
        "--videos",
        "4",
        "--frames",
        "6",
        "--size",
        "48x64",
        "--format",
        "ytvos",
        "--window",
        "3",
    ]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert (out / "meta_expressions" / "train" / "meta_expressions.json").is_file()
    assert "samples (train)" in result.output


def test_missing_dataset_folder_is_one_line_and_exit_2(tmp_path: Path) -> None:
    result = runner.invoke(app, ["prepare", "a2d", "--root", str(tmp_path / "nope")])
    assert result.exit_code == 2
    assert "dataset folder not found" in result.output
    assert "Traceback" not in result.output


def test_incomplete_a2d_tree_names_what_is_missing(tmp_path: Path) -> None:
    (tmp_path / "Release").mkdir()
    result = runner.invoke(app, ["prepare", "a2d", "--root", str(tmp_path)])
    assert result.exit_code == 2
    assert "videoset.csv" in result.output


def test_bad_size_option(tmp_path: Path) -> None:
    result = runner.invoke(app, ["prepare", "synthetic", "--out", str(tmp_path), "--size", "big"])
    assert result.exit_code == 2
    assert "expected HEIGHTxWIDTH" in result.output
