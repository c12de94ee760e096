"""The training loop: run folders, checkpoints, resume after a SIGKILL (bit-identical weights), non-finite
losses. Tiny preset on a 2-video synthetic A2D dataset (7 training clips of 64×96, window 2, batch 2 → 4
steps per epoch, the last one with a single clip)."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from rvos_cli.core.checkpoints import checkpoint_config, load_checkpoint, read_checkpoint_file
from rvos_cli.core.config import Config, apply_overrides, get_preset
from rvos_cli.core.model import build_model, build_tokenizer
from rvos_cli.data.a2d import A2DSentencesDataset
from rvos_cli.data.transforms import VideoTransforms
from rvos_cli.engine import trainer as trainer_module
from rvos_cli.engine.evaluator import evaluate_a2d
from rvos_cli.engine.predictor import Predictor
from rvos_cli.engine.train_data import epoch_evaluator
from rvos_cli.engine.trainer import train
from rvos_cli.errors import RvosError
from rvos_cli.fileio import read_json
from rvos_cli.viz.curves import read_training_log

SMALL = [
    "data.train_short_size=64",
    "data.train_max_size=96",
    "data.eval_short_size=64",
    "data.eval_max_size=96",
    "train.window=2",
    "train.batch_size=2",
    "data.eval_batch_size=2",
    "train.num_workers=0",
]
LOSS_TERMS = {
    f"loss_{name}{suffix}" for name in ("dice", "sigmoid_focal", "is_referred") for suffix in ("", "_0")
}


def small_config(*extra: str) -> Config:
    """The tiny preset at 64×96, window 2, batch 2, plus `extra` overrides."""
    return apply_overrides(get_preset("tiny"), [*SMALL, *extra])


@pytest.fixture(scope="module")
def two_epoch_run(data_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """2 epochs × 4 steps, mid-epoch checkpoints every 2 steps, only the newest epoch file kept."""
    run = tmp_path_factory.mktemp("run") / "two_epochs"
    config = small_config("train.epochs=2", "train.keep_checkpoints=1")
    result = train(config, data_root, run, checkpoint_every=2, show_progress=False)
    assert result.status == "completed"
    return run


# ------------------------------------------------------------------------------------------ run folder


def test_epoch_checkpoint_has_the_official_layout_and_loads(two_epoch_run: Path) -> None:
    path = two_epoch_run / "checkpoints" / "01.pth.tar"
    saved = read_checkpoint_file(path)
    for key in ("epoch", "total_epochs", "model_state_dict", "optimizer_state_dict", "scheduler_state_dict"):
        assert key in saved
    assert (saved["epoch"], saved["total_epochs"], saved["global_step"]) == (1, 2, 8)
    assert "grad_scaler_state_dict" in saved and "best_score" in saved
    report = load_checkpoint(build_model(small_config().model), path)
    assert (report.kind, report.epoch) == ("rvos", 1)


def test_only_keep_checkpoints_epoch_files_stay_with_last_and_best(two_epoch_run: Path) -> None:
    names = sorted(p.name for p in (two_epoch_run / "checkpoints").iterdir())
    assert names == ["01.pth.tar", "best.pth.tar", "best.safetensors", "final.safetensors", "last.pth.tar"]
    assert os.path.samefile(
        two_epoch_run / "checkpoints" / "01.pth.tar", two_epoch_run / "checkpoints" / "last.pth.tar"
    )


def test_best_and_final_weights_are_also_written_as_safetensors(two_epoch_run: Path) -> None:
    folder = two_epoch_run / "checkpoints"
    for weights, checkpoint in (("final.safetensors", "01.pth.tar"), ("best.safetensors", "best.pth.tar")):
        expected = read_checkpoint_file(folder / checkpoint)["model_state_dict"]
        written = read_checkpoint_file(folder / weights)
        assert written["rvos_version"] and set(written["model_state_dict"]) == set(expected)
        for key, value in expected.items():
            assert torch.equal(written["model_state_dict"][key], value), key
    assert checkpoint_config(folder / "final.safetensors") == small_config(
        "train.epochs=2", "train.keep_checkpoints=1"
    )


def test_metrics_log_has_a_record_per_step_and_per_epoch(two_epoch_run: Path) -> None:
    records = [json.loads(line) for line in (two_epoch_run / "metrics.jsonl").read_text().splitlines()]
    assert [r["kind"] for r in records] == ["step"] * 4 + ["epoch"] + ["step"] * 4 + ["epoch"]
    steps = [r for r in records if r["kind"] == "step"]
    assert [r["step"] for r in steps] == list(range(1, 9))
    assert [r["epoch"] for r in steps] == [0] * 4 + [1] * 4
    assert set(steps[0]) == {"kind", "epoch", "step", "loss", "lr", "time", *LOSS_TERMS}
    assert steps[0]["loss"] == pytest.approx(sum(steps[0][k] for k in LOSS_TERMS), rel=1e-5)
    epoch0 = records[4]
    assert epoch0["loss"] == pytest.approx(sum(r["loss"] for r in steps[:4]) / 4, rel=1e-12)
    assert len(read_training_log(two_epoch_run / "metrics.jsonl").losses) == 8


def test_run_folder_keeps_the_resolved_config(two_epoch_run: Path) -> None:
    from rvos_cli.core.config import load_config

    config = load_config(two_epoch_run / "config.yaml")
    assert (config.preset, config.train.window, config.train.epochs, config.data.dataset) == (
        "tiny",
        2,
        2,
        "a2d",
    )


def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(
    data_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = trainer_module.build_criterion

    def poisoned(loss_config):  # third forward returns NaN
        criterion = real(loss_config)
        original, calls = criterion.forward, []

        def forward(outputs, targets):
            losses, total = original(outputs, targets)
            calls.append(1)
            return losses, total * math.nan if len(calls) == 3 else total

        criterion.forward = forward
        return criterion

    monkeypatch.setattr(trainer_module, "build_criterion", poisoned)
    result = train(
        small_config("train.epochs=1"), data_root, tmp_path / "run", checkpoint_every=2, show_progress=False
    )
    assert result.status == "non_finite" and result.steps == 2
    assert "non-finite loss at step 3" in result.message
    saved = read_checkpoint_file(tmp_path / "run" / "checkpoints" / "last.pth.tar")
    assert saved["global_step"] == 2
    assert all(torch.isfinite(t).all() for t in saved["model_state_dict"].values() if t.is_floating_point())


def test_time_limit_stops_after_the_step_with_a_checkpoint(data_root: Path, tmp_path: Path) -> None:
    result = train(small_config(), data_root, tmp_path / "run", time_limit_minutes=1e-9, show_progress=False)
    assert (result.status, result.steps) == ("time_limit", 1)
    assert read_checkpoint_file(tmp_path / "run" / "checkpoints" / "last.pth.tar")["global_step"] == 1


def test_epoch_evaluator_scores_the_prepared_test_split(data_root: Path, tmp_path: Path) -> None:
    config = small_config()
    evaluate = epoch_evaluator(config, data_root, tmp_path, "cpu")
    torch.manual_seed(0)
    model = build_model(config.model).eval()
    metrics = evaluate(model, 0)
    # What `rvos eval` reports for the test split at the eval sizes, minus the empty area ranges (None).
    dataset = A2DSentencesDataset(
        data_root / "rvos_prepared", data_root, "test", 2, VideoTransforms(64, 96, horizontal_flip=False)
    )
    coco_gt = read_json(data_root / "rvos_prepared" / "coco_gt_test.json")
    predictor = Predictor(model, build_tokenizer(config.model), device="cpu", dtype="fp32")
    expected = evaluate_a2d(predictor, dataset, coco_gt, 2, False)
    assert (expected["AP_medium"], expected["AP_large"]) == (None, None)
    assert metrics == {k: v for k, v in expected.items() if v is not None}
    assert metrics["overall_iou"] > 0.01  # a real score, not a default


# ------------------------------------------------------------------------------------------ resume


def _train_command(data_root: Path, out: Path, *extra: str) -> list[str]:
    sets = [arg for item in SMALL for arg in ("--set", item)]
    return [
        sys.executable, "-m", "rvos_cli", "train", "--preset", "tiny", "--data", str(data_root), *sets,
        "--epochs", "2", "--checkpoint-every", "1", "--no-eval", "--no-progress", "--out", str(out), *extra,
    ]  # fmt: skip


def _global_step(checkpoint: Path) -> int:
    """The step a checkpoint was saved at, read through a memory map (cheap while polling)."""
    return int(torch.load(checkpoint, map_location="cpu", weights_only=True, mmap=True).get("global_step", 0))


@pytest.fixture(scope="module")
def killed_and_resumed(data_root: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict]:
    """An uninterrupted 2-epoch run, and one SIGKILLed mid-epoch then resumed with --resume RUN_DIR.

    Returns (uninterrupted run, resumed run, the checkpoint the resume started from).
    """
    base = tmp_path_factory.mktemp("resume")
    whole, broken = base / "whole", base / "broken"
    # One thread each (the same in all three runs: float reductions depend on the thread count), so the
    # reference run goes alongside the one to be killed; checkpoints do not change the arithmetic.
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL, "env": env}
    reference = subprocess.Popen([*_train_command(data_root, whole), "--checkpoint-every", "0"], **quiet)
    process = subprocess.Popen(_train_command(data_root, broken), **quiet)
    last = broken / "checkpoints" / "last.pth.tar"
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and process.poll() is None:
        # Kill once step 5 (mid epoch 1) is saved: the resume then crosses no epoch boundary it skipped.
        if last.is_file() and _global_step(last) >= 5:
            break
        time.sleep(0.05)
    os.kill(process.pid, signal.SIGKILL)
    process.wait(timeout=30)
    started_from = read_checkpoint_file(last)
    assert reference.wait(timeout=300) == 0
    resumed = subprocess.run([*_train_command(data_root, broken)[:-2], "--resume", str(broken)], **quiet)
    assert resumed.returncode == 0
    return whole, broken, started_from


@pytest.mark.slow  # three CLI runs of 8 steps, two of them side by side: about 30 s on 2 cores
def test_resume_after_sigkill_gives_bit_identical_weights(
    killed_and_resumed: tuple[Path, Path, dict],
) -> None:
    whole, broken, started_from = killed_and_resumed
    assert not started_from["epoch_complete"] and started_from["global_step"] < 8
    a = read_checkpoint_file(whole / "checkpoints" / "01.pth.tar")
    b = read_checkpoint_file(broken / "checkpoints" / "01.pth.tar")
    assert a["model_state_dict"].keys() == b["model_state_dict"].keys()
    for key, tensor in a["model_state_dict"].items():
        assert torch.equal(tensor, b["model_state_dict"][key]), key
    for index, state in a["optimizer_state_dict"]["state"].items():
        assert torch.equal(state["exp_avg_sq"], b["optimizer_state_dict"]["state"][index]["exp_avg_sq"])


@pytest.mark.slow  # shares the runs of the test above
def test_resumed_metrics_log_continues_without_repeating_steps(
    killed_and_resumed: tuple[Path, Path, dict],
) -> None:
    whole, broken, _ = killed_and_resumed

    def losses(run: Path) -> list[tuple[str, int, float]]:
        records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
        return [(r["kind"], r.get("step", -1), r["loss"]) for r in records]

    assert losses(broken) == losses(whole)


def test_a_fresh_run_refuses_a_folder_with_checkpoints(tmp_path: Path) -> None:
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "checkpoints" / "00.pth.tar").write_bytes(b"")
    with pytest.raises(RvosError, match="--resume"):
        train(get_preset("tiny"), tmp_path, run_dir=run)
