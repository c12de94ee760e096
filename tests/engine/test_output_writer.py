"""Tests for rvos_cli.engine.output_writer (through `run_inference`): the audio track, JSON Lines, stride.

The model is `BarModel` of test_infer (a known answer, no weights), so each test runs in a second or two.
"""

from __future__ import annotations

import json
from pathlib import Path

import av
import numpy as np
import pytest
from pycocotools import mask as mask_utils
from test_infer import BarModel, bar_mask, write_bar_frames

from rvos_cli.data.audio_remux import add_audio_track, has_audio
from rvos_cli.data.video_io import probe_video
from rvos_cli.engine.infer import run_inference
from rvos_cli.engine.predictor import Predictor

RATE, NUM_FRAMES, SAMPLE_RATE = 10, 30, 8000


def write_clip_with_audio(path: Path, audio: bool = True) -> Path:
    """A 3 s 96×64 H.264 clip of the moving bar at 10 fps, with a 440 Hz mono AAC track (if `audio`)."""
    with av.open(str(path), "w") as out:
        video = out.add_stream("libx264", rate=RATE)
        video.width, video.height, video.pix_fmt = 96, 64, "yuv420p"
        sound = out.add_stream("aac", rate=SAMPLE_RATE) if audio else None
        if sound is not None:
            sound.layout = "mono"
        for index in range(NUM_FRAMES):
            frame = np.repeat(bar_mask(index)[:, :, None], 3, axis=2).astype(np.uint8) * 255
            packet = av.VideoFrame.from_ndarray(frame, format="rgb24")
            packet.pts = index
            out.mux(video.encode(packet))
        out.mux(video.encode(None))
        if sound is not None:
            times = np.arange(NUM_FRAMES // RATE * SAMPLE_RATE) / SAMPLE_RATE
            samples = (0.3 * np.sin(2 * np.pi * 440 * times)).astype(np.float32)[None]
            for start in range(0, samples.shape[1], 1024):
                chunk = av.AudioFrame.from_ndarray(
                    samples[:, start : start + 1024], format="flt", layout="mono"
                )
                chunk.sample_rate, chunk.pts = SAMPLE_RATE, start
                out.mux(sound.encode(chunk))
            out.mux(sound.encode(None))
    return path


@pytest.fixture(scope="module")
def bar_predictor(tiny_tokenizer) -> Predictor:
    return Predictor(
        BarModel(), tiny_tokenizer, device="cpu", dtype="fp32", size=(32, 48), window=8, overlap=2
    )


def streams(path: Path) -> dict[str, float]:
    """Stream type → duration in seconds of a media file."""
    with av.open(str(path)) as container:
        return {s.type: float(s.duration * s.time_base) for s in container.streams}


def test_overlay_keeps_the_audio_track_cut_to_the_processed_span(
    bar_predictor: Predictor, tmp_path: Path
) -> None:
    clip = write_clip_with_audio(tmp_path / "with_audio.mp4")
    run_inference(bar_predictor, clip, ["the bar"], tmp_path / "out", start=0.5, end=2.5, save={"mp4"})
    found = streams(tmp_path / "out/overlay.mp4")
    assert set(found) == {"video", "audio"}
    assert found["video"] == pytest.approx(2.0, abs=0.01)
    assert found["audio"] == pytest.approx(2.0, abs=0.15)  # AAC frames are 1024 samples = 0.128 s
    assert probe_video(tmp_path / "out/overlay.mp4").num_frames == 20


def test_a_silent_source_gives_a_silent_overlay(bar_predictor: Predictor, tmp_path: Path) -> None:
    clip = write_clip_with_audio(tmp_path / "silent.mp4", audio=False)
    run_inference(bar_predictor, clip, ["the bar"], tmp_path / "out", save={"mp4"})
    assert set(streams(tmp_path / "out/overlay.mp4")) == {"video"}
    assert not has_audio(tmp_path / "out/overlay.mp4")


def test_add_audio_track_leaves_the_video_alone_without_audio(tmp_path: Path) -> None:
    clip = write_clip_with_audio(tmp_path / "silent.mp4", audio=False)
    before = clip.read_bytes()
    assert add_audio_track(clip, clip, (0.0, 1.0)) is False
    assert clip.read_bytes() == before


def test_jsonl_has_one_line_per_frame_with_every_sentence(bar_predictor: Predictor, tmp_path: Path) -> None:
    frames = write_bar_frames(tmp_path / "frames", count=12)
    sentences = ["the white bar", "the black background"]
    run_inference(bar_predictor, frames, sentences, tmp_path / "out", save={"jsonl"})
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["predictions.jsonl"]
    lines = [json.loads(line) for line in (tmp_path / "out/predictions.jsonl").read_text().splitlines()]
    assert len(lines) == 12
    assert all(set(line) == {"frame", "time", "sentences"} for line in lines)
    assert [line["frame"] for line in lines] == list(range(12))
    assert lines[3]["time"] == pytest.approx(0.1)  # a frame folder plays at 30 fps
    for line in lines:
        assert [s["sentence_index"] for s in line["sentences"]] == [0, 1]
        assert all(set(s) == {"sentence_index", "score", "segmentation"} for s in line["sentences"])
        rle = line["sentences"][0]["segmentation"]
        decoded = mask_utils.decode({"size": rle["size"], "counts": rle["counts"].encode()})
        assert np.array_equal(decoded.astype(bool), bar_mask(line["frame"]))


def test_stride_writes_every_third_frame_at_a_third_of_the_rate(
    bar_predictor: Predictor, tmp_path: Path
) -> None:
    frames = write_bar_frames(tmp_path / "frames", count=NUM_FRAMES)
    result = run_inference(
        bar_predictor, frames, ["the white bar"], tmp_path / "out", stride=3, save={"mp4", "png", "json"}
    )
    assert (result.num_frames, result.stride, result.last_frame) == (10, 3, 27)
    names = sorted(p.name for p in (tmp_path / "out/masks/0").iterdir())
    assert names == [f"{i:05d}.png" for i in range(0, NUM_FRAMES, 3)]
    info = probe_video(tmp_path / "out/overlay.mp4")
    assert (info.num_frames, info.fps) == (10, pytest.approx(10.0))
    predictions = json.loads((tmp_path / "out/predictions.json").read_text())
    assert (predictions["fps"], predictions["stride"], predictions["num_frames"]) == (30.0, 3, 10)
    assert [f["frame"] for f in predictions["predictions"][0]["frames"]] == list(range(0, NUM_FRAMES, 3))
