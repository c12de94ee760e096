"""Tests for rvos_cli.engine.infer_batch: expanding inputs, sentence files, output folders, sharing
videos across ranks (directly and with two gloo processes), and a batch with a failing video."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp
from test_infer import BarModel, write_bar_frames

from rvos_cli.core.model import build_tokenizer
from rvos_cli.data.video_io import write_video
from rvos_cli.engine.infer_batch import (
    BatchRequest,
    expand_videos,
    infer_videos,
    output_folders,
    read_sentence_file,
    shard,
)
from rvos_cli.engine.predictor import Predictor
from rvos_cli.errors import RvosError


def write_clip(path: Path, frames: int = 6) -> Path:
    write_video(path, [np.full((32, 48, 3), 40 * i, dtype=np.uint8) for i in range(frames)], fps=10)
    return path


def test_expand_videos_takes_files_folders_of_videos_frame_folders_and_globs(tmp_path: Path) -> None:
    clips = tmp_path / "clips"
    clips.mkdir()
    b, a = write_clip(clips / "b.mp4"), write_clip(clips / "a.mp4")
    (clips / "notes.txt").write_text("not a video")
    frames = write_bar_frames(tmp_path / "frames", count=2)
    assert expand_videos([str(clips)]) == [a, b]
    assert expand_videos([str(tmp_path / "clips" / "*.mp4"), str(a), str(frames)]) == [a, b, frames]
    with pytest.raises(RvosError, match=r"clips/\*\.avi: no file matches this pattern"):
        expand_videos([str(clips / "*.avi")])
    with pytest.raises(RvosError, match=r"nope\.mp4: no such file or folder"):
        expand_videos([str(tmp_path / "nope.mp4")])


def test_sentence_file_one_per_line_blank_lines_ignored(tmp_path: Path) -> None:
    path = tmp_path / "sentences.txt"
    path.write_text("  the dog on the left \n\n\tthe red car\n   \n")
    assert read_sentence_file(path) == ["the dog on the left", "the red car"]
    path.write_text("\n  \n")
    with pytest.raises(RvosError, match=r"sentences.txt: holds no sentence \(write one sentence per line"):
        read_sentence_file(path)
    with pytest.raises(RvosError, match=r"missing\.txt: sentence file not found"):
        read_sentence_file(tmp_path / "missing.txt")


def test_output_folders_one_per_video_and_numbered_on_equal_names(tmp_path: Path) -> None:
    one = [Path("x/a.mp4")]
    runs = tmp_path / "runs"
    assert output_folders(one, None, root=runs) == [runs / "infer" / "a"]
    assert output_folders(one, tmp_path / "out") == [tmp_path / "out"]
    many = [Path("x/a.mp4"), Path("y/a.mp4"), Path("y/b"), Path("z/a.avi")]
    expected = [tmp_path / "out" / name for name in ("a", "a-2", "b", "a-3")]
    assert output_folders(many, tmp_path / "out") == expected


def test_runs_without_out_take_the_next_free_names_and_an_out_with_outputs_needs_overwrite(
    tmp_path: Path,
) -> None:
    runs = tmp_path / "runs"
    (runs / "infer" / "a").mkdir(parents=True)  # an earlier run
    many = [Path("x/a.mp4"), Path("y/a.mp4"), Path("y/b")]
    assert output_folders(many, None, root=runs) == [runs / "infer" / n for n in ("a-2", "a-3", "b")]
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "predictions.json").write_text("{}")
    with pytest.raises(RvosError, match=r"--out .*out: already holds outputs; pass --overwrite"):
        output_folders(many, tmp_path / "out")
    assert output_folders(many[:1], tmp_path / "out", overwrite=True) == [tmp_path / "out"]


def test_shard_gives_rank_r_the_videos_r_r_plus_n_and_so_on() -> None:
    videos = [f"v{i}" for i in range(7)]
    assert shard(videos, 0, 3) == ["v0", "v3", "v6"]
    assert shard(videos, 1, 3) == ["v1", "v4"]
    assert shard(videos, 2, 3) == ["v2", "v5"]
    assert sorted(video for r in range(3) for video in shard(videos, r, 3)) == videos
    assert shard(videos, 0, 1) == videos
    with pytest.raises(ValueError, match="rank 3 is not in a group of 3"):
        shard(videos, 3, 3)


def bar_predictor(device: str = "cpu") -> Predictor:
    settings = {"size": (32, 48), "window": 4, "overlap": 1}
    return Predictor(BarModel(), build_tokenizer("tiny"), device=device, dtype="fp32", **settings)


def request_for(videos: list[Path], out: Path, **options: object) -> BatchRequest:
    return BatchRequest(videos, output_folders(videos, out), ["the white bar"], save={"json"}, **options)  # type: ignore[arg-type]


def test_a_batch_loads_the_model_once_and_fills_one_folder_per_video(tmp_path: Path) -> None:
    videos = [write_bar_frames(tmp_path / name, count=n) for name, n in (("first", 5), ("second", 9))]
    loads: list[str] = []

    def load(device: str) -> Predictor:
        loads.append(device)
        return bar_predictor(device)

    summary = infer_videos(request_for(videos, tmp_path / "out", stride=2), load, "cpu")
    assert loads == ["cpu"]
    assert (summary["num_videos"], summary["failed"], summary["stride"]) == (2, 0, 2)
    assert [v["num_frames"] for v in summary["videos"]] == [3, 5]  # frames 0, 2, 4 and 0, 2, ..., 8
    assert [v["output_fps"] for v in summary["videos"]] == [15.0, 15.0]
    for video in summary["videos"]:
        predictions = json.loads((Path(video["out_dir"]) / "predictions.json").read_text())
        assert predictions["num_frames"] == video["num_frames"] and predictions["stride"] == 2
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["first", "second"]


def test_a_failing_video_is_recorded_and_the_others_still_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    videos = [write_bar_frames(tmp_path / name, count=4) for name in ("good", "bad", "also_good")]
    from rvos_cli.engine import infer as infer_module

    real = infer_module.run_inference

    def failing(predictor, video, *args, **kwargs):
        if Path(video).name == "bad":
            raise RvosError(f"{video}: truncated or undecodable video after frame 2")
        return real(predictor, video, *args, **kwargs)

    monkeypatch.setattr(infer_module, "run_inference", failing)
    summary = infer_videos(request_for(videos, tmp_path / "out"), bar_predictor, "cpu")
    assert [v["status"] for v in summary["videos"]] == ["ok", "failed", "ok"]
    assert summary["videos"][1]["error"].endswith("truncated or undecodable video after frame 2")
    assert summary["failed"] == 1
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["also_good", "good"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _rank_main(rank: int, world_size: int, port: int, folder: Path) -> None:
    """One torchrun-like process: the environment torchrun sets, then the batch."""
    torch.set_num_threads(1)  # a forked child must not reuse the parent's OpenMP pool (it can hang)
    os.environ.update(
        RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world_size),
        MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port),
    )  # fmt: skip
    videos = sorted(p for p in folder.iterdir() if p.name.startswith("video"))
    summary = infer_videos(request_for(videos, folder / "out"), bar_predictor, "cpu")
    (folder / f"rank{rank}.json").write_text(json.dumps(summary))


def test_two_gloo_ranks_share_the_videos_and_rank_zero_writes_the_summary(tmp_path: Path) -> None:
    for index in range(3):
        write_bar_frames(tmp_path / f"video{index}", count=4)
    mp.start_processes(_rank_main, args=(2, free_port(), tmp_path), nprocs=2, join=True, start_method="fork")
    summary = json.loads((tmp_path / "rank0.json").read_text())
    assert json.loads((tmp_path / "rank1.json").read_text()) is None  # only rank 0 reports
    assert [Path(v["video"]).name for v in summary["videos"]] == ["video0", "video1", "video2"]
    assert [v["rank"] for v in summary["videos"]] == [0, 1, 0]
    assert all((tmp_path / "out" / f"video{i}" / "predictions.json").is_file() for i in range(3))
