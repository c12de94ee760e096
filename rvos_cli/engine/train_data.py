"""What a training run reads: the training split of a prepared dataset, and the per-epoch evaluation.

The dataset format comes from the folder's layout (A2D-Sentences, Ref-YouTube-VOS, JHMDB-Sentences,
MeViS, Ref-DAVIS17);
unprepared data fails with the `rvos prepare` command that fixes it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, Sampler

from rvos_cli.core.config import Config, TrainConfig
from rvos_cli.data import PREPARED_DIRNAME
from rvos_cli.engine.run_dir import VALIDATION_DIR
from rvos_cli.errors import RvosError

# (model in eval mode, epoch index) → metrics such as {"mAP": ..} or {"J&F": ..}; runs on rank 0 only.
EvaluateEpoch = Callable[[nn.Module, int], dict[str, float]]


def detect_dataset(data_root: Path, configured: str) -> str:
    """The dataset format of `data_root` from its layout ("a2d", "ytvos", "jhmdb", "mevis", "davis"), else
    `configured`.

    Raises RvosError when the folder does not exist.
    """
    root = Path(data_root)
    if not root.is_dir():
        raise RvosError(f"--data {root}: no such folder")
    if (root / "Release" / "videoset.csv").is_file():
        return "a2d"
    if (root / "meta_expressions").is_dir():
        return "ytvos"
    if (root / "Rename_Images").is_dir():
        return "jhmdb"
    if (root / "train" / "mask_dict.json").is_file():
        return "mevis"
    if (root / "DAVIS" / "ImageSets").is_dir():
        return "davis"
    return configured


def build_train_dataset(config: Config, data_root: Path, prepared: Path | None = None) -> Dataset:
    """The training split of `config.data.dataset` at `data_root`, prepared into `prepared`
    (default `<data_root>/rvos_prepared`); RvosError naming the `rvos prepare` command if it is not."""
    from rvos_cli.data.transforms import VideoTransforms

    root = Path(data_root)
    folder = Path(prepared) if prepared is not None else root / PREPARED_DIRNAME
    name, window = config.data.dataset, config.train.window
    out_flag = f" --out {folder}" if prepared is not None else ""
    transforms = VideoTransforms(
        config.data.train_short_size, config.data.train_max_size, config.data.horizontal_flip
    )
    if name == "a2d":
        _require_prepared(folder / "samples_train.json", f"rvos prepare a2d --root {root}{out_flag}")
        from rvos_cli.data.a2d import A2DSentencesDataset

        return A2DSentencesDataset(folder, root, "train", window, transforms, seed=config.train.seed)
    if name == "ytvos":
        command = f"rvos prepare ytvos --root {root} --window {window}{out_flag}"
        _require_prepared(folder / f"samples_train_w{window}.json", command)
        from rvos_cli.data.ytvos import ReferYouTubeVOSDataset

        return ReferYouTubeVOSDataset(
            folder, root, "train", transforms, window=window, seed=config.train.seed
        )
    if name in ("mevis", "davis"):
        command = f"rvos prepare {name} --root {root} --window {window}{out_flag}"
        _require_prepared(folder / f"samples_train_w{window}.json", command)
        if name == "mevis":
            from rvos_cli.data.mevis_dataset import MevisTrainDataset

            return MevisTrainDataset(folder, root, window, transforms, seed=config.train.seed)
        from rvos_cli.data.davis_dataset import DavisTrainDataset

        return DavisTrainDataset(folder, root, window, transforms, seed=config.train.seed)
    if name == "jhmdb":
        raise RvosError(
            f"--data {root}: JHMDB-Sentences is for evaluation only (its train split is a dummy); "
            "train on A2D-Sentences and score with `rvos eval jhmdb`"
        )
    raise RvosError(f"config data.dataset {name!r}: expected a2d, ytvos, mevis or davis")


def _require_prepared(path: Path, command: str) -> None:
    if not path.is_file():
        raise RvosError(f"{path}: missing, the data is not prepared yet; run `{command}` first")


def epoch_evaluator(
    config: Config, data_root: Path, run_dir: Path, device: str, prepared: Path | None = None
) -> EvaluateEpoch | None:
    """The per-epoch evaluation of the reference (spec §9), or None when there is nothing to score.

    A2D-Sentences: mAP, P@K and IoUs on the prepared test split (`engine.evaluator.evaluate_a2d`).
    Ref-YouTube-VOS: J, F, J&F on the valid split when it has local ground truth (synthetic or held-out
    data), its masks written under `run_dir/validation_outputs/epoch_NN`; the real valid split has no
    ground truth, so there the training loss picks best.pth.tar. Metrics that are None are left out.
    """
    from rvos_cli.core.model import build_tokenizer
    from rvos_cli.data.transforms import VideoTransforms
    from rvos_cli.engine import evaluator
    from rvos_cli.engine.predictor import Predictor
    from rvos_cli.fileio import read_json

    root = Path(data_root)
    folder = Path(prepared) if prepared is not None else root / PREPARED_DIRNAME
    transforms = VideoTransforms(config.data.eval_short_size, config.data.eval_max_size, False)
    tokenizer = build_tokenizer(config.model)
    batch_size = config.data.eval_batch_size
    name = detect_dataset(root, config.data.dataset)
    if name == "a2d":
        from rvos_cli.data.a2d import A2DSentencesDataset

        if not (folder / "samples_test.json").is_file():
            return None
        dataset = A2DSentencesDataset(folder, root, "test", config.train.window, transforms)
        coco_gt = read_json(folder / "coco_gt_test.json", "COCO ground truth")
        if len(dataset) == 0:
            return None

        def evaluate_a2d(model: nn.Module, epoch: int) -> dict[str, float]:
            predictor = Predictor(model, tokenizer, config, device=device, dtype="fp32")  # type: ignore[arg-type]
            metrics = evaluator.evaluate_a2d(predictor, dataset, coco_gt, batch_size, False)
            return {k: v for k, v in metrics.items() if v is not None}

        return evaluate_a2d
    if name == "ytvos":
        from rvos_cli.data.ytvos import ReferYouTubeVOSDataset

        if not (folder / "samples_valid.json").is_file():
            return None
        valid = ReferYouTubeVOSDataset(folder, root, "valid", transforms)
        if not valid.has_gt or len(valid) == 0:
            return None

        def evaluate_ytvos(model: nn.Module, epoch: int) -> dict[str, float]:
            out = Path(run_dir) / VALIDATION_DIR / f"epoch_{epoch:02d}"
            predictor = Predictor(model, tokenizer, config, device=device, dtype="fp32")  # type: ignore[arg-type]
            metrics = evaluator.evaluate_ytvos(predictor, valid, out, progress=False)
            return {k: v for k, v in metrics.items() if v is not None}

        return evaluate_ytvos
    return None


def train_loader(
    dataset: Dataset, sampler: Sampler, train: TrainConfig, epoch: int, start: int, device: str
) -> DataLoader:
    """This rank's batches of `epoch` (collated, `train.batch_size` clips), skipping the first `start`
    samples of the rank's order (those trained on before a resume)."""
    from rvos_cli.data.collate import collate

    dataset.set_epoch(epoch)  # type: ignore[attr-defined]
    sampler.set_epoch(epoch, start=start)  # type: ignore[attr-defined]
    return DataLoader(
        dataset,
        batch_size=train.batch_size,
        sampler=sampler,
        collate_fn=collate,
        num_workers=train.num_workers,
        pin_memory=device.startswith("cuda"),
        # The loader's worker seeds come from here, not from the global RNG the model uses.
        generator=torch.Generator().manual_seed(train.seed + epoch),
    )
