"""`rvos eval mevis|davis` from the command line: scoring existing folders, the tables, option errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from dataset_builders import make_davis, make_mevis
from PIL import Image
from typer.testing import CliRunner

from rvos_cli.cli.app import app

runner = CliRunner()


def run(*args: object):
    return runner.invoke(app, ["eval", *(str(a) for a in args)])


def one_error(result) -> str:
    lines = result.stderr.strip().splitlines()
    assert result.exit_code == 2 and len(lines) == 1 and lines[0].startswith("error:"), result.output
    return lines[0]


def write_png(path: Path, array: np.ndarray, mode: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array, mode=mode).save(path)


def test_mevis_scoring_prints_the_kind_table_and_writes_json(tmp_path: Path) -> None:
    root = make_mevis(tmp_path / "mevis")
    # valid_u: vu1 expression 0, object absent in frame 0 (empty GT), a 4x4 square at (2, 2) in frame 1.
    write_png(tmp_path / "pred/vu1/0/00000.png", np.zeros((16, 20), np.uint8), "L")
    write_png(tmp_path / "pred/vu1/0/00001.png", np.zeros((16, 20), np.uint8), "L")
    result = run(
        "mevis", "--predictions", tmp_path / "pred", "--gt-root", root, "--json", tmp_path / "r.json"
    )
    assert result.exit_code == 0, result.output
    rows = [line.split("│")[1:-1] for line in result.stdout.splitlines() if line.count("│") == 6]
    assert [cell.strip() for cell in rows[0]] == ["all", "1", "50.00", "50.00", "50.00"]
    assert [cell.strip() for cell in rows[1]][:2] == ["single-object", "1"]
    saved = json.loads((tmp_path / "r.json").read_text())
    assert saved["J&F"] == 0.5 and saved["per_expression"][0]["video"] == "vu1"


def test_davis_scoring_prints_four_runs_and_their_mean(tmp_path: Path) -> None:
    root = make_davis(tmp_path / "davis")
    for k in range(4):
        for t in range(3):  # run k predicts both objects perfectly in runs 0-2, nothing in run 3
            labels = np.zeros((12, 16), np.uint8)
            if k < 3:
                labels[1, 1], labels[2, 2] = 1, 2
            write_png(tmp_path / f"pred/anno_{k}/classic-car/{t:05d}.png", labels, "L")
    result = run("davis", "--predictions", tmp_path / "pred", "--gt-root", root)
    assert result.exit_code == 0, result.output
    rows = {
        line.split("│")[1].strip(): line.split("│")[2].strip()
        for line in result.stdout.splitlines()
        if "│" in line
    }
    assert rows["anno_0"] == "100.00" and rows["anno_3"] == "0.00" and rows["mean"] == "75.00"
    assert "Ref-DAVIS17 (unsupervised)" in result.stdout


def test_benchmark_options_are_checked(tmp_path: Path) -> None:
    assert "--davis-task applies to `rvos eval davis` only" in one_error(
        run("mevis", "--predictions", tmp_path, "--gt-root", tmp_path, "--davis-task", "semi-supervised")
    )
    assert "--select applies to `rvos eval mevis` / `rvos eval davis` only" in one_error(
        run("ytvos", "--predictions", tmp_path, "--gt-root", tmp_path, "--select", "threshold")
    )
    assert "--select does not apply to `rvos eval davis`" in one_error(
        run("davis", "--data", tmp_path, "--checkpoint", tmp_path / "c.pth", "--select", "top1")
    )
    assert "scoring --predictions needs --gt-root" in one_error(run("mevis", "--predictions", tmp_path))
    assert "valid has no ground truth" in one_error(
        run("mevis", "--predictions", tmp_path, "--gt-root", tmp_path, "--split", "valid")
    )
    assert "`rvos eval davis` needs --checkpoint" in one_error(run("davis", "--data", tmp_path))
    assert "--coco-gt does not apply to `rvos eval mevis`" in one_error(
        run("mevis", "--predictions", tmp_path, "--coco-gt", tmp_path)
    )
