"""Broken media and files behind a valid layout: one defect at a time, each with its outcome.

Either exit 2 with one line naming the file and what was expected, or (where continuing is right) a
warning and correct outputs. Truncated clips fail cleanly: a container that records its frame count
and ends early says how many frames decode, and `--end` before that point segments them.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from rvos_cli.cli.app import app
from rvos_cli.core.checkpoints import save_model_checkpoint
from rvos_cli.core.config import config_to_dict, get_preset
from rvos_cli.core.model import build_model
from rvos_cli.data.synthetic import generate_synthetic
from rvos_cli.data.video_io import write_video

runner = CliRunner()
FRAMES = 30


def error_line(result: object) -> str:
    """The one error line of a run that must exit with code 2."""
    lines = [line for line in result.output.splitlines() if line.startswith("error:")]  # type: ignore[attr-defined]
    assert result.exit_code == 2 and len(lines) == 1, result.output  # type: ignore[attr-defined]
    return lines[0]


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny checkpoint and the clips and frame folders the infer cases break."""
    root = tmp_path_factory.mktemp("media")
    torch.manual_seed(0)
    save_model_checkpoint(build_model("tiny"), root / "tiny.pth", config=config_to_dict(get_preset("tiny")))
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 256, (32, 48, 3), dtype=np.uint8) for _ in range(FRAMES)]
    write_video(root / "clip.mp4", frames, fps=10)
    write_video(root / "one.mp4", frames[:1], fps=10)
    # An .mp4 with its index first (as streaming sites serve them), cut in half: 12 of 30 frames decode.
    _write_faststart(root / "faststart.mp4", frames)
    data = (root / "faststart.mp4").read_bytes()
    (root / "cut-faststart.mp4").write_bytes(data[: len(data) // 2])
    data = (root / "clip.mp4").read_bytes()
    (root / "cut.mp4").write_bytes(data[: len(data) * 2 // 3])  # its index (at the end) is lost
    _write_audio_only(root / "speech.m4a")
    for name in ("unreadable", "sizes"):
        (root / name).mkdir()
        for index in range(3):
            Image.fromarray(frames[index]).save(root / name / f"{index:05d}.png")
    (root / "unreadable" / "00001.png").write_bytes(b"not a png")
    Image.fromarray(np.zeros((40, 48, 3), np.uint8)).save(root / "sizes" / "00002.png")
    return root


def _write_faststart(path: Path, frames: list[np.ndarray]) -> None:
    container = av.open(str(path), "w", format="mp4", options={"movflags": "faststart"})
    stream = container.add_stream("libx264", rate=10)
    stream.height, stream.width, stream.pix_fmt = 32, 48, "yuv420p"
    for index, frame in enumerate(frames):
        video_frame = av.VideoFrame.from_ndarray(frame, format="rgb24")
        video_frame.pts = index
        container.mux(stream.encode(video_frame))
    container.mux(stream.encode(None))
    container.close()


def _write_audio_only(path: Path) -> None:
    container = av.open(str(path), "w", format="mp4")
    stream = container.add_stream("aac", rate=16000)
    for index in range(8):
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
        frame.sample_rate, frame.pts = 16000, index * 1024
        container.mux(stream.encode(frame))
    container.mux(stream.encode(None))
    container.close()


def predicted_frames(out: Path) -> list[int]:
    """The frame indices predictions.json holds for the first sentence."""
    return [
        entry["frame"]
        for entry in json.loads((out / "predictions.json").read_text())["predictions"][0]["frames"]
    ]


def infer(media: Path, source: str, *args: str, sentence: str = "a thing", checkpoint: str = "tiny.pth"):
    out = media / "out" / source.replace("/", "_")
    shutil.rmtree(out, ignore_errors=True)
    command = ["infer", str(media / source), sentence, "-c", str(media / checkpoint), "--save", "json",
               "--out", str(out), "--size", "32,48", *args]  # fmt: skip
    return runner.invoke(app, command), out


# ------------------------------------------------------------------------------------------ infer


def test_a_clip_cut_mid_stream_fails_saying_how_many_frames_decode(media: Path) -> None:
    result, _ = infer(media, "cut-faststart.mp4")
    assert error_line(result) == (
        f"error: {media / 'cut-faststart.mp4'}: truncated video: the container says 30 frames, only the "
        "first 12 decode (an incomplete download?); to use them, end before frame 12"
    )


def test_the_frames_before_the_cut_segment_with_end(media: Path) -> None:
    result, out = infer(media, "cut-faststart.mp4", "--end", "1.0")  # 10 fps: frames 0-9
    assert result.exit_code == 0, result.output
    assert predicted_frames(out) == list(range(10))


def test_an_mp4_cut_before_its_index_is_named_as_such(media: Path) -> None:
    line = error_line(infer(media, "cut.mp4")[0])
    assert line.startswith(f"error: {media / 'cut.mp4'}: not a readable video")
    assert line.endswith("an incomplete download? (an .mp4 or .mov keeps its index at the end)")


def test_a_file_with_only_audio(media: Path) -> None:
    result, _ = infer(media, "speech.m4a")
    assert error_line(result) == (
        f"error: {media / 'speech.m4a'}: holds only audio (1 audio stream(s)), no video stream to segment"
    )


def test_a_frame_folder_with_one_unreadable_image(media: Path) -> None:
    line = error_line(infer(media, "unreadable")[0])
    assert line.startswith(f"error: {media / 'unreadable' / '00001.png'}: not a readable image")


def test_frame_images_of_different_sizes(media: Path) -> None:
    line = error_line(infer(media, "sizes")[0])
    assert line == f"error: {media / 'sizes' / '00002.png'}: frame size [40, 48] differs from [32, 48]"


def test_start_past_the_end_and_overlap_not_below_window(media: Path) -> None:
    assert error_line(infer(media, "clip.mp4", "--start", "50")[0]) == (
        "error: --start 50.0 s is at or past the end of the video (3.00 s)"
    )
    line = error_line(infer(media, "clip.mp4", "--window", "4", "--overlap", "4")[0])
    assert "overlap 4" in line and "window size 4" in line


def test_a_one_frame_video_gives_one_frame_of_predictions(media: Path) -> None:
    result, out = infer(media, "one.mp4")
    assert result.exit_code == 0, result.output
    assert predicted_frames(out) == [0]


def test_a_thousand_word_sentence_is_truncated_with_a_warning(media: Path) -> None:
    result, out = infer(media, "one.mp4", sentence=" ".join(["word"] * 1000))
    assert result.exit_code == 0, result.output
    assert (
        "warning: a sentence has 1002 tokens, more than the text encoder accepts (512); it is truncated"
        in (" ".join(result.output.split()))
    )
    assert (out / "predictions.json").is_file()


@pytest.mark.parametrize("sentence", ["der Hund 🐶 läuft", "собака слева", "左边的狗", "الكلب", "🐶🐱"])
def test_sentences_in_any_script_or_emoji(media: Path, sentence: str) -> None:
    result, out = infer(media, "one.mp4", sentence=sentence)
    assert result.exit_code == 0, result.output
    written = json.loads((out / "predictions.json").read_text())
    assert written["sentences"] == [sentence]
    assert predicted_frames(out) == [0] and 0.0 <= written["predictions"][0]["score"] <= 1.0


def test_a_checkpoint_with_one_tensor_of_the_wrong_shape_lists_it(media: Path) -> None:
    payload = torch.load(media / "tiny.pth", weights_only=True)
    payload["model_state_dict"]["is_referred_head.weight"] = torch.zeros(2, 7)
    torch.save(payload, media / "misshaped.pth")
    line = error_line(infer(media, "one.mp4", checkpoint="misshaped.pth")[0])
    expected = tuple(build_model("tiny").state_dict()["is_referred_head.weight"].shape)
    assert f"{media / 'misshaped.pth'}: does not fit this model's architecture" in line
    assert f"shape mismatch (file vs model) (1): is_referred_head.weight (2, 7) vs {expected}" in line


# ------------------------------------------------------------------------------------------ prepare


@pytest.fixture
def a2d(tmp_path: Path) -> Path:
    root = tmp_path / "a2d"
    generate_synthetic(root, num_videos=2, seed=0, fmt="a2d", frames_per_video=4, size=(32, 48))
    return root


def prepare(root: Path):
    return runner.invoke(app, ["prepare", "a2d", "--root", str(root), "--out", str(root / "prepared")])


def test_an_annotation_file_that_is_not_utf8(a2d: Path) -> None:
    path = a2d / "text_annotations" / "a2d_annotation.txt"
    path.write_bytes(path.read_bytes() + "v_x,1,un caf\xe9\n".encode("latin-1"))
    lines = path.read_bytes().count(b"\n")
    assert (
        error_line(prepare(a2d))
        == f"error: {path}:{lines}: not UTF-8 text (byte 0xe9); save the file as UTF-8"
    )


def test_an_h5_that_is_not_hdf5(a2d: Path) -> None:
    h5 = sorted((a2d / "text_annotations" / "a2d_annotation_with_instances").rglob("*.h5"))[0]
    h5.write_bytes(b"\x89PNG not hdf5")
    line = error_line(prepare(a2d))
    assert line.startswith(f"error: {h5}: not a readable A2D annotation (.h5 with instance, reMask, reBBox)")


def test_a_csv_value_outside_its_domain(a2d: Path) -> None:
    path = a2d / "Release" / "videoset.csv"
    rows = path.read_text().splitlines()
    cells = rows[0].split(",")
    path.write_text("\n".join([",".join([*cells[:8], "7"]), *rows[1:]]) + "\n")
    assert error_line(prepare(a2d)) == (
        f"error: {path}:1: subset (column 9) must be 0 (train) or 1 (test), got '7'"
    )


# ------------------------------------------------------------------------------------------ eval


def coco_files(tmp_path: Path, predictions: str) -> tuple[Path, Path]:
    """A one-image 4×6 COCO ground truth and a predictions file with the given JSON text."""
    rle = {"size": [4, 6], "counts": "0<0"}  # 24 foreground pixels
    gt = {"images": [{"id": "v_1", "height": 4, "width": 6}], "categories": [{"id": 1}],
          "annotations": [{"id": 1, "image_id": "v_1", "category_id": 1, "segmentation": rle, "area": 24.0,
                           "iscrowd": 0}]}  # fmt: skip
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    (tmp_path / "pred.json").write_text(predictions)
    return tmp_path / "pred.json", tmp_path / "gt.json"


@pytest.mark.parametrize(("score", "shown"), [("NaN", "nan"), ("Infinity", "inf"), ("-Infinity", "-inf")])
def test_predictions_with_non_finite_scores(tmp_path: Path, score: str, shown: str) -> None:
    entry = f'{{"image_id": "v_1", "segmentation": {{"size": [4, 6], "counts": "0<0"}}, "score": {score}}}'
    pred, gt = coco_files(tmp_path, f"[{entry}]")
    line = error_line(runner.invoke(app, ["eval", "a2d", "--predictions", str(pred), "--coco-gt", str(gt)]))
    assert line == f"error: {pred}: entry 0: 'score' must be a finite number, got {shown}"


def test_predictions_with_an_unknown_image_id(tmp_path: Path) -> None:
    entry = '{"image_id": "v_9", "segmentation": {"size": [4, 6], "counts": "0<0"}, "score": 0.5}'
    pred, gt = coco_files(tmp_path, f"[{entry}]")
    line = error_line(runner.invoke(app, ["eval", "a2d", "--predictions", str(pred), "--coco-gt", str(gt)]))
    assert line == f"error: {pred}: entry 0: image_id 'v_9' is not in the ground truth"


def test_prediction_pngs_of_the_wrong_size(tmp_path: Path) -> None:
    gt_root = tmp_path / "gt"
    (gt_root / "Annotations" / "v").mkdir(parents=True)
    labels = Image.fromarray(np.ones((16, 16), np.uint8), mode="P")
    labels.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    labels.save(gt_root / "Annotations" / "v" / "00000.png")
    meta = {
        "videos": {"v": {"expressions": {"0": {"exp": "the square", "obj_id": "1"}}, "frames": ["00000"]}}
    }
    (gt_root / "meta_expressions.json").write_text(json.dumps(meta))
    (tmp_path / "pred" / "v" / "0").mkdir(parents=True)
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "pred" / "v" / "0" / "00000.png")
    args = ["eval", "ytvos", "--predictions", str(tmp_path / "pred"), "--gt-root", str(gt_root)]
    png = tmp_path / "pred" / "v" / "0" / "00000.png"
    assert error_line(runner.invoke(app, args)) == (
        f"error: {png}: prediction is 8x8 (HxW) but the ground truth is 16x16; save predictions at the "
        "original frame resolution"
    )
