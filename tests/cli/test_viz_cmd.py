"""`rvos viz`: sample renders from predictions, overlays of a mask folder, training curves."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from rvos_cli.cli.app import app
from rvos_cli.data.synthetic import generate_synthetic

runner = CliRunner()


def test_samples_draws_ground_truth_next_to_predictions(tmp_path: Path) -> None:
    data = tmp_path / "syn"
    generate_synthetic(data, 4, seed=0, fmt="a2d", frames_per_video=6, size=(48, 64))
    assert runner.invoke(app, ["prepare", "a2d", "--root", str(data)]).exit_code == 0
    gt = json.loads((data / "rvos_prepared" / "coco_gt_test.json").read_text())
    predictions = [
        {"image_id": a["image_id"], "category_id": 1, "segmentation": a["segmentation"], "score": 0.9}
        for a in gt["annotations"]
    ]
    pred_file = tmp_path / "pred.json"
    pred_file.write_text(json.dumps(predictions))
    out = tmp_path / "viz"
    args = ["viz", "samples", "--predictions", str(pred_file), "--data", str(data), "--out", str(out)]
    result = runner.invoke(app, [*args, "--limit", "2"])
    assert result.exit_code == 0, result.output
    pictures = sorted(out.glob("*.png"))
    assert [p.stem for p in pictures] == sorted(image["id"] for image in gt["images"][:2])
    width = np.asarray(Image.open(pictures[0])).shape[1]
    assert width == 2 * 64 + 8  # two panels and the gap


def _mask_tree(tmp_path: Path) -> tuple[Path, Path]:
    """Frames 00000 and 00005 (20×30 grey) and one expression's masks for both: (frames, predictions)."""
    frames, masks = tmp_path / "frames", tmp_path / "pred" / "0"
    frames.mkdir()
    masks.mkdir(parents=True)
    for name in ("00000", "00005"):
        Image.fromarray(np.full((20, 30, 3), 90, np.uint8)).save(frames / f"{name}.jpg")
        mask = np.zeros((20, 30), np.uint8)
        mask[5:15, 10:20] = 255
        Image.fromarray(mask).save(masks / f"{name}.png")
    return frames, tmp_path / "pred"


def test_overlay_of_a_mask_folder_writes_one_png_per_frame(tmp_path: Path) -> None:
    frames, _ = _mask_tree(tmp_path)
    out = tmp_path / "overlay"
    result = runner.invoke(app, ["viz", "overlay", str(frames), str(tmp_path / "pred"), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.glob("*.png")) == ["00000.png", "00005.png"]


def test_overlays_without_out_get_numbered_run_folders_and_an_existing_file_needs_overwrite(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    frames, predictions = _mask_tree(tmp_path)
    monkeypatch.chdir(tmp_path)
    overlay = ["viz", "overlay", str(frames), str(predictions)]
    assert runner.invoke(app, [*overlay, "--out", "x.gif"]).exit_code == 0
    again = runner.invoke(app, [*overlay, "--out", "x.gif"])
    assert again.exit_code == 2
    assert again.stderr == "error: --out x.gif: already exists; pass --overwrite to replace it\n"
    assert runner.invoke(app, [*overlay, "--out", "x.gif", "--overwrite"]).exit_code == 0
    assert runner.invoke(app, overlay).exit_code == 0
    assert runner.invoke(app, overlay).exit_code == 0
    runs = tmp_path / "runs" / "viz"
    assert sorted(p.name for p in runs.iterdir()) == ["pred", "pred-2"]
    assert [p.name for p in (runs / "pred-2").iterdir()] == ["overlay.mp4"]


def test_curves_from_a_run_folder_and_a_malformed_log(tmp_path: Path) -> None:
    lines = [
        {"kind": "step", "epoch": 0, "step": 1, "loss": 3.0, "lr": 1e-4, "time": 0.0},
        {"kind": "step", "epoch": 0, "step": 2, "loss": 2.0, "lr": 1e-4, "time": 1.0},
        {"kind": "epoch", "epoch": 0, "loss": 2.5, "mean_iou": 0.4},
    ]
    (tmp_path / "metrics.jsonl").write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    result = runner.invoke(app, ["viz", "curves", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert Image.open(tmp_path / "curves.png").size[0] > 100
    (tmp_path / "metrics.jsonl").write_text("{not json\n")
    bad = runner.invoke(app, ["viz", "curves", str(tmp_path)])
    assert bad.exit_code == 2 and "metrics.jsonl:1" in bad.output
