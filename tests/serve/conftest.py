"""Fixtures of the web server tests: a small clip, and an app over a fake Predictor with a TestClient.

`FakePredictor` stands in for `rvos_cli.Predictor` with masks known exactly: sentence k's mask is the k-th
horizontal band of the frame (K equal bands, top to bottom); its score is 0.5 + 0.1·k. Frames are
decoded with the real video reader, so bad files fail as they would for real. `delay` seconds are slept
before each frame (to keep a job running while a test cancels or queues), and `closed` counts generators
closed before their end: that is how a caller cancels a real Predictor.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from rvos_cli.data.video_io import VideoInfo, iter_frames, probe_video, write_video
from rvos_cli.engine.frame_reader import FrameRange, frame_range
from rvos_cli.engine.predictor import FrameResult
from rvos_cli.serve.app import ServeSettings
from rvos_cli.serve.server import build_app

CLIP_FRAMES, CLIP_FPS, CLIP_HEIGHT, CLIP_WIDTH = 20, 10, 48, 80


def band_masks(height: int, width: int, count: int) -> np.ndarray:
    """`count` horizontal bands covering a `[height, width]` frame top to bottom: `[count, H, W]` bool."""
    edges = np.linspace(0, height, count + 1).round().astype(int)
    masks = np.zeros((count, height, width), dtype=bool)
    for k in range(count):
        masks[k, edges[k] : edges[k + 1]] = True
    return masks


class FakePredictor:
    """`probe` and `stream` as in the Predictor contract, with band masks (see the module docstring)."""

    def __init__(self, delay: float = 0.0) -> None:
        self.device = "cpu"
        self.dtype = "fp32"
        self.config = None
        self.delay = delay
        self.closed = 0
        self.streams_started = 0
        self.started = threading.Event()  # set when a stream yields its first frame

    def probe(self, source: Path) -> VideoInfo:
        """fps, frame count and size of a video file (RvosError for a bad file)."""
        return probe_video(Path(source))

    def resized_size(self, height: int, width: int) -> tuple[int, int]:
        """The size the model would see: the fake works at the original size."""
        return height, width

    def stream(
        self,
        source: Path,
        sentences: Sequence[str],
        start: float = 0.0,
        end: float | None = None,
        stride: int = 1,
        *,
        frames: FrameRange | None = None,
    ) -> Iterator[FrameResult]:
        """Yield a real FrameResult per frame of `frames` (default: [start, end) seconds, every stride-th)."""
        info = self.probe(source)
        frames = frames or frame_range(info, start, end, stride)
        self.streams_started += 1
        masks = band_masks(info.height, info.width, len(sentences))
        scores = [0.5 + 0.1 * k for k in range(len(sentences))]
        finished = False
        try:
            decoded = iter_frames(Path(source), frames.start, frames.end)
            for offset, frame in enumerate(decoded):
                if offset % frames.stride:
                    continue
                time.sleep(self.delay)
                index = frames.start + offset
                yield FrameResult(index, index / frames.fps, frame, masks, scores, tuple(sentences))
                self.started.set()
            finished = True
        finally:
            if not finished:
                self.closed += 1


@pytest.fixture(scope="session")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 20-frame 48×80 mp4 at 10 fps (2 s): a grey square moving over a gradient."""
    path = tmp_path_factory.mktemp("serve_clip") / "moving.mp4"
    frames = []
    for i in range(CLIP_FRAMES):
        frame = np.tile(np.linspace(0, 200, CLIP_WIDTH, dtype=np.uint8)[None, :, None], (CLIP_HEIGHT, 1, 3))
        frame[10:30, 2 * i : 2 * i + 20] = 128
        frames.append(frame)
    write_video(path, frames, fps=CLIP_FPS)
    return path


class Server:
    """A TestClient over an app with a FakePredictor, plus the pieces tests look at."""

    def __init__(self, client: TestClient, predictor: FakePredictor, settings: ServeSettings) -> None:
        self.client = client
        self.predictor = predictor
        self.settings = settings

    def submit(self, video: Path, sentences: list[str], name: str | None = None, **fields: str) -> Any:
        """POST /jobs with `video` uploaded as `name` (default its own name); returns the response."""
        with open(video, "rb") as handle:
            files = {"video": (name or video.name, handle, "application/octet-stream")}
            data = {"sentences": sentences, **fields}
            return self.client.post("/jobs", data=data, files=files)

    def wait(self, job_id: str, states: tuple[str, ...] = ("done", "failed", "cancelled")) -> dict:
        """Poll GET /jobs/{id} until its state is one of `states` (at most 30 s); returns the job."""
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            job = self.client.get(f"/jobs/{job_id}").json()
            if job["state"] in states:
                return job
            time.sleep(0.02)
        raise AssertionError(f"job {job_id} did not reach {states}: {job}")


@contextlib.contextmanager
def running_server(tmp_path: Path, predictor: FakePredictor, **options: Any) -> Iterator[Server]:
    """A running Server; `options` split into ServeSettings fields and JobQueue options."""
    queue_keys = {"keep_results", "keep_seconds", "max_queued"}
    queue_options = {k: v for k, v in options.items() if k in queue_keys}
    settings = ServeSettings(
        work_dir=tmp_path / "work",
        model={"preset": "fake", "device": "cpu", "dtype": "fp32"},
        **{k: v for k, v in options.items() if k not in queue_keys},
    )
    app, _ = build_app(predictor, settings, **queue_options)
    with TestClient(app) as client:
        yield Server(client, predictor, settings)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    with running_server(tmp_path, FakePredictor()) as running:
        yield running


@pytest.fixture
def make_server(tmp_path: Path) -> Iterator[Callable[..., Server]]:
    """`make_server(delay=0.0, **options)`: a Server whose fake sleeps `delay` s per frame (stopped after)."""
    with contextlib.ExitStack() as stack:

        def make(delay: float = 0.0, **options: Any) -> Server:
            return stack.enter_context(running_server(tmp_path, FakePredictor(delay), **options))

        yield make
