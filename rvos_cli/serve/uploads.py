"""Checking a segmentation request before it is queued: sentences, the video, its size and length.

Every problem raises `RvosError` with a message meant for the page (it names the uploaded file as the
user called it, never the server's temporary path).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

from rvos_cli.data.video_io import FOLDER_FPS, VideoInfo
from rvos_cli.errors import RvosError
from rvos_cli.fileio import atomic_open

VIDEO_SUFFIXES = (".mp4", ".m4v", ".mov", ".webm", ".mkv", ".avi")
MAX_SENTENCES = 8  # the overlay palette's size: more sentences would share colours
MAX_SENTENCE_CHARS = 500
CHUNK_BYTES = 1 << 20


def check_sentences(sentences: Sequence[str]) -> list[str]:
    """Strip the sentences and return them; RvosError for none, an empty one, too many or a too long one."""
    cleaned = [s.strip() for s in sentences]
    if not cleaned:
        raise RvosError("add at least one sentence describing the object to segment")
    for number, sentence in enumerate(cleaned, start=1):
        if not sentence:
            raise RvosError(f"sentence {number} is empty: type what to segment, or remove the line")
        if len(sentence) > MAX_SENTENCE_CHARS:
            raise RvosError(f"sentence {number} is longer than {MAX_SENTENCE_CHARS} characters")
    if len(cleaned) > MAX_SENTENCES:
        raise RvosError(f"{len(cleaned)} sentences: at most {MAX_SENTENCES} at a time (one colour each)")
    return cleaned


def too_large_message(name: str, max_mb: float) -> str:
    """The message for an upload over the size limit."""
    return f"{name}: the file is larger than the {max_mb:g} MB this server accepts (--max-upload-mb)"


def save_upload(source: IO[bytes], target: Path, name: str, max_mb: float) -> int:
    """Copy an uploaded file (a binary file object) to `target`; returns its size in bytes.

    RvosError if it is empty or over `max_mb` megabytes (then nothing is left at `target`).
    """
    limit = int(max_mb * 1_000_000)
    size = 0
    with atomic_open(target, "wb") as out:
        while chunk := source.read(CHUNK_BYTES):
            size += len(chunk)
            if size > limit:
                raise RvosError(too_large_message(name, max_mb))
            out.write(chunk)
    if size == 0:
        target.unlink()
        raise RvosError(f"{name}: the file is empty")
    return size


def upload_suffix(name: str) -> str:
    """The suffix to store an upload under: its own if it is a known video suffix, else '.bin'."""
    suffix = Path(name).suffix.lower()
    return suffix if suffix in VIDEO_SUFFIXES else ".bin"


def probe_upload(predictor: Any, path: Path, name: str) -> VideoInfo:
    """`predictor.probe(path)`, with the server's path replaced by the user's file `name` in errors."""
    try:
        return predictor.probe(path)
    except RvosError as err:
        message = str(err).replace(str(path), name)
        raise RvosError(message) from None


def parse_seconds(text: str | None, what: str) -> float | None:
    """A form field holding seconds ('' or None = not given) → float ≥ 0 or None; RvosError otherwise."""
    if text is None or not text.strip():
        return None
    try:
        value = float(text)
    except ValueError:
        raise RvosError(f"{what} {text!r}: expected a number of seconds") from None
    if not math.isfinite(value) or value < 0:
        raise RvosError(f"{what} {text!r}: expected a number of seconds ≥ 0")
    return value


def check_range(
    info: VideoInfo, name: str, start: float, end: float | None, max_seconds: float | None
) -> tuple[int, int]:
    """Check `start`..`end` seconds of a video (frames rounded as the Predictor rounds them).

    Returns the frame range [first, last); RvosError if it is empty or past the end, or lasts longer
    than `max_seconds`.
    """
    fps = info.fps if info.fps > 0 else FOLDER_FPS
    duration = info.num_frames / fps
    first = round(start * fps)
    if first >= info.num_frames:
        raise RvosError(f"{name}: start {start:g} s is at or past the end of the video ({duration:.1f} s)")
    last = info.num_frames if end is None else min(info.num_frames, round(end * fps))
    if last <= first:
        raise RvosError(f"{name}: the end ({end:g} s) must come after the start ({start:g} s)")
    seconds = (last - first) / fps
    if max_seconds is not None and seconds > max_seconds + 0.5 / fps:
        raise RvosError(
            f"{name}: {seconds:.1f} s to segment, but this server takes at most {max_seconds:g} s "
            f"(--max-seconds); set an end time or upload a shorter clip"
        )
    return first, last


def list_videos(folder: Path | None) -> list[str]:
    """The video files (by suffix) directly inside `folder`, sorted by name; [] without a folder."""
    if folder is None:
        return []
    return sorted(p.name for p in folder.iterdir() if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES)
