"""`rvos infer` over many videos: inputs expanded, one output folder each, ranks sharing the work.

The model is loaded once (one `Predictor` per process); each video goes through `run_inference` into
its own folder. Under torchrun (WORLD_SIZE > 1) rank r takes videos r, r + N, r + 2N, ...; the per-video
records are gathered so that rank 0 alone holds the whole summary. With several videos a video that
fails (undecodable midway, say) is recorded as failed and the others still run.
"""

from __future__ import annotations

import glob
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rvos_cli.core.allocator import release_free_memory
from rvos_cli.engine.run_dir import RUNS_ROOT, next_run_dir, output_dir
from rvos_cli.errors import RvosError

VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".webm", ".mkv", ".m4v")
_GLOB_CHARS = set("*?[")


def expand_videos(inputs: Sequence[str | Path]) -> list[Path]:
    """The videos named by `inputs`: files, folders and glob patterns, in order, without repeats.

    A folder holding video files stands for those files (sorted by name); any other folder is taken as
    one video given as frame images. A pattern stands for the sorted paths it matches. RvosError for a
    path that does not exist, a pattern that matches nothing, or no input at all.
    """
    videos: list[Path] = []
    for item in inputs:
        text = str(item)
        if _GLOB_CHARS & set(text) and not Path(text).exists():
            matches = sorted(Path(match) for match in glob.glob(text))
            if not matches:
                raise RvosError(f"{text}: no file matches this pattern")
            videos += matches
            continue
        path = Path(text)
        if not path.exists():
            raise RvosError(f"{path}: no such file or folder")
        listed = sorted(path.iterdir()) if path.is_dir() else []
        inside = [p for p in listed if p.suffix.lower() in VIDEO_SUFFIXES]
        videos += inside or [path]
    if not videos:
        raise RvosError("give at least one video (a file, a folder or a pattern such as 'clips/*.mp4')")
    return list(dict.fromkeys(videos))


def read_sentence_file(path: Path) -> list[str]:
    """The sentences of a text file, one per line (surrounding spaces dropped, blank lines ignored).

    RvosError for a missing or unreadable file, or one holding no sentence.
    """
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RvosError(f"{path}: sentence file not found") from None
    except (OSError, UnicodeDecodeError) as error:
        raise RvosError(f"{path}: cannot read the sentence file ({error})") from None
    sentences = [line.strip() for line in text.splitlines() if line.strip()]
    if not sentences:
        raise RvosError(f"{path}: holds no sentence (write one sentence per line; blank lines are ignored)")
    return sentences


def output_folders(
    videos: Sequence[Path], out: Path | None, overwrite: bool = False, root: Path = RUNS_ROOT
) -> list[Path]:
    """One output folder per video: `out` itself for a single video, else `out/<video name>`.

    Without `out` each video gets a new run folder `root/infer/<video name>` (`-2`, `-3`, ... when an
    earlier run or another video of the batch has the name). An `out` that already holds outputs is
    refused with RvosError unless `overwrite` (`run_dir.output_dir`).
    """
    if out is not None:
        out = output_dir(out, overwrite, "infer", videos[0].stem or "video")
    if len(videos) == 1 and out is not None:
        return [out]
    folders: list[Path] = []
    seen: dict[str, int] = {}
    for video in videos:
        name = video.stem or "video"
        if out is None:
            folders.append(next_run_dir("infer", name, root, taken=folders))
            continue
        seen[name] = seen.get(name, 0) + 1
        folders.append(out / (name if seen[name] == 1 else f"{name}-{seen[name]}"))
    return folders


def shard(items: Sequence[Any], rank: int, world_size: int) -> list[Any]:
    """Rank `rank`'s share of `items` among `world_size` processes: items rank, rank + N, rank + 2N, ..."""
    if world_size < 1 or not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} is not in a group of {world_size}")
    return list(items[rank::world_size])


@dataclass
class VideoRecord:
    """One video's line of the summary (JSON-ready): what was processed, how fast, where it went.

    `status` is 'ok' or 'failed' (then `error` says why); `rank` is the process that segmented it. Frame
    numbers are the source's; `output_fps` is the rate of the outputs (the source's divided by the stride).
    """

    video: str
    out_dir: str
    status: str = "ok"
    error: str = ""
    rank: int = 0
    first_frame: int = 0
    last_frame: int = 0
    num_frames: int = 0
    fps: float = 0.0
    output_fps: float = 0.0
    size: list[int] = field(default_factory=list)
    processed_size: list[int] = field(default_factory=list)
    seconds: float = 0.0
    frames_per_second: float = 0.0
    scores: list[float] = field(default_factory=list)
    outputs: dict[str, str] = field(default_factory=dict)


def record_of(result: Any, rank: int = 0) -> VideoRecord:
    """The summary record of an `InferResult` segmented by process `rank`."""
    return VideoRecord(
        video=str(result.video),
        out_dir=str(result.out_dir),
        rank=rank,
        first_frame=result.first_frame,
        last_frame=result.last_frame,
        num_frames=result.num_frames,
        fps=result.fps,
        output_fps=result.fps / result.stride,
        size=list(result.orig_size),
        processed_size=list(result.resized_size),
        seconds=round(result.seconds, 3),
        frames_per_second=round(result.frames_per_second, 3),
        scores=[round(score, 6) for score in result.scores],
        outputs={kind: str(path) for kind, path in result.outputs.items()},
    )


@dataclass
class BatchRequest:
    """What to segment: the videos and their output folders (same length), the sentences and options."""

    videos: list[Path]
    out_dirs: list[Path]
    sentences: list[str]
    start: float = 0.0
    end: float | None = None
    stride: int = 1
    save: Collection[str] = ("mp4", "png", "json")


def check_batch(request: BatchRequest) -> list[Any]:
    """Check every video and output folder before the model is loaded; returns their frame ranges."""
    from rvos_cli.engine.infer import check_inference_inputs

    options = dict(start=request.start, end=request.end, stride=request.stride, save=request.save)
    return [
        check_inference_inputs(video, request.sentences, out_dir, **options)  # type: ignore[arg-type]
        for video, out_dir in zip(request.videos, request.out_dirs, strict=True)
    ]


def run_batch(
    predictor: Any,
    request: BatchRequest,
    frames: list[Any],
    rank: int = 0,
    world_size: int = 1,
    progress: Callable[[int, int, int, int], None] | None = None,
) -> list[VideoRecord]:
    """Segment this rank's share of the videos (`frames` from `check_batch`); returns their records.

    `progress(video number, videos, frames done, frames)` follows the current video. A single video's
    RvosError is raised; with several, a failed video is recorded and the next one runs.
    """
    from rvos_cli.engine.infer import run_inference

    jobs = shard(list(zip(request.videos, request.out_dirs, frames, strict=True)), rank, world_size)
    records = []
    for number, (video, out_dir, video_frames) in enumerate(jobs, start=1):
        on_frame = None if progress is None else _video_progress(progress, number, len(jobs))
        if number > 1:  # each video starts from what the model needs, not the last one's leftovers
            release_free_memory()
        try:
            result = run_inference(
                predictor, video, request.sentences, out_dir,
                save=request.save, progress=on_frame, frames=video_frames,
            )  # fmt: skip
        except RvosError as error:
            if len(request.videos) == 1:
                raise
            records.append(VideoRecord(str(video), str(out_dir), "failed", str(error), rank))
            continue
        records.append(record_of(result, rank))
    return records


def _video_progress(
    progress: Callable[[int, int, int, int], None], number: int, count: int
) -> Callable[[int, int], None]:
    return lambda done, total: progress(number, count, done, total)


def gather_records(records: list[VideoRecord], request: BatchRequest, world_size: int) -> list[VideoRecord]:
    """Every rank's records in the order of `request.videos` (a collective call under torchrun)."""
    if world_size == 1:
        return records
    from rvos_cli.engine.distributed import all_gather_object

    by_video = {record.video: record for share in all_gather_object(records) for record in share}
    return [by_video[str(video)] for video in request.videos if str(video) in by_video]


def summary(records: list[VideoRecord], request: BatchRequest, seconds: float) -> dict[str, Any]:
    """The JSON summary of a batch: sentences, stride, totals and one record per video."""
    return {
        "sentences": request.sentences,
        "stride": request.stride,
        "num_videos": len(records),
        "failed": sum(record.status != "ok" for record in records),
        "num_frames": sum(record.num_frames for record in records),
        "seconds": round(seconds, 3),
        "videos": [asdict(record) for record in records],
    }


def timer() -> Callable[[], float]:
    """A stopwatch: call the returned function for the seconds since `timer()`."""
    began = time.perf_counter()
    return lambda: time.perf_counter() - began


def infer_videos(
    request: BatchRequest,
    load_predictor: Callable[[str], Any],
    device: str,
    progress: Callable[[int, int, int, int], None] | None = None,
) -> dict[str, Any] | None:
    """Check every input, load the model once, segment this process's videos and summarise.

    `load_predictor(device)` builds the `Predictor` on the process's device ('cpu', 'cuda:LOCAL_RANK'
    under torchrun). Returns the `summary` on rank 0 (after the other ranks finished their videos) and
    None on the others; `progress` is called on rank 0 only.
    """
    from rvos_cli.engine.distributed import cleanup, init_distributed

    frames = check_batch(request)
    elapsed = timer()
    info, device, created = init_distributed(device)
    try:
        predictor = load_predictor(device)
        records = run_batch(
            predictor, request, frames, info.rank, info.world_size, progress if info.is_main else None
        )
        records = gather_records(records, request, info.world_size)
    finally:
        cleanup(created)
    return summary(records, request, elapsed()) if info.is_main else None
