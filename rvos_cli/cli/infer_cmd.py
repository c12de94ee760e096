"""`rvos infer VIDEO TEXT [TEXT ...]`: segment what each sentence refers to in a video (or frame folder)."""

from __future__ import annotations

import contextlib
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Annotated, Any

import typer

from rvos_cli.cli.common import TrustCheckpoint, err_console, out_console
from rvos_cli.core.selection import DEFAULT_SCORE_THRESHOLD, check_selection
from rvos_cli.errors import RvosError

SAVE_CHOICES = ("mp4", "png", "json", "gif")
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
    """`--save mp4,png,json,gif` → the set of output kinds; RvosError for an empty list or unknown kind."""
    kinds = {p.strip().lower() for p in text.split(",") if p.strip()}
    unknown = sorted(kinds - set(SAVE_CHOICES))
    if unknown or not kinds:
        raise RvosError(f"--save {text!r}: expected a comma-separated subset of {','.join(SAVE_CHOICES)}")
    return kinds


def register(app: typer.Typer) -> None:
    """Add the `infer` command to `app`."""
    app.command("infer")(infer)


def infer(
    video: Annotated[
        Path, typer.Argument(help="Video file (mp4, avi, mov, webm, mkv) or a folder of frames.")
    ],
    text: Annotated[
        list[str],
        typer.Argument(
            help="One or more sentences, each describing one object (or several: --select threshold)."
        ),
    ],
    checkpoint: Annotated[
        Path | None,
        typer.Option("--checkpoint", "-c", help="Official MTTR checkpoint or one written by `rvos train`."),
    ] = None,
    preset: Annotated[
        str | None,
        typer.Option(help="Architecture preset (mttr-a2d, mttr-ytvos, tiny); default: the checkpoint's."),
    ] = None,
    text_encoder: Annotated[
        str | None, typer.Option(help="Text encoder name or local folder (tokenizer + config).")
    ] = None,
    out: Annotated[
        Path | None, typer.Option(help="Output folder (default: runs/infer/<video name>).")
    ] = None,
    window: Annotated[int, typer.Option(help="Frames per window.")] = 24,
    overlap: Annotated[int, typer.Option(help="Frames shared by consecutive windows.")] = 6,
    size: Annotated[
        str | None,
        typer.Option(help="SHORT,MAX resize in pixels (default: the preset's; 360,640 for mttr-ytvos)."),
    ] = None,
    start: Annotated[float, typer.Option(help="Start time in seconds.")] = 0.0,
    end: Annotated[
        float | None, typer.Option(help="End time in seconds (exclusive) (default: the end).")
    ] = None,
    device: Annotated[
        str, typer.Option(help="auto (a GPU when there is one), cpu, cuda or cuda:N.")
    ] = "auto",
    dtype: Annotated[
        str, typer.Option(help="auto (bf16 where the device computes it natively), fp32 or bf16 (autocast).")
    ] = "auto",
    save: Annotated[
        str, typer.Option(help="Outputs to write: a subset of mp4,png,json,gif.")
    ] = "mp4,png,json",
    select: Annotated[
        str,
        typer.Option(
            help="top1: the sequence with the best TSVS score (MTTR); threshold: the union of every sequence "
            "scoring above --score-threshold, an empty mask when none does (several objects or none).",
        ),
    ] = "top1",
    score_threshold: Annotated[
        float, typer.Option(help="The TSVS score a sequence must exceed with --select threshold.")
    ] = DEFAULT_SCORE_THRESHOLD,
    trust_checkpoint: TrustCheckpoint = False,
) -> None:
    """Segment the object each sentence refers to in every frame of VIDEO.

    Writes an overlay video (one colour per sentence, with a legend), per-frame mask PNGs per sentence and
    predictions.json (COCO RLE and score per sentence and frame) into the output folder.
    """
    kinds = parse_save(save)
    parsed_size = parse_size(size) if size is not None else None
    if checkpoint is None:
        raise RvosError(NO_CHECKPOINT)
    out_dir = out if out is not None else Path("runs") / "infer" / (video.stem or "video")

    from rvos_cli.core.checkpoints import checkpoint_config, trusted_checkpoints
    from rvos_cli.core.devices import resolve_device, resolve_dtype
    from rvos_cli.engine.infer import check_inference_inputs, run_inference
    from rvos_cli.engine.predictor import DEFAULT_PRESET, Predictor, check_settings

    check_settings(window, overlap, parsed_size)
    check_selection(select, score_threshold)
    with trusted_checkpoints(trust_checkpoint):  # an unreadable checkpoint fails before the video is probed
        checkpoint_config(checkpoint, preset, default_preset=DEFAULT_PRESET)
    frames = check_inference_inputs(video, text, out_dir, start=start, end=end, save=kinds)
    with warnings.catch_warnings():
        warnings.simplefilter("always", UserWarning)
        warnings.showwarning = _show_warning
        device = resolve_device(device)
        dtype = resolve_dtype(dtype, device)
        with trusted_checkpoints(trust_checkpoint):
            predictor = Predictor.from_checkpoint(
                checkpoint, preset, text_encoder, device, dtype, window, overlap, parsed_size,
                select=select, score_threshold=score_threshold,
            )  # fmt: skip
        with _progress_bar() as on_progress:
            result = run_inference(
                predictor, video, text, out_dir, save=kinds, progress=on_progress, frames=frames
            )
    _print_summary(result)


def _show_warning(message: Warning | str, *args: Any, **kwargs: Any) -> None:
    """Print a warning (e.g. a truncated sentence) as one yellow line on stderr."""
    err_console.print(f"[yellow]warning:[/] {message}", highlight=False, soft_wrap=True)


@contextlib.contextmanager
def _progress_bar() -> Iterator[Callable[[int, int], None]]:
    """A rich progress bar on stderr (frames done, frames/s, time left); yields its update callback."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    progress = Progress(
        TextColumn("segmenting"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("frames  {task.fields[speed]}"),
        TimeRemainingColumn(),
        console=err_console,
    )
    began = time.perf_counter()
    tasks: list[Any] = []

    def update(done: int, total: int) -> None:
        if not tasks:
            tasks.append(progress.add_task("infer", total=total, speed=""))
        speed = done / max(time.perf_counter() - began, 1e-9)
        progress.update(tasks[0], completed=done, speed=f"{speed:.2f} frames/s")

    with progress:
        yield update


def _print_summary(result: Any) -> None:
    """The closing table on stdout: what was processed, how fast, and where the outputs are."""
    from rich.table import Table

    table = Table(title="rvos infer", show_header=False)
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    table.add_row("video", str(result.video))
    for index, (sentence, score) in enumerate(zip(result.sentences, result.scores, strict=True)):
        table.add_row(f"sentence {index}", f"{sentence}  (mean score {score:.3f})")
    first = result.first_frame
    table.add_row("frames", f"{result.num_frames} (source frames {first}–{first + result.num_frames - 1})")
    height, width = result.orig_size
    resized_h, resized_w = result.resized_size
    table.add_row("size", f"{height}×{width}, processed at {resized_h}×{resized_w}")
    table.add_row("speed", f"{result.frames_per_second:.2f} frames/s ({result.seconds:.1f} s)")
    labels = {"mp4": "overlay video", "gif": "overlay GIF", "json": "predictions", "png": "mask PNGs"}
    for kind, path in result.outputs.items():
        table.add_row(labels[kind], str(path))
    out_console.print(table)
