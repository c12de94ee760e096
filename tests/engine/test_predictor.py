"""Tests for rvos_cli.engine.predictor: the Predictor's stream, its results, sources, stride and cancelling.

`reference` pins the outputs: `tests/engine/data/infer_reference_predictions.json` and the digests below
were written by the pre-Predictor `run_inference` (the single 541-line `engine/infer.py`) on the same
seeded tiny checkpoint and generated clip, so the split is proven not to change a byte of them.
"""

from __future__ import annotations

import hashlib
import json
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from media_builders import moving_square_frames
from pycocotools import mask as mask_utils

from rvos_cli.core.config import get_preset
from rvos_cli.data.video_io import read_frames
from rvos_cli.engine.infer import run_inference
from rvos_cli.engine.predictor import FrameResult, Predictor
from rvos_cli.errors import RvosError

REFERENCE = Path(__file__).parent / "data" / "infer_reference_predictions.json"
# sha256 of the decoded overlay.mp4 frames [20, 48 + 72, 80, 3] and of overlay.gif, before the split
REFERENCE_OVERLAY_FRAMES = "9da8e094fee150b24e359f6ea1f2e9d260617e9b70e601ca227a1ac7ea4dce36"
REFERENCE_GIF = "0c3d1ca04f9fbbffacc9175a2a0f759592bbddecc4c94c2cb50bdca4cffbc600"
SENTENCES = ["the grey square", "the bright side"]
SETTINGS = {"device": "cpu", "dtype": "fp32", "window": 8, "overlap": 2, "size": (64, 96)}


@pytest.fixture(scope="module")
def checkpoint(tiny_checkpoint: Path) -> Path:
    """The seeded tiny checkpoint the reference outputs were made with."""
    return tiny_checkpoint


@pytest.fixture(scope="module")
def clip(moving_clip: Path) -> Path:
    return moving_clip


@pytest.fixture(scope="module")
def predictor(checkpoint: Path) -> Predictor:
    return Predictor.from_checkpoint(checkpoint, **SETTINGS)


@pytest.fixture(scope="module")
def results(predictor: Predictor, clip: Path) -> list[FrameResult]:
    return list(predictor.stream(clip, SENTENCES))


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_outputs_are_byte_identical_to_the_code_before_the_split(
    predictor: Predictor, clip: Path, tmp_path: Path
) -> None:
    run_inference(predictor, clip, SENTENCES, tmp_path, save={"mp4", "png", "json", "gif"})
    assert (tmp_path / "predictions.json").read_bytes() == REFERENCE.read_bytes()
    assert sha256(read_frames(tmp_path / "overlay.mp4").tobytes()) == REFERENCE_OVERLAY_FRAMES
    assert sha256((tmp_path / "overlay.gif").read_bytes()) == REFERENCE_GIF


def test_stream_results_match_the_reference_masks_and_scores(results: list[FrameResult]) -> None:
    reference = json.loads(REFERENCE.read_text())["predictions"]
    assert [r.index for r in results] == list(range(20))
    assert [r.time for r in results] == pytest.approx([i / 10 for i in range(20)])
    for r in results:
        assert r.masks.shape == (2, 48, 80) and r.masks.dtype == np.bool_
        assert r.frame.shape == (48, 80, 3) and r.frame.dtype == np.uint8
        for k in (0, 1):
            expected = reference[k]["frames"][r.index]
            assert r.rle(k) == expected["segmentation"]
            assert round(r.scores[k], 6) == expected["score"]


def test_rle_decodes_to_the_mask(results: list[FrameResult]) -> None:
    for r in results[:3]:
        rle = r.rle(1)
        decoded = mask_utils.decode({"size": rle["size"], "counts": rle["counts"].encode()})
        assert np.array_equal(decoded.astype(bool), r.masks[1])


def test_overlay_has_the_legend_on_top_and_paints_the_masks(results: list[FrameResult]) -> None:
    r = next(r for r in results if r.masks[0].any())
    with_legend, plain = r.overlay(), r.overlay(legend=False)
    assert with_legend.shape == (36 * 2 + 48, 80, 3) and plain.shape == (48, 80, 3)
    assert np.array_equal(with_legend[72:], plain)
    outside = ~r.masks.any(axis=0)
    assert np.array_equal(plain[outside], r.frame[outside])  # pixels outside every mask are untouched
    assert not np.array_equal(plain[r.masks[0]], r.frame[r.masks[0]])


def test_probe_and_the_resolved_settings(predictor: Predictor, clip: Path) -> None:
    info = predictor.probe(clip)
    assert (info.num_frames, info.fps, info.height, info.width) == (20, 10.0, 48, 80)
    assert (predictor.device, predictor.dtype, predictor.config.preset) == ("cpu", "fp32", "tiny")
    assert predictor.resized_size(48, 80) == (58, 96)


def test_a_list_of_frames_and_a_generator_give_the_file_results(
    predictor: Predictor, clip: Path, results: list[FrameResult]
) -> None:
    decoded = list(read_frames(clip))  # the H.264 frames, so the input is the same as the file's
    from_list = list(predictor.stream(decoded, SENTENCES, fps=10))
    from_generator = list(predictor(iter(decoded), SENTENCES, fps=10))  # unknown length: lazy windows
    for other in (from_list, from_generator):
        assert [r.index for r in other] == list(range(20))
        for a, b in zip(results, other, strict=True):
            assert np.array_equal(a.masks, b.masks) and a.scores == b.scores and a.time == b.time


def test_stride_keeps_every_third_source_frame(predictor: Predictor, clip: Path) -> None:
    strided = list(predictor.stream(clip, SENTENCES[:1], start=0.2, stride=3))
    assert [r.index for r in strided] == [2, 5, 8, 11, 14, 17]
    assert [r.time for r in strided] == pytest.approx([0.2, 0.5, 0.8, 1.1, 1.4, 1.7])
    assert all(r.masks.shape == (1, 48, 80) for r in strided)


def decode_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "rvos-decode"]


def test_closing_the_stream_early_stops_the_reader_thread(predictor: Predictor, clip: Path) -> None:
    stream = predictor.stream(clip, SENTENCES)
    first = next(stream)
    assert first.index == 0 and len(decode_threads()) == 1
    stream.close()
    assert decode_threads() == []


def test_bad_requests_fail_before_any_frame_is_decoded(predictor: Predictor, clip: Path) -> None:
    with pytest.raises(RvosError, match="sentence 2 is empty"):
        predictor.stream(clip, ["a square", " "])
    with pytest.raises(RvosError, match="--stride 0"):
        predictor.stream(clip, SENTENCES, stride=0)
    with pytest.raises(RvosError, match="past the end of the video"):
        predictor.stream(clip, SENTENCES, start=2.0)
    with pytest.raises(RvosError, match="cannot probe a one-shot iterator"):
        predictor.probe(iter(moving_square_frames()))
    assert decode_threads() == []


def test_frames_of_another_size_in_a_stream_are_refused(predictor: Predictor) -> None:
    frames = [*moving_square_frames()[:3], np.zeros((40, 80, 3), dtype=np.uint8)]
    with pytest.raises(RvosError, match=r"frame 3 is \[40, 80\], the first one was \[48, 80\]"):
        list(predictor.stream(frames, SENTENCES))


@pytest.mark.parametrize(("threshold", "expected"), [(0.6, "bar"), (0.4, "everything")])
def test_threshold_selection_reaches_the_linkers(tiny_tokenizer, threshold: float, expected: str) -> None:
    from test_infer import BarModel, bar_mask

    # BarModel: query 0 (the bar) has P(referred) ≈ 1 for sentence 0, query 1 (the rest) exactly 0.5.
    bar = Predictor(
        BarModel(), tiny_tokenizer, device="cpu", dtype="fp32", size=(32, 48), window=4, overlap=1,
        select="threshold", score_threshold=threshold,
    )  # fmt: skip
    frames = [np.repeat(bar_mask(i)[:, :, None], 3, axis=2).astype(np.uint8) * 255 for i in range(6)]
    for r in bar.stream(frames, ["the white bar"]):
        want = bar_mask(r.index) if expected == "bar" else np.ones_like(bar_mask(0))
        assert np.array_equal(r.masks[0], want)


def test_overrides_apply_to_the_checkpoint_config_and_a_misfit_one_is_refused(checkpoint: Path) -> None:
    predictor = Predictor.from_checkpoint(
        checkpoint, device="cpu", dtype="fp32", overrides=["data.eval_short_size=40", "train.window=3"]
    )
    assert (predictor.config.data.eval_short_size, predictor.config.train.window) == (40, 3)
    assert predictor.config.data.eval_max_size == get_preset("tiny").data.eval_max_size
    with pytest.raises(RvosError, match=r"does not fit.*obj_queries\.weight"):
        Predictor.from_checkpoint(checkpoint, device="cpu", overrides=["model.transformer.num_queries=5"])


def test_the_heap_goes_back_before_every_forward_pass_on_the_cpu(
    predictor: Predictor, clip: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # what one window freed would otherwise stay resident under the next window's peak (core.allocator)
    trims: list[int] = []
    monkeypatch.setattr("rvos_cli.engine.predictor.trim_free_heap", lambda: trims.append(1) or True)
    assert len(list(predictor.stream(clip, SENTENCES[:1]))) == 20
    assert len(trims) == 3  # 20 frames in windows of 8 overlapping by 2: [0, 8), [6, 14), [12, 20)
    trims.clear()
    frames = torch.zeros(10, 3, 64, 96)
    assert len(list(predictor.track_video(frames, SENTENCES, (64, 96), max_frames=4))) == 2 * 10
    assert len(trims) == 3  # windows of 4 overlapping by 1: [0, 4), [3, 7), [6, 10)
    trims.clear()
    predictor.clip_outputs(frames[:4, None], torch.zeros(4, 1, 64, 96, dtype=torch.bool), SENTENCES[:1])
    assert len(trims) == 1
