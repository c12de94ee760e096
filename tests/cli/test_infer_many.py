"""`rvos infer` over several inputs through typer's CliRunner: one model load, a folder per video, the
summary table and --json, --text-file, --stride and --save jsonl (tiny preset, random weights)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from rvos_cli.cli.app import app
from rvos_cli.data.video_io import write_video
from rvos_cli.engine import infer_batch
from rvos_cli.engine.predictor import Predictor

runner = CliRunner()


def flat(table: str) -> str:
    """A printed table's text with its borders dropped and wrapped cells joined by single spaces."""
    return " ".join(table.replace("│", " ").split())
SMALL = ["--size", "48,64", "--window", "4", "--overlap", "1", "--dtype", "fp32"]


@pytest.fixture(scope="module")
def checkpoint(tiny_checkpoint: Path) -> Path:
    return tiny_checkpoint


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with two 9-frame 10 fps clips, a.mp4 and b.mp4."""
    folder = tmp_path_factory.mktemp("clips")
    for name, shade in (("a", 60), ("b", 180)):
        frames = [np.full((40, 56, 3), shade, dtype=np.uint8) for _ in range(9)]
        for i, frame in enumerate(frames):
            frame[10:30, 4 * i : 4 * i + 16] = 255
        write_video(folder / f"{name}.mp4", frames, fps=10)
    return folder


def test_a_folder_of_videos_loads_the_model_once_and_sums_up(
    checkpoint: Path, clips: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    loads: list[Path] = []
    real = Predictor.from_checkpoint.__func__  # type: ignore[attr-defined]

    def counting(cls, path, *args, **kwargs):  # the real loader, counted
        loads.append(Path(path))
        return real(cls, path, *args, **kwargs)

    monkeypatch.setattr(Predictor, "from_checkpoint", classmethod(counting))
    releases: list[int] = []  # free heap memory handed back between videos
    monkeypatch.setattr(infer_batch, "release_free_memory", lambda: releases.append(1) or True)
    summary = tmp_path / "summary.json"
    args = [str(clips), "-t", "the white box", "-t", "the grey wall", "-c", str(checkpoint), "--out",
            str(tmp_path / "out"), "--stride", "2", "--json", str(summary), *SMALL]  # fmt: skip
    result = runner.invoke(app, ["infer", *args])
    assert result.exit_code == 0, result.stderr + str(result.exception)
    assert loads == [checkpoint] and len(releases) == 1
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a", "b"]
    assert "2 videos, 10 frames" in flat(result.stdout) and "(every 2nd frame)" in flat(result.stdout)
    written = json.loads(summary.read_text())
    assert written["sentences"] == ["the white box", "the grey wall"]
    assert [Path(v["video"]).name for v in written["videos"]] == ["a.mp4", "b.mp4"]
    assert [(v["num_frames"], v["first_frame"], v["last_frame"]) for v in written["videos"]] == [
        (5, 0, 8)
    ] * 2
    assert all(v["output_fps"] == 5.0 and len(v["scores"]) == 2 for v in written["videos"])
    assert set(written["videos"][0]["outputs"]) == {"mp4", "png", "json"}


def test_text_file_sentences_and_jsonl_for_one_video(checkpoint: Path, clips: Path, tmp_path: Path) -> None:
    sentences = tmp_path / "sentences.txt"
    sentences.write_text("the white box\n\n  the grey wall  \n")
    args = [str(clips / "a.mp4"), "--text-file", str(sentences), "-c", str(checkpoint), "--out",
            str(tmp_path / "out"), "--save", "jsonl", "--stride", "3", *SMALL]  # fmt: skip
    result = runner.invoke(app, ["infer", *args])
    assert result.exit_code == 0, result.stderr + str(result.exception)
    assert "sentence 1 the grey wall (mean score" in flat(result.stdout)
    assert "frames 3 (source frames 0–6, every 3rd frame; outputs at 3.33 fps)" in flat(result.stdout)
    lines = (tmp_path / "out/predictions.jsonl").read_text().splitlines()
    assert [json.loads(line)["frame"] for line in lines] == [0, 3, 6]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("\n   \n", "holds no sentence (write one sentence per line; blank lines are ignored)"),
        (None, "not found"),
    ],
)
def test_an_empty_or_missing_text_file_is_one_line_exit_2(
    checkpoint: Path, clips: Path, tmp_path: Path, content: str | None, message: str
) -> None:
    sentences = tmp_path / "sentences.txt"
    if content is not None:
        sentences.write_text(content)
    args = [
        str(clips / "a.mp4"),
        "--text-file",
        str(sentences),
        "-c",
        str(checkpoint),
        "--out",
        str(tmp_path / "o"),
    ]
    result = runner.invoke(app, ["infer", *args])
    assert result.exit_code == 2
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "o").exists()


def test_a_video_without_any_sentence_is_refused(checkpoint: Path, clips: Path) -> None:
    result = runner.invoke(app, ["infer", str(clips / "a.mp4"), "-c", str(checkpoint)])
    assert result.exit_code == 2
    assert "no sentence given" in result.stderr
