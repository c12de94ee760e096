"""`rvos prepare a2d|jhmdb|ytvos|mevis|davis|synthetic`: check a download, write what training needs."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from rvos_cli.cli.common import err_console, out_console
from rvos_cli.data import PREPARED_DIRNAME
from rvos_cli.errors import RvosError

prepare_app = typer.Typer(
    help="Check a dataset as downloaded and write sample lists, COCO ground truth and frame caches.",
    no_args_is_help=True,
)

RootOption = Annotated[Path, typer.Option("--root", help="The dataset folder as downloaded.")]
OutOption = Annotated[
    Path | None, typer.Option("--out", help=f"Where prepared files go (default: ROOT/{PREPARED_DIRNAME}).")
]
CACHE_HELP = "Decode every clip once into OUT/frames (fast training, needs N·H·W·3 bytes per clip)."
JHMDB_LIST_HELP = "The official fixed sample list (jhmdb_sentences_samples_metadata.json)."
SkipBadOption = Annotated[
    bool, typer.Option("--skip-bad", help="Leave out broken files and rows, list them, and go on.")
]


class SyntheticFormat(str, Enum):
    """On-disk layouts the synthetic generator can write."""

    a2d = "a2d"
    ytvos = "ytvos"
    mevis = "mevis"
    davis = "davis"


class SyntheticDifficulty(str, Enum):
    """basic: distinct colours per clip, sentences name colour/shape; full: any attribute, motion too."""

    basic = "basic"
    full = "full"


def _summary_table(summary) -> Table:
    table = Table(title=f"prepared {summary.dataset} → {summary.out}")
    table.add_column("item")
    table.add_column("count", justify="right")
    table.add_row("videos", str(summary.videos))
    for split, count in summary.samples.items():
        table.add_row(f"samples ({split})", str(count))
    table.add_row("frame caches written", str(summary.frames_written))
    table.add_row("frame caches reused", str(summary.frames_reused))
    table.add_row("skipped", str(len(summary.skipped)))
    return table


def _report(summary) -> None:
    out_console.print(_summary_table(summary))
    _report_skipped(summary.skipped)


def _report_skipped(skipped: list) -> None:
    for item in skipped:
        err_console.print(f"[yellow]skipped[/] {item}", highlight=False)


def _require_folder(root: Path) -> Path:
    if not root.is_dir():
        raise RvosError(f"{root}: dataset folder not found")
    return root


@prepare_app.command("a2d")
def prepare_a2d_command(
    root: RootOption,
    out: OutOption = None,
    skip_bad: SkipBadOption = False,
    cache_frames: Annotated[bool, typer.Option(help=CACHE_HELP)] = True,
) -> None:
    """A2D-Sentences: Release/videoset.csv, Release/clips320H/*.mp4, text_annotations/..."""
    from rvos_cli.data.a2d import prepare_a2d

    root = _require_folder(root)
    _report(prepare_a2d(root, out or root / PREPARED_DIRNAME, skip_bad=skip_bad, cache_frames=cache_frames))


@prepare_app.command("jhmdb")
def prepare_jhmdb_command(
    root: RootOption,
    out: OutOption = None,
    skip_bad: SkipBadOption = False,
    seed: Annotated[int, typer.Option(help="Seed of the 3 frames drawn per video.")] = 42,
    samples_metadata: Annotated[Path | None, typer.Option(help=JHMDB_LIST_HELP)] = None,
) -> None:
    """JHMDB-Sentences: Rename_Images/, puppet_mask/, jhmdb_annotation.txt (evaluation only)."""
    from rvos_cli.data.jhmdb import prepare_jhmdb

    root = _require_folder(root)
    summary = prepare_jhmdb(
        root, out or root / PREPARED_DIRNAME, skip_bad=skip_bad, seed=seed, samples_metadata=samples_metadata
    )
    _report(summary)


@prepare_app.command("ytvos")
def prepare_ytvos_command(
    root: RootOption,
    out: OutOption = None,
    skip_bad: SkipBadOption = False,
    window: Annotated[int, typer.Option(help="Training window size w (the paper: 12).")] = 12,
) -> None:
    """Ref-YouTube-VOS: train/ and valid/ JPEGImages + Annotations, meta_expressions/{train,valid,test}."""
    from rvos_cli.data.ytvos import prepare_ytvos

    root = _require_folder(root)
    _report(prepare_ytvos(root, out or root / PREPARED_DIRNAME, window=window, skip_bad=skip_bad))


@prepare_app.command("mevis")
def prepare_mevis_command(
    root: RootOption,
    out: OutOption = None,
    skip_bad: SkipBadOption = False,
    window: Annotated[int, typer.Option(help="Training window size w (frames per training sample).")] = 8,
) -> None:
    """MeViS: train/, valid_u/, valid/ (JPEGImages, meta_expressions.json, mask_dict.json) as downloaded."""
    from rvos_cli.data.mevis import prepare_mevis

    root = _require_folder(root)
    _report_mevis(prepare_mevis(root, out or root / PREPARED_DIRNAME, window=window, skip_bad=skip_bad))


def _report_mevis(summary) -> None:
    table = Table(title=f"prepared mevis → {summary.out}")
    for column in ("split", "videos", "expressions", "multi-object", "no-target", "train samples"):
        table.add_column(column, justify="left" if column == "split" else "right")
    for split, counts in summary.splits.items():
        samples = "–" if counts.samples is None else str(counts.samples)
        table.add_row(
            split, str(counts.videos), str(counts.expressions), str(counts.multi_object),
            str(counts.no_target), samples,
        )  # fmt: skip
    out_console.print(table)
    err_console.print(f"mask files: {summary.masks_written} written, {summary.masks_reused} reused")
    _report_skipped(summary.skipped)


@prepare_app.command("davis")
def prepare_davis_command(
    root: RootOption,
    out: OutOption = None,
    skip_bad: SkipBadOption = False,
    window: Annotated[int, typer.Option(help="Training window of the train samples (for fine-tuning).")] = 8,
) -> None:
    """Ref-DAVIS17: DAVIS/ (2017 unsupervised trainval 480p, semantics JSON), davis_text_annotations/."""
    from rvos_cli.data.davis import prepare_davis

    root = _require_folder(root)
    _report_davis(prepare_davis(root, out or root / PREPARED_DIRNAME, skip_bad=skip_bad, window=window))


def _report_davis(summary) -> None:
    table = Table(title=f"prepared davis → {summary.out}")
    for column in ("split", "sequences", "objects", "expressions"):
        table.add_column(column, justify="left" if column == "split" else "right")
    for split, counts in summary.splits.items():
        table.add_row(split, *(str(count) for count in counts))
    out_console.print(table)
    _report_skipped(summary.skipped)


@prepare_app.command("synthetic")
def prepare_synthetic_command(
    out: Annotated[Path, typer.Option("--out", help="Folder to write the dataset into.")],
    videos: Annotated[int, typer.Option("--videos", min=2, help="Clips (a quarter is held out).")] = 64,
    seed: Annotated[int, typer.Option(help="Same seed, same dataset.")] = 0,
    fmt: Annotated[SyntheticFormat, typer.Option("--format", help="On-disk layout.")] = SyntheticFormat.a2d,
    frames: Annotated[int, typer.Option("--frames", min=4, help="Frames per clip.")] = 24,
    size: Annotated[str, typer.Option(help="Frame size HEIGHTxWIDTH.")] = "120x160",
    window: Annotated[
        int, typer.Option(help="Training window for the ytvos, mevis and davis sample lists.")
    ] = 8,
    prepare: Annotated[bool, typer.Option(help="Also run the matching `rvos prepare` step.")] = True,
    difficulty: Annotated[
        SyntheticDifficulty,
        typer.Option(
            help="basic: every object of a clip has its own colour, sentences name colour and/or shape; "
            "full: colours repeat within a clip and sentences may need size and motion words."
        ),
    ] = SyntheticDifficulty.basic,
) -> None:
    """Generate a referring-video dataset (moving shapes, sentences that only the text disambiguates)."""
    from rvos_cli.data.synthetic import generate_synthetic

    try:
        height, width = (int(v) for v in size.lower().split("x"))
    except ValueError:
        raise RvosError(f"--size {size!r}: expected HEIGHTxWIDTH, e.g. 120x160") from None
    summary = generate_synthetic(
        out,
        videos,
        seed,
        fmt.value,
        frames_per_video=frames,
        size=(height, width),
        difficulty=difficulty.value,
    )
    table = Table(title=f"synthetic {fmt.value} dataset → {out}")
    for column in ("split", "videos", "sentences"):
        table.add_column(column, justify="right" if column != "split" else "left")
    for split, count, sentences in summary.rows():
        table.add_row(split, str(count), str(sentences))
    out_console.print(table)
    if prepare:
        if fmt is SyntheticFormat.a2d:
            from rvos_cli.data.a2d import prepare_a2d

            _report(prepare_a2d(out, out / PREPARED_DIRNAME))
        elif fmt is SyntheticFormat.mevis:
            from rvos_cli.data.mevis import prepare_mevis

            _report_mevis(prepare_mevis(out, out / PREPARED_DIRNAME, window=window))
        elif fmt is SyntheticFormat.davis:
            from rvos_cli.data.davis import prepare_davis

            _report_davis(prepare_davis(out, out / PREPARED_DIRNAME, window=window))
        else:
            from rvos_cli.data.ytvos import prepare_ytvos

            _report(prepare_ytvos(out, out / PREPARED_DIRNAME, window=window))


def register(app: typer.Typer) -> None:
    """Add `rvos prepare ...` to the application."""
    app.add_typer(prepare_app, name="prepare")
