"""Frames in: which frames of a source to process, and a background thread that decodes and normalises them.

A source is a video file, a folder of frame images, or any iterable of RGB uint8 frames `[H0, W0, 3]`
(a list, an array `[N, H0, W0, 3]`, a generator, ...). `FrameRange` says which of its frames are processed
(from `start`, before `end`, every `stride`-th); `FrameReader` decodes them in a thread, resizes and
normalises each one, and hands them over through a bounded queue, so at most `capacity` frames wait in
memory whatever the length of the video.
"""

from __future__ import annotations

import itertools
import math
import queue
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rvos_cli.data.transforms import VideoTransforms
from rvos_cli.data.video_io import FOLDER_FPS, VideoInfo, iter_frames, probe_video
from rvos_cli.errors import RvosError

# A path (file or folder of frames) or an iterable of RGB uint8 frames [H0, W0, 3].
Source = str | Path | Iterable[np.ndarray]


def is_path(source: Source) -> bool:
    """True when `source` names a file or folder rather than holding frames."""
    return isinstance(source, (str, Path))


def probe_source(source: Source, fps: float | None = None) -> VideoInfo | None:
    """What a source is: `VideoInfo` (fps, frame count, size) of a path or of a sized iterable of frames.

    A file or folder is probed (RvosError if missing, undecodable or stream-less). A list or array of
    frames gets `fps` (default 30) and its first frame's size. A one-shot iterator cannot be looked into
    without consuming it: None.
    """
    if is_path(source):
        return probe_video(Path(source))  # type: ignore[arg-type]
    if not hasattr(source, "__len__") or not hasattr(source, "__getitem__"):
        return None
    count = len(source)  # type: ignore[arg-type]
    if count == 0:
        raise RvosError("the frame sequence is empty: give at least one frame")
    height, width = check_frame(np.asarray(source[0]), 0).shape[:2]  # type: ignore[index]
    return VideoInfo(fps=fps or FOLDER_FPS, num_frames=count, height=height, width=width)


def check_frame(frame: np.ndarray, index: int) -> np.ndarray:
    """Return `frame` if it is RGB uint8 `[H, W, 3]`; RvosError naming frame `index` otherwise."""
    if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
        raise RvosError(f"frame {index}: expected RGB uint8 [H, W, 3], got {frame.dtype} {list(frame.shape)}")
    return frame


@dataclass(frozen=True)
class FrameRange:
    """The frames of a source to process: `start`, `start + stride`, ... before `end`.

    `fps` is the source's frame rate (30 for a folder, a file without a rate, or frames given in memory);
    `end` is None for a stream of unknown length (until it ends); `info` is the probe of the source, None
    for a one-shot iterator.
    """

    fps: float
    start: int
    end: int | None
    stride: int = 1
    info: VideoInfo | None = None

    @property
    def num_frames(self) -> int | None:
        """How many frames are processed (None while the length of the stream is unknown)."""
        return None if self.end is None else math.ceil((self.end - self.start) / self.stride)

    def source_index(self, position: int) -> int:
        """The source frame number of the `position`-th processed frame."""
        return self.start + position * self.stride


def frame_range(
    info: VideoInfo | None,
    start: float = 0.0,
    end: float | None = None,
    stride: int = 1,
    fps: float | None = None,
) -> FrameRange:
    """Turn `start` / `end` seconds (end exclusive, None = to the end) and a frame stride into a FrameRange.

    `info` is the source's probe (None for a one-shot iterator: the end is then found when it runs out).
    Raises RvosError for negative times, a start at or past the end, an end not after the start, or a
    stride below 1.
    """
    if stride < 1:
        raise RvosError(f"--stride {stride}: must be at least 1 (every frame)")
    if start < 0 or (end is not None and end < 0):
        raise RvosError(f"--start {start} / --end {end}: times must not be negative")
    rate = info.fps if info is not None and info.fps > 0 else (fps or FOLDER_FPS)
    first = round(start * rate)
    last = None if end is None else round(end * rate)
    if info is not None:
        if first >= info.num_frames:
            duration = info.num_frames / rate
            raise RvosError(f"--start {start} s is at or past the end of the video ({duration:.2f} s)")
        last = info.num_frames if last is None else min(info.num_frames, last)
    if last is not None and last <= first:
        raise RvosError(f"--end {end} s must come after --start {start} s (at least one frame)")
    return FrameRange(fps=rate, start=first, end=last, stride=stride, info=info)


def source_frames(source: Source, start: int, end: int | None) -> Iterator[np.ndarray]:
    """The source's frames `start..end-1` (end None = all), as RGB uint8 `[H0, W0, 3]`."""
    if is_path(source):
        return iter_frames(Path(source), start, end)  # type: ignore[arg-type]
    return itertools.islice(iter(source), start, end)  # type: ignore[arg-type]


_END = object()


class FrameReader:
    """Decodes, resizes and normalises the frames of a `FrameRange` in a background thread.

    At most `capacity` frames wait in the queue. `get()` returns (source frame index, original RGB uint8
    `[H0, W0, 3]`, normalised float32 `[3, h, w]`) in order, None once the range is done, and re-raises any
    decoding error in the caller's thread. `close()` stops the thread (also when it is blocked on a full
    queue) and waits for it.
    """

    def __init__(self, source: Source, frames: FrameRange, transform: VideoTransforms, capacity: int) -> None:
        self._source = source
        self._range = frames
        self._transform = transform
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=max(1, capacity))
        self._stop = threading.Event()
        self._delivered = 0
        self._thread = threading.Thread(target=self._run, name="rvos-decode", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        frames = source_frames(self._source, self._range.start, self._range.end)
        shape: tuple[int, ...] | None = None
        try:
            for offset, frame in enumerate(frames):
                if offset % self._range.stride:
                    continue
                frame = check_frame(np.asarray(frame), self._range.start + offset)
                if shape is not None and frame.shape != shape:
                    raise RvosError(
                        f"frame {self._range.start + offset} is {list(frame.shape[:2])}, "
                        f"the first one was {list(shape[:2])}: all frames must have one size"
                    )
                shape = frame.shape
                normalised, _, _ = self._transform(frame[None], [None], "")  # [1, 3, h, w]
                if not self._put((self._range.start + offset, frame, normalised[0])):
                    return
            self._put(_END)
        except BaseException as error:  # handed to the consumer, who raises it
            self._put(error)
        finally:
            close = getattr(frames, "close", None)
            if close is not None:
                close()

    def _put(self, item: Any) -> bool:
        """Block until there is room, unless the reader is being closed (then return False)."""
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def get(self) -> tuple[int, np.ndarray, torch.Tensor] | None:
        """The next frame (see the class doc), None at the end; RvosError if a file ends early."""
        item = self._queue.get()
        if item is _END:
            expected = self._range.num_frames
            if is_path(self._source) and expected is not None and self._delivered < expected:
                raise RvosError(
                    f"{self._source}: only {self._delivered} frames decode from frame {self._range.start}, "
                    f"expected {expected}"
                )
            return None
        if isinstance(item, BaseException):
            raise item
        self._delivered += 1
        return item

    def close(self) -> None:
        """Stop decoding and wait for the thread to end."""
        self._stop.set()
        self._thread.join()
