"""`rvos train` from the command line: config resolution, one-line errors (exit 2), a short real run,
non-finite loss (exit 1) and Ctrl-C (checkpoint, exit 130)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import platform
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from typer.testing import CliRunner

from rvos_cli.cli.app import app
from rvos_cli.cli.train_cmd import resolve_train_config
from rvos_cli.core import allocator
from rvos_cli.core.config import get_preset
from rvos_cli.engine import trainer as trainer_module

SETS = [
    arg
    for item in ("data.train_short_size=64", "data.train_max_size=96", "train.num_workers=0")
    for arg in ("--set", item)
]
runner = CliRunner()


def small_run(data_root: Path, out: Path, *extra: str) -> list[str]:
    return [
        "train", "--preset", "tiny", "--data", str(data_root), *SETS, "--window", "2", "--batch-size", "2",
        "--no-eval", "--no-progress", "--out", str(out), *extra,
    ]  # fmt: skip


def one_line_error(result: object) -> str:
    lines = [line for line in result.output.splitlines() if line.strip()]  # type: ignore[attr-defined]
    assert result.exit_code == 2 and len(lines) == 1, result.output  # type: ignore[attr-defined]
    return lines[0]


# ------------------------------------------------------------------------------------------ config


def test_flags_override_set_which_overrides_the_preset() -> None:
    config = resolve_train_config(
        "tiny",
        None,
        None,
        ["train.window=3", "train.epochs=9"],
        {"window": 5, "batch_size": None, "amp": False},
    )
    assert (config.train.window, config.train.epochs, config.train.batch_size, config.train.amp) == (
        5,
        9,
        4,
        False,
    )


def test_a_config_file_is_read(tmp_path: Path) -> None:
    path = tmp_path / "run.yaml"
    path.write_text("preset: tiny\ntrain:\n  epochs: 3\n")
    config = resolve_train_config(None, path, None, [], {})
    tiny = get_preset("tiny")
    assert (config.preset, config.train.epochs, config.model) == ("tiny", 3, tiny.model)


def test_shorthand_flags_and_options_reach_the_training_engine(
    data_root: Path, tmp_path: Path, capture_engine
) -> None:
    seen = capture_engine(trainer_module, "train")
    result = runner.invoke(
        app,
        [
            "train", "--preset", "tiny", "--data", str(data_root), "--window", "3", "--batch-size", "5",
            "--seed", "17", "--amp", "--epochs", "4", "--set", "train.lr=0.002", "--out", str(tmp_path / "r"),
            "--max-steps", "9", "--no-eval", "--no-progress",
        ],
    )  # fmt: skip
    assert "args" in seen, result.output  # the command reached the engine
    config, data = seen["args"]
    assert config.preset == "tiny" and config.model == get_preset("tiny").model
    train = config.train
    assert (train.window, train.batch_size, train.seed, train.amp, train.epochs, train.lr) == (
        3, 5, 17, True, 4, 0.002,
    )  # fmt: skip
    assert data == data_root and seen["run_dir"] == tmp_path / "r"
    assert (seen["max_steps"], seen["evaluate"], seen["show_progress"]) == (9, False, False)


def test_without_flags_the_preset_values_reach_the_training_engine(data_root: Path, capture_engine) -> None:
    seen = capture_engine(trainer_module, "train")
    result = runner.invoke(app, ["train", "--preset", "tiny", "--data", str(data_root), "--no-amp"])
    assert "args" in seen, result.output  # the command reached the engine
    assert seen["args"][0].train == dataclasses.replace(get_preset("tiny").train, amp=False)


@pytest.mark.parametrize(("flags", "expected"), [([], False), (["--grad-checkpoint"], True)])
def test_grad_checkpoint_flag_sets_the_model_config(
    data_root: Path, capture_engine, flags: list[str], expected: bool
) -> None:
    seen = capture_engine(trainer_module, "train")
    result = runner.invoke(app, ["train", "--preset", "tiny", "--data", str(data_root), *flags])
    assert "args" in seen, result.output
    assert seen["args"][0].model == dataclasses.replace(get_preset("tiny").model, grad_checkpoint=expected)


# ------------------------------------------------------------------------------------------ errors


def test_no_preset_nor_config_is_a_one_line_error(data_root: Path) -> None:
    line = one_line_error(runner.invoke(app, ["train", "--data", str(data_root)]))
    assert "--preset" in line and "--config" in line


def test_preset_and_config_together_are_refused(data_root: Path, tmp_path: Path) -> None:
    (tmp_path / "c.yaml").write_text("{}\n")
    result = runner.invoke(
        app, ["train", "--preset", "tiny", "--config", str(tmp_path / "c.yaml"), "--data", "x"]
    )
    assert "not both" in one_line_error(result)


def test_unknown_set_key_suggests_the_close_one(data_root: Path) -> None:
    result = runner.invoke(
        app, ["train", "--preset", "tiny", "--data", str(data_root), "--set", "train.epoch=2"]
    )
    assert "did you mean 'epochs'" in one_line_error(result)


def test_window_below_one_is_refused(data_root: Path) -> None:
    result = runner.invoke(app, ["train", "--preset", "tiny", "--data", str(data_root), "--window", "0"])
    assert "train.window must be at least 1" in one_line_error(result)


def test_missing_data_folder_is_named(tmp_path: Path) -> None:
    result = runner.invoke(app, ["train", "--preset", "tiny", "--data", str(tmp_path / "nope")])
    assert f"--data {tmp_path / 'nope'}: no such folder" in one_line_error(result)


def test_unprepared_data_names_the_prepare_command(tmp_path: Path) -> None:
    root = tmp_path / "a2d"
    (root / "Release").mkdir(parents=True)
    (root / "Release" / "videoset.csv").write_text("")
    line = one_line_error(runner.invoke(app, ["train", "--preset", "tiny", "--data", str(root), "--no-eval"]))
    assert f"run `rvos prepare a2d --root {root}` first" in line


# ------------------------------------------------------------------------------------------ runs


def test_short_run_prints_the_summary_and_leaves_a_checkpoint(data_root: Path, tmp_path: Path) -> None:
    result = runner.invoke(app, small_run(data_root, tmp_path / "run", "--max-steps", "2"))
    assert result.exit_code == 0, result.output
    table = re.sub(r"[\s│┌┐└┘─┬┴┼├┤]", "", result.stdout)  # cells may wrap at the runner's 80 columns
    assert "max_steps:stoppedafterstep2" in table and f"{tmp_path}/run/checkpoints/last.pth.tar" in table
    saved = torch.load(tmp_path / "run" / "checkpoints" / "last.pth.tar", weights_only=True)
    assert (saved["global_step"], saved["step_in_epoch"], saved["epoch_complete"]) == (2, 2, False)


def test_non_finite_loss_exits_1_with_the_reason(
    data_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = trainer_module.build_criterion

    def poisoned(loss_config):
        criterion = real(loss_config)
        original = criterion.forward
        criterion.forward = lambda outputs, targets: (original(outputs, targets)[0], torch.tensor(math.inf))
        return criterion

    monkeypatch.setattr(trainer_module, "build_criterion", poisoned)
    result = runner.invoke(app, small_run(data_root, tmp_path / "run"))
    assert result.exit_code == 1
    assert "non-finite loss at step 1; last good checkpoint: none was written yet" in result.output


def test_runs_without_out_go_to_runs_train_preset_then_numbered_folders(
    data_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    command = small_run(data_root, tmp_path, "--max-steps", "1")
    at = command.index("--out")
    command = command[:at] + command[at + 2 :]  # the same run without --out
    for _ in range(2):
        result = runner.invoke(app, command)
        assert result.exit_code == 0, result.output
    runs = tmp_path / "runs" / "train"
    assert sorted(p.name for p in runs.iterdir()) == ["tiny", "tiny-2"]
    assert all((runs / name / "checkpoints" / "last.pth.tar").is_file() for name in ("tiny", "tiny-2"))


def test_an_existing_out_folder_is_refused_without_overwrite(
    data_root: Path, tmp_path: Path, capture_engine
) -> None:
    seen = capture_engine(trainer_module, "train")
    (tmp_path / "run" / "checkpoints").mkdir(parents=True)
    (tmp_path / "run" / "checkpoints" / "00.pth.tar").write_bytes(b"an earlier run")
    line = one_line_error(runner.invoke(app, small_run(data_root, tmp_path / "run")))
    assert line == (
        f"error: --out {tmp_path / 'run'}: already holds outputs; pass --overwrite to replace them, "
        "or leave out --out to write a new runs/train/tiny[-N] folder"
    )
    assert seen == {}  # refused before any work
    result = runner.invoke(app, small_run(data_root, tmp_path / "run", "--overwrite"))
    assert seen["run_dir"] == tmp_path / "run", result.output
    assert list((tmp_path / "run").iterdir()) == []  # the earlier run's files are gone


@pytest.mark.slow  # a real process interrupted with SIGINT: about 15 s on 2 cores
def test_ctrl_c_saves_a_checkpoint_and_exits_130(data_root: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    command = [sys.executable, "-m", "rvos_cli", *small_run(data_root, run, "--epochs", "50")]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    metrics = run / "metrics.jsonl"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not (metrics.is_file() and metrics.read_text().count("\n") >= 1):
        time.sleep(0.05)
    os.kill(process.pid, signal.SIGINT)
    assert process.wait(timeout=120) == 130
    saved = torch.load(run / "checkpoints" / "last.pth.tar", weights_only=True)
    assert saved["global_step"] >= 1
    assert saved["global_step"] == metrics.read_text().count('"kind": "step"')


# ------------------------------------------------------------------------------------------ the paper's path


def test_an_mttr_preset_without_backbone_weights_is_a_one_line_error(data_root: Path, tmp_path: Path) -> None:
    args = ["train", "--preset", "mttr-a2d", "--data", str(data_root), "--out", str(tmp_path)]
    line = one_line_error(runner.invoke(app, args))
    assert "swin_tiny_patch244_window877_kinetics400_1k.pth" in line
    assert "Video Swin Transformer release" in line and "--from-scratch" in line


def _step_losses(run: Path) -> list[float]:
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [r["loss"] for r in records if r["kind"] == "step"]


@pytest.mark.slow  # two short tiny runs, bf16 and fp32: about 30 s on 2 cores
def test_amp_on_the_cpu_trains_in_bf16_with_finite_losses(data_root: Path, tmp_path: Path) -> None:
    amp = runner.invoke(app, small_run(data_root, tmp_path / "amp", "--amp", "--max-steps", "2"))
    assert amp.exit_code == 0, amp.output
    assert "device: cpu, bf16 autocast" in amp.output
    fp32 = runner.invoke(app, small_run(data_root, tmp_path / "fp32", "--no-amp", "--max-steps", "1"))
    assert "device: cpu, fp32" in fp32.output
    losses, reference = _step_losses(tmp_path / "amp"), _step_losses(tmp_path / "fp32")
    assert len(losses) == 2 and all(math.isfinite(loss) for loss in losses)
    # The same first batch and weights: bf16 rounding moves the loss a little, not far.
    assert losses[0] != reference[0] and losses[0] == pytest.approx(reference[0], rel=0.05)


def test_a_run_whose_stderr_is_no_terminal_logs_plain_lines(data_root: Path, tmp_path: Path) -> None:
    args = small_run(data_root, tmp_path / "run", "--max-steps", "2", "--log-every", "0")
    args.remove("--no-progress")
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    err = result.stderr.splitlines()
    assert "device: cpu, fp32" in err
    assert "batch: 2 per process × 1 process = 2 clips per step" in err
    assert "backbone: random init (no model.backbone_weights)" in err
    if platform.libc_ver()[0] == "glibc" and not allocator.user_set_threshold():
        assert (
            "memory: tensors above 16 MB go back to the system when freed "
            "(glibc mmap threshold; MALLOC_MMAP_THRESHOLD_ overrides)"
        ) in err
    steps = [line for line in err if line.startswith("train  step ")]
    assert [line.split("  ")[1:3] for line in steps] == [
        ["step 1/32", "epoch 1/8"],
        ["step 2/32", "epoch 1/8"],
    ]
    pattern = r"loss \d+\.\d{4}  lr 3\.00e-04  .* samples/s  ETA \d+:\d\d:\d\d  peak "
    assert all(re.search(pattern, line) for line in steps)
    assert "max_steps" in result.stdout  # the closing summary still prints


@pytest.mark.slow  # two real CLI processes (mttr-a2d is 40M parameters): about a minute on 2 cores
@pytest.mark.parametrize("preset", ["tiny", "mttr-a2d"])
def test_tiny_and_mttr_a2d_runs_piped_to_a_file_log_lines_and_write_checkpoints(
    preset: str, data_root: Path, kinetics_checkpoint: Path, tmp_path: Path
) -> None:
    run, log = tmp_path / "run", tmp_path / "train.log"
    extra = ["--backbone-weights", str(kinetics_checkpoint)] if preset == "mttr-a2d" else []
    command = [
        sys.executable, "-m", "rvos_cli", "train", "--preset", preset, "--data", str(data_root), *SETS,
        "--set", "model.text_encoder.name=minilm", "--window", "2", "--batch-size", "1", "--no-eval",
        "--max-steps", "1", "--log-every", "0", "--out", str(run), *extra,
    ]  # fmt: skip
    with open(log, "w") as handle:
        done = subprocess.run(command, stdout=handle, stderr=subprocess.STDOUT, timeout=600)
    text = log.read_text()
    assert done.returncode == 0, text
    assert re.search(r"^train  step 1/\d+  epoch 1/\d+  loss ", text, re.MULTILINE), text
    saved = torch.load(run / "checkpoints" / "last.pth.tar", map_location="cpu", weights_only=True, mmap=True)
    assert saved["global_step"] == 1 and saved["config"]["preset"] == preset
    if preset == "mttr-a2d":
        assert "backbone: loaded 150 tensors" in text
        recorded = yaml.safe_load((run / "config.yaml").read_text())["model"]
        assert recorded["backbone_weights"] == str(kinetics_checkpoint.resolve())
        digest = hashlib.sha256(kinetics_checkpoint.read_bytes()).hexdigest()
        assert recorded["backbone_weights_sha256"] == digest
        assert "warning: effective batch" not in text  # window 2 has no published run to compare with
