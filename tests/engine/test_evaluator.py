"""Evaluation with a model on tiny synthetic data: prediction layouts, submission zip, J&F, model loading."""

from __future__ import annotations

import json
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from PIL import Image

from rvos_cli.core.checkpoints import save_model_checkpoint
from rvos_cli.core.config import Config, config_to_dict, get_preset
from rvos_cli.core.inference import LinkedFrame, link_windows, plan_windows
from rvos_cli.core.metrics.jf import db_eval_boundary
from rvos_cli.core.model import MTTR, Tokenizer, build_model, build_tokenizer
from rvos_cli.data.a2d import A2DSentencesDataset, prepare_a2d
from rvos_cli.data.synthetic import generate_synthetic
from rvos_cli.data.transforms import VideoTransforms
from rvos_cli.data.ytvos import ReferYouTubeVOSDataset, prepare_ytvos
from rvos_cli.engine.evaluator import (
    A2D_KEYS,
    YTVOS_KEYS,
    evaluate_a2d,
    evaluate_ytvos,
    json_metrics,
    predict_a2d,
    predict_ytvos,
    score_ytvos_dataset,
)
from rvos_cli.engine.predictor import Predictor
from rvos_cli.errors import RvosError

SIZE = (64, 96)  # (H, W) of the synthetic frames = the original size of every prediction
FRAMES = 8
EVAL_TRANSFORMS = VideoTransforms(32, 48, horizontal_flip=False)
NUM_QUERIES = get_preset("tiny").model.transformer.num_queries


def on_cpu(model: MTTR, tokenizer: Tokenizer) -> Predictor:
    """The fp32 CPU Predictor `rvos eval` runs `model` through."""
    return Predictor(model, tokenizer, device="cpu", dtype="fp32")


def load_eval_model(checkpoint: Path, preset: str | None = None) -> tuple[MTTR, Tokenizer, Config]:
    """(model, tokenizer, config) of the checkpoint loaded as `rvos eval` loads it (fp32 on the CPU, no
    default preset for official checkpoints)."""
    loaded = Predictor.from_checkpoint(checkpoint, preset, device="cpu", dtype="fp32", default_preset=None)
    return loaded.model, loaded.tokenizer, loaded.config


@pytest.fixture(scope="module")
def model() -> MTTR:
    torch.manual_seed(0)
    return build_model("tiny").eval()


@pytest.fixture(scope="module")
def tokenizer() -> Tokenizer:
    return build_tokenizer("tiny")


@pytest.fixture(scope="module")
def a2d(tmp_path_factory: pytest.TempPathFactory) -> tuple[A2DSentencesDataset, dict]:
    root = tmp_path_factory.mktemp("a2d")
    generate_synthetic(root, num_videos=4, seed=0, fmt="a2d", frames_per_video=FRAMES, size=SIZE)
    prepare_a2d(root, root / "rvos_prepared")
    dataset = A2DSentencesDataset(root / "rvos_prepared", root, "test", 2, EVAL_TRANSFORMS)
    coco_gt = json.loads((root / "rvos_prepared" / "coco_gt_test.json").read_text())
    return dataset, coco_gt


@pytest.fixture(scope="module")
def ytvos(tmp_path_factory: pytest.TempPathFactory) -> ReferYouTubeVOSDataset:
    root = tmp_path_factory.mktemp("ytvos")
    generate_synthetic(root, num_videos=4, seed=0, fmt="ytvos", frames_per_video=FRAMES, size=SIZE)
    prepare_ytvos(root, root / "rvos_prepared", window=4)
    return ReferYouTubeVOSDataset(root / "rvos_prepared", root, "valid", EVAL_TRANSFORMS)


@pytest.fixture(scope="module")
def submission(
    model: MTTR, tokenizer: Tokenizer, ytvos: ReferYouTubeVOSDataset, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """The output folder of one whole-video `predict_ytvos` run."""
    out = tmp_path_factory.mktemp("submission")
    predict_ytvos(on_cpu(model, tokenizer), ytvos, out, progress=False)
    return out


def expected_pngs(dataset: ReferYouTubeVOSDataset) -> set[str]:
    return {
        f"{video}/{entry['exp_id']}/{frame}.png"
        for video, frames, entry in dataset.samples
        for frame in frames
    }


def test_a2d_predictions_hold_every_query_of_every_gt_image_at_original_size(
    model: MTTR, tokenizer: Tokenizer, a2d: tuple[A2DSentencesDataset, dict]
) -> None:
    dataset, coco_gt = a2d
    predictions = predict_a2d(on_cpu(model, tokenizer), dataset, batch_size=3, progress=False)
    image_ids = [image["id"] for image in coco_gt["images"]]
    assert len(image_ids) == len(dataset) > 0
    assert len(predictions) == NUM_QUERIES * len(image_ids)
    assert [p["image_id"] for p in predictions] == [i for i in image_ids for _ in range(NUM_QUERIES)]
    assert all(p["segmentation"]["size"] == list(SIZE) and p["category_id"] == 1 for p in predictions)
    assert all(0.0 <= p["score"] <= 1.0 for p in predictions)


def test_a2d_batching_does_not_change_predictions(
    model: MTTR, tokenizer: Tokenizer, a2d: tuple[A2DSentencesDataset, dict]
) -> None:
    dataset, _ = a2d
    alone = predict_a2d(on_cpu(model, tokenizer), dataset, batch_size=1, progress=False)
    batched = predict_a2d(on_cpu(model, tokenizer), dataset, batch_size=2, progress=False)
    assert [p["segmentation"] for p in alone] == [p["segmentation"] for p in batched]
    np.testing.assert_allclose([p["score"] for p in alone], [p["score"] for p in batched], atol=1e-5)


def _ddp_predict(rank: int, world_size: int, folder: Path) -> None:
    """One rank of a gloo group: predict the A2D test split with `distributed=True`, save what it gets."""
    torch.set_num_threads(1)
    dist.init_process_group(
        "gloo", init_method=f"file://{folder / 'store'}", rank=rank, world_size=world_size
    )
    model = build_model("tiny")
    model.load_state_dict(torch.load(folder / "model.pth", weights_only=True))
    dataset = A2DSentencesDataset(
        folder / "data" / "rvos_prepared", folder / "data", "test", 2, EVAL_TRANSFORMS
    )
    predictions = predict_a2d(
        on_cpu(model, build_tokenizer("tiny")), dataset, batch_size=3, progress=False, distributed=True
    )
    (folder / f"rank{rank}.json").write_text(json.dumps(predictions))
    dist.destroy_process_group()


def test_two_gloo_ranks_gather_the_same_predictions_as_one_process(
    model: MTTR, tokenizer: Tokenizer, a2d: tuple[A2DSentencesDataset, dict], tmp_path: Path
) -> None:
    dataset, _ = a2d
    (tmp_path / "data").symlink_to(dataset.root)
    torch.save(model.state_dict(), tmp_path / "model.pth")
    mp.start_processes(_ddp_predict, args=(2, tmp_path), nprocs=2, join=True, start_method="fork")
    alone = predict_a2d(on_cpu(model, tokenizer), dataset, batch_size=3, progress=False)
    for rank in (0, 1):
        gathered = json.loads((tmp_path / f"rank{rank}.json").read_text())
        assert [(p["image_id"], p["segmentation"]) for p in gathered] == [
            (p["image_id"], p["segmentation"]) for p in alone
        ]
        np.testing.assert_allclose([p["score"] for p in gathered], [p["score"] for p in alone], atol=1e-5)


def test_evaluate_a2d_reports_exactly_the_table_keys_and_null_for_empty_area_ranges(
    model: MTTR, tokenizer: Tokenizer, a2d: tuple[A2DSentencesDataset, dict], tmp_path: Path
) -> None:
    dataset, coco_gt = a2d
    assert all(ann["area"] < 32**2 for ann in coco_gt["annotations"])  # only small objects in 64x96
    metrics = evaluate_a2d(
        on_cpu(model, tokenizer), dataset, coco_gt, progress=False, predictions_out=tmp_path / "pred.json"
    )
    assert tuple(metrics) == A2D_KEYS
    assert metrics["AP_medium"] is None and metrics["AP_large"] is None
    assert all(0.0 <= v <= 1.0 for k, v in metrics.items() if k not in ("AP_medium", "AP_large"))
    assert len(json.loads((tmp_path / "pred.json").read_text())) == NUM_QUERIES * len(dataset)


def test_submission_zip_holds_every_listed_frame_of_every_expression(
    submission: Path, ytvos: ReferYouTubeVOSDataset
) -> None:
    with zipfile.ZipFile(submission / "submission.zip") as archive:
        files = {name for name in archive.namelist() if not name.endswith("/")}
    assert files == {f"Annotations/{name}" for name in expected_pngs(ytvos)}
    assert sorted(p.name for p in submission.iterdir()) == ["Annotations", "submission.zip"]


def test_submission_pngs_are_0_255_greyscale_at_the_original_size(
    submission: Path, ytvos: ReferYouTubeVOSDataset
) -> None:
    with zipfile.ZipFile(submission / "submission.zip") as archive:
        for name in expected_pngs(ytvos):
            with archive.open(f"Annotations/{name}") as handle, Image.open(handle) as image:
                assert image.mode == "L" and image.size == (SIZE[1], SIZE[0])
                assert set(np.unique(np.asarray(image)).tolist()) <= {0, 255}
            assert (submission / "Annotations" / name).read_bytes() == archive.read(f"Annotations/{name}")


def test_one_window_as_long_as_the_video_equals_the_whole_video_pass(
    model: MTTR, tokenizer: Tokenizer, ytvos: ReferYouTubeVOSDataset, submission: Path, tmp_path: Path
) -> None:
    predict_ytvos(on_cpu(model, tokenizer), ytvos, tmp_path, max_frames=FRAMES, progress=False)
    for name in expected_pngs(ytvos):
        assert (tmp_path / "Annotations" / name).read_bytes() == (
            submission / "Annotations" / name
        ).read_bytes()


def _linked_reference(
    model: MTTR, tokenizer: Tokenizer, dataset: ReferYouTubeVOSDataset, index: int, window: int, overlap: int
) -> Iterator[LinkedFrame]:
    """Expression `index` segmented window by window with plain `model(...)` calls, then `link_windows`."""
    item, sentence = dataset[index], dataset.samples[index][2]["exp"]
    clip = item["frames"].float()  # [T, 3, h, w]
    size, orig = tuple(clip.shape[-2:]), tuple(item["meta"]["original_frame_size"])
    tokens = tokenizer([sentence])

    def windows() -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for start, end in plan_windows(clip.shape[0], window, overlap):
            padding = torch.zeros(end - start, 1, *size, dtype=torch.bool)
            with torch.no_grad():
                out = model(clip[start:end, None], padding, tokens["input_ids"], tokens["attention_mask"])
            yield out["pred_masks"][:, 0], out["pred_is_referred"][:, 0]  # [t, Nq, h4, w4], [t, Nq, 2]

    yield from link_windows(windows(), clip.shape[0], window, overlap, size, size, orig)


def test_linked_windows_write_the_linked_track_of_each_frame_and_replace_an_earlier_run(
    model: MTTR, tokenizer: Tokenizer, ytvos: ReferYouTubeVOSDataset, submission: Path, tmp_path: Path
) -> None:
    stale = tmp_path / "Annotations" / "old_video" / "0" / "00000.png"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"old")
    # max_frames 4 over 8 frames: windows [0, 4), [3, 7), [6, 8) sharing one frame (a quarter of 4)
    predict_ytvos(on_cpu(model, tokenizer), ytvos, tmp_path, max_frames=4, progress=False)
    written = {p.relative_to(tmp_path / "Annotations").as_posix() for p in tmp_path.rglob("*.png")}
    assert written == expected_pngs(ytvos)
    unlike_whole_video = 0
    for index, (video, frames, entry) in enumerate(ytvos.samples):
        for linked in _linked_reference(model, tokenizer, ytvos, index, window=4, overlap=1):
            name = f"{video}/{entry['exp_id']}/{frames[linked.frame_index]}.png"
            png = np.asarray(Image.open(tmp_path / "Annotations" / name))
            assert np.array_equal(png, linked.mask.numpy().astype(np.uint8) * 255), name
            whole = np.asarray(Image.open(submission / "Annotations" / name))
            unlike_whole_video += int(not np.array_equal(png, whole))
    assert unlike_whole_video > 0  # the windows really were linked, not one whole-video pass


def test_perfect_predictions_score_j_f_one(ytvos: ReferYouTubeVOSDataset, tmp_path: Path) -> None:
    for index, (video, frames, entry) in enumerate(ytvos.samples):
        folder = tmp_path / video / entry["exp_id"]
        folder.mkdir(parents=True)
        for frame, mask in zip(frames, ytvos.gt_masks(index), strict=True):
            Image.fromarray(mask.astype(np.uint8) * 255).save(folder / f"{frame}.png")
    assert score_ytvos_dataset(ytvos, tmp_path, progress=False) == {"J": 1.0, "F": 1.0, "J&F": 1.0}


def test_empty_predictions_score_the_share_of_frames_where_the_object_is_absent(
    ytvos: ReferYouTubeVOSDataset, tmp_path: Path
) -> None:
    # Empty vs empty GT gives J = F = 1 for that frame, empty vs present gives 0 (metrics.md §1-2).
    absent_shares = []
    for index, (video, frames, entry) in enumerate(ytvos.samples):
        folder = tmp_path / video / entry["exp_id"]
        folder.mkdir(parents=True)
        for frame in frames:
            Image.fromarray(np.zeros(SIZE, dtype=np.uint8)).save(folder / f"{frame}.png")
        absent_shares.append(float(np.mean([not m.any() for m in ytvos.gt_masks(index)])))
    expected = float(np.mean(absent_shares))
    scores = score_ytvos_dataset(ytvos, tmp_path, progress=False)
    assert scores == pytest.approx({"J": expected, "F": expected, "J&F": expected})


def test_evaluate_ytvos_reports_j_f_and_their_mean_on_synthetic_ground_truth(
    model: MTTR, tokenizer: Tokenizer, ytvos: ReferYouTubeVOSDataset, tmp_path: Path
) -> None:
    assert ytvos.has_gt
    metrics = evaluate_ytvos(on_cpu(model, tokenizer), ytvos, tmp_path, progress=False)
    assert tuple(metrics) == YTVOS_KEYS
    # metrics.md §4 by hand from the written PNGs: per-frame J (empty vs empty = 1) and F, averaged over
    # an expression's frames, then over expressions (each expression weight 1, whatever its length).
    j_per_expression, f_per_expression = [], []
    for index, (video, frames, entry) in enumerate(ytvos.samples):
        folder = tmp_path / "Annotations" / video / entry["exp_id"]
        pred = np.stack([np.asarray(Image.open(folder / f"{frame}.png")) > 0 for frame in frames])
        gt = ytvos.gt_masks(index)  # [T, H0, W0] bool
        inter, union = (pred & gt).sum(axis=(1, 2)), (pred | gt).sum(axis=(1, 2))
        j_per_expression.append(np.mean(np.where(union == 0, 1.0, inter / np.maximum(union, 1))))
        f_per_expression.append(np.mean(db_eval_boundary(gt, pred)))  # per-frame F, tested in core
    j, f = float(np.mean(j_per_expression)), float(np.mean(f_per_expression))
    assert 0.0 < j < 1.0 and 0.0 < f < 1.0
    assert metrics == pytest.approx({"J": j, "F": f, "J&F": (j + f) / 2}, abs=1e-9)


def test_json_metrics_keeps_the_keys_in_order_and_turns_minus_one_into_null() -> None:
    raw = {key: 0.25 for key in A2D_KEYS} | {"AP_large": -1.0, "extra": 3.0}
    metrics = json_metrics(raw, A2D_KEYS)
    assert tuple(metrics) == A2D_KEYS
    assert metrics["AP_large"] is None and metrics["mAP"] == 0.25


def test_rvos_checkpoint_loads_with_its_stored_config(model: MTTR, tmp_path: Path) -> None:
    config = get_preset("tiny")
    config.data.eval_short_size = 40
    save_model_checkpoint(model, tmp_path / "ck.pth", config=config_to_dict(config))
    loaded, _, loaded_config = load_eval_model(tmp_path / "ck.pth")
    assert loaded_config.data.eval_short_size == 40 and not loaded.training
    torch.testing.assert_close(loaded.obj_queries.weight, model.obj_queries.weight)


def test_official_checkpoint_without_preset_asks_for_one(model: MTTR, tmp_path: Path) -> None:
    torch.save({"model_state_dict": model.state_dict()}, tmp_path / "official.pth.tar")
    with pytest.raises(RvosError, match="pass --preset mttr-a2d"):
        load_eval_model(tmp_path / "official.pth.tar")


def test_official_checkpoint_loads_with_a_preset(model: MTTR, tmp_path: Path) -> None:
    torch.save({"model_state_dict": model.state_dict()}, tmp_path / "official.pth.tar")
    loaded, _, config = load_eval_model(tmp_path / "official.pth.tar", preset="tiny")
    assert config.preset == "tiny" and not loaded.training
    expected = model.state_dict()
    assert list(loaded.state_dict()) == list(expected)
    for name, tensor in loaded.state_dict().items():
        assert torch.equal(tensor, expected[name]), name


def test_checkpoint_of_another_architecture_is_refused(model: MTTR, tmp_path: Path) -> None:
    config = get_preset("tiny")
    config.model.transformer.num_queries = 5  # the weights hold 8 queries
    save_model_checkpoint(model, tmp_path / "ck.pth", config=config_to_dict(config))
    with pytest.raises(RvosError, match=r"does not fit.*obj_queries\.weight"):
        load_eval_model(tmp_path / "ck.pth")
