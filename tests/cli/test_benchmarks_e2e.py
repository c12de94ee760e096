"""MeViS and Ref-DAVIS17 end to end on their synthetic versions, through the CLI only:
prepare synthetic → train (tiny preset, a few steps) → eval, then scoring the written folders again."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from rvos_cli.cli.app import app

runner = CliRunner()
SMALL = ["--frames", "6", "--size", "48x64", "--window", "3"]
TRAIN = [
    "--preset", "tiny", "--window", "3", "--batch-size", "2", "--no-eval", "--no-progress",
    "--set", "data.train_short_size=48", "--set", "data.train_max_size=64", "--set", "train.num_workers=0",
]  # fmt: skip


def invoke(*args: object) -> str:
    result = runner.invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    return result.stdout


def table_rows(output: str, columns: int) -> dict[str, list[str]]:
    rows = [line.split("│")[1:-1] for line in output.splitlines() if line.count("│") == columns + 1]
    return {cells[0].strip(): [c.strip() for c in cells[1:]] for cells in rows}


def train(data: Path, out: Path, steps: int) -> Path:
    invoke("train", "--data", data, "--out", out, "--max-steps", steps, *TRAIN)
    return out / "checkpoints" / "last.pth.tar"


@pytest.mark.slow(reason="two synthetic datasets, two short tiny trainings and five evaluations: about 60 s")
def test_mevis_and_davis_prepare_train_evaluate(tmp_path: Path) -> None:
    mevis, davis = tmp_path / "mevis", tmp_path / "davis"
    prepared = invoke("prepare", "synthetic", "--format", "mevis", "--out", mevis, "--videos", "6", *SMALL)
    assert table_rows(prepared, 6)["valid_u"][1:4] == ["6", "1", "1"]
    checkpoint = train(mevis, tmp_path / "runs/mevis", steps=3)

    output = invoke("eval", "mevis", "--data", mevis, "--checkpoint", checkpoint, "--out", tmp_path / "ev",
                    "--json", tmp_path / "mevis.json")  # fmt: skip
    rows = table_rows(output, 5)
    assert set(rows) == {"all", "single-object", "multi-object", "no-target"}
    assert rows["all"][0] == "6" and rows["no-target"][0] == "1"
    result = json.loads((tmp_path / "mevis.json").read_text())
    assert 0.0 <= result["J&F"] <= 1.0 and len(result["per_expression"]) == 6
    pngs = sorted((tmp_path / "ev/predictions").rglob("*.png"))
    assert len(pngs) == 6 * 6
    with Image.open(pngs[0]) as image:
        assert image.mode == "L" and image.size == (64, 48)
    rescored = invoke("eval", "mevis", "--predictions", tmp_path / "ev/predictions", "--gt-root", mevis)
    assert table_rows(rescored, 5)["all"] == rows["all"]

    invoke("eval", "mevis", "--data", mevis, "--checkpoint", checkpoint, "--split", "valid",
           "--out", tmp_path / "sub")  # fmt: skip
    with zipfile.ZipFile(tmp_path / "sub/submission.zip") as archive:
        roots = {name.split("/")[0] for name in archive.namelist()}
        assert roots == {"syn00005"} and len([n for n in archive.namelist() if n.endswith(".png")]) == 36

    prepared = invoke("prepare", "synthetic", "--format", "davis", "--out", davis, "--videos", "4", *SMALL)
    checkpoint = train(davis, tmp_path / "runs/davis", steps=2)
    output = invoke("eval", "davis", "--data", davis, "--checkpoint", checkpoint, "--out", tmp_path / "evd",
                    "--json", tmp_path / "davis.json")  # fmt: skip
    runs = json.loads((tmp_path / "davis.json").read_text())
    means = [runs["runs"][f"anno_{k}"]["J&F-Mean"] for k in range(4)]
    assert runs["mean"]["J&F-Mean"] == pytest.approx(sum(means) / 4)
    assert set(table_rows(output, 8)) >= {"anno_0", "anno_1", "anno_2", "anno_3", "mean"}
    rescored = invoke("eval", "davis", "--predictions", tmp_path / "evd", "--gt-root", davis)
    assert table_rows(rescored, 8)["mean"] == table_rows(output, 8)["mean"]
