"""`.safetensors` weights: `rvos convert` of rvos and official checkpoints, identical outputs from the
converted file in infer and eval, the config from the metadata or beside the file, and clear refusals."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from rvos_cli.cli.app import app
from rvos_cli.core.checkpoints import (
    checkpoint_config,
    load_trained_model,
    read_checkpoint_file,
    save_model_checkpoint,
)
from rvos_cli.core.config import config_to_dict, get_preset, save_config
from rvos_cli.core.model import build_model
from rvos_cli.core.safetensors_files import read_metadata, save_safetensors

runner = CliRunner()


def one_error_line(result: object) -> str:
    lines = [line for line in result.output.splitlines() if line.startswith("error:")]  # type: ignore[attr-defined]
    assert result.exit_code == 2 and len(lines) == 1, result.output  # type: ignore[attr-defined]
    return lines[0]


@pytest.fixture(scope="module")
def rvos_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny rvos checkpoint (random weights) evaluating at 32×48 with 2-frame clips, as training saves."""
    config = get_preset("tiny")
    config.data.eval_short_size, config.data.eval_max_size, config.train.window = 32, 48, 2
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("ckpt") / "tiny.pth.tar"
    save_model_checkpoint(build_model("tiny"), path, config=config_to_dict(config), epoch=3,
                          optimizer_state_dict={"state": {}, "param_groups": []})  # fmt: skip
    return path


@pytest.fixture(scope="module")
def converted(rvos_checkpoint: Path) -> Path:
    out = rvos_checkpoint.with_name("tiny.safetensors")
    result = runner.invoke(app, ["convert", str(rvos_checkpoint), str(out)])
    assert result.exit_code == 0, result.output
    assert (
        result.output.strip()
        == f"wrote {out}: {len(build_model('tiny').state_dict())} tensors (rvos), config 'tiny'"
    )
    return out


@pytest.fixture(scope="module")
def frames(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("frames")
    rng = np.random.default_rng(0)
    for index in range(3):
        Image.fromarray(rng.integers(0, 256, (32, 48, 3), dtype=np.uint8)).save(folder / f"{index:05d}.png")
    return folder


def test_infer_gives_identical_predictions_from_the_converted_file(
    rvos_checkpoint: Path, converted: Path, frames: Path, tmp_path: Path
) -> None:
    predictions = []
    for checkpoint in (rvos_checkpoint, converted):
        out = tmp_path / checkpoint.name
        args = ["infer", str(frames), "a square", "the left one", "-c", str(checkpoint), "--out", str(out),
                "--save", "json", "--window", "2", "--overlap", "1"]  # fmt: skip
        result = runner.invoke(app, args)
        assert result.exit_code == 0, result.output
        predictions.append(json.loads((out / "predictions.json").read_text()))
    assert predictions[0] == predictions[1]
    assert len(predictions[0]) > 0


def test_eval_gives_identical_metrics_from_the_converted_file(
    rvos_checkpoint: Path, converted: Path, data_root: Path, tmp_path: Path
) -> None:
    metrics = []
    for checkpoint in (rvos_checkpoint, converted):
        out = tmp_path / f"{checkpoint.name}.json"
        result = runner.invoke(app, ["eval", "a2d", "--data", str(data_root), "--checkpoint", str(checkpoint),
                                     "--json", str(out)])  # fmt: skip
        assert result.exit_code == 0, result.output
        metrics.append(json.loads(out.read_text()))
    assert metrics[0] == metrics[1]


def test_an_official_checkpoint_converts_with_a_preset_and_gives_identical_outputs(
    tmp_path: Path, tiny_tokenizer
) -> None:
    torch.manual_seed(1)
    source = build_model("tiny")
    state = {f"module.{k}": v for k, v in source.state_dict().items()}  # saved from DDP
    state["module.transformer.text_encoder.embeddings.position_ids"] = torch.arange(512)[None]
    official = tmp_path / "a2d_window-8.pth.tar"
    torch.save({"model_state_dict": state, "epoch": 69, "optimizer_state_dict": {}}, official)
    out = tmp_path / "a2d.safetensors"
    result = runner.invoke(app, ["convert", str(official), str(out), "--preset", "tiny"])
    assert result.exit_code == 0, result.output
    assert read_metadata(out)["rvos_kind"] == "official-mttr"
    config = checkpoint_config(out)  # from the metadata: no --preset needed any more
    assert config == get_preset("tiny")
    models = [load_trained_model(path, config)[0] for path in (official, out)]
    frames, padding = torch.randn(2, 1, 3, 32, 48), torch.zeros(2, 1, 32, 48, dtype=torch.bool)
    text = tiny_tokenizer(["the red circle"])
    with torch.no_grad():
        a, b = (m(frames, padding, text["input_ids"], text["attention_mask"]) for m in models)
    assert torch.equal(a["pred_masks"], b["pred_masks"])
    assert torch.equal(a["pred_is_referred"], b["pred_is_referred"])


def test_the_config_may_sit_beside_weights_without_metadata(tmp_path: Path) -> None:
    config = get_preset("tiny")
    config.train.window = 5
    weights = tmp_path / "run" / "checkpoints" / "best.safetensors"
    save_safetensors(build_model("tiny").state_dict(), weights, config=None)
    with pytest.raises(Exception, match="stores no rvos config"):
        checkpoint_config(weights)
    save_config(config, tmp_path / "run" / "config.yaml")  # the run folder's config
    assert checkpoint_config(weights).train.window == 5
    save_config(get_preset("tiny"), weights.with_suffix(".yaml"))  # NAME.yaml wins
    assert checkpoint_config(weights).train.window == get_preset("tiny").train.window


def test_a_kinetics_checkpoint_converts_to_backbone_weights(tmp_path: Path) -> None:
    state = {
        "backbone.patch_embed.proj.weight": torch.randn(96, 3, 2, 4, 4),
        "cls_head.fc_cls.bias": torch.zeros(400),
    }
    source = tmp_path / "swin_tiny_patch244_window877_kinetics400_1k.pth"
    torch.save({"meta": {"epoch": 30}, "state_dict": state}, source)
    out = tmp_path / "swin.safetensors"
    result = runner.invoke(app, ["convert", str(source), str(out)])
    assert result.exit_code == 0, result.output
    read = read_checkpoint_file(out)
    assert set(read) == {"state_dict"} and torch.equal(read["state_dict"]["backbone.patch_embed.proj.weight"],
                                                       state["backbone.patch_embed.proj.weight"])  # fmt: skip


def test_convert_refuses_another_suffix_and_resume_refuses_weights_only(
    rvos_checkpoint: Path, converted: Path, data_root: Path, tmp_path: Path
) -> None:
    line = one_error_line(runner.invoke(app, ["convert", str(rvos_checkpoint), str(tmp_path / "x.pth")]))
    assert line == f"error: {tmp_path / 'x.pth'}: the converted file must end in .safetensors"
    args = ["train", "--data", str(data_root), "--no-progress", "--no-eval", "--resume", str(converted),
            "--out", str(tmp_path / "run")]  # fmt: skip
    line = one_error_line(runner.invoke(app, args))
    assert line == f"error: {converted}: holds weights only, not a training state to resume from"
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json}")
    line = one_error_line(runner.invoke(app, ["infer", str(tmp_path), "a thing", "-c", str(broken)]))
    assert line.startswith(f"error: {broken}: not a readable .safetensors file")
