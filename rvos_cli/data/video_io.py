"""Reading and writing videos: container files (mp4, avi, mov, webm, mkv) through PyAV, or a folder of frames.

Frames are always RGB uint8 arrays `[H, W, 3]`. Reading streams one decoded frame at a time, so a long
video never sits in memory whole unless `read_frames` is asked for all of it. Every failure to read a
user's file (missing, not a video, no video stream, truncated) raises `RvosError("<path>: <what>")`.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from PIL import Image

from rvos_cli.errors import RvosError
from rvos_cli.fileio import atomic_path

FRAME_SUFFIXES = (".jpg", ".jpeg", ".png")
FOLDER_FPS = 30.0
# Container (FFmpeg muxer name) per suffix `write_video` accepts.
CONTAINER_FORMATS = {".mp4": "mp4", ".mov": "mov", ".mkv": "matroska", ".avi": "avi"}
WRITE_SUFFIXES = tuple(CONTAINER_FORMATS)
# Tried in order; the first encoder that this PyAV build ships is used (libx264 in the standard wheels).
_ENCODER_PREFERENCE = ("libx264", "h264", "mpeg4")


@dataclass(frozen=True)
class VideoInfo:
    """What a video is: frames per second, number of frames and frame size in pixels."""

    fps: float
    num_frames: int
    height: int
    width: int


def probe_video(path: Path) -> VideoInfo:
    """Return fps, frame count and size of a video file or a folder of frames.

    The frame count comes from the container when it records one; otherwise the video is decoded once
    to count. A folder of frames (sorted *.jpg / *.jpeg / *.png) has fps 30 and the size of its first image.
    """
    path = Path(path)
    if path.is_dir():
        files = _frame_files(path)
        height, width = _read_image(files[0]).shape[:2]
        return VideoInfo(fps=FOLDER_FPS, num_frames=len(files), height=height, width=width)
    container = _open_input(path)
    try:
        stream = _video_stream(container, path)
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        fps = float(rate) if rate else 0.0
        height, width = stream.codec_context.height, stream.codec_context.width
        num_frames = int(stream.frames or 0)
    finally:
        container.close()
    if num_frames <= 0:
        num_frames = sum(1 for _ in iter_frames(path))
    if num_frames <= 0:
        raise RvosError(f"{path}: the video stream holds no decodable frame")
    return VideoInfo(fps=fps, num_frames=num_frames, height=height, width=width)


def iter_frames(path: Path, start: int = 0, end: int | None = None) -> Iterator[np.ndarray]:
    """Yield the frames `start, start+1, ..., end-1` (0-based, like a slice) as RGB uint8 `[H, W, 3]`.

    `end=None` reads to the last frame; an `end` past the last frame stops at the last frame, like slicing.
    Frames before `start` are decoded and dropped (frame-accurate, no keyframe seeking).
    """
    path = Path(path)
    if start < 0 or (end is not None and end < 0):
        raise RvosError(f"{path}: frame range [{start}, {end}) must not be negative")
    if path.is_dir():
        yield from _iter_folder(path, start, end)
        return
    container = _open_input(path)
    try:
        stream = _video_stream(container, path)
        stream.thread_type = "AUTO"
        declared = int(stream.frames or 0)
        index = 0
        try:
            for frame in container.decode(stream):
                if end is not None and index >= end:
                    return
                if index >= start:
                    yield frame.to_ndarray(format="rgb24")
                index += 1
        except av.error.FFmpegError as error:
            raise RvosError(
                f"{path}: truncated or undecodable video after frame {index} ({_reason(error)}); "
                f"to use the frames before it, end before frame {index}"
            ) from error
        if index < declared and (end is None or end > index):
            raise RvosError(
                f"{path}: truncated video: the container says {declared} frames, only the first {index} "
                f"decode (an incomplete download?); to use them, end before frame {index}"
            )
    finally:
        container.close()


def read_frames(path: Path, indices: Sequence[int] | None = None) -> np.ndarray:
    """Read the frames at the given 0-based `indices` (any order, repeats allowed), or all frames if None.

    Returns a uint8 array `[N, H, W, 3]` with the frames in the order of `indices`.
    """
    path = Path(path)
    if indices is None:
        frames = list(iter_frames(path))
        if not frames:
            raise RvosError(f"{path}: the video holds no decodable frame")
        return np.stack(frames)
    wanted = [int(i) for i in indices]
    if not wanted:
        raise RvosError(f"{path}: no frame indices were asked for")
    if min(wanted) < 0:
        raise RvosError(f"{path}: frame index {min(wanted)} is negative")
    needed = set(wanted)
    found: dict[int, np.ndarray] = {}
    first = min(needed)
    decoded = 0
    for offset, frame in enumerate(iter_frames(path, first, max(needed) + 1)):
        decoded = offset + 1
        if first + offset in needed:
            found[first + offset] = frame
    missing = sorted(needed - found.keys())
    if missing:
        length = first + decoded if decoded else probe_video(path).num_frames
        raise RvosError(f"{path}: frame index {missing[0]} is out of range (the video has {length} frames)")
    return np.stack([found[i] for i in wanted])


def write_video(path: Path, frames: Iterable[np.ndarray], fps: float, crf: int = 18) -> None:
    """Encode RGB uint8 frames `[H, W, 3]` as H.264 (yuv420p) into `path` (.mp4, .mov, .mkv or .avi).

    Odd heights/widths are padded to even by repeating the last row/column (yuv420p needs even sizes), so
    the file's frame size may be one pixel larger than the input. The file is written next to `path` under
    a temporary name and renamed when complete, so a crash never leaves a half-written video at `path`.
    """
    path = Path(path)
    if path.suffix.lower() not in WRITE_SUFFIXES:
        raise RvosError(f"{path}: can only write videos ending in {', '.join(WRITE_SUFFIXES)}")
    if fps <= 0:
        raise RvosError(f"{path}: fps must be positive, got {fps}")
    # The temporary name ends in .tmp, so the container format is named instead of guessed from it.
    with atomic_path(path) as tmp:
        container = av.open(str(tmp), mode="w", format=CONTAINER_FORMATS[path.suffix.lower()])
        try:
            stream = None
            size: tuple[int, int] = (0, 0)
            for index, frame in enumerate(frames):
                frame = np.asarray(frame)
                if stream is None:
                    size = frame.shape[:2]
                _check_frame(path, index, frame, size)
                if stream is None:
                    stream = _add_video_stream(container, size, fps, crf)
                padded = np.pad(frame, ((0, size[0] % 2), (0, size[1] % 2), (0, 0)), mode="edge")
                video_frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(padded), format="rgb24")
                video_frame.pts = index
                container.mux(stream.encode(video_frame))
            if stream is None:
                raise RvosError(f"{path}: no frames to write")
            container.mux(stream.encode(None))  # flush the frames the encoder still holds
        finally:
            container.close()


def _add_video_stream(
    container: av.container.OutputContainer, size: tuple[int, int], fps: float, crf: int
) -> av.video.stream.VideoStream:
    """Add a yuv420p video stream of the even-padded `size` (H, W) to an output container."""
    codec = video_encoder()
    stream = container.add_stream(codec, rate=Fraction(fps).limit_denominator(1001))
    stream.height, stream.width = size[0] + size[0] % 2, size[1] + size[1] % 2
    stream.pix_fmt = "yuv420p"
    if av.codec.Codec(codec, "w").name == "libx264":
        # mbtree rate control makes this build's output vary from run to run; without it same frames
        # give the same bytes, at a negligible cost in size at high quality.
        stream.options = {"crf": str(crf), "x264-params": "mbtree=0"}
    elif codec == "h264":
        stream.options = {"crf": str(crf)}
    else:  # mpeg4 has no crf; a generous bit rate keeps it near-lossless at these sizes
        stream.bit_rate = 8 * stream.height * stream.width * max(1, round(fps))
    return stream


def _check_frame(path: Path, index: int, frame: np.ndarray, size: tuple[int, int]) -> None:
    """Raise if a frame to write is not uint8 `[H, W, 3]` of the size of the first frame."""
    if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
        raise RvosError(
            f"{path}: frame {index} must be uint8 [H, W, 3], got {frame.dtype} {list(frame.shape)}"
        )
    if frame.shape[:2] != size:
        raise RvosError(f"{path}: frame {index} is {list(frame.shape[:2])}, frame 0 was {list(size)}")


@functools.lru_cache(maxsize=1)
def video_encoder() -> str:
    """Return the name of the encoder `write_video` uses: the first of libx264, h264, mpeg4 PyAV ships."""
    for name in _ENCODER_PREFERENCE:
        try:
            av.codec.Codec(name, "w")
        except Exception:  # PyAV raises different types for unknown codecs across versions
            continue
        return name
    raise RvosError("PyAV ships no H.264 or MPEG-4 encoder; install the standard `av` wheel")


def _open_input(path: Path) -> av.container.InputContainer:
    """Open `path` for reading, turning every failure into an RvosError naming the file."""
    if not path.exists():
        raise RvosError(f"{path}: no such file or folder")
    try:
        return av.open(str(path), mode="r")
    except av.error.FFmpegError as error:
        raise RvosError(
            f"{path}: not a readable video ({_reason(error)}); not a video file, or an incomplete download? "
            "(an .mp4 or .mov keeps its index at the end)"
        ) from error


def _reason(error: av.error.FFmpegError) -> str:
    """FFmpeg's short description of an error, without the errno and file name PyAV adds."""
    return str(error.strerror or error)


def _video_stream(container: av.container.InputContainer, path: Path) -> av.video.stream.VideoStream:
    """Return the first video stream of an open container."""
    if not container.streams.video:
        audio = len(container.streams.audio)
        container.close()
        if audio:
            raise RvosError(f"{path}: holds only audio ({audio} audio stream(s)), no video stream to segment")
        raise RvosError(
            f"{path}: not a readable video (no stream found); not a video file, or an incomplete download? "
            "(an .mp4 or .mov keeps its index at the end)"
        )
    return container.streams.video[0]


def _frame_files(folder: Path) -> list[Path]:
    """The image files of a frame folder, sorted by name."""
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in FRAME_SUFFIXES)
    if not files:
        raise RvosError(f"{folder}: the folder holds no frames (*.jpg, *.jpeg or *.png)")
    return files


def _read_image(file: Path) -> np.ndarray:
    """Read one image file as RGB uint8 `[H, W, 3]`."""
    try:
        with Image.open(file) as image:
            return np.asarray(image.convert("RGB"))
    except OSError as error:
        raise RvosError(f"{file}: not a readable image ({error})") from error


def _iter_folder(folder: Path, start: int, end: int | None) -> Iterator[np.ndarray]:
    """Yield frames `start..end-1` of a folder of images, checking that they all have one size."""
    files = _frame_files(folder)
    size: tuple[int, ...] | None = None
    for file in files[start:end]:
        frame = _read_image(file)
        if size is None:
            size = frame.shape
        elif frame.shape != size:
            raise RvosError(f"{file}: frame size {list(frame.shape[:2])} differs from {list(size[:2])}")
        yield frame
