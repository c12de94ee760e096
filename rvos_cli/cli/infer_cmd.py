"""`rvos infer VIDEO TEXT [TEXT ...]`: segment what each sentence refers to in videos (or frame folders).

`rvos infer VIDEO... --text TEXT` / `--text-file FILE` takes several videos, folders of videos or glob
patterns: the model is loaded once, each video gets its own output folder, one table sums up (and `--json`
writes it). Under torchrun the videos are shared out across the processes.
"""

from __future__ import annotations

import contextlib
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Annotated, Any

import typer

from rvos_cli.cli.common import err_console, out_console
from rvos_cli.cli.options import (
    OUTPUT_PANEL,
    RUN_PANEL,
    CheckpointOption,
    DeviceOption,
    OverwriteOption,
    PresetOption,
    SetOption,
    TextEncoderOption,
    TrustCheckpointOption,
    out_option,
)
from rvos_cli.core.selection import DEFAULT_SCORE_THRESHOLD, check_selection
from rvos_cli.errors import RvosError

SAVE_CHOICES = ("mp4", "png", "json", "gif", "jsonl")
NO_CHECKPOINT = (
    "no --checkpoint given: the model would be untrained and its masks meaningless, so nothing was run. "
    "Pass weights with --checkpoint PATH: an official MTTR checkpoint "
    "(e.g. refer-youtube-vos_window-12.pth.tar from the MTTR release) "
    "or a checkpoint written by `rvos train` in its run folder"
)


def parse_size(text: str) -> tuple[int, int | None]:
    """`--size SHORT,MAX` (or just SHORT) → (short side, max long side or None); RvosError otherwise."""
    parts = [p.strip() for p in text.split(",")]
    try:
        if len(parts) not in (1, 2):
            raise ValueError
        short = int(parts[0])
        longest = int(parts[1]) if len(parts) == 2 else None
    except ValueError:
        raise RvosError(f"--size {text!r}: expected SHORT,MAX in pixels, e.g. 360,640") from None
    if short < 1 or (longest is not None and longest < short):
        raise RvosError(f"--size {text!r}: expected SHORT >= 1 and MAX >= SHORT, e.g. 360,640")
    return short, longest


def parse_save(text: str) -> set[str]:
    """`--save mp4,png,json,gif,jsonl` → the set of output kinds; RvosError for none or an unknown kind."""
    kinds = {p.strip().lower() for p in text.split(",") if p.strip()}
    unknown = sorted(kinds - set(SAVE_CHOICES))
    if unknown or not kinds:
        raise RvosError(f"--save {text!r}: expected a comma-separated subset of {','.join(SAVE_CHOICES)}")
    return kinds


def register(app: typer.Typer) -> None:
    """Add the `infer` command to `app`."""
    app.command("infer")(infer)


def split_inputs(inputs: list[str], texts: list[str], text_file: Path | None) -> tuple[list[str], list[str]]:
    """(video arguments, sentences) of the command line.

    With `--text` or `--text-file` every positional argument is a video; otherwise the first one is the
    video and the rest are sentences (`rvos infer VIDEO TEXT [TEXT ...]`). RvosError when no sentence
    is given.
    """
    from rvos_cli.engine.infer_batch import read_sentence_file

    if texts or text_file is not None:
        sentences = list(texts) + (read_sentence_file(text_file) if text_file is not None else [])
        return inputs, sentences
    if len(inputs) < 2:
        raise RvosError("no sentence given: rvos infer VIDEO TEXT, or --text TEXT, or --text-file FILE")
    return inputs[:1], inputs[1:]


INPUT_PANEL = "Input"


def infer(
    inputs: Annotated[
        list[str],
        typer.Argument(
            help="VIDEO then TEXT...; or only videos with --text/--text-file. A video is a file (mp4, avi, "
            "mov, webm, mkv), a folder of frames, a folder of videos or a quoted glob ('clips/*.mp4').",
            metavar="VIDEO_OR_TEXT",
        ),
    ],
    texts: Annotated[
        list[str] | None,
        typer.Option(
            "--text",
            "-t",
            help="A sentence (repeat for several); all arguments are then videos.",
            rich_help_panel=INPUT_PANEL,
        ),
    ] = None,
    text_file: Annotated[
        Path | None,
        typer.Option(
            "--text-file", help="Sentences, one per line (blank lines ignored).", rich_help_panel=INPUT_PANEL
        ),
    ] = None,
    start: Annotated[float, typer.Option(help="Start time in seconds.", rich_help_panel=INPUT_PANEL)] = 0.0,
    end: Annotated[
        float | None,
        typer.Option(help="End time in seconds (exclusive) (default: the end).", rich_help_panel=INPUT_PANEL),
    ] = None,
    stride: Annotated[
        int,
        typer.Option(
            min=1, help="Segment every N-th frame; the outputs run at fps / N.", rich_help_panel=INPUT_PANEL
        ),
    ] = 1,
    checkpoint: CheckpointOption = None,
    preset: PresetOption = None,
    text_encoder: TextEncoderOption = None,
    assignments: SetOption = None,
    trust_checkpoint: TrustCheckpointOption = False,
    window: Annotated[int, typer.Option(help="Frames per window.", rich_help_panel=RUN_PANEL)] = 24,
    overlap: Annotated[
        int, typer.Option(help="Frames shared by consecutive windows.", rich_help_panel=RUN_PANEL)
    ] = 6,
    size: Annotated[
        str | None,
        typer.Option(
            help="SHORT,MAX resize in pixels (default: the config's data.eval_*_size, 360,640 for ytvos).",
            rich_help_panel=RUN_PANEL,
        ),
    ] = None,
    select: Annotated[
        str,
        typer.Option(
            help="top1: the sequence with the best TSVS score (MTTR); threshold: the union of every sequence "
            "scoring above --score-threshold, an empty mask when none does (several objects or none).",
            rich_help_panel=RUN_PANEL,
        ),
    ] = "top1",
    score_threshold: Annotated[
        float,
        typer.Option(
            help="The TSVS score a sequence must exceed with --select threshold.", rich_help_panel=RUN_PANEL
        ),
    ] = DEFAULT_SCORE_THRESHOLD,
    device: DeviceOption = "auto",
    dtype: Annotated[
        str,
        typer.Option(
            help="auto (bf16 where the device computes it natively), fp32 or bf16 (autocast).",
            rich_help_panel=RUN_PANEL,
        ),
    ] = "auto",
    out: Annotated[
        Path | None, out_option("runs/infer/<video name>; several videos go in OUT/<video name>")
    ] = None,
    overwrite: OverwriteOption = False,
    save: Annotated[
        str,
        typer.Option(
            help="Outputs to write: a subset of mp4,png,json,gif,jsonl.", rich_help_panel=OUTPUT_PANEL
        ),
    ] = "mp4,png,json",
    json_out: Annotated[
        Path | None,
        typer.Option(
            "--json",
            help="Also write the summary (every video) to this JSON file.",
            rich_help_panel=OUTPUT_PANEL,
        ),
    ] = None,
) -> None:
    """Segment the object each sentence refers to in every frame of each video.

    Writes per video an overlay video (one colour per sentence, with a legend, and the source's sound),
    per-frame mask PNGs per sentence and predictions.json (COCO RLE and score per sentence and frame);
    --save jsonl adds predictions.jsonl (one line per frame).
    """
    kinds = parse_save(save)
    parsed_size = parse_size(size) if size is not None else None
    video_args, sentences = split_inputs(inputs, texts or [], text_file)
    if checkpoint is None:
        raise RvosError(NO_CHECKPOINT)
    if json_out is not None and not json_out.parent.is_dir():
        raise RvosError(f"--json {json_out}: its folder {json_out.parent} does not exist")

    from rvos_cli.core.checkpoints import checkpoint_config, trusted_checkpoints
    from rvos_cli.core.config import apply_overrides
    from rvos_cli.core.devices import resolve_device, resolve_dtype
    from rvos_cli.engine.infer_batch import BatchRequest, expand_videos, infer_videos, output_folders
    from rvos_cli.engine.predictor import DEFAULT_PRESET, Predictor, check_settings

    check_settings(window, overlap, parsed_size)
    check_selection(select, score_threshold)
    with trusted_checkpoints(trust_checkpoint):  # an unreadable checkpoint fails before the video is probed
        apply_overrides(
            checkpoint_config(checkpoint, preset, default_preset=DEFAULT_PRESET), assignments or []
        )
    videos = expand_videos(video_args)
    folders = output_folders(videos, out, overwrite)
    request = BatchRequest(videos, folders, sentences, start, end, stride, kinds)

    def load_predictor(process_device: str) -> Predictor:
        with trusted_checkpoints(trust_checkpoint):
            return Predictor.from_checkpoint(
                checkpoint, preset, text_encoder, process_device, resolve_dtype(dtype, process_device),
                window, overlap, parsed_size, select=select, score_threshold=score_threshold,
                overrides=assignments or (),
            )  # fmt: skip

    with warnings.catch_warnings():
        warnings.simplefilter("always", UserWarning)
        warnings.showwarning = _show_warning
        with _progress_bar() as on_progress:
            result = infer_videos(request, load_predictor, resolve_device(device), on_progress)
    if result is None:  # a non-zero rank under torchrun: rank 0 reports
        return
    _report(result, json_out)


def _report(result: dict[str, Any], json_out: Path | None) -> None:
    """Print the summary table; write the JSON; RvosError (exit 2) when some video failed."""
    from rvos_cli.cli.infer_summary import batch_table, video_table

    videos = result["videos"]
    out_console.print(video_table(videos[0], result) if len(videos) == 1 else batch_table(result))
    if json_out is not None:
        from rvos_cli.fileio import write_json_atomic

        write_json_atomic(json_out, result)
        err_console.print(f"summary written to {json_out}")
    if result["failed"]:
        first = next(video for video in videos if video["status"] != "ok")
        raise RvosError(f"{result['failed']} of {len(videos)} videos failed; first: {first['error']}")


def _show_warning(message: Warning | str, *args: Any, **kwargs: Any) -> None:
    """Print a warning (e.g. a truncated sentence) as one yellow line on stderr."""
    err_console.print(f"[yellow]warning:[/] {message}", highlight=False, soft_wrap=True)


@contextlib.contextmanager
def _progress_lines() -> Iterator[Callable[[int, int, int, int], None]]:
    """Plain progress lines on stderr (a log file, CI, nohup): at most one every 30 s per video, each with
    frames done/total, frames/s, ETA and peak memory; yields the same callback as `_progress_bar`."""
    from rvos_cli.engine.logging import ProgressReporter

    reporters: dict[int, tuple[ProgressReporter, list[int]]] = {}

    def update(number: int, count: int, done: int, total: int) -> None:
        if number not in reporters:
            title = "infer" if count == 1 else f"infer video {number}/{count}"
            reporter = ProgressReporter(total, unit="frame", title=title, plain=True, console=err_console)
            reporters[number] = (reporter.__enter__(), [0])
        reporter, last = reporters[number]
        reporter.update(done, samples=done - last[0])
        last[0] = done

    yield update


@contextlib.contextmanager
def _progress_bar() -> Iterator[Callable[[int, int, int, int], None]]:
    """A rich progress bar on stderr (video k/n, frames done, frames/s, time left); yields its callback.
    When stderr is not a terminal, plain lines instead (`_progress_lines`)."""
    if not err_console.is_terminal:
        with _progress_lines() as update:
            yield update
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("frames  {task.fields[speed]}"),
        TimeRemainingColumn(),
        console=err_console,
    )
    tasks: dict[int, Any] = {}
    began: dict[int, float] = {}

    def update(number: int, count: int, done: int, total: int) -> None:
        if number not in tasks:
            label = "segmenting" if count == 1 else f"video {number}/{count}"
            tasks[number] = progress.add_task(label, total=total, speed="")
            began[number] = time.perf_counter()
        speed = done / max(time.perf_counter() - began[number], 1e-9)
        progress.update(tasks[number], completed=done, speed=f"{speed:.2f} frames/s")

    with progress:
        yield update
