"""engine/eval_run: the evaluation `rvos eval` runs, callable without the CLI, and the CLI's plumbing."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from coco_builders import rle
from typer.testing import CliRunner

from rvos_cli.cli.app import app
from rvos_cli.engine import eval_run
from rvos_cli.engine.eval_run import EvalRequest, EvalResult, check_option_use, run_evaluation
from rvos_cli.errors import RvosError


def test_scoring_request_returns_metrics_and_title(tmp_path: Path) -> None:
    mask = np.zeros((10, 10), dtype=bool)
    mask[2:6, 2:6] = True
    gt = {
        "images": [{"id": "a", "height": 10, "width": 10}],
        "annotations": [{"id": 1, "image_id": "a", "category_id": 1, "iscrowd": 0, "area": 16.0,
                         "segmentation": rle(mask)}],
        "categories": [{"id": 1}],
    }  # fmt: skip
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    miss = np.zeros_like(mask)
    miss[7:9, 7:9] = True  # disjoint from the ground truth: IoU 1e-6 / (16 + 4 + 1e-6)
    predictions = [{"image_id": "a", "category_id": 1, "segmentation": rle(miss), "score": 0.5}]
    (tmp_path / "pred.json").write_text(json.dumps(predictions))
    request = EvalRequest("a2d", predictions=tmp_path / "pred.json", coco_gt=tmp_path / "gt.json")
    result = run_evaluation(request)
    assert result is not None
    assert result.title == f"A2D-Sentences — {tmp_path / 'pred.json'}"
    assert result.metrics["mAP"] == 0.0 and result.metrics["P@0.5"] == 0.0
    assert result.metrics["overall_iou"] == 0.0
    assert result.metrics["mean_iou"] == pytest.approx(1e-6 / 20, rel=1e-3)
    assert result.notes == [] and result.warnings == []


@pytest.mark.parametrize(
    ("request_", "message"),
    [
        (EvalRequest("ytvos", predictions=Path("p"), gt_root=Path("g"), window=4),
         "--window applies to `rvos eval a2d and jhmdb` only"),
        (EvalRequest("a2d", predictions=Path("p"), coco_gt=Path("g"), checkpoint=Path("c")),
         "--checkpoint is for evaluating a model; --predictions scores existing files"),
        (EvalRequest("a2d", predictions=Path("p")),
         "scoring --predictions needs --coco-gt (the ground truth to compare with)"),
        (EvalRequest("jhmdb", checkpoint=Path("c")),
         "`rvos eval jhmdb` needs --data (or --predictions to score existing predictions)"),
        (EvalRequest("ytvos", data=Path("d"), checkpoint=Path("c"), split="train"),
         "--split train: only the valid split can be evaluated"),
    ],
)  # fmt: skip
def test_option_use_errors_name_the_option(request_: EvalRequest, message: str) -> None:
    with pytest.raises(RvosError) as caught:
        check_option_use(request_)
    assert str(caught.value) == message


def test_cli_passes_every_option_to_the_engine(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    seen: list[EvalRequest] = []

    def fake_run(request: EvalRequest) -> EvalResult:
        seen.append(request)
        return EvalResult({"J": 0.5, "F": 0.25, "J&F": 0.375}, "title", notes=["note"], warnings=["careful"])

    monkeypatch.setattr(eval_run, "run_evaluation", fake_run)
    args = ["eval", "ytvos", "--data", str(tmp_path), "--checkpoint", "c.pth", "--preset", "tiny",
            "--text-encoder", "enc", "--max-frames", "7", "--out", str(tmp_path / "o"), "--device", "cpu",
            "--json", str(tmp_path / "m.json")]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert seen == [
        EvalRequest("ytvos", data=tmp_path, checkpoint=Path("c.pth"), preset="tiny", text_encoder="enc",
                    max_frames=7, out=tmp_path / "o", device="cpu")
    ]  # fmt: skip
    assert "note" in result.stdout and "37.50" in result.stdout and "careful" in result.stderr
    assert json.loads((tmp_path / "m.json").read_text()) == {"J": 0.5, "F": 0.25, "J&F": 0.375}


def test_benchmark_options_are_checked_for_every_benchmark() -> None:
    with pytest.raises(RvosError) as caught:
        run_evaluation(EvalRequest("a2d", predictions=Path("p"), coco_gt=Path("g"), select="threshold"))
    assert str(caught.value) == "--select applies to `rvos eval mevis` / `rvos eval davis` only"
    with pytest.raises(RvosError) as caught:  # mevis and davis go through engine.eval_benchmark
        run_evaluation(EvalRequest("mevis", predictions=Path("p"), gt_root=Path("g"), window=4))
    assert str(caught.value) == "--window does not apply to `rvos eval mevis`"
