"""`rvos infer` for one video: `Predictor.stream` → `OutputWriter`, staged and committed on success.

The predictor streams per-frame results (frame reader thread → windows → model → linkers); the writer
thread turns each into mask PNGs, RLE lines and overlay frames as it arrives, so memory does not grow with
the video. Everything is written into a hidden staging folder inside the output folder and moved to its
final name only when the whole video succeeded (see `engine.output_writer`).
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from rvos_cli.engine.frame_reader import FrameRange, frame_range, probe_source
from rvos_cli.engine.output_writer import (
    DEFAULT_SAVE,
    OutputWriter,
    check_save,
    check_writable,
    commit,
    make_staging,
)
from rvos_cli.engine.predictor import Predictor, check_sentences
from rvos_cli.fileio import write_error


@dataclass
class InferResult:
    """What a run did for one video: frames processed, timing, scores and the final output paths.

    `outputs` maps 'mp4' / 'gif' / 'json' / 'jsonl' to files and 'png' to the masks folder. `scores[k]` is
    the mean over the frames of sentence k's TSVS sequence score. `fps` is the source's rate; the outputs
    run at `fps / stride`. Sizes are (height, width).
    """

    video: Path
    sentences: list[str]
    first_frame: int
    num_frames: int
    fps: float
    stride: int
    orig_size: tuple[int, int]
    resized_size: tuple[int, int]
    seconds: float
    scores: list[float]
    outputs: dict[str, Path] = field(default_factory=dict)
    out_dir: Path | None = None

    @property
    def frames_per_second(self) -> float:
        """Processing speed, end to end (decoding, model, post-processing and writing)."""
        return self.num_frames / self.seconds if self.seconds > 0 else float("inf")

    @property
    def last_frame(self) -> int:
        """The source frame number of the last processed frame."""
        return self.first_frame + (self.num_frames - 1) * self.stride


def check_inference_inputs(
    video: Path,
    sentences: Sequence[str],
    out_dir: Path,
    *,
    start: float = 0.0,
    end: float | None = None,
    stride: int = 1,
    save: Collection[str] = DEFAULT_SAVE,
) -> FrameRange:
    """Validate a request before any frame is decoded, cheapest first.

    `start` / `end` are seconds (end exclusive, None = to the end); `stride` N keeps every N-th frame.
    Probes the video (missing, undecodable or stream-less files fail here) and checks that `out_dir` could
    be created and written, without creating anything. Returns the frames to process; raises RvosError
    naming the problem.
    """
    check_sentences(sentences)
    check_save(save)
    check_writable(Path(out_dir))
    return frame_range(probe_source(Path(video)), start, end, stride)


def run_inference(
    predictor: Predictor,
    video: Path,
    sentences: Sequence[str],
    out_dir: Path,
    *,
    start: float = 0.0,
    end: float | None = None,
    stride: int = 1,
    save: Collection[str] = DEFAULT_SAVE,
    progress: Callable[[int, int], None] | None = None,
    frames: FrameRange | None = None,
) -> InferResult:
    """Segment the object each sentence refers to in the frames of `video` and write the outputs.

    `video` is a video file or a folder of frames; `sentences` K strings; `save` a subset of mp4 (overlay
    at the output rate, with the source's audio), png (`masks/<k>/<frame:05d>.png`, 0/255, source frame
    numbers), json (`predictions.json`), jsonl (`predictions.jsonl`, a line per frame) and gif.
    `progress(done, total)` is called after each frame. `frames` skips the checks when
    `check_inference_inputs` already ran. Returns an `InferResult`; raises RvosError for bad input.
    """
    video, out_dir = Path(video), Path(out_dir)
    if frames is None:
        frames = check_inference_inputs(
            video, sentences, out_dir, start=start, end=end, stride=stride, save=save
        )
    sentences = list(sentences)
    results = predictor.stream(video, sentences, frames=frames)
    staging = make_staging(out_dir)
    began = time.perf_counter()
    writer: OutputWriter | None = None
    try:
        writer = OutputWriter(staging, sentences, check_save(save), frames, video)
        for done, result in enumerate(results, start=1):
            writer.add(result)
            if progress is not None:
                progress(done, frames.num_frames or done)
        staged = writer.finish()
        final = commit(staging, out_dir, staged)
    except BaseException as error:
        results.close()  # stops the frame reader
        if writer is not None:
            writer.abort()
        shutil.rmtree(staging, ignore_errors=True)
        if isinstance(error, OSError):  # a full disk while staging: one line naming the output folder
            raise write_error(out_dir, error) from error
        raise
    return _result(predictor, video, out_dir, sentences, frames, writer, final, time.perf_counter() - began)


def _result(
    predictor: Predictor,
    video: Path,
    out_dir: Path,
    sentences: list[str],
    frames: FrameRange,
    writer: OutputWriter,
    outputs: dict[str, Path],
    seconds: float,
) -> InferResult:
    """The `InferResult` of a finished run (sizes from the source's probe)."""
    info = frames.info
    orig = (info.height, info.width) if info is not None else (0, 0)
    return InferResult(
        video=video,
        sentences=sentences,
        first_frame=frames.start,
        num_frames=writer.count,
        fps=frames.fps,
        stride=frames.stride,
        orig_size=orig,
        resized_size=predictor.resized_size(*orig),
        seconds=seconds,
        scores=writer.mean_scores(),
        outputs=outputs,
        out_dir=out_dir,
    )
