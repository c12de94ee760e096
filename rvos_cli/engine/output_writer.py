"""Results out: the files `rvos infer` writes for one video, staged and committed only on success.

Layout of an output folder (K sentences, frames named by their source frame number):
    overlay.mp4              the overlay (one colour per sentence, legend on top) at the processed rate,
                             with the source's audio track when it has one
    overlay.gif              the same, subsampled to at most 150 frames of at most 320 px wide
    masks/<k>/<frame>.png    sentence k's mask, 0/255, original size
    predictions.json         header + per sentence its mean score and per frame a COCO RLE and score
    predictions.jsonl        one JSON line per frame: index, time, and each sentence's score and RLE
Everything goes to a hidden staging folder inside the output folder first (`make_staging`) and is moved
to its final name by `commit` once the whole video succeeded: a failed or interrupted run leaves no
half-written output. Inside the staging folder files are written directly: the folder is the unit that
becomes visible atomically, and an fsync per mask PNG would slow the stream down.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import queue
import shutil
import tempfile
import threading
from collections.abc import Collection, Iterator
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from rvos_cli.data.audio_remux import add_audio_track
from rvos_cli.data.video_io import write_video
from rvos_cli.engine.frame_reader import FrameRange, Source, is_path
from rvos_cli.engine.predictor import FrameResult
from rvos_cli.errors import RvosError
from rvos_cli.fileio import atomic_open
from rvos_cli.viz.animate import write_gif

SAVE_CHOICES = ("mp4", "png", "json", "gif", "jsonl")
DEFAULT_SAVE = frozenset({"mp4", "png", "json"})
# A GIF keeps every frame in memory until it is written, so it is subsampled and shrunk to stay small.
GIF_MAX_FRAMES = 150
GIF_MAX_WIDTH = 320

OVERLAY_MP4 = "overlay.mp4"
OVERLAY_GIF = "overlay.gif"
PREDICTIONS_JSON = "predictions.json"
PREDICTIONS_JSONL = "predictions.jsonl"
MASKS_DIR = "masks"
STAGING_PREFIX = ".rvos-infer-"


def check_save(save: Collection[str]) -> set[str]:
    """The output kinds as a set; RvosError for an empty set or an unknown kind."""
    unknown = sorted(set(save) - set(SAVE_CHOICES))
    if unknown or not save:
        raise RvosError(f"--save {','.join(sorted(save))!r}: choose among {', '.join(SAVE_CHOICES)}")
    return set(save)


def check_writable(out_dir: Path) -> None:
    """Raise RvosError unless `out_dir` is, or could be created as, a writable folder (creates nothing)."""
    existing = out_dir
    while not existing.exists():
        if existing.parent == existing:
            break
        existing = existing.parent
    if existing.exists() and not existing.is_dir():
        what = "is a file" if existing == out_dir else f"cannot be created: {existing} is a file"
        raise RvosError(f"output folder {out_dir} {what}; choose another --out")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise RvosError(f"output folder {out_dir}: {existing} is not writable; choose another --out")


def make_staging(out_dir: Path) -> Path:
    """Create `out_dir` and a hidden staging folder inside it; returns the staging folder."""
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, suffix=".partial", dir=out_dir))
    except OSError as err:
        raise RvosError(f"output folder {out_dir}: cannot write there ({err.strerror or err})") from None


def commit(staging: Path, out_dir: Path, staged: dict[str, Path]) -> dict[str, Path]:
    """Move the staged outputs to their final names in `out_dir` (a previous masks folder is replaced).

    Returns {kind: final path}; the staging folder is removed.
    """
    final: dict[str, Path] = {}
    for kind, path in staged.items():
        target = out_dir / path.name
        if path.is_dir() and target.exists():
            os.replace(target, staging / f"{path.name}.previous")
        os.replace(path, target)
        final[kind] = target
    shutil.rmtree(staging, ignore_errors=True)
    return final


_END = object()


class OutputWriter:
    """Writes finished frames in a background thread into a staging folder (layout in the module doc).

    `add` queues one `FrameResult` (a bounded queue: a slow disk slows the run down instead of filling
    memory); `finish` waits, assembles predictions.json and adds the audio track, returning the staged
    paths; `abort` drops everything. `frames` is the processed range (its source rate and stride give
    the output rate); `source` the video, whose audio track overlay.mp4 keeps.
    """

    def __init__(
        self, staging: Path, sentences: list[str], save: set[str], frames: FrameRange, source: Source
    ) -> None:
        self._staging, self._sentences, self._save = staging, sentences, save
        self._range, self._source = frames, source
        self.rate = frames.fps / frames.stride  # frames per second of the outputs
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=8)
        self._error: BaseException | None = None
        self._aborted = threading.Event()
        self._score_sums = [0.0] * len(sentences)
        self.count = 0
        self._size: tuple[int, int] | None = None
        total = frames.num_frames
        self._gif_stride = max(1, math.ceil(total / GIF_MAX_FRAMES)) if total else 1
        self._gif_frames: list[np.ndarray] = []
        self._handles: dict[str, Any] = {}
        if "png" in save:
            for k in range(len(sentences)):
                (staging / MASKS_DIR / str(k)).mkdir(parents=True)
        for k in range(len(sentences)) if "json" in save else ():
            self._handles[f"rle-{k}"] = open(staging / f"rle-{k}.jsonl", "w")  # noqa: SIM115
        if "jsonl" in save:
            self._handles["jsonl"] = open(staging / PREDICTIONS_JSONL, "w")  # noqa: SIM115
        self._thread = threading.Thread(target=self._run, name="rvos-write", daemon=True)
        self._thread.start()

    def add(self, result: FrameResult) -> None:
        """Queue one finished frame; re-raises an error of the writer thread."""
        while True:
            if self._error is not None:
                raise self._error
            try:
                self._queue.put(result, timeout=0.1)
                return
            except queue.Full:
                continue

    def _results(self) -> Iterator[FrameResult]:
        while True:
            item = self._queue.get()
            if self._aborted.is_set():
                raise RuntimeError("inference aborted")  # makes write_video drop its temporary file
            if item is _END:
                return
            yield item

    def _run(self) -> None:
        try:
            results = self._results()
            if "mp4" in self._save:
                overlays = (self._write_frame(result) for result in results)
                write_video(self._staging / OVERLAY_MP4, overlays, self.rate)  # type: ignore[arg-type]
            else:
                for result in results:
                    self._write_frame(result)
        except BaseException as error:
            self._error = error

    def _write_frame(self, result: FrameResult) -> np.ndarray | None:
        """Write the PNGs / JSON lines of one frame; return its overlay `[36·K + H0, W0, 3]` if needed."""
        self._size = self._size or result.frame.shape[:2]
        rles = [result.rle(k) for k in range(len(self._sentences))] if self._handles else []
        for k, score in enumerate(result.scores):
            self._score_sums[k] += score
            if "png" in self._save:
                path = self._staging / MASKS_DIR / str(k) / f"{result.index:05d}.png"
                Image.fromarray(result.masks[k].astype(np.uint8) * 255).save(path, format="PNG")
            if "json" in self._save:
                line = {"frame": result.index, "score": round(score, 6), "segmentation": rles[k]}
                self._handles[f"rle-{k}"].write(json.dumps(line) + "\n")
        if "jsonl" in self._save:
            self._handles["jsonl"].write(json.dumps(frame_line(result, rles)) + "\n")
        position = self.count
        self.count += 1
        if "mp4" not in self._save and "gif" not in self._save:
            return None
        overlay = result.overlay()
        if "gif" in self._save:
            self._keep_for_gif(position, overlay)
        return overlay

    def _keep_for_gif(self, position: int, overlay: np.ndarray) -> None:
        """Keep every `_gif_stride`-th overlay (shrunk); with an unknown length, halve them when full."""
        if position % self._gif_stride:
            return
        self._gif_frames.append(shrink(overlay, GIF_MAX_WIDTH))
        if len(self._gif_frames) > GIF_MAX_FRAMES:
            self._gif_frames = self._gif_frames[::2]
            self._gif_stride *= 2

    def finish(self) -> dict[str, Path]:
        """Wait for the queued frames, close the staged files, assemble predictions.json, add audio.

        Returns {'mp4' | 'gif' | 'json' | 'jsonl' | 'png': staged path}; re-raises a writing error.
        """
        self._queue.put(_END)
        self._thread.join()
        self._close_handles()
        if self._error is not None:
            raise self._error
        staged: dict[str, Path] = {}
        if "mp4" in self._save:
            staged["mp4"] = self._staging / OVERLAY_MP4
            if is_path(self._source) and Path(self._source).is_file():  # type: ignore[arg-type]
                first, last = self._range.start, self._range.start + self.count * self._range.stride
                span = (first / self._range.fps, last / self._range.fps)
                add_audio_track(staged["mp4"], Path(self._source), span)  # type: ignore[arg-type]
        if "gif" in self._save:
            staged["gif"] = write_gif(
                self._staging / OVERLAY_GIF, self._gif_frames, self.rate / self._gif_stride
            )
            self._gif_frames = []
        if "json" in self._save:
            staged["json"] = self._assemble_json()
        if "jsonl" in self._save:
            staged["jsonl"] = self._staging / PREDICTIONS_JSONL
        if "png" in self._save:
            staged["png"] = self._staging / MASKS_DIR
        return staged

    def _close_handles(self) -> None:
        for handle in self._handles.values():
            handle.close()

    def abort(self) -> None:
        """Stop the writer thread, dropping queued frames; staged files are left for the caller to delete."""
        self._aborted.set()
        with contextlib.suppress(queue.Full):
            self._queue.put_nowait(_END)
        while self._thread.is_alive():
            with contextlib.suppress(queue.Empty):
                self._queue.get(timeout=0.05)  # unblock a full queue so the thread can see the abort
            with contextlib.suppress(queue.Full):
                self._queue.put_nowait(_END)
        with contextlib.suppress(OSError):  # the files are dropped anyway; keep the first error
            self._close_handles()

    def mean_scores(self) -> list[float]:
        """Per sentence, the mean over the written frames of the TSVS sequence score."""
        return [total / self.count if self.count else 0.0 for total in self._score_sums]

    def _assemble_json(self) -> Path:
        """Write `predictions.json` from the per-sentence RLE lines without loading them all at once."""
        header: dict[str, Any] = {
            "sentences": self._sentences,
            "fps": self._range.fps,
            "size": list(self._size or (0, 0)),
            "first_frame": self._range.start,
            "num_frames": self.count,
        }
        if self._range.stride > 1:  # frame numbers stay the source's; every stride-th is present
            header["stride"] = self._range.stride
        path = self._staging / PREDICTIONS_JSON
        with atomic_open(path) as out:
            out.write(json.dumps(header)[:-1] + ', "predictions": [')
            for k, sentence in enumerate(self._sentences):
                entry = {"sentence_index": k, "sentence": sentence, "score": round(self.mean_scores()[k], 6)}
                out.write(("" if k == 0 else ", ") + json.dumps(entry)[:-1] + ', "frames": [')
                with open(self._staging / f"rle-{k}.jsonl") as lines:
                    for i, line in enumerate(lines):
                        out.write(("" if i == 0 else ", ") + line.rstrip("\n"))
                out.write("]}")
            out.write("]}\n")
        for k in range(len(self._sentences)):
            (self._staging / f"rle-{k}.jsonl").unlink()
        return path


def frame_line(result: FrameResult, rles: list[dict]) -> dict[str, Any]:
    """One predictions.jsonl line: {frame, time, sentences: [{sentence_index, score, segmentation}]}."""
    return {
        "frame": result.index,
        "time": round(result.time, 6),
        "sentences": [
            {"sentence_index": k, "score": round(score, 6), "segmentation": rles[k]}
            for k, score in enumerate(result.scores)
        ],
    }


def shrink(image: np.ndarray, max_width: int) -> np.ndarray:
    """Downscale an RGB uint8 image `[H, W, 3]` to at most `max_width` wide (aspect kept)."""
    height, width = image.shape[:2]
    if width <= max_width:
        return image
    new_size = (max_width, max(1, round(height * max_width / width)))
    return np.asarray(Image.fromarray(image).resize(new_size, Image.BILINEAR))
