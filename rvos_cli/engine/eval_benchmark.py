"""`rvos eval mevis|davis` as one run: which options apply, then scoring or evaluating a checkpoint.

  mevis  with a model: predictions (threshold selection by default: a sentence may refer to several
         objects or none), then J, F, J&F overall and per expression kind (valid_u), or the server's
         submission zip (valid); `--predictions DIR --gt-root DIR` scores an existing folder on valid_u.
  davis  with a model: the four runs anno_0..anno_3 and their mean (DAVIS 2017, `--davis-task
         unsupervised` as the published tables, or semi-supervised); `--predictions DIR --gt-root DIR`
         scores an existing anno_k/<sequence>/<frame>.png folder.
The model side is a `Predictor`; torch is imported only when a checkpoint is evaluated.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rvos_cli.data import PREPARED_DIRNAME
from rvos_cli.engine.eval_run import EvalResult
from rvos_cli.errors import RvosError

BENCHMARKS = ("mevis", "davis")
# Options of `rvos eval` that mean nothing for these two benchmarks.
NOT_APPLICABLE = ("--window", "--predictions-out", "--coco-gt")


def check_options(name: str, given: dict[str, Any], scoring: bool) -> None:
    """RvosError for an option that does not apply, or a missing one (names as on the command line)."""
    used = {option for option, value in given.items() if value is not None}
    for option in sorted(used & set(NOT_APPLICABLE)):
        raise RvosError(f"{option} does not apply to `rvos eval {name}`")
    if name == "mevis" and "--davis-task" in used:
        raise RvosError("--davis-task applies to `rvos eval davis` only")
    if name == "davis" and used & {"--split", "--select", "--score-threshold"}:
        option = sorted(used & {"--split", "--select", "--score-threshold"})[0]
        raise RvosError(
            f"{option} does not apply to `rvos eval davis` (one object per expression, val split)"
        )
    model_only = {"--data", "--prepared", "--checkpoint", "--preset", "--text-encoder", "--max-frames",
                  "--out", "--overwrite", "--set", "--select", "--score-threshold", "--split"}  # fmt: skip
    if scoring:
        for option in sorted(used & model_only - ({"--split"} if name == "mevis" else set())):
            raise RvosError(f"{option} is for evaluating a model; --predictions scores existing files")
        if "--gt-root" not in used:
            raise RvosError("scoring --predictions needs --gt-root (the ground truth to compare with)")
        if name == "mevis" and given.get("--split") not in (None, "valid_u"):
            raise RvosError("--predictions can be scored on valid_u only (valid has no ground truth)")
        return
    if "--gt-root" in used:
        raise RvosError("--gt-root is for scoring --predictions without a model")
    for option in ("--data", "--checkpoint"):
        if option not in used:
            raise RvosError(
                f"`rvos eval {name}` needs {option} (or --predictions to score existing predictions)"
            )


def run_benchmark(name: str, given: dict[str, Any], device: str, progress: bool = True) -> EvalResult:
    """Evaluate or score MeViS / Ref-DAVIS17 as the options say.

    Returns the `EvalResult`: nested metrics, and where the predictions went in its notes.

    `given` maps option names to values (None = not given): --data, --prepared, --checkpoint, --preset,
    --text-encoder, --max-frames, --split, --out, --predictions, --gt-root, --select, --score-threshold,
    --davis-task, plus the options that do not apply (checked here).
    """
    scoring = given.get("--predictions") is not None
    check_options(name, given, scoring)
    if scoring:
        predictions, gt_root = Path(given["--predictions"]), Path(given["--gt-root"])
        if name == "mevis":
            from rvos_cli.engine.eval_mevis import score_mevis_folder

            return EvalResult(
                score_mevis_folder(predictions, gt_root, progress), f"MeViS valid_u — {predictions}"
            )
        from rvos_cli.engine.eval_davis import score_davis

        task = given.get("--davis-task") or "unsupervised"
        result = score_davis(predictions, gt_root, task, progress)
        return EvalResult(result, f"Ref-DAVIS17 ({task}) — {predictions}")
    data = Path(given["--data"])
    if not data.is_dir():
        raise RvosError(f"{data}: dataset folder not found")
    prepared = Path(given.get("--prepared") or data / PREPARED_DIRNAME)
    from rvos_cli.engine.run_dir import output_dir

    split = given.get("--split") or "valid_u"
    run_name = f"mevis-{split}" if name == "mevis" else "davis"
    out = output_dir(given.get("--out"), bool(given.get("--overwrite")), "eval", run_name)
    predictor = _predictor(name, given, device)
    checkpoint = given["--checkpoint"]
    if name == "mevis":
        from rvos_cli.engine.eval_mevis import evaluate_mevis

        result = evaluate_mevis(predictor, data, prepared, split, out, progress)
        return EvalResult(
            result, f"MeViS {split} — {checkpoint}", notes=[f"predictions: {out / 'predictions'}"]
        )
    from rvos_cli.engine.eval_davis import evaluate_davis

    task = given.get("--davis-task") or "unsupervised"
    result = evaluate_davis(predictor, data, prepared, out, task, progress)
    return EvalResult(
        result, f"Ref-DAVIS17 ({task}) — {checkpoint}", notes=[f"predictions: {out}/anno_0..anno_3"]
    )


def _predictor(name: str, given: dict[str, Any], device: str) -> Any:
    """The `Predictor` of the checkpoint: threshold selection for MeViS (default), top-1 for DAVIS."""
    from rvos_cli.core.selection import DEFAULT_SCORE_THRESHOLD
    from rvos_cli.engine.predictor import DEFAULT_OVERLAP, DEFAULT_WINDOW, Predictor

    window = given.get("--max-frames") or DEFAULT_WINDOW
    overlap = DEFAULT_OVERLAP if given.get("--max-frames") is None else window // 4
    select = given.get("--select") or ("threshold" if name == "mevis" else "top1")
    threshold = given.get("--score-threshold")
    return Predictor.from_checkpoint(
        given["--checkpoint"],
        preset=given.get("--preset"),
        text_encoder=given.get("--text-encoder"),
        device=device,
        window=window,
        overlap=overlap,
        select=select,
        score_threshold=DEFAULT_SCORE_THRESHOLD if threshold is None else threshold,
        overrides=given.get("--set") or (),
    )
