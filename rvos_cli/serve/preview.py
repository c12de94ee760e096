"""The overlay preview the page shows: WebM/VP9 (every browser decodes it), or an animated GIF.

The overlay MP4 is H.264, which some browsers (Chromium builds without proprietary codecs, for one)
cannot play, so the page plays this preview instead and offers the MP4 as a download. It is smaller than
the overlay: at most `max_width` px wide and `max_fps` frames per second, encoded with libvpx's realtime
settings so that it costs a fraction of the inference time. PyAV builds without libvpx-vp9 get a GIF.
"""

from __future__ import annotations

import contextlib
import functools
import math
import sys
from fractions import Fraction
from pathlib import Path
from types import TracebackType

import av
import numpy as np

from rvos_cli.fileio import atomic_path
from rvos_cli.viz.animate import write_gif

VP9 = "libvpx-vp9"
PREVIEW_MAX_WIDTH = 480
# Encoding the preview is the page's largest cost beside the model (bikes.mp4: 0.47 s of CPU at 12.5 fps,
# on the cores inference uses): 10 fps keeps motion readable for a third less.
PREVIEW_MAX_FPS = 10.0
# A GIF holds its frames in memory until written, so it gets fewer of them.
GIF_MAX_FRAMES = 150
VP9_OPTIONS = {"deadline": "realtime", "cpu-used": "8", "lag-in-frames": "0", "crf": "32", "b": "0"}


@functools.lru_cache(maxsize=1)
def has_vp9() -> bool:
    """True when this PyAV build can encode VP9."""
    try:
        av.codec.Codec(VP9, "w")
    except Exception:  # PyAV raises different types for unknown codecs across versions
        return False
    return True


def preview_name() -> str:
    """The preview's file name: 'preview.webm', or 'preview.gif' without a VP9 encoder."""
    return "preview.webm" if has_vp9() else "preview.gif"


def preview_size(height: int, width: int, max_width: int = PREVIEW_MAX_WIDTH) -> tuple[int, int]:
    """(height, width) of the preview of a `height`×`width` frame: at most `max_width` wide, both even."""
    scale = min(1.0, max_width / width)
    return max(2, round(height * scale / 2) * 2), max(2, round(width * scale / 2) * 2)


class PreviewWriter:
    """Writes every `step`-th frame added, shrunk, to `path` (WebM/VP9 or GIF, see `preview_name`).

    `fps` is the source's frame rate; the preview runs at `fps / step` ≤ `max_fps`, so it lasts as long as
    the overlay. `num_frames` (the planned count) spreads a GIF's frames over the whole video. Use as a
    context manager: the file appears under its final name only when the block ends without an error.
    """

    def __init__(
        self,
        path: Path,
        fps: float,
        num_frames: int,
        max_width: int = PREVIEW_MAX_WIDTH,
        max_fps: float = PREVIEW_MAX_FPS,
    ) -> None:
        self.path = Path(path)
        self._vp9 = self.path.suffix == ".webm"
        self._step = max(1, math.ceil(fps / max_fps))
        if not self._vp9:
            self._step = max(self._step, math.ceil(num_frames / GIF_MAX_FRAMES))
        self._rate = fps / self._step
        self._max_width = max_width
        self._count = 0
        self._exits = contextlib.ExitStack()
        self._container: av.container.OutputContainer | None = None
        self._stream: av.video.stream.VideoStream | None = None
        self._gif_frames: list[np.ndarray] = []
        self._temp: Path | None = None

    def __enter__(self) -> PreviewWriter:
        self._temp = self._exits.enter_context(atomic_path(self.path))
        return self

    def add(self, frame: np.ndarray) -> None:
        """Offer one overlay frame, RGB uint8 `[H, W, 3]` (all of the same size); every `step`-th is kept."""
        position = self._count
        self._count += 1
        if position % self._step:
            return
        height, width = preview_size(*frame.shape[:2], self._max_width)
        image = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
        if not self._vp9:
            self._gif_frames.append(image.reformat(width=width, height=height).to_ndarray(format="rgb24"))
            return
        if self._stream is None:
            self._open(height, width)
        image = image.reformat(width=width, height=height, format="yuv420p")
        image.pts = position // self._step
        self._container.mux(self._stream.encode(image))

    def _open(self, height: int, width: int) -> None:
        self._container = av.open(str(self._temp), mode="w", format="webm")
        self._stream = self._container.add_stream(VP9, rate=Fraction(self._rate).limit_denominator(1001))
        self._stream.height, self._stream.width = height, width
        self._stream.pix_fmt = "yuv420p"
        self._stream.options = dict(VP9_OPTIONS)

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            self._close(flush=kind is None)
        except BaseException:
            self._exits.__exit__(*sys.exc_info())  # drops the temporary file
            raise
        self._exits.__exit__(kind, error, tb)  # renames it to `path` only when there was no error

    def _close(self, flush: bool) -> None:
        """Finish the encoding (`flush`: write what the encoder still holds, and the GIF) and close."""
        if self._container is not None:
            try:
                if flush:
                    self._container.mux(self._stream.encode(None))
            finally:
                self._container.close()
        if flush and not self._vp9:
            write_gif(self._temp, self._gif_frames, self._rate)
        self._gif_frames = []
