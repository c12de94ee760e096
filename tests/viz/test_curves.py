"""Tests for rvos_cli.viz.curves: reading the metrics JSON-lines log and plotting it."""

import json
import re
import sys
from pathlib import Path

import pytest
from PIL import Image

from rvos_cli.errors import RvosError
from rvos_cli.viz.curves import plot_training_curves, read_training_log, smooth


def _write_log(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(record) + "\n" for record in records), encoding="utf-8")
    return path


def _run_records(steps_restart: bool = False) -> list[dict]:
    records = []
    for epoch in range(2):
        for step in range(3):
            number = step if steps_restart else epoch * 3 + step
            loss = 3.0 - 0.1 * (epoch * 3 + step)
            records.append(
                {"kind": "step", "epoch": epoch, "step": number, "loss": loss, "lr": 1e-4, "time": 1.0}
            )
        records.append(
            {"kind": "epoch", "epoch": epoch, "loss": 2.5 - epoch, "mAP": 0.1 * (epoch + 1), "mean_iou": 0.4,
             "note": "text is not a metric", "best": True, "time": 5.0}
        )  # fmt: skip
    return records


def test_read_training_log_collects_steps_and_numeric_epoch_metrics(tmp_path: Path):
    log = read_training_log(_write_log(tmp_path / "metrics.jsonl", _run_records()))
    assert log.steps == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]
    assert log.step_label == "step"
    assert log.losses == pytest.approx([3.0, 2.9, 2.8, 2.7, 2.6, 2.5])
    assert log.lrs == [1e-4] * 6
    assert log.metrics == {"loss": [(0.0, 2.5), (1.0, 1.5)], "mAP": [(0.0, 0.1), (1.0, 0.2)],
                           "mean_iou": [(0.0, 0.4), (1.0, 0.4)]}  # fmt: skip


def test_step_counter_restarting_each_epoch_falls_back_to_record_order(tmp_path: Path):
    log = read_training_log(_write_log(tmp_path / "metrics.jsonl", _run_records(steps_restart=True)))
    assert log.steps == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]
    assert log.step_label == "logged step"


def test_smooth_is_a_bias_corrected_moving_average():
    # s0 = 1; s1 = (0.5·0.5·1 + 0.5·2) / (1 − 0.25) = 1.25 / 0.75
    assert smooth([1.0, 2.0], weight=0.5) == pytest.approx([1.0, 1.25 / 0.75])


def test_plot_training_curves_writes_a_readable_png(tmp_path: Path):
    log_path = _write_log(tmp_path / "metrics.jsonl", _run_records())
    out = plot_training_curves(log_path, tmp_path / "plots" / "curves.png")
    assert out == tmp_path / "plots" / "curves.png"
    with Image.open(out) as image:
        image.load()
        assert image.format == "PNG"
        # 3 columns of 4.2 in and 2 rows (loss/lr, then 3 epoch metrics) of 3.2 in at 100 dpi
        assert image.size == (1260, 640)
    assert sorted(p.name for p in out.parent.iterdir()) == ["curves.png"]


def test_malformed_line_names_file_and_line(tmp_path: Path):
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"kind": "step", "step": 0, "loss": 1.0}\n\n{"kind": "step", "step": 1, "loss"\n')
    with pytest.raises(RvosError, match=re.escape(f"{path}:3: not a JSON object")):
        plot_training_curves(path, tmp_path / "curves.png")
    assert not (tmp_path / "curves.png").exists()


def test_step_record_without_numeric_loss_is_rejected(tmp_path: Path):
    path = _write_log(tmp_path / "metrics.jsonl", [{"kind": "step", "step": 0, "loss": "high"}])
    with pytest.raises(RvosError, match=re.escape(f"{path}:1: a step record needs a numeric 'loss'")):
        read_training_log(path)


def test_log_without_step_or_epoch_records_is_rejected(tmp_path: Path):
    path = _write_log(tmp_path / "metrics.jsonl", [{"kind": "config", "lr": 1e-4}])
    with pytest.raises(RvosError, match="no step or epoch records"):
        read_training_log(path)


def test_missing_matplotlib_gives_an_install_hint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    path = _write_log(tmp_path / "metrics.jsonl", _run_records())
    with pytest.raises(RvosError, match="needs matplotlib: pip install matplotlib"):
        plot_training_curves(path, tmp_path / "curves.png")


def test_epoch_panels_show_metrics_not_loss_terms_or_lr(tmp_path: Path) -> None:
    log_file = tmp_path / "metrics.jsonl"
    record = {
        "kind": "epoch",
        "epoch": 0,
        "loss": 2.0,
        "loss_dice": 1.0,
        "loss_dice_0": 1.1,
        "lr": 1e-4,
        "mean_iou": 0.5,
    }
    log_file.write_text(json.dumps(record) + "\n")
    assert sorted(read_training_log(log_file).metrics) == ["loss", "mean_iou"]
