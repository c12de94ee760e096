"""Tests for rvos_cli.engine.infer (Predictor.stream → OutputWriter): the streaming pipeline and its outputs.

Most tests use `BarModel`, a stand-in for MTTR whose answer is known exactly: query 0 segments the
bright pixels of each frame and query 1 the rest; sentence k prefers query k % 2. On a folder of PNG
frames showing a white vertical bar on black, sentence 0's masks must be exactly the bar and
sentence 1's exactly its complement, in every frame, through resizing, windows and linking.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from pycocotools import mask as mask_utils
from torch import nn

from rvos_cli.core.inference import plan_windows
from rvos_cli.core.model import build_model
from rvos_cli.data.video_io import probe_video, read_frames
from rvos_cli.engine import frame_reader
from rvos_cli.engine.infer import check_inference_inputs, run_inference
from rvos_cli.engine.predictor import Predictor
from rvos_cli.errors import RvosError

HEIGHT, WIDTH, BAR = 64, 96, 16
NUM_FRAMES = 30
SENTENCES = ["the white bar", "the black background"]
# window 8 / overlap 2 over 30 frames: windows start at 0, 6, 12, 18, 24
RUN = {"size": (32, 48), "window": 8, "overlap": 2}


def predictor(model: nn.Module, tokenizer, dtype: str = "fp32") -> Predictor:
    """A CPU Predictor around `model` with the RUN windowing and resize."""
    return Predictor(model, tokenizer, device="cpu", dtype=dtype, **RUN)


class BarModel(nn.Module):
    """MTTR's `forward_sentences` interface with a known answer (see the module docstring).

    `calls` records (frames, sentences) of each call, so tests see how the pipeline batches its work;
    `autocast_seen` records whether each call ran under CPU autocast.
    """

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[int, int]] = []
        self.autocast_seen: list[bool] = []

    def forward_sentences(
        self,
        frames: torch.Tensor,
        padding_mask: torch.Tensor,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
    ) -> dict[str, torch.Tensor]:
        self.autocast_seen.append(torch.is_autocast_enabled("cpu"))
        self.calls.append((frames.shape[0], input_ids.shape[0]))  # frames [T, 1, 3, h, w]
        bright = F.avg_pool2d(frames[:, 0].mean(dim=1, keepdim=True), 4)[:, 0] > 0  # [T, h/4, w/4]
        logits = torch.where(bright, 10.0, -10.0)
        num_sentences = input_ids.shape[0]
        pred_masks = torch.stack([logits, -logits], dim=1)[:, None].expand(-1, num_sentences, -1, -1, -1)
        referred = torch.full((frames.shape[0], num_sentences, 2, 2), -5.0)
        for k in range(num_sentences):
            referred[:, k, k % 2, 0] = 5.0  # query k % 2 is "referred" for sentence k
        return {"pred_masks": pred_masks.contiguous(), "pred_is_referred": referred}


def bar_mask(index: int) -> np.ndarray:
    """Where the bar is in frame `index`: bool `[64, 96]`, full height, 16 px wide from column 8·(i mod 9).

    Its edges lie on multiples of 8, so halving the frame and pooling by 4 keep them exact, and a bar (unlike
    a square) has no corners for the bilinear mask upsampling to round off.
    """
    mask = np.zeros((HEIGHT, WIDTH), dtype=bool)
    left = 8 * (index % 9)
    mask[:, left : left + BAR] = True
    return mask


def write_bar_frames(folder: Path, count: int = NUM_FRAMES) -> Path:
    """A folder of `count` PNG frames `frame_0000.png`, ... with the white bar of `bar_mask(i)`."""
    folder.mkdir(parents=True)
    for index in range(count):
        frame = np.repeat(bar_mask(index)[:, :, None], 3, axis=2).astype(np.uint8) * 255
        Image.fromarray(frame).save(folder / f"frame_{index:04d}.png")
    return folder


@pytest.fixture(scope="module")
def frames_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_bar_frames(tmp_path_factory.mktemp("bar") / "frames")


@pytest.fixture(scope="module")
def bar_run(frames_dir: Path, tiny_tokenizer, tmp_path_factory: pytest.TempPathFactory):
    """One full run (all four outputs) of BarModel on the bar frames, shared by several tests."""
    model = BarModel()
    out = tmp_path_factory.mktemp("bar-out") / "out"
    result = run_inference(
        predictor(model, tiny_tokenizer), frames_dir, SENTENCES, out, save={"mp4", "png", "json", "gif"}
    )
    return result, out, model.calls


def read_png_mask(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path))


def test_masks_of_each_sentence_are_exact(bar_run) -> None:
    _, out, _ = bar_run
    for index in range(NUM_FRAMES):
        assert np.array_equal(read_png_mask(out / "masks/0" / f"{index:05d}.png"), bar_mask(index) * 255)
        assert np.array_equal(read_png_mask(out / "masks/1" / f"{index:05d}.png"), ~bar_mask(index) * 255)


def test_png_folders_hold_exactly_one_mask_per_frame(bar_run) -> None:
    _, out, _ = bar_run
    expected = [f"{i:05d}.png" for i in range(NUM_FRAMES)]
    assert sorted(p.name for p in (out / "masks/0").iterdir()) == expected
    assert sorted(p.name for p in (out / "masks/1").iterdir()) == expected


def test_json_rle_decodes_to_the_png_masks(bar_run) -> None:
    _, out, _ = bar_run
    predictions = json.loads((out / "predictions.json").read_text())
    for k, entry in enumerate(predictions["predictions"]):
        assert [f["frame"] for f in entry["frames"]] == list(range(NUM_FRAMES))
        for item in entry["frames"]:
            rle = {"size": item["segmentation"]["size"], "counts": item["segmentation"]["counts"].encode()}
            decoded = mask_utils.decode(rle)
            assert np.array_equal(decoded * 255, read_png_mask(out / f"masks/{k}/{item['frame']:05d}.png"))


def test_json_header_and_scores(bar_run) -> None:
    _, out, _ = bar_run
    predictions = json.loads((out / "predictions.json").read_text())
    assert predictions["sentences"] == SENTENCES
    assert predictions["fps"] == 30.0
    assert predictions["size"] == [HEIGHT, WIDTH]
    assert (predictions["first_frame"], predictions["num_frames"]) == (0, NUM_FRAMES)
    # P(referred) of the chosen query = softmax([5, -5])[0] in every frame
    expected = round(float(torch.tensor([5.0, -5.0]).softmax(0)[0]), 6)
    for k, entry in enumerate(predictions["predictions"]):
        assert (entry["sentence_index"], entry["sentence"], entry["score"]) == (k, SENTENCES[k], expected)
        assert {f["score"] for f in entry["frames"]} == {expected}


def test_overlay_video_has_every_frame_the_legend_and_the_source_fps(bar_run) -> None:
    _, out, _ = bar_run
    info = probe_video(out / "overlay.mp4")
    assert (info.num_frames, info.height, info.width) == (NUM_FRAMES, HEIGHT + 36 * len(SENTENCES), WIDTH)
    assert info.fps == pytest.approx(30.0)


def test_overlay_paints_sentence_zero_light_blue_inside_the_bar(bar_run) -> None:
    _, out, _ = bar_run
    frame = read_frames(out / "overlay.mp4", [3])[0][36 * len(SENTENCES) :]  # [64, 96, 3] without the legend
    left = 8 * 3
    centre = frame[8:56, left + 4 : left + 12].reshape(-1, 3).mean(axis=0)
    # 0.7 · (41, 171, 226) + 0.3 · 255 (white bar), up to H.264 loss
    assert np.allclose(centre, [105.2, 196.2, 234.7], atol=8)


def test_gif_has_one_frame_per_video_frame(bar_run) -> None:
    _, out, _ = bar_run
    with Image.open(out / "overlay.gif") as gif:
        assert gif.n_frames == NUM_FRAMES
        assert gif.size == (WIDTH, HEIGHT + 36 * len(SENTENCES))


def test_each_window_goes_to_the_model_once_with_all_sentences(bar_run) -> None:
    # windows [0, 8), [6, 14), [12, 20), [18, 26), [24, 30); one call each carrying both sentences
    result, _, calls = bar_run
    assert plan_windows(NUM_FRAMES, 8, 2) == [(0, 8), (6, 14), (12, 20), (18, 26), (24, 30)]
    assert calls == [(8, 2), (8, 2), (8, 2), (8, 2), (6, 2)]
    assert result.num_frames == NUM_FRAMES


def test_no_staging_folder_is_left_after_success(bar_run) -> None:
    _, out, _ = bar_run
    assert sorted(p.name for p in out.iterdir()) == [
        "masks",
        "overlay.gif",
        "overlay.mp4",
        "predictions.json",
    ]


def test_real_tiny_model_serves_three_sentences_with_one_backbone_pass_per_window(
    frames_dir: Path, tiny_tokenizer, tmp_path: Path
) -> None:
    torch.manual_seed(0)
    model = build_model("tiny")
    calls: list[int] = []
    model.backbone.register_forward_hook(lambda *_: calls.append(1))
    sentences = ["a bar", "the dark area", "something white"]
    result = run_inference(
        predictor(model, tiny_tokenizer), frames_dir, sentences, tmp_path / "out", save={"json"}
    )
    assert len(calls) == 5
    predictions = json.loads((tmp_path / "out/predictions.json").read_text())
    assert [len(p["frames"]) for p in predictions["predictions"]] == [NUM_FRAMES] * 3
    assert len(result.scores) == 3


def test_start_and_end_seconds_select_source_frames(frames_dir: Path, tiny_tokenizer, tmp_path: Path) -> None:
    # 30 fps: 0.5 s → frame 15, 0.8 s → frame 24 (exclusive)
    result = run_inference(
        predictor(BarModel(), tiny_tokenizer),
        frames_dir,
        SENTENCES[:1],
        tmp_path / "out",
        start=0.5,
        end=0.8,
        save={"png"},
    )
    assert (result.first_frame, result.num_frames) == (15, 9)
    names = sorted(p.name for p in (tmp_path / "out/masks/0").iterdir())
    assert names == [f"{i:05d}.png" for i in range(15, 24)]
    for index in range(15, 24):
        assert np.array_equal(read_png_mask(tmp_path / f"out/masks/0/{index:05d}.png"), bar_mask(index) * 255)


def test_bf16_runs_the_model_under_autocast(frames_dir: Path, tiny_tokenizer, tmp_path: Path) -> None:
    model = BarModel()
    with warnings.catch_warnings():  # bf16 on a CPU without native bf16 warns that it is slow
        warnings.simplefilter("ignore")
        bf16 = predictor(model, tiny_tokenizer, dtype="bf16")
    run_inference(bf16, frames_dir, SENTENCES, tmp_path / "a", save={"json"})
    run_inference(predictor(model, tiny_tokenizer), frames_dir, SENTENCES, tmp_path / "b", save={"json"})
    assert model.autocast_seen == [True] * 5 + [False] * 5


def test_rerun_replaces_the_previous_masks_folder(frames_dir: Path, tiny_tokenizer, tmp_path: Path) -> None:
    bar = predictor(BarModel(), tiny_tokenizer)
    run_inference(bar, frames_dir, SENTENCES, tmp_path, save={"png"})
    run_inference(bar, frames_dir, SENTENCES[:1], tmp_path, save={"png"})
    assert [p.name for p in (tmp_path / "masks").iterdir()] == ["0"]
    assert [p.name for p in tmp_path.iterdir()] == ["masks"]


def test_decoding_error_midway_leaves_no_output(
    frames_dir: Path, tiny_tokenizer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_iter_frames = frame_reader.iter_frames

    def failing_iter_frames(path: Path, start: int = 0, end: int | None = None):
        for index, frame in enumerate(real_iter_frames(path, start, end)):
            if index == 20:
                raise RvosError(f"{path}: truncated or undecodable video after frame 20")
            yield frame

    monkeypatch.setattr(frame_reader, "iter_frames", failing_iter_frames)
    out = tmp_path / "out"
    with pytest.raises(RvosError, match="after frame 20"):
        run_inference(
            predictor(BarModel(), tiny_tokenizer),
            frames_dir,
            SENTENCES,
            out,
            save={"mp4", "png", "json", "gif"},
        )
    assert list(out.iterdir()) == []


def test_start_past_the_end_is_refused(frames_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(RvosError, match="past the end of the video"):
        check_inference_inputs(frames_dir, SENTENCES, tmp_path, start=1.0)


def test_end_before_start_is_refused(frames_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(RvosError, match="must come after --start"):
        check_inference_inputs(frames_dir, SENTENCES, tmp_path, start=0.5, end=0.5)


MEMORY_CHILD = textwrap.dedent(
    """
    import json, resource, sys
    from pathlib import Path
    import numpy as np
    sys.path.insert(0, sys.argv[1])
    from test_infer import BarModel
    from rvos_cli.core.model import build_tokenizer
    from rvos_cli.data.video_io import write_video
    from rvos_cli.engine.infer import run_inference
    from rvos_cli.engine.predictor import Predictor

    def frames(count):
        for i in range(count):  # generated lazily: the clip never sits in memory
            frame = np.zeros((96, 128, 3), dtype=np.uint8)
            frame[(i % 6) * 8 : (i % 6) * 8 + 32, (i % 10) * 8 : (i % 10) * 8 + 32] = 255
            yield frame

    work = Path(sys.argv[2])
    predictor = Predictor(BarModel(), build_tokenizer("tiny"), device="cpu", dtype="fp32", size=(48, 64))
    peaks = {}
    for count in (500, 3000):
        clip = work / f"clip{count}.mp4"
        write_video(clip, frames(count), fps=25)
        run_inference(predictor, clip, ["a square", "the rest"], work / f"out{count}",
                      save={"mp4", "png", "json"})
        peaks[count] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB, peak so far
    print(json.dumps(peaks))
    """
)


@pytest.mark.slow(reason="writes and segments a 3000-frame clip (about 20 s)")
def test_peak_memory_does_not_grow_with_video_length(tmp_path: Path) -> None:
    """Peak RSS after a 3000-frame run exceeds the peak of a 500-frame run by less than 40 MB.

    Holding every decoded frame (96×128×3) would add 2500 · 37 kB ≈ 92 MB, every mask pair 61 MB.
    The stand-in model keeps the run short; everything the pipeline buffers is real.
    """
    child = subprocess.run(
        [sys.executable, "-c", MEMORY_CHILD, str(Path(__file__).parent), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert child.returncode == 0, child.stderr[-2000:]
    peaks = {int(k): v for k, v in json.loads(child.stdout.strip().splitlines()[-1]).items()}
    growth_mb = (peaks[3000] - peaks[500]) / 1024
    assert growth_mb < 40, f"peak RSS grew by {growth_mb:.1f} MB from 500 to 3000 frames"
