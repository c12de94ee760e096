"""`rvos infer`: segment what one or several sentences refer to in any video, streaming.

Shape legend: T frames in a window, K sentences, Nq object queries, S tokens, h×w the resized frame size
(= the padded size: one clip needs no padding), H0×W0 the original frame size.

Pipeline (spec §8.2–§8.4, §10):
  decoder thread: frames → resize (short side / max size) → ImageNet normalisation → bounded queue
  main thread:    overlapping windows (`plan_windows`) → one `forward_sentences` call per window (the K
                  sentences share one visual pass) → one `WindowLinker` per sentence → finished frames
  writer thread:  per-frame mask PNGs, COCO RLE lines, the overlay video (and GIF), as frames finish.
Queues are bounded and finished frames are written at once, so memory does not grow with the video.

Everything is written into a hidden staging folder inside the output folder and moved to its final name
only when the whole run succeeded: an interrupted or failed run leaves no half-written output behind.
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
import time
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from rvos_cli.core.inference import WindowLinker, masks_to_rle, plan_windows
from rvos_cli.core.model import MTTR, Tokenizer
from rvos_cli.data.transforms import VideoTransforms
from rvos_cli.data.video_io import FOLDER_FPS, VideoInfo, iter_frames, probe_video, write_video
from rvos_cli.errors import RvosError
from rvos_cli.viz.animate import write_gif
from rvos_cli.viz.overlay import legend_strip, overlay_masks

# The MTTR demo's long-video windowing (spec §8.4).
DEFAULT_WINDOW = 24
DEFAULT_OVERLAP = 6
# Official MTTR checkpoints carry no config; their architecture is the paper's, and the demo used this one.
DEFAULT_PRESET = "mttr-ytvos"
SAVE_CHOICES = ("mp4", "png", "json", "gif")
DEFAULT_SAVE = frozenset({"mp4", "png", "json"})
DTYPES = ("fp32", "bf16")
# A GIF keeps every frame in memory until it is written, so it is subsampled and shrunk to stay small.
GIF_MAX_FRAMES = 150
GIF_MAX_WIDTH = 320

OVERLAY_MP4 = "overlay.mp4"
OVERLAY_GIF = "overlay.gif"
PREDICTIONS_JSON = "predictions.json"
MASKS_DIR = "masks"


@dataclass(frozen=True)
class FrameRange:
    """The part of a video to process: its `info` and the half-open frame range [start, end)."""

    info: VideoInfo
    start: int
    end: int

    @property
    def num_frames(self) -> int:
        """Number of frames to process."""
        return self.end - self.start

    @property
    def fps(self) -> float:
        """Frames per second of the source (a folder of frames, or a file without a rate, gets 30)."""
        return self.info.fps if self.info.fps > 0 else FOLDER_FPS


@dataclass
class InferResult:
    """What a run did: frames processed, timing, the scores and the final output paths.

    `outputs` maps 'mp4' / 'gif' / 'json' to files and 'png' to the masks folder. `scores[k]` is the mean
    over the frames of sentence k's TSVS sequence score. Sizes are (height, width).
    """

    video: Path
    sentences: list[str]
    first_frame: int
    num_frames: int
    fps: float
    orig_size: tuple[int, int]
    resized_size: tuple[int, int]
    seconds: float
    scores: list[float]
    outputs: dict[str, Path] = field(default_factory=dict)

    @property
    def frames_per_second(self) -> float:
        """Processing speed, end to end (decoding, model, post-processing and writing)."""
        return self.num_frames / self.seconds if self.seconds > 0 else float("inf")


def check_inference_inputs(
    video: Path,
    sentences: Sequence[str],
    out_dir: Path,
    *,
    window: int = DEFAULT_WINDOW,
    overlap: int = DEFAULT_OVERLAP,
    size: tuple[int, int | None] = (360, 640),
    start: float = 0.0,
    end: float | None = None,
    dtype: str = "fp32",
    save: Collection[str] = DEFAULT_SAVE,
) -> FrameRange:
    """Validate everything about a request that can be checked without the model, cheapest first.

    `start` / `end` are times in seconds (end exclusive, None = to the end). Probes the video (missing,
    undecodable or stream-less files fail here) and checks that `out_dir` could be created and written,
    without creating anything. Returns the frame range to process; raises RvosError naming the problem.
    """
    if not sentences:
        raise RvosError("give at least one sentence describing the object to segment")
    for index, sentence in enumerate(sentences):
        if not sentence.strip():
            raise RvosError(f"sentence {index + 1} is empty: give the words that describe the object")
    unknown = sorted(set(save) - set(SAVE_CHOICES))
    if unknown or not save:
        raise RvosError(f"--save {','.join(sorted(save))!r}: choose among {', '.join(SAVE_CHOICES)}")
    if dtype not in DTYPES:
        raise RvosError(f"--dtype {dtype!r}: expected one of {', '.join(DTYPES)}")
    short, longest = size
    if short < 1 or (longest is not None and longest < short):
        raise RvosError(f"--size {short},{longest}: expected SHORT >= 1 and MAX >= SHORT")
    plan_windows(1, window, overlap)  # raises on a bad window / overlap
    _check_writable(Path(out_dir))
    info = probe_video(Path(video))
    return _frame_range(info, start, end)


def _check_writable(out_dir: Path) -> None:
    """Raise RvosError unless `out_dir` is, or could be created as, a writable folder."""
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


def _frame_range(info: VideoInfo, start: float, end: float | None) -> FrameRange:
    """Turn --start / --end seconds into a frame range of a video of `info.num_frames` frames."""
    fps = info.fps if info.fps > 0 else FOLDER_FPS
    duration = info.num_frames / fps
    if start < 0 or (end is not None and end < 0):
        raise RvosError(f"--start {start} / --end {end}: times must not be negative")
    first = round(start * fps)
    if first >= info.num_frames:
        raise RvosError(f"--start {start} s is at or past the end of the video ({duration:.2f} s)")
    last = info.num_frames if end is None else min(info.num_frames, round(end * fps))
    if last <= first:
        raise RvosError(f"--end {end} s must come after --start {start} s (at least one frame)")
    return FrameRange(info, first, last)


def run_inference(
    video: Path,
    sentences: Sequence[str],
    model: MTTR,
    tokenizer: Tokenizer,
    out_dir: Path,
    *,
    window: int = DEFAULT_WINDOW,
    overlap: int = DEFAULT_OVERLAP,
    size: tuple[int, int | None] = (360, 640),
    start: float = 0.0,
    end: float | None = None,
    device: str = "cpu",
    dtype: str = "fp32",
    save: Collection[str] = DEFAULT_SAVE,
    progress: Callable[[int, int], None] | None = None,
    frame_range: FrameRange | None = None,
) -> InferResult:
    """Segment the object each sentence refers to in every frame of `video` and write the outputs.

    `video` is a video file or a folder of frames; `sentences` K strings; `size` (short side, max long
    side) of the resize; `start` / `end` seconds; `dtype` 'fp32' or 'bf16' (autocast); `save` a subset
    of mp4 (overlay at the source fps, one colour and a legend line per sentence), png
    (`masks/<k>/<frame:05d>.png`, 0/255, source frame numbers), json (`predictions.json`: per sentence
    and frame a COCO RLE and score) and gif (subsampled overlay). `progress(done, total)` is called after
    each window. `frame_range` skips the checks when `check_inference_inputs` already ran.
    Returns an `InferResult`; raises RvosError for bad input (see `check_inference_inputs`).
    """
    video, out_dir = Path(video), Path(out_dir)
    if frame_range is None:
        frame_range = check_inference_inputs(
            video,
            sentences,
            out_dir,
            window=window,
            overlap=overlap,
            size=size,
            start=start,
            end=end,
            dtype=dtype,
            save=save,
        )
    tokens = tokenizer(list(sentences))
    info = frame_range.info
    orig_size = (info.height, info.width)
    transform = VideoTransforms(size[0], size[1], horizontal_flip=False)
    model = model.to(device).eval()
    input_ids = tokens["input_ids"].to(device)
    attention_mask = tokens["attention_mask"].to(device)
    autocast = torch.autocast(
        device_type=torch.device(device).type, dtype=torch.bfloat16, enabled=dtype == "bf16"
    )

    staging = _make_staging(out_dir)
    began = time.perf_counter()
    reader: _FrameReader | None = None
    writer: _OutputWriter | None = None
    try:
        writer = _OutputWriter(staging, list(sentences), set(save), frame_range)
        reader = _FrameReader(video, frame_range, transform, capacity=window)
        linkers: list[WindowLinker] = []
        normalised: dict[int, torch.Tensor] = {}  # window frames still needed, [3, h, w] each
        originals: dict[int, np.ndarray] = {}  # decoded frames not yet written, [H0, W0, 3] each
        decoded = 0
        resized = orig_size
        for window_start, window_end in plan_windows(frame_range.num_frames, window, overlap):
            while decoded < window_end:
                originals[decoded], normalised[decoded] = reader.get()
                decoded += 1
            clip = torch.stack([normalised[i] for i in range(window_start, window_end)])  # [T, 3, h, w]
            resized = (clip.shape[-2], clip.shape[-1])
            if not linkers:  # the resized size is known once the first frame is decoded
                linkers = [
                    WindowLinker(frame_range.num_frames, window, overlap, resized, resized, orig_size)
                    for _ in sentences
                ]
            clip = clip[:, None].to(device)  # [T, 1, 3, h, w]
            padding_mask = torch.zeros(clip.shape[0], 1, *resized, dtype=torch.bool, device=device)
            with torch.inference_mode(), autocast:
                outputs = model.forward_sentences(clip, padding_mask, input_ids, attention_mask)
            with torch.inference_mode():
                finished = [
                    linker.push(outputs["pred_masks"][:, k], outputs["pred_is_referred"][:, k])
                    for k, linker in enumerate(linkers)
                ]  # K lists of the same frames
            del outputs
            for per_sentence in zip(*finished, strict=True):
                index = per_sentence[0].frame_index
                writer.add(
                    frame_range.start + index,
                    originals.pop(index),
                    [linked.mask.cpu().numpy() for linked in per_sentence],
                    [linked.score for linked in per_sentence],
                )
            normalised = {i: t for i, t in normalised.items() if i >= window_end - overlap}
            if progress is not None:
                progress(window_end, frame_range.num_frames)
        reader.close()
        staged = writer.finish()
        outputs_final = _commit(staging, out_dir, staged)
    except BaseException:
        if reader is not None:
            reader.close()
        if writer is not None:
            writer.abort()
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return InferResult(
        video=video,
        sentences=list(sentences),
        first_frame=frame_range.start,
        num_frames=frame_range.num_frames,
        fps=frame_range.fps,
        orig_size=orig_size,
        resized_size=resized,
        seconds=time.perf_counter() - began,
        scores=writer.mean_scores(),
        outputs=outputs_final,
    )


def _make_staging(out_dir: Path) -> Path:
    """Create `out_dir` and a hidden staging folder inside it; returns the staging folder."""
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix=".rvos-infer-", suffix=".partial", dir=out_dir))
    except OSError as err:
        raise RvosError(f"output folder {out_dir}: cannot write there ({err.strerror or err})") from None


def _commit(staging: Path, out_dir: Path, staged: dict[str, Path]) -> dict[str, Path]:
    """Move the staged outputs to their final names in `out_dir` (a previous masks folder is replaced)."""
    final: dict[str, Path] = {}
    for kind, path in staged.items():
        target = out_dir / path.name
        if path.is_dir() and target.exists():
            retired = staging / f"{path.name}.previous"
            os.replace(target, retired)
        os.replace(path, target)
        final[kind] = target
    shutil.rmtree(staging, ignore_errors=True)
    return final


_END = object()


class _FrameReader:
    """Decodes, resizes and normalises frames in a background thread, at most `capacity` ahead.

    `get()` returns (original RGB uint8 `[H0, W0, 3]`, normalised float32 `[3, h, w]`) in frame order and
    re-raises any decoding error in the caller's thread.
    """

    def __init__(
        self, video: Path, frame_range: FrameRange, transform: VideoTransforms, capacity: int
    ) -> None:
        self._video = video
        self._range = frame_range
        self._transform = transform
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=max(1, capacity))
        self._stop = threading.Event()
        self._delivered = 0
        self._thread = threading.Thread(target=self._run, name="rvos-decode", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        frames = iter_frames(self._video, self._range.start, self._range.end)
        try:
            for frame in frames:
                normalised, _, _ = self._transform(frame[None], [None], "")  # [1, 3, h, w]
                if not self._put((frame, normalised[0])):
                    return
            self._put(_END)
        except BaseException as error:  # handed to the consumer, who raises it
            self._put(error)
        finally:
            frames.close()

    def _put(self, item: Any) -> bool:
        """Block until there is room, unless the reader is being closed (then return False)."""
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def get(self) -> tuple[np.ndarray, torch.Tensor]:
        """The next frame pair; RvosError if the video ends before the planned range does."""
        item = self._queue.get()
        if item is _END:
            raise RvosError(
                f"{self._video}: only {self._delivered} frames decode from frame {self._range.start}, "
                f"expected {self._range.num_frames}"
            )
        if isinstance(item, BaseException):
            raise item
        self._delivered += 1
        return item

    def close(self) -> None:
        """Stop decoding and wait for the thread to end."""
        self._stop.set()
        self._thread.join()


class _OutputWriter:
    """Writes finished frames in a background thread: mask PNGs, RLE lines, overlay frames for mp4/GIF.

    Staged layout: `masks/<k>/<frame:05d>.png`, `rle-<k>.jsonl` (assembled into `predictions.json` by
    `finish`), `overlay.mp4`, `overlay.gif`. Frames arrive through a bounded queue, so a slow disk
    slows the run down instead of filling memory.
    """

    def __init__(self, staging: Path, sentences: list[str], save: set[str], frame_range: FrameRange) -> None:
        self._staging = staging
        self._sentences = sentences
        self._save = save
        self._range = frame_range
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=8)
        self._error: BaseException | None = None
        self._aborted = threading.Event()
        self._score_sums = [0.0] * len(sentences)
        self._count = 0
        self._legend: np.ndarray | None = None
        self._gif_stride = max(1, math.ceil(frame_range.num_frames / GIF_MAX_FRAMES))
        self._gif_frames: list[np.ndarray] = []
        self._rle_files = []
        if "png" in save:
            for k in range(len(sentences)):
                (staging / MASKS_DIR / str(k)).mkdir(parents=True)
        if "json" in save:
            self._rle_files = [open(staging / f"rle-{k}.jsonl", "w") for k in range(len(sentences))]  # noqa: SIM115
        self._thread = threading.Thread(target=self._run, name="rvos-write", daemon=True)
        self._thread.start()

    def add(self, frame_index: int, frame: np.ndarray, masks: list[np.ndarray], scores: list[float]) -> None:
        """Queue one finished frame: source index, RGB `[H0, W0, 3]`, K bool masks `[H0, W0]`, K scores."""
        while True:
            if self._error is not None:
                raise self._error
            try:
                self._queue.put((frame_index, frame, masks, scores), timeout=0.1)
                return
            except queue.Full:
                continue

    def _items(self) -> Iterator[tuple[int, np.ndarray, list[np.ndarray], list[float]]]:
        while True:
            item = self._queue.get()
            if self._aborted.is_set():
                raise RuntimeError("inference aborted")  # makes write_video drop its temporary file
            if item is _END:
                return
            yield item

    def _run(self) -> None:
        try:
            items = self._items()
            if "mp4" in self._save:
                write_video(
                    self._staging / OVERLAY_MP4, (self._write_frame(*item) for item in items), self._range.fps
                )
            else:
                for item in items:
                    self._write_frame(*item)
        except BaseException as error:
            self._error = error

    def _write_frame(
        self, frame_index: int, frame: np.ndarray, masks: list[np.ndarray], scores: list[float]
    ) -> np.ndarray | None:
        """Write the PNGs / RLE lines of one frame and return its overlay `[H0 + 36·K, W0, 3]` (if needed)."""
        for k, (mask, score) in enumerate(zip(masks, scores, strict=True)):
            self._score_sums[k] += score
            if "png" in self._save:
                path = self._staging / MASKS_DIR / str(k) / f"{frame_index:05d}.png"
                Image.fromarray(mask.astype(np.uint8) * 255).save(path, format="PNG")
        if self._rle_files:
            for k, rle in enumerate(masks_to_rle(np.stack(masks))):
                line = {"frame": frame_index, "score": round(scores[k], 6), "segmentation": rle}
                self._rle_files[k].write(json.dumps(line) + "\n")
        position = self._count
        self._count += 1
        if "mp4" not in self._save and "gif" not in self._save:
            return None
        if self._legend is None:
            self._legend = legend_strip(frame.shape[1], self._sentences)
        overlay = np.concatenate([self._legend, overlay_masks(frame, masks)], axis=0)
        if "gif" in self._save and position % self._gif_stride == 0:
            self._gif_frames.append(_shrink(overlay, GIF_MAX_WIDTH))
        return overlay

    def finish(self) -> dict[str, Path]:
        """Wait for the queued frames, close the staged files and assemble the JSON.

        Returns {'mp4' | 'gif' | 'json' | 'png': staged path}; re-raises a writing error.
        """
        self._queue.put(_END)
        self._thread.join()
        for handle in self._rle_files:
            handle.close()
        if self._error is not None:
            raise self._error
        staged: dict[str, Path] = {}
        if "mp4" in self._save:
            staged["mp4"] = self._staging / OVERLAY_MP4
        if "gif" in self._save:
            fps = self._range.fps / self._gif_stride
            staged["gif"] = write_gif(self._staging / OVERLAY_GIF, self._gif_frames, fps)
            self._gif_frames = []
        if "json" in self._save:
            staged["json"] = self._assemble_json()
        if "png" in self._save:
            staged["png"] = self._staging / MASKS_DIR
        return staged

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
        for handle in self._rle_files:
            handle.close()

    def mean_scores(self) -> list[float]:
        """Per sentence, the mean over the written frames of the TSVS sequence score."""
        return [total / self._count if self._count else 0.0 for total in self._score_sums]

    def _assemble_json(self) -> Path:
        """Write `predictions.json` from the per-sentence RLE lines without loading them all at once."""
        info = self._range.info
        header = {
            "sentences": self._sentences,
            "fps": self._range.fps,
            "size": [info.height, info.width],
            "first_frame": self._range.start,
            "num_frames": self._range.num_frames,
        }
        path = self._staging / PREDICTIONS_JSON
        with open(path, "w") as out:
            out.write(json.dumps(header)[:-1] + ', "predictions": [')
            for k, sentence in enumerate(self._sentences):
                entry = {"sentence_index": k, "sentence": sentence, "score": round(self.mean_scores()[k], 6)}
                out.write(("" if k == 0 else ", ") + json.dumps(entry)[:-1] + ', "frames": [')
                with open(self._staging / f"rle-{k}.jsonl") as lines:
                    for i, line in enumerate(lines):
                        out.write(("" if i == 0 else ", ") + line.rstrip("\n"))
                out.write("]}")
                (self._staging / f"rle-{k}.jsonl").unlink()
            out.write("]}\n")
        return path


def _shrink(image: np.ndarray, max_width: int) -> np.ndarray:
    """Downscale an RGB uint8 image `[H, W, 3]` to at most `max_width` wide (aspect kept)."""
    height, width = image.shape[:2]
    if width <= max_width:
        return image
    new_size = (max_width, max(1, round(height * max_width / width)))
    return np.asarray(Image.fromarray(image).resize(new_size, Image.BILINEAR))
