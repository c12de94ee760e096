"""The `Predictor`: a checkpoint turned into one object that segments what sentences refer to in videos.

Shape legend: T frames in a window, B clips in a batch, K sentences, Nq object queries, S tokens, h×w the
resized frame size (= the padded size for one clip), h4×w4 = h/4×w/4, H0×W0 the original frame size.

    p = Predictor.from_checkpoint("best.pth.tar")             # model, tokenizer, device, dtype, resize
    for r in p.stream("clip.mp4", ["the dog on the left"]):   # frames streamed window by window
        r.index, r.time, r.masks, r.scores, r.overlay(), r.rle(0)

Streaming (spec §8.2–§8.4): a `FrameReader` thread decodes and normalises frames; the main thread cuts
them into overlapping windows (window k starts at k·(window − overlap)), runs one `forward_sentences` call
per window (the K sentences share one visual pass) and links each sentence's windows with its own
`WindowLinker`; every frame is yielded as soon as it is final, so memory does not grow with the video.
Closing the generator (break, `.close()`) stops the reader thread.

Every path that runs the model goes through this class: `rvos infer` (`stream`), `rvos eval` and the
per-epoch evaluation (`clip_outputs` for A2D/JHMDB batches, `track_video` for Ref-YouTube-VOS videos),
`examples/` and the web demo.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rvos_cli.core.allocator import trim_free_heap
from rvos_cli.core.config import Config
from rvos_cli.core.devices import resolve_device, resolve_dtype
from rvos_cli.core.inference import WindowLinker, masks_to_rle, plan_windows
from rvos_cli.core.model import MTTR, Tokenizer
from rvos_cli.core.selection import DEFAULT_SCORE_THRESHOLD, check_selection
from rvos_cli.data.transforms import VideoTransforms, resized_size
from rvos_cli.data.video_io import VideoInfo
from rvos_cli.engine.frame_reader import FrameRange, FrameReader, Source, frame_range, probe_source
from rvos_cli.errors import RvosError
from rvos_cli.viz.overlay import legend_strip, overlay_masks

# The MTTR demo's long-video windowing (spec §8.4).
DEFAULT_WINDOW = 24
DEFAULT_OVERLAP = 6
# Official MTTR checkpoints carry no config; their architecture is the paper's, and the demo used this one.
DEFAULT_PRESET = "mttr-ytvos"
# Resize (short side, max long side) when there is no config to take it from: mttr-ytvos's.
DEFAULT_SIZE = (360, 640)
# One decoded frame: (source frame index, RGB uint8 [H0, W0, 3], normalised float32 [3, h, w]).
Decoded = tuple[int, np.ndarray, torch.Tensor]
Size = tuple[int, int]


def check_sentences(sentences: Sequence[str]) -> list[str]:
    """The sentences as a list; RvosError for none at all or an empty / whitespace-only one."""
    if isinstance(sentences, str):
        sentences = [sentences]
    if not sentences:
        raise RvosError("give at least one sentence describing the object to segment")
    for index, sentence in enumerate(sentences):
        if not sentence.strip():
            raise RvosError(f"sentence {index + 1} is empty: give the words that describe the object")
    return list(sentences)


def check_settings(window: int, overlap: int, size: tuple[int, int | None] | None) -> None:
    """RvosError unless 1 <= window, 0 <= overlap < window and size is None or (SHORT >= 1, MAX >= SHORT)."""
    plan_windows(1, window, overlap)
    if size is not None:
        short, longest = size
        if short < 1 or (longest is not None and longest < short):
            raise RvosError(f"--size {short},{longest}: expected SHORT >= 1 and MAX >= SHORT")


@functools.lru_cache(maxsize=8)
def _legend(width: int, sentences: tuple[str, ...]) -> np.ndarray:
    """The sentence legend `[36·K, width, 3]` (rendered once per width and sentence list)."""
    return legend_strip(width, sentences)


@dataclass(frozen=True)
class FrameResult:
    """One segmented frame: the source frame and one mask and score per sentence.

    `index` is the frame number in the source, `time` its time in seconds, `frame` RGB uint8 `[H0, W0, 3]`,
    `masks` bool `[K, H0, W0]`, `scores[k]` sentence k's TSVS sequence score in the window that supplied
    the frame.
    """

    index: int
    time: float
    frame: np.ndarray
    masks: np.ndarray
    scores: list[float]
    sentences: tuple[str, ...]

    def overlay(self, legend: bool = True) -> np.ndarray:
        """The frame with each sentence's mask in its colour: uint8 `[36·K + H0, W0, 3]` with the legend
        strip on top (as in overlay.mp4), or `[H0, W0, 3]` with `legend=False`."""
        painted = overlay_masks(self.frame, list(self.masks))
        if not legend:
            return painted
        return np.concatenate([_legend(self.frame.shape[1], self.sentences), painted], axis=0)

    def rle(self, k: int) -> dict:
        """Sentence k's mask as a COCO RLE `{'size': [H0, W0], 'counts': str}` (JSON-ready)."""
        return masks_to_rle(self.masks[k : k + 1])[0]


class Predictor:
    """A model with its tokenizer, device, precision, windowing and resize: video + sentences → masks.

    Build it with `from_checkpoint` (or directly from a model, e.g. the one being trained). `device` and
    `dtype` ('auto', 'cpu', 'cuda:N' / 'auto', 'fp32', 'bf16') are resolved by `core.devices`; `window` /
    `overlap` frames cut long videos (spec §8.4); `size` is the (short side, max long side) resize, by
    default the config's evaluation size. `select` is how each window's sequence is chosen: 'top1' (TSVS,
    linked across windows) or 'threshold' (the union of every sequence scoring above `score_threshold`,
    possibly empty: MeViS), see `core.inference.WindowLinker`. On a CPU, free heap pages go back to the
    system before every forward pass (glibc's `malloc_trim`, for the whole process: `core.allocator`).
    """

    def __init__(
        self,
        model: MTTR,
        tokenizer: Tokenizer,
        config: Config | None = None,
        *,
        device: str = "auto",
        dtype: str = "auto",
        window: int = DEFAULT_WINDOW,
        overlap: int = DEFAULT_OVERLAP,
        size: tuple[int, int | None] | None = None,
        select: str = "top1",
        score_threshold: float = DEFAULT_SCORE_THRESHOLD,
    ) -> None:
        check_settings(window, overlap, size)
        check_selection(select, score_threshold)
        self.select, self.score_threshold = select, score_threshold
        if size is None:
            size = (config.data.eval_short_size, config.data.eval_max_size) if config else DEFAULT_SIZE
        short, longest = size
        self.device = resolve_device(device)
        self.dtype = resolve_dtype(dtype, self.device)
        self.config = config
        self.window, self.overlap, self.size = window, overlap, (short, longest)
        self.model = model.to(self.device)
        self.tokenizer = tokenizer
        self.transform = VideoTransforms(short, longest, horizontal_flip=False)

    @classmethod
    def from_checkpoint(
        cls,
        checkpoint: Path | str,
        preset: str | None = None,
        text_encoder: str | None = None,
        device: str = "auto",
        dtype: str = "auto",
        window: int = DEFAULT_WINDOW,
        overlap: int = DEFAULT_OVERLAP,
        size: tuple[int, int | None] | None = None,
        default_preset: str | None = DEFAULT_PRESET,
        select: str = "top1",
        score_threshold: float = DEFAULT_SCORE_THRESHOLD,
        overrides: Sequence[str] = (),
    ) -> Predictor:
        """Load an rvos or official MTTR checkpoint strictly and wrap it (model in eval mode on `device`).

        The architecture comes from `preset` when given, else from the config an rvos checkpoint stores,
        else `default_preset` (official checkpoints store none; None makes that an RvosError asking for
        `--preset`); then `overrides` (`--set key.path=value` strings, e.g. `data.eval_short_size=360`)
        apply to it. `text_encoder` overrides the config's encoder name or folder (no weights are
        downloaded: they are in the checkpoint). Other arguments as in the class doc.
        """
        from rvos_cli.core.checkpoints import checkpoint_config, load_trained_model
        from rvos_cli.core.config import apply_overrides

        config = checkpoint_config(Path(checkpoint), preset, default_preset=default_preset)
        config = apply_overrides(config, list(overrides))
        model, tokenizer = load_trained_model(Path(checkpoint), config, text_encoder)
        return cls(
            model, tokenizer, config, device=device, dtype=dtype, window=window, overlap=overlap, size=size,
            select=select, score_threshold=score_threshold,
        )  # fmt: skip

    def probe(self, source: Source, fps: float | None = None) -> VideoInfo:
        """`VideoInfo` (fps, num_frames, height, width) of a file, folder or list/array of frames.

        RvosError for an unreadable source or a one-shot iterator (whose length is unknown).
        """
        info = probe_source(source, fps)
        if info is None:
            raise RvosError("cannot probe a one-shot iterator of frames; give a file, folder or list")
        return info

    def resized_size(self, height: int, width: int) -> tuple[int, int]:
        """The (h, w) the model sees for frames of `height`×`width`."""
        return resized_size(height, width, self.size[0], self.size[1])

    def plan(
        self, source: Source, start: float = 0.0, end: float | None = None, stride: int = 1,
        fps: float | None = None,
    ) -> FrameRange:  # fmt: skip
        """Probe `source` and turn `start` / `end` seconds and `stride` into the frames to process.

        Raises RvosError for a missing or undecodable source, or a range holding no frame.
        """
        return frame_range(probe_source(source, fps), start, end, stride, fps)

    def stream(
        self,
        source: Source,
        sentences: Sequence[str],
        start: float = 0.0,
        end: float | None = None,
        stride: int = 1,
        *,
        fps: float | None = None,
        frames: FrameRange | None = None,
    ) -> Iterator[FrameResult]:
        """Segment what each sentence refers to, yielding one `FrameResult` per processed frame, in order.

        `source` is a video file, a folder of frames or an iterable of RGB uint8 frames `[H0, W0, 3]` (at
        `fps`, default 30); `start` / `end` are seconds (end exclusive); `stride` N keeps every N-th frame.
        `frames` (from `plan`) skips probing again. The source and sentences are checked here, before the
        first frame is decoded (RvosError); decoding errors surface while iterating. Close the generator
        to stop early.
        """
        sentences = check_sentences(sentences)
        frames = frames or self.plan(source, start, end, stride, fps)
        tokens = self.tokenizer(sentences)
        return self._stream(source, sentences, frames, tokens)

    __call__ = stream

    def _stream(
        self, source: Source, sentences: list[str], frames: FrameRange, tokens: dict[str, torch.Tensor]
    ) -> Iterator[FrameResult]:
        """The generator behind `stream`: windows of decoded frames → model → linkers → results."""
        reader = FrameReader(source, frames, self.transform, capacity=self.window)
        try:
            self.model.eval()
            input_ids = tokens["input_ids"].to(self.device)
            attention_mask = tokens["attention_mask"].to(self.device)
            linkers: list[WindowLinker] = []
            for first, window_frames in self._windows(reader):
                clip = torch.stack([normalised for _, _, normalised in window_frames])  # [T, 3, h, w]
                if not linkers:
                    resized = (clip.shape[-2], clip.shape[-1])
                    orig = window_frames[0][1].shape[:2]
                    linkers = [
                        self._linker(frames.num_frames, self.window, self.overlap, resized, orig)
                        for _ in sentences
                    ]
                outputs = self._window_outputs(clip, input_ids, attention_mask)
                with torch.inference_mode():
                    finished = [
                        linker.push(outputs["pred_masks"][:, k], outputs["pred_is_referred"][:, k])
                        for k, linker in enumerate(linkers)
                    ]  # K lists of the same frames
                del outputs
                for per_sentence in zip(*finished, strict=True):
                    index, frame, _ = window_frames[per_sentence[0].frame_index - first]
                    yield FrameResult(
                        index=index,
                        time=index / frames.fps,
                        frame=frame,
                        masks=np.stack([linked.mask.cpu().numpy() for linked in per_sentence]),
                        scores=[linked.score for linked in per_sentence],
                        sentences=tuple(sentences),
                    )
        finally:
            reader.close()

    def _windows(self, reader: FrameReader) -> Iterator[tuple[int, list[Decoded]]]:
        """The overlapping windows of the reader's frames: (position of the first, `FrameReader.get()` items).

        Window k holds positions [k·(window − overlap), +window), cut at the end of the stream; one frame
        beyond the window is read ahead to know whether the stream ends with it (so the windows are those
        of `plan_windows` even when the length is unknown). Only the frames of the current window (and the
        one read ahead) are held.
        """
        buffer: list[Decoded] = []  # positions [first, first + len)
        first, ended, step = 0, False, self.window - self.overlap
        while True:
            while not ended and len(buffer) < self.window + 1:
                item = reader.get()
                if item is None:
                    ended = True
                else:
                    buffer.append(item)
            if not buffer:
                if first == 0:
                    raise RvosError("the video holds no frame in the chosen range")
                return
            yield first, buffer[: self.window]
            if ended and len(buffer) <= self.window:
                return
            buffer = buffer[step:]
            first += step

    def _linker(
        self, num_frames: int | None, window: int, overlap: int, resized: Size, orig: Size
    ) -> WindowLinker:
        """One sentence's `WindowLinker` with the predictor's selection (one clip: padded = resized size)."""
        return WindowLinker(
            num_frames, window, overlap, resized, resized, orig,
            select=self.select, score_threshold=self.score_threshold,
        )  # fmt: skip

    def _autocast(self) -> torch.autocast:
        """bf16 autocast on the predictor's device when its dtype is bf16 (disabled for fp32)."""
        device_type = torch.device(self.device).type
        return torch.autocast(device_type=device_type, dtype=torch.bfloat16, enabled=self.dtype == "bf16")

    def _hand_back_freed_memory(self) -> None:
        """On the CPU, return the heap pages the last forward pass freed before the next one starts.

        Otherwise they stay resident under the next pass's peak, in amounts that vary from run to run
        (`core.allocator`): `rvos infer`'s mttr-ytvos peak drops by 0.15-0.45 GB, for 2-35 ms a window.
        """
        if torch.device(self.device).type == "cpu":
            trim_free_heap()

    def _window_outputs(
        self, clip: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        """One window `[T, 3, h, w]` for K tokenised sentences `[K, S]` → pred_masks `[T, K, Nq, h4, w4]`,
        pred_is_referred `[T, K, Nq, 2]` (one visual pass shared by the sentences)."""
        self._hand_back_freed_memory()
        clip = clip[:, None].to(self.device)  # [T, 1, 3, h, w]
        padding_mask = torch.zeros(clip.shape[0], 1, *clip.shape[-2:], dtype=torch.bool, device=self.device)
        with torch.inference_mode(), self._autocast():
            return self.model.forward_sentences(clip, padding_mask, input_ids, attention_mask)

    @torch.no_grad()
    def clip_outputs(
        self,
        frames: torch.Tensor,
        padding_mask: torch.Tensor,
        sentences: list[str],
        valid_indices: torch.Tensor | None = None,
    ) -> dict[str, Any]:
        """A batch of clips, one sentence each (A2D-/JHMDB-Sentences evaluation, spec §8.1).

        `frames` `[T, B, 3, H, W]` normalised and padded, `padding_mask` `[T, B, H, W]` (True on padding),
        B `sentences`, `valid_indices` `[T']` the frames that pass the transformer (None = all). Returns
        pred_masks `[T', B, Nq, H/4, W/4]` and pred_is_referred `[T', B, Nq, 2]` (no auxiliary outputs).
        """
        text = {k: v.to(self.device) for k, v in self.tokenizer(sentences).items()}
        self._hand_back_freed_memory()
        with self._autocast():
            return self.model(
                frames.to(self.device).float(),
                padding_mask.to(self.device),
                text["input_ids"],
                text["attention_mask"],
                valid_indices=valid_indices,
                return_aux=False,
            )

    @torch.no_grad()
    def track_video(
        self,
        frames: torch.Tensor,
        sentences: list[str],
        orig_size: tuple[int, int],
        max_frames: int | None = None,
    ) -> Iterator[tuple[int, int, torch.Tensor]]:
        """Segment K sentences in a whole video (Ref-YouTube-VOS, spec §8.2), yielding (k, t, mask).

        `frames` `[T, 3, h, w]` normalised (one clip, no padding); `mask` is bool `[H0, W0]` at
        `orig_size`. The video goes through the model in one pass, or in linked windows of `max_frames`
        overlapping by a quarter (the demo's 24/6 ratio, spec §8.3/§8.4) when it is longer. Each sentence is
        tokenised and encoded alone; the frames are encoded once per window and decoded once per sentence.
        """
        num_frames, size = frames.shape[0], tuple(frames.shape[-2:])
        window = num_frames if max_frames is None else min(num_frames, max_frames)
        overlap = 0 if window == num_frames else window // 4
        texts = []
        for sentence in sentences:
            tokens = {k: v.to(self.device) for k, v in self.tokenizer([sentence]).items()}
            texts.append(self.model.encode_text(tokens["input_ids"], tokens["attention_mask"]))
        linkers = [self._linker(num_frames, window, overlap, size, orig_size) for _ in sentences]
        for start, end in linkers[0].windows:
            self._hand_back_freed_memory()
            clip = frames[start:end, None].to(self.device).float()  # [t, 1, 3, h, w]
            padding_mask = torch.zeros(end - start, 1, *size, dtype=torch.bool, device=self.device)
            with self._autocast():
                context = self.model.visual_context(self.model.encode_video(clip, padding_mask))
            for k, (text, linker) in enumerate(zip(texts, linkers, strict=True)):
                with self._autocast():  # one sentence's outputs at a time: [t, 1, Nq, h4, w4], [t, 1, Nq, 2]
                    out = self.model.decode(context, text, return_aux=False)
                for frame in linker.push(out["pred_masks"][:, 0], out["pred_is_referred"][:, 0]):
                    yield k, frame.frame_index, frame.mask
