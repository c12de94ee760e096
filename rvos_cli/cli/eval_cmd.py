"""`rvos eval a2d|jhmdb|ytvos`: evaluate a checkpoint on prepared data, or score existing predictions.

With a model (`--data DIR --checkpoint CKPT`):
  a2d / jhmdb  every test sample's Nq masks and P(referred) scores → mAP, AP50, AP75, AP by area (COCO,
               useCats 0), P@0.5…0.9, overall and mean IoU;
  ytvos        the submission (`Annotations/<video>/<exp>/<frame>.png` and `submission.zip` in `--out`),
               plus J, F, J&F when the valid split has local ground truth (synthetic or held-out data).
Without a model: `--predictions PRED.json --coco-gt GT.json` (a2d / jhmdb) or `--predictions DIR
--gt-root DIR` (ytvos).

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

from rvos_cli.cli.common import (
    TrustCheckpoint,
    err_console,
    out_console,
    parse_device,
    user_errors_exit_2,
)
from rvos_cli.data import PREPARED_DIRNAME
from rvos_cli.errors import RvosError

NAMES = {"a2d": "A2D-Sentences", "jhmdb": "JHMDB-Sentences", "ytvos": "Ref-YouTube-VOS"}
# Prepared files each evaluation reads (spec §10; written by `rvos prepare <dataset>`).
PREPARED_FILES = {
    "a2d": ("samples_test.json", "coco_gt_test.json", "videos.json"),
    "jhmdb": ("samples_test.json", "coco_gt_test.json"),
    "ytvos": ("samples_valid.json",),
}
DEFAULT_YTVOS_OUT = Path("runs") / "eval" / "ytvos-valid"


class EvalDataset(str, Enum):
    """The benchmarks `rvos eval` knows."""

    a2d = "a2d"
    jhmdb = "jhmdb"
    ytvos = "ytvos"


def register(app: typer.Typer) -> None:
    """Add the `eval` command to the `rvos` app."""
    app.command("eval", no_args_is_help=True)(eval_command)


@user_errors_exit_2
def eval_command(
    dataset: Annotated[EvalDataset, typer.Argument(help="Benchmark: a2d, jhmdb or ytvos.")],
    data: Annotated[
        Path | None,
        typer.Option("--data", help="Dataset root (as downloaded), prepared with `rvos prepare`."),
    ] = None,
    prepared: Annotated[
        Path | None,
        typer.Option("--prepared", help=f"Prepared files of --data (default: DATA/{PREPARED_DIRNAME})."),
    ] = None,
    checkpoint: Annotated[
        Path | None, typer.Option("--checkpoint", help="rvos or official MTTR checkpoint (.pth/.pth.tar).")
    ] = None,
    preset: Annotated[
        str | None,
        typer.Option(
            "--preset",
            help="Architecture (mttr-a2d, mttr-ytvos, tiny); required for official MTTR checkpoints "
            "(default: the config stored in an rvos checkpoint).",
        ),
    ] = None,
    text_encoder: Annotated[
        str | None, typer.Option("--text-encoder", help="Text encoder hub name or local folder.")
    ] = None,
    window: Annotated[
        int | None,
        typer.Option("--window", min=1, help="a2d/jhmdb: frames per clip around the annotated frame."),
    ] = None,
    max_frames: Annotated[
        int | None,
        typer.Option(
            "--max-frames",
            min=1,
            help="ytvos: longest video in one pass; longer ones go in linked windows (default: no limit).",
        ),
    ] = None,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="a2d/jhmdb: clips per batch.")] = 1,
    device: Annotated[str, typer.Option("--device", help="cpu, cuda or cuda:N.")] = "cpu",
    split: Annotated[str | None, typer.Option("--split", help="ytvos: the split to predict (valid).")] = None,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out", help=f"ytvos: folder for Annotations/ and submission.zip (default: {DEFAULT_YTVOS_OUT})."
        ),
    ] = None,
    predictions_out: Annotated[
        Path | None,
        typer.Option("--predictions-out", help="a2d/jhmdb: also save the COCO results JSON here."),
    ] = None,
    predictions: Annotated[
        Path | None,
        typer.Option(
            "--predictions",
            help="Score these predictions without a model: COCO results JSON (a2d/jhmdb) or a folder "
            "<video>/<exp>/<frame>.png (ytvos).",
        ),
    ] = None,
    coco_gt: Annotated[
        Path | None, typer.Option("--coco-gt", help="a2d/jhmdb scoring: COCO ground-truth JSON.")
    ] = None,
    gt_root: Annotated[
        Path | None,
        typer.Option(
            "--gt-root",
            help="ytvos scoring: folder with Annotations/<video>/<frame>.png and meta_expressions.json.",
        ),
    ] = None,
    json_out: Annotated[
        Path | None, typer.Option("--json", help="Write the metrics (fractions in [0, 1]) to this JSON file.")
    ] = None,
    trust_checkpoint: TrustCheckpoint = False,
) -> None:
    """Evaluate a checkpoint on A2D-/JHMDB-Sentences or Ref-YouTube-VOS, or score existing predictions."""
    name = dataset.value
    given = {
        "--data": data,
        "--prepared": prepared,
        "--checkpoint": checkpoint,
        "--preset": preset,
        "--text-encoder": text_encoder,
        "--window": window,
        "--max-frames": max_frames,
        "--split": split,
        "--out": out,
        "--predictions-out": predictions_out,
        "--coco-gt": coco_gt,
        "--gt-root": gt_root,
    }
    _check_option_use(name, given, scoring=predictions is not None)
    for path in (json_out, predictions_out):
        if path is not None and not path.parent.is_dir():
            raise RvosError(f"{path}: its folder {path.parent} does not exist")

    if predictions is not None:
        metrics = _score(name, predictions, coco_gt, gt_root)
        title = f"{NAMES[name]} — {predictions}"
    else:
        from rvos_cli.core.checkpoints import trusted_checkpoints

        with trusted_checkpoints(trust_checkpoint):
            evaluated = _evaluate(
                name,
                data=data,  # type: ignore[arg-type]  # checked by _check_option_use
                prepared=prepared,
                checkpoint=checkpoint,  # type: ignore[arg-type]
                preset=preset,
                text_encoder=text_encoder,
                window=window,
                max_frames=max_frames,
                batch_size=batch_size,
                device=parse_device(device),
                out=out or DEFAULT_YTVOS_OUT,
                predictions_out=predictions_out,
            )
        if evaluated is None:  # a non-zero rank under torchrun: rank 0 reports
            return
        metrics, title = evaluated
    if any(value is not None for value in metrics.values()):
        out_console.print(title, soft_wrap=True, highlight=False)
        out_console.print(metrics_table(metrics))
    if json_out is not None:
        from rvos_cli.fileio import write_json_atomic

        write_json_atomic(json_out, metrics)
        err_console.print(f"metrics written to {json_out}")


# Options that only make sense in one mode or for one kind of dataset.
_MODEL_ONLY = ("--data", "--prepared", "--checkpoint", "--preset", "--text-encoder", "--window",
               "--max-frames", "--split", "--out", "--predictions-out")  # fmt: skip
_SCORING_ONLY = ("--coco-gt", "--gt-root")
_A2D_ONLY = ("--window", "--predictions-out", "--coco-gt")
_YTVOS_ONLY = ("--max-frames", "--split", "--out", "--gt-root")


def _check_option_use(name: str, given: dict[str, object], scoring: bool) -> None:
    """Raise RvosError for a missing required option or one that does not apply to this evaluation."""
    used = {option for option, value in given.items() if value is not None}
    wrong_kind = _YTVOS_ONLY if name in ("a2d", "jhmdb") else _A2D_ONLY
    for option in sorted(used & set(wrong_kind)):
        kinds = "ytvos" if option in _YTVOS_ONLY else "a2d and jhmdb"
        raise RvosError(f"{option} applies to `rvos eval {kinds}` only")
    if scoring:
        for option in sorted(used & set(_MODEL_ONLY)):
            raise RvosError(f"{option} is for evaluating a model; --predictions scores existing files")
        needed = "--gt-root" if name == "ytvos" else "--coco-gt"
        if needed not in used:
            raise RvosError(f"scoring --predictions needs {needed} (the ground truth to compare with)")
        return
    for option in sorted(used & set(_SCORING_ONLY)):
        raise RvosError(f"{option} is for scoring --predictions without a model")
    for option in ("--data", "--checkpoint"):
        if option not in used:
            raise RvosError(
                f"`rvos eval {name}` needs {option} (or --predictions to score existing predictions)"
            )
    if given["--split"] not in (None, "valid"):
        raise RvosError(f"--split {given['--split']}: only the valid split can be evaluated")


def _score(
    name: str, predictions: Path, coco_gt: Path | None, gt_root: Path | None
) -> dict[str, float | None]:
    """Metrics of existing predictions (the ground-truth option was checked by `_check_option_use`)."""
    from rvos_cli.engine.evaluator import A2D_KEYS, YTVOS_KEYS, json_metrics
    from rvos_cli.engine.scoring import score_a2d_predictions, score_ytvos_predictions

    if name == "ytvos":
        return json_metrics(score_ytvos_predictions(predictions, gt_root), YTVOS_KEYS)  # type: ignore[arg-type]
    return json_metrics(score_a2d_predictions(predictions, coco_gt), A2D_KEYS)  # type: ignore[arg-type]


def _evaluate(
    name: str,
    *,
    data: Path,
    prepared: Path | None,
    checkpoint: Path,
    preset: str | None,
    text_encoder: str | None,
    window: int | None,
    max_frames: int | None,
    batch_size: int,
    device: str,
    out: Path,
    predictions_out: Path | None,
) -> tuple[dict[str, float | None], str] | None:
    """Build the dataset and the model, run the evaluation; returns (metrics, table title).

    Under torchrun (a2d/jhmdb only) every rank predicts a share of the samples; only rank 0 gets the
    result, the others get None.
    """
    if not data.is_dir():
        raise RvosError(f"{data}: dataset folder not found")
    prepared = prepared or data / PREPARED_DIRNAME
    _check_prepared(name, data, prepared)

    from rvos_cli.engine.distributed import cleanup, env_dist_info, init_distributed

    if name == "ytvos" and env_dist_info().enabled:
        raise RvosError("`rvos eval ytvos` runs in a single process; start it without torchrun")
    info, device, created = init_distributed(device)
    try:
        result = _run_evaluation(
            name, data, prepared, checkpoint, preset, text_encoder, window, max_frames, batch_size, device,
            out, predictions_out, info.enabled,
        )  # fmt: skip
    finally:
        cleanup(created)
    return result if info.is_main else None


def _run_evaluation(
    name: str,
    data: Path,
    prepared: Path,
    checkpoint: Path,
    preset: str | None,
    text_encoder: str | None,
    window: int | None,
    max_frames: int | None,
    batch_size: int,
    device: str,
    out: Path,
    predictions_out: Path | None,
    distributed: bool,
) -> tuple[dict[str, float | None], str]:
    """Load the model and the prepared dataset and evaluate; returns (metrics, table title)."""
    from rvos_cli.data.prepare import load_prepared
    from rvos_cli.data.transforms import VideoTransforms
    from rvos_cli.engine.evaluator import evaluate_a2d, evaluate_ytvos, load_eval_model

    model, tokenizer, config = load_eval_model(checkpoint, preset, text_encoder)
    model.to(device)
    transforms = VideoTransforms(
        config.data.eval_short_size, config.data.eval_max_size, horizontal_flip=False
    )
    title = f"{NAMES[name]} — {checkpoint}"
    if name == "ytvos":
        from rvos_cli.data.ytvos import ReferYouTubeVOSDataset

        valid = ReferYouTubeVOSDataset(prepared, data, "valid", transforms)
        metrics = evaluate_ytvos(model, tokenizer, valid, out, device, max_frames)
        out_console.print(
            f"submission: {out / 'submission.zip'} (predictions in {out / 'Annotations'})", soft_wrap=True
        )
        if not valid.has_gt:
            err_console.print(
                f"no local ground truth ({data / 'valid' / 'Annotations'} missing): upload the zip to the "
                "Ref-YouTube-VOS server for J&F"
            )
        return metrics, title

    clip_window = window or config.train.window
    if name == "a2d":
        from rvos_cli.data.a2d import A2DSentencesDataset

        test = A2DSentencesDataset(prepared, data, "test", clip_window, transforms)
    else:
        from rvos_cli.data.jhmdb import JHMDBSentencesDataset

        test = JHMDBSentencesDataset(prepared, data, clip_window, transforms)
    coco_gt = load_prepared(prepared, "coco_gt_test.json", f"rvos prepare {name}")
    metrics = evaluate_a2d(
        model,
        tokenizer,
        test,
        coco_gt,
        device,
        batch_size,
        predictions_out=predictions_out,
        distributed=distributed,
    )
    return metrics, f"{title} (window {clip_window})"


def _check_prepared(name: str, data: Path, prepared: Path) -> None:
    """Raise RvosError naming the `rvos prepare` command to run when a prepared file is missing."""
    missing = [file for file in PREPARED_FILES[name] if not (prepared / file).is_file()]
    if missing:
        out_option = "" if prepared == data / PREPARED_DIRNAME else f" --out {prepared}"
        raise RvosError(
            f"{prepared / missing[0]}: missing; the data is not prepared, run "
            f"`rvos prepare {name} --root {data}{out_option}` first"
        )


def metrics_table(metrics: dict[str, float | None]) -> Table:
    """A rich table with one row per metric, values (fractions) printed ×100 with two decimals; None "–"."""
    table = Table()
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key, value in metrics.items():
        table.add_row(key, "–" if value is None else f"{100 * value:.2f}")
    return table
