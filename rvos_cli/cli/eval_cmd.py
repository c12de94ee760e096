"""`rvos eval a2d|jhmdb|ytvos|mevis|davis`: evaluate a checkpoint on prepared data, or score predictions.

With a model (`--data DIR --checkpoint CKPT`):
  a2d / jhmdb  every test sample's Nq masks and P(referred) scores → mAP, AP50, AP75, AP by area (COCO,
               useCats 0), P@0.5…0.9, overall and mean IoU;
  ytvos        the submission (`Annotations/<video>/<exp>/<frame>.png` and `submission.zip` in `--out`),
               plus J, F, J&F when the valid split has local ground truth (synthetic or held-out data);
  mevis        J, F, J&F on valid_u, overall and per expression kind, or the valid submission zip;
  davis        the four Ref-DAVIS17 runs (DAVIS 2017 Mean/Recall/Decay) and their mean J&F.
Without a model: `--predictions PRED.json --coco-gt GT.json` (a2d / jhmdb) or `--predictions DIR
--gt-root DIR` (ytvos, mevis, davis). The evaluation itself is `engine.eval_run.run_evaluation`.

The table on stdout prints values ×100 with two decimals, as papers do. `--json OUT` holds the same
metrics as fractions in [0, 1]; an AP area range without any ground truth (pycocotools: −1) is JSON null
and "–" in the table.
"""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from rvos_cli.cli.common import err_console, out_console
from rvos_cli.cli.options import (
    DATA_PANEL,
    OUTPUT_PANEL,
    RUN_PANEL,
    CheckpointOption,
    DataOption,
    DeviceOption,
    OverwriteOption,
    PresetOption,
    SetOption,
    TextEncoderOption,
    TrustCheckpointOption,
    out_option,
)
from rvos_cli.data import PREPARED_DIRNAME
from rvos_cli.engine.eval_run import EvalRequest, EvalResult
from rvos_cli.errors import RvosError


class EvalDataset(str, Enum):
    """The benchmarks `rvos eval` knows."""

    a2d = "a2d"
    jhmdb = "jhmdb"
    ytvos = "ytvos"
    mevis = "mevis"
    davis = "davis"


class DavisTask(str, Enum):
    """The DAVIS 2017 protocols: unsupervised (the published Ref-DAVIS17 tables) or semi-supervised."""

    unsupervised = "unsupervised"
    semi_supervised = "semi-supervised"


class Select(str, Enum):
    """How sequences become a sentence's mask: the TSVS best one, or all above --score-threshold."""

    top1 = "top1"
    threshold = "threshold"


def register(app: typer.Typer) -> None:
    """Add the `eval` command to the `rvos` app."""
    app.command("eval", no_args_is_help=True)(eval_command)


SCORING_PANEL = "Scoring existing predictions (no model)"


def eval_command(
    dataset: Annotated[EvalDataset, typer.Argument(help="Benchmark: a2d, jhmdb, ytvos, mevis or davis.")],
    data: DataOption = None,
    checkpoint: CheckpointOption = None,
    preset: PresetOption = None,
    text_encoder: TextEncoderOption = None,
    assignments: SetOption = None,
    trust_checkpoint: TrustCheckpointOption = False,
    prepared: Annotated[
        Path | None,
        typer.Option(
            "--prepared",
            help=f"Prepared files of --data (default: DATA/{PREPARED_DIRNAME}).",
            rich_help_panel=DATA_PANEL,
        ),
    ] = None,
    split: Annotated[
        str | None,
        typer.Option(
            "--split",
            help="ytvos: valid; mevis: valid_u (local J&F, default) or valid (submission zip).",
            rich_help_panel=DATA_PANEL,
        ),
    ] = None,
    window: Annotated[
        int | None,
        typer.Option(
            "--window",
            min=1,
            help="a2d/jhmdb: frames per clip around the annotated frame (default: the config's).",
            rich_help_panel=RUN_PANEL,
        ),
    ] = None,
    max_frames: Annotated[
        int | None,
        typer.Option(
            "--max-frames",
            min=1,
            help="ytvos: longest video in one pass; longer ones go in linked windows (default: no limit); "
            "mevis/davis: window size (default 24, overlap 6).",
            rich_help_panel=RUN_PANEL,
        ),
    ] = None,
    batch_size: Annotated[
        int,
        typer.Option(
            "--batch-size",
            min=1,
            help="a2d/jhmdb: clips per batch. The default is the paper's (3 per GPU): frames are padded to "
            "the largest in their batch, which changes the masks, so other sizes give other numbers.",
            rich_help_panel=RUN_PANEL,
        ),
    ] = 3,
    select: Annotated[
        Select | None,
        typer.Option(
            "--select",
            help="mevis: top1 (one object per sentence) or threshold (every sequence whose TSVS score "
            "exceeds --score-threshold, none → empty masks; the default for mevis).",
            rich_help_panel=RUN_PANEL,
        ),
    ] = None,
    score_threshold: Annotated[
        float | None,
        typer.Option(
            "--score-threshold",
            min=0.0,
            max=1.0,
            help="mevis --select threshold: τ (default 0.5).",
            rich_help_panel=RUN_PANEL,
        ),
    ] = None,
    davis_task: Annotated[
        DavisTask | None,
        typer.Option(
            "--davis-task",
            help="davis: unsupervised (default; the published tables: all frames, Hungarian association, "
            "void excluded) or semi-supervised (ids fixed, first and last frames dropped).",
            rich_help_panel=RUN_PANEL,
        ),
    ] = None,
    device: DeviceOption = "auto",
    out: Annotated[
        Path | None, out_option("runs/eval/<benchmark>-<split> (ytvos, mevis, davis masks)")
    ] = None,
    overwrite: OverwriteOption = False,
    predictions_out: Annotated[
        Path | None,
        typer.Option(
            "--predictions-out",
            help="a2d/jhmdb: also save the COCO results JSON here.",
            rich_help_panel=OUTPUT_PANEL,
        ),
    ] = None,
    json_out: Annotated[
        Path | None,
        typer.Option(
            "--json",
            help="Write the metrics (fractions in [0, 1]) to this JSON file.",
            rich_help_panel=OUTPUT_PANEL,
        ),
    ] = None,
    predictions: Annotated[
        Path | None,
        typer.Option(
            "--predictions",
            help="Score these predictions without a model: COCO results JSON (a2d/jhmdb), a folder "
            "<video>/<exp>/<frame>.png (ytvos, mevis) or anno_0..anno_3/<sequence>/<frame>.png (davis).",
            rich_help_panel=SCORING_PANEL,
        ),
    ] = None,
    coco_gt: Annotated[
        Path | None,
        typer.Option(
            "--coco-gt", help="a2d/jhmdb scoring: COCO ground-truth JSON.", rich_help_panel=SCORING_PANEL
        ),
    ] = None,
    gt_root: Annotated[
        Path | None,
        typer.Option(
            "--gt-root",
            help="ytvos scoring: folder with Annotations/<video>/<frame>.png and meta_expressions.json; "
            "mevis: the valid_u folder (or the MeViS root); davis: the download root (DAVIS/...).",
            rich_help_panel=SCORING_PANEL,
        ),
    ] = None,
) -> None:
    """Evaluate a checkpoint on A2D-/JHMDB-Sentences, Ref-YouTube-VOS, MeViS or Ref-DAVIS17, or score
    existing predictions."""
    if json_out is not None and not json_out.parent.is_dir():
        raise RvosError(f"{json_out}: its folder {json_out.parent} does not exist")
    from rvos_cli.core.devices import resolve_device

    request = EvalRequest(
        dataset.value,
        data=data,
        prepared=prepared,
        checkpoint=checkpoint,
        preset=preset,
        text_encoder=text_encoder,
        window=window,
        max_frames=max_frames,
        split=split,
        out=out,
        overwrite=overwrite or None,
        predictions_out=predictions_out,
        predictions=predictions,
        coco_gt=coco_gt,
        gt_root=gt_root,
        select=select.value if select is not None else None,
        score_threshold=score_threshold,
        davis_task=davis_task.value if davis_task is not None else None,
        overrides=tuple(assignments) if assignments else None,
        batch_size=batch_size,
        device=resolve_device(device),
    )
    from rvos_cli.core.checkpoints import trusted_checkpoints
    from rvos_cli.engine.eval_run import run_evaluation

    with trusted_checkpoints(trust_checkpoint):
        result = run_evaluation(request)
    if result is None:  # a non-zero rank under torchrun: rank 0 reports
        return
    _print_result(dataset.value, result)
    if json_out is not None:
        from rvos_cli.fileio import write_json_atomic

        write_json_atomic(json_out, result.metrics)
        err_console.print(f"metrics written to {json_out}")


def _print_result(name: str, result: EvalResult) -> None:
    """The notes and the table on stdout, the warnings on stderr."""
    for note in result.notes:
        out_console.print(note, soft_wrap=True)
    for warning in result.warnings:
        err_console.print(warning)
    if "submission" in result.metrics:  # MeViS valid: no ground truth, the server scores the zip
        out_console.print(f"submission: {result.metrics['submission']} (upload it to the MeViS server)")
        return
    if name in ("mevis", "davis"):
        from rvos_cli.cli.eval_benchmarks import davis_table, mevis_table

        out_console.print(result.title, soft_wrap=True, highlight=False)
        out_console.print(mevis_table(result.metrics) if name == "mevis" else davis_table(result.metrics))
    elif any(value is not None for value in result.metrics.values()):
        out_console.print(result.title, soft_wrap=True, highlight=False)
        out_console.print(metrics_table(result.metrics))


def metrics_table(metrics: dict[str, float | None]) -> Table:
    """A rich table with one row per metric, values (fractions) printed ×100 with two decimals; None "–"."""
    table = Table()
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key, value in metrics.items():
        table.add_row(key, "–" if value is None else f"{100 * value:.2f}")
    return table
