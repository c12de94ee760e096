"""No code from checkpoints: a file whose pickle would run code is refused by every command that reads
checkpoints, in one line naming the file and `--trust-checkpoint`, and the code never runs."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from rvos_cli.cli.app import app
from rvos_cli.core.config import config_to_dict, get_preset
from rvos_cli.core.model import build_model

runner = CliRunner()
TRAIN_SETS = ["--set", "data.train_short_size=64", "--set", "data.train_max_size=96", "--set",
              "train.num_workers=0"]  # fmt: skip


class CreatesFileWhenUnpickled:
    """What a malicious checkpoint hides: unpickling it calls `exec`, which creates `marker`."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (exec, (f"open({str(self.marker)!r}, 'w').close()",))


def tiny_payload() -> dict:
    torch.manual_seed(0)
    return {
        "model_state_dict": build_model("tiny").state_dict(),
        "config": config_to_dict(get_preset("tiny")),
    }


@pytest.fixture
def marker(tmp_path: Path) -> Path:
    return tmp_path / "pwned"


@pytest.fixture
def evil_checkpoint(tmp_path: Path, marker: Path) -> Path:
    """A valid tiny rvos checkpoint (config, weights) with a code-running object next to the weights."""
    path = tmp_path / "evil.pth.tar"
    payload = {**tiny_payload(), "optimizer_state_dict": {}, "epoch": 0}
    torch.save({**payload, "hidden": CreatesFileWhenUnpickled(marker)}, path)
    return path


@pytest.fixture
def frames(tmp_path: Path) -> Path:
    folder = tmp_path / "frames"
    folder.mkdir()
    for index in range(2):
        Image.fromarray(np.full((32, 48, 3), 40 * index, np.uint8)).save(folder / f"{index:05d}.png")
    return folder


def assert_refused(result: object, checkpoint: Path, marker: Path) -> None:
    # Only the error line (transformers may draw a weight-loading bar for the text encoder before it).
    lines = [line for line in result.output.splitlines() if line.startswith("error:")]  # type: ignore[attr-defined]
    assert result.exit_code == 2, result.output  # type: ignore[attr-defined]
    assert len(lines) == 1, result.output
    assert lines[0].startswith(
        f"error: {checkpoint}: refused: it holds Python objects beyond tensors (builtins.exec)"
    )
    assert lines[0].endswith("pass --trust-checkpoint only if you trust its source")
    assert not marker.exists()


def test_infer_refuses_a_code_running_checkpoint(evil_checkpoint: Path, marker: Path, frames: Path,
                                                 tmp_path: Path) -> None:  # fmt: skip
    result = runner.invoke(app, ["infer", str(frames), "a thing", "-c", str(evil_checkpoint),
                                 "--out", str(tmp_path / "out"), "--size", "32,48"])  # fmt: skip
    assert_refused(result, evil_checkpoint, marker)
    assert not (tmp_path / "out").exists()


def test_eval_refuses_a_code_running_checkpoint(evil_checkpoint: Path, marker: Path, data_root: Path) -> None:
    result = runner.invoke(
        app, ["eval", "a2d", "--data", str(data_root), "--checkpoint", str(evil_checkpoint)]
    )
    assert_refused(result, evil_checkpoint, marker)


@pytest.mark.parametrize("with_preset", [True, False], ids=["preset", "config-from-checkpoint"])
def test_train_resume_refuses_a_code_running_checkpoint(
    evil_checkpoint: Path, marker: Path, data_root: Path, tmp_path: Path, with_preset: bool
) -> None:
    preset = ["--preset", "tiny"] if with_preset else []
    args = ["train", *preset, "--data", str(data_root), *TRAIN_SETS, "--no-eval", "--no-progress",
            "--out", str(tmp_path / "run"), "--resume", str(evil_checkpoint)]  # fmt: skip
    result = runner.invoke(app, args)
    assert_refused(result, evil_checkpoint, marker)


def test_trust_checkpoint_loads_a_file_with_other_python_objects(frames: Path, tmp_path: Path) -> None:
    path = tmp_path / "with-fraction.pth"
    torch.save({**tiny_payload(), "note": Fraction(1, 3)}, path)
    base = ["infer", str(frames), "a thing", "-c", str(path), "--size", "32,48", "--save", "json"]
    refused = runner.invoke(app, [*base, "--out", str(tmp_path / "a")])
    assert refused.exit_code == 2 and "(fractions.Fraction)" in refused.output
    trusted = runner.invoke(app, [*base, "--out", str(tmp_path / "b"), "--trust-checkpoint"])
    assert trusted.exit_code == 0, trusted.output
    assert (tmp_path / "b" / "predictions.json").is_file()


def test_train_backbone_weights_refuses_a_code_running_checkpoint(
    marker: Path, data_root: Path, tmp_path: Path
) -> None:
    kinetics = tmp_path / "swin_tiny_patch244_window877_kinetics400_1k.pth"
    state = {"backbone.patch_embed.proj.weight": torch.zeros(96, 3, 2, 4, 4)}
    torch.save({"meta": {"hidden": CreatesFileWhenUnpickled(marker)}, "state_dict": state}, kinetics)
    args = ["train", "--preset", "tiny", "--data", str(data_root), *TRAIN_SETS, "--no-eval", "--no-progress",
            "--out", str(tmp_path / "run"), "--backbone-weights", str(kinetics)]  # fmt: skip
    assert_refused(runner.invoke(app, args), kinetics, marker)
