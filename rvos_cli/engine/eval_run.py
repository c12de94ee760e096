"""One evaluation run, as `rvos eval` asks for it: score existing predictions, or evaluate a checkpoint.

`run_evaluation(request)` checks that the options given fit together, then either scores prediction
files (`engine.scoring`) or loads the prepared dataset and the model and evaluates it (`engine.evaluator`),
sharing A2D/JHMDB prediction across torchrun ranks; MeViS and Ref-DAVIS17 go to `engine.eval_benchmark`.
It returns the metrics (fractions in [0, 1], None for an AP area range without ground truth), the table
title and the lines to show the user; it prints nothing.

Torch is imported only when a model is evaluated, so importing this module stays light.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from rvos_cli.data import PREPARED_DIRNAME
from rvos_cli.errors import RvosError

DATASETS = ("a2d", "jhmdb", "ytvos", "mevis", "davis")
BENCHMARKS = ("mevis", "davis")  # evaluated by `engine.eval_benchmark`
NAMES = {"a2d": "A2D-Sentences", "jhmdb": "JHMDB-Sentences", "ytvos": "Ref-YouTube-VOS"}
# Prepared files each evaluation reads (spec §10; written by `rvos prepare <dataset>`).
PREPARED_FILES = {
    "a2d": ("samples_test.json", "coco_gt_test.json", "videos.json"),
    "jhmdb": ("samples_test.json", "coco_gt_test.json"),
    "ytvos": ("samples_valid.json",),
}
YTVOS_RUN_NAME = "ytvos-valid"  # default output folder: runs/eval/ytvos-valid (-2, -3, ... on repeats)

# Options that only make sense in one mode or for one kind of dataset (named as the CLI spells them).
_MODEL_ONLY = ("--data", "--prepared", "--checkpoint", "--preset", "--text-encoder", "--window",
               "--max-frames", "--split", "--out", "--overwrite", "--predictions-out", "--set")  # fmt: skip
_SCORING_ONLY = ("--coco-gt", "--gt-root")
_A2D_ONLY = ("--window", "--predictions-out", "--coco-gt")
_YTVOS_ONLY = ("--max-frames", "--split", "--out", "--overwrite", "--gt-root")
_OPTION_NAMES = {"overrides": "--set"}  # EvalRequest fields whose option is not --field-name
_BENCHMARK_ONLY = ("--select", "--score-threshold", "--davis-task")


@dataclass
class EvalRequest:
    """What to evaluate; each optional field is one `rvos eval` option (None = not given).

    `dataset` is 'a2d', 'jhmdb' or 'ytvos'. With `predictions` the files are scored against `coco_gt`
    (a2d/jhmdb) or `gt_root` (ytvos); otherwise `checkpoint` is evaluated on the prepared `data` (its
    `prepared` folder, default DATA/rvos_prepared). `device` is already resolved ('cpu', 'cuda:0', ...).
    """

    dataset: str
    data: Path | None = None
    prepared: Path | None = None
    checkpoint: Path | None = None
    preset: str | None = None
    text_encoder: str | None = None
    window: int | None = None
    max_frames: int | None = None
    split: str | None = None
    out: Path | None = None
    overwrite: bool | None = None
    predictions_out: Path | None = None
    predictions: Path | None = None
    coco_gt: Path | None = None
    gt_root: Path | None = None
    select: str | None = None
    score_threshold: float | None = None
    davis_task: str | None = None
    overrides: tuple[str, ...] | None = None  # --set key.path=value, applied to the checkpoint's config
    batch_size: int = 3  # a2d/jhmdb: the paper's per-GPU eval batch (padding in a batch changes masks)
    device: str = "cpu"

    def options_given(self) -> dict[str, Any]:
        """{'--option': value} of the optional fields, as the CLI spells them."""
        skip = {"dataset", "predictions", "batch_size", "device"}
        return {
            _OPTION_NAMES.get(f.name, "--" + f.name.replace("_", "-")): getattr(self, f.name)
            for f in fields(self)
            if f.name not in skip
        }


@dataclass
class EvalResult:
    """The outcome of a run: metrics (fractions or None), the table title and messages for the user.

    `metrics` is flat ({'mAP': ..} or {'J': ..}) for a2d/jhmdb/ytvos and nested for mevis/davis (see
    `eval_mevis` / `eval_davis`; {'submission': path} for MeViS valid). `notes` go to stdout (where the
    outputs are), `warnings` to stderr (what the user should know).
    """

    metrics: dict[str, Any]
    title: str
    notes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def check_option_use(request: EvalRequest) -> None:
    """Raise RvosError for a missing required option or one that does not apply to this evaluation."""
    name, given = request.dataset, request.options_given()
    used = {option for option, value in given.items() if value is not None}
    for option in sorted(used & set(_BENCHMARK_ONLY)):
        raise RvosError(f"{option} applies to `rvos eval mevis` / `rvos eval davis` only")
    wrong_kind = _YTVOS_ONLY if name in ("a2d", "jhmdb") else _A2D_ONLY
    for option in sorted(used & set(wrong_kind)):
        kinds = "ytvos" if option in _YTVOS_ONLY else "a2d and jhmdb"
        raise RvosError(f"{option} applies to `rvos eval {kinds}` only")
    if request.predictions is not None:
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
    if request.split not in (None, "valid"):
        raise RvosError(f"--split {request.split}: only the valid split can be evaluated")


def _given(path: Path | None, option: str) -> Path:
    """`path`, which `check_option_use` made sure was given (RvosError naming `option` if not)."""
    if path is None:
        raise RvosError(f"{option} is required here")
    return path


def run_evaluation(request: EvalRequest) -> EvalResult | None:
    """Check the request, then score its predictions or evaluate its checkpoint.

    Returns the `EvalResult`; under torchrun (a2d/jhmdb) every rank predicts a share of the samples and
    only rank 0 gets the result, the others None. Raises RvosError for any user mistake.
    """
    if request.dataset not in DATASETS:
        raise RvosError(f"unknown benchmark {request.dataset!r}; expected one of {', '.join(DATASETS)}")
    if request.dataset in BENCHMARKS:
        from rvos_cli.engine.eval_benchmark import run_benchmark

        given = {**request.options_given(), "--predictions": request.predictions}
        return run_benchmark(request.dataset, given, request.device)
    check_option_use(request)
    if request.predictions_out is not None and not request.predictions_out.parent.is_dir():
        path = request.predictions_out
        raise RvosError(f"{path}: its folder {path.parent} does not exist")
    if request.predictions is not None:
        return EvalResult(score_predictions(request), f"{NAMES[request.dataset]} — {request.predictions}")
    if request.dataset == "ytvos":  # the output folder is settled before the model loads
        from rvos_cli.engine.run_dir import output_dir

        out = output_dir(request.out, bool(request.overwrite), "eval", YTVOS_RUN_NAME)
        request = replace(request, out=out)
    return evaluate_checkpoint(request)


def score_predictions(request: EvalRequest) -> dict[str, float | None]:
    """Metrics of existing predictions (the ground-truth option was checked by `check_option_use`)."""
    from rvos_cli.engine.evaluator import A2D_KEYS, YTVOS_KEYS, json_metrics
    from rvos_cli.engine.scoring import score_a2d_predictions, score_ytvos_predictions

    predictions = _given(request.predictions, "--predictions")
    if request.dataset == "ytvos":
        gt_root = _given(request.gt_root, "--gt-root")
        return json_metrics(score_ytvos_predictions(predictions, gt_root), YTVOS_KEYS)
    coco_gt = _given(request.coco_gt, "--coco-gt")
    return json_metrics(score_a2d_predictions(predictions, coco_gt), A2D_KEYS)


def evaluate_checkpoint(request: EvalRequest) -> EvalResult | None:
    """Evaluate `request.checkpoint` on the prepared data, in the torchrun group if there is one.

    Returns the result on rank 0 (or in a single process) and None on the other ranks.
    """
    data = _given(request.data, "--data")
    if not data.is_dir():
        raise RvosError(f"{data}: dataset folder not found")
    prepared = request.prepared or data / PREPARED_DIRNAME
    check_prepared(request.dataset, data, prepared)

    from rvos_cli.engine.distributed import cleanup, env_dist_info, init_distributed

    if request.dataset == "ytvos" and env_dist_info().enabled:
        raise RvosError("`rvos eval ytvos` runs in a single process; start it without torchrun")
    info, device, created = init_distributed(request.device)
    try:
        result = _evaluate_loaded(request, prepared, device, info.enabled)
    finally:
        cleanup(created)
    return result if info.is_main else None


@dataclass
class _Loaded:
    """A checkpoint's `Predictor` (model, tokenizer, config, device), with what the dataset needs to load."""

    data: Path
    prepared: Path
    predictor: Any
    transforms: Any
    title: str


def _evaluate_loaded(request: EvalRequest, prepared: Path, device: str, distributed: bool) -> EvalResult:
    """Load the model and the prepared dataset of `request` on `device` and evaluate."""
    from rvos_cli.data.transforms import VideoTransforms
    from rvos_cli.engine.predictor import Predictor

    data, checkpoint = _given(request.data, "--data"), _given(request.checkpoint, "--checkpoint")
    # Official checkpoints store no architecture: eval asks for --preset rather than assuming one.
    predictor = Predictor.from_checkpoint(
        checkpoint, request.preset, request.text_encoder, device=device, dtype="fp32", default_preset=None,
        overrides=request.overrides or (),
    )  # fmt: skip
    config = predictor.config
    eval_size = (config.data.eval_short_size, config.data.eval_max_size)
    transforms = VideoTransforms(*eval_size, horizontal_flip=False)
    title = f"{NAMES[request.dataset]} — {checkpoint}"
    loaded = _Loaded(data, prepared, predictor, transforms, title)
    if request.dataset == "ytvos":
        return _evaluate_ytvos(request, loaded)
    return _evaluate_a2d(request, loaded, distributed)


def _evaluate_ytvos(request: EvalRequest, loaded: _Loaded) -> EvalResult:
    """Ref-YouTube-VOS: the submission in `request.out`, J/F/J&F when the valid split has ground truth."""
    from rvos_cli.data.ytvos import ReferYouTubeVOSDataset
    from rvos_cli.engine.evaluator import evaluate_ytvos

    out = _given(request.out, "--out")  # resolved by run_evaluation
    valid = ReferYouTubeVOSDataset(loaded.prepared, loaded.data, "valid", loaded.transforms)
    metrics = evaluate_ytvos(loaded.predictor, valid, out, request.max_frames)
    result = EvalResult(metrics, loaded.title)
    result.notes.append(f"submission: {out / 'submission.zip'} (predictions in {out / 'Annotations'})")
    if not valid.has_gt:
        result.warnings.append(
            f"no local ground truth ({loaded.data / 'valid' / 'Annotations'} missing): upload the zip to the "
            "Ref-YouTube-VOS server for J&F"
        )
    return result


def _evaluate_a2d(request: EvalRequest, loaded: _Loaded, distributed: bool) -> EvalResult:
    """A2D-/JHMDB-Sentences: mAP, AP by IoU and area, P@K and the IoUs of the test split."""
    from rvos_cli.data.prepare import load_prepared
    from rvos_cli.engine.evaluator import evaluate_a2d

    clip_window = request.window or loaded.predictor.config.train.window
    if request.dataset == "a2d":
        from rvos_cli.data.a2d import A2DSentencesDataset

        test = A2DSentencesDataset(loaded.prepared, loaded.data, "test", clip_window, loaded.transforms)
    else:
        from rvos_cli.data.jhmdb import JHMDBSentencesDataset

        test = JHMDBSentencesDataset(loaded.prepared, loaded.data, clip_window, loaded.transforms)
    coco_gt = load_prepared(loaded.prepared, "coco_gt_test.json", f"rvos prepare {request.dataset}")
    metrics = evaluate_a2d(
        loaded.predictor,
        test,
        coco_gt,
        request.batch_size,
        predictions_out=request.predictions_out,
        distributed=distributed,
    )
    return EvalResult(metrics, f"{loaded.title} (window {clip_window})")


def check_prepared(name: str, data: Path, prepared: Path) -> None:
    """Raise RvosError naming the `rvos prepare` command to run when a prepared file is missing."""
    missing = [file for file in PREPARED_FILES[name] if not (prepared / file).is_file()]
    if missing:
        out_option = "" if prepared == data / PREPARED_DIRNAME else f" --out {prepared}"
        raise RvosError(
            f"{prepared / missing[0]}: missing; the data is not prepared, run "
            f"`rvos prepare {name} --root {data}{out_option}` first"
        )
