"""`rvos eval`: model runs on tiny synthetic data, scoring-only runs with hand-checked numbers, bad input."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
import scipy.io
import torch
from coco_builders import rle
from PIL import Image
from typer.testing import CliRunner

from rvos_cli.cli.app import app
from rvos_cli.core.checkpoints import save_model_checkpoint
from rvos_cli.core.config import config_to_dict, get_preset
from rvos_cli.core.model import build_model
from rvos_cli.data.a2d import prepare_a2d
from rvos_cli.data.jhmdb import prepare_jhmdb
from rvos_cli.data.synthetic import generate_synthetic
from rvos_cli.data.ytvos import prepare_ytvos
from rvos_cli.engine import eval_run
from rvos_cli.engine.evaluator import A2D_KEYS, YTVOS_KEYS

runner = CliRunner()
NUM_QUERIES = get_preset("tiny").model.transformer.num_queries
SIZE = (64, 96)


def run(*args: object):
    return runner.invoke(app, ["eval", *(str(a) for a in args)])


def assert_user_error(result, *fragments: str) -> None:
    """Exit code 2 and a single error line on stderr that contains every fragment."""
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), result.stderr
    for fragment in fragments:
        assert fragment in lines[0]


def assert_fractions(metrics: dict, keys: tuple[str, ...]) -> None:
    assert tuple(metrics) == keys
    assert all(value is None or 0.0 <= value <= 1.0 for value in metrics.values())


@pytest.fixture(scope="module")
def checkpoint(small_eval_checkpoint: Path) -> Path:
    return small_eval_checkpoint


@pytest.fixture(scope="module")
def a2d_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("a2d")
    generate_synthetic(root, num_videos=4, seed=0, fmt="a2d", frames_per_video=8, size=SIZE)
    prepare_a2d(root, root / "rvos_prepared")
    return root


@pytest.fixture(scope="module")
def ytvos_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("ytvos")
    generate_synthetic(root, num_videos=4, seed=0, fmt="ytvos", frames_per_video=8, size=SIZE)
    prepare_ytvos(root, root / "rvos_prepared", window=4)
    return root


@pytest.fixture(scope="module")
def jhmdb_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One JHMDB-Sentences video of 4 frames (32x48) with a puppet mask in every frame."""
    root = tmp_path_factory.mktemp("jhmdb")
    frames = root / "Rename_Images" / "walk" / "vid1"
    frames.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for t in range(1, 5):
        Image.fromarray(rng.integers(0, 256, (32, 48, 3), dtype=np.uint8)).save(frames / f"{t:05d}.png")
    masks = np.zeros((32, 48, 4), dtype=np.uint8)
    masks[8:20, 10:30] = 1
    (root / "puppet_mask" / "walk" / "vid1").mkdir(parents=True)
    scipy.io.savemat(root / "puppet_mask" / "walk" / "vid1" / "puppet_mask.mat", {"part_mask": masks})
    (root / "jhmdb_annotation.txt").write_text("video_id,query\nvid1,the man walking\n")
    prepare_jhmdb(root, root / "rvos_prepared")
    return root


# ------------------------------------------------------------------------------------- with a model


def test_a2d_writes_the_metrics_json_and_nq_predictions_per_gt_image(
    a2d_root: Path, checkpoint: Path, tmp_path: Path
) -> None:
    result = run(
        "a2d", "--data", a2d_root, "--checkpoint", checkpoint, "--batch-size", 4,
        "--json", tmp_path / "m.json", "--predictions-out", tmp_path / "p.json",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert_fractions(json.loads((tmp_path / "m.json").read_text()), A2D_KEYS)
    gt = json.loads((a2d_root / "rvos_prepared" / "coco_gt_test.json").read_text())
    predictions = json.loads((tmp_path / "p.json").read_text())
    per_image = {image["id"]: 0 for image in gt["images"]}
    for prediction in predictions:
        per_image[prediction["image_id"]] += 1
    assert set(per_image.values()) == {NUM_QUERIES} and len(per_image) == len(gt["images"])
    assert "mAP" in result.stdout and "mean_iou" in result.stdout


def test_jhmdb_reports_the_a2d_table(jhmdb_root: Path, checkpoint: Path, tmp_path: Path) -> None:
    result = run("jhmdb", "--data", jhmdb_root, "--checkpoint", checkpoint, "--json", tmp_path / "m.json")
    assert result.exit_code == 0, result.output
    metrics = json.loads((tmp_path / "m.json").read_text())
    assert_fractions(metrics, A2D_KEYS)
    assert metrics["AP_medium"] is None and metrics["AP_large"] is None  # the only GT mask is 12x20 px


def test_ytvos_writes_the_submission_zip_and_j_f_on_synthetic_ground_truth(
    ytvos_root: Path, checkpoint: Path, tmp_path: Path
) -> None:
    result = run(
        "ytvos", "--data", ytvos_root, "--checkpoint", checkpoint, "--split", "valid",
        "--out", tmp_path / "out", "--json", tmp_path / "m.json", "--max-frames", 5,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    metrics = json.loads((tmp_path / "m.json").read_text())
    assert_fractions(metrics, YTVOS_KEYS)
    assert metrics["J&F"] == pytest.approx((metrics["J"] + metrics["F"]) / 2)
    samples = json.loads((ytvos_root / "rvos_prepared" / "samples_valid.json").read_text())
    expected = {f"Annotations/{v}/{e['exp_id']}/{f}.png" for v, frames, e in samples for f in frames}
    with zipfile.ZipFile(tmp_path / "out" / "submission.zip") as archive:
        assert {n for n in archive.namelist() if not n.endswith("/")} == expected
    assert "submission.zip" in result.stdout and "J&F" in result.stdout


def test_ytvos_runs_without_out_get_numbered_folders_and_an_existing_out_needs_overwrite(
    ytvos_root: Path, checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    command = ["ytvos", "--data", ytvos_root, "--checkpoint", checkpoint]
    for _ in range(2):
        result = run(*command)
        assert result.exit_code == 0, result.output
    runs = tmp_path / "runs" / "eval"
    assert sorted(p.name for p in runs.iterdir()) == ["ytvos-valid", "ytvos-valid-2"]
    assert all((runs / name / "submission.zip").is_file() for name in ("ytvos-valid", "ytvos-valid-2"))
    earlier = runs / "ytvos-valid"
    assert_user_error(
        run(*command, "--out", earlier),
        f"--out {earlier}: already holds outputs; pass --overwrite to replace them, "
        "or leave out --out to write a new runs/eval/ytvos-valid[-N] folder",
    )
    result = run(*command, "--out", earlier, "--overwrite")
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in runs.iterdir()) == ["ytvos-valid", "ytvos-valid-2"]


def test_overwrite_does_not_apply_to_a2d(a2d_root: Path, checkpoint: Path) -> None:
    result = run("a2d", "--data", a2d_root, "--checkpoint", checkpoint, "--overwrite")
    assert_user_error(result, "--overwrite applies to `rvos eval ytvos` only")


# ---------------------------------------------------------------------------------- scoring only


def square_gt(tmp_path: Path) -> tuple[Path, np.ndarray]:
    """COCO GT of two 20x20 images "a", "b", each with the same 10x10 square (area 100)."""
    mask = np.zeros((20, 20), dtype=bool)
    mask[2:12, 2:12] = True
    gt = {
        "images": [{"id": i, "height": 20, "width": 20} for i in ("a", "b")],
        "annotations": [
            {"id": n, "image_id": i, "category_id": 1, "iscrowd": 0, "area": 100.0, "segmentation": rle(mask)}
            for n, i in enumerate(("a", "b"), start=1)
        ],
        "categories": [{"id": 1, "name": "dummy_class"}],
    }
    path = tmp_path / "gt.json"
    path.write_text(json.dumps(gt))
    return path, mask


def test_scoring_perfect_a2d_predictions_gives_one_everywhere(tmp_path: Path) -> None:
    gt_path, mask = square_gt(tmp_path)
    predictions = [{"image_id": i, "category_id": 1, "segmentation": rle(mask), "score": 0.9} for i in "ab"]
    (tmp_path / "pred.json").write_text(json.dumps(predictions))
    result = run(
        "a2d", "--predictions", tmp_path / "pred.json", "--coco-gt", gt_path, "--json", tmp_path / "m.json"
    )
    assert result.exit_code == 0, result.output
    metrics = json.loads((tmp_path / "m.json").read_text())
    assert metrics == {key: (None if key in ("AP_medium", "AP_large") else 1.0) for key in A2D_KEYS}
    assert "100.00" in result.stdout and "–" in result.stdout


def test_scoring_one_hit_and_one_miss_gives_hand_computed_values(tmp_path: Path) -> None:
    gt_path, mask = square_gt(tmp_path)
    empty = np.zeros_like(mask)
    predictions = [
        {"image_id": "a", "category_id": 1, "segmentation": rle(mask), "score": 0.9},
        {"image_id": "b", "category_id": 1, "segmentation": rle(empty), "score": 0.8},
    ]
    (tmp_path / "pred.json").write_text(json.dumps(predictions))
    result = run(
        "a2d", "--predictions", tmp_path / "pred.json", "--coco-gt", gt_path, "--json", tmp_path / "m.json"
    )
    assert result.exit_code == 0, result.output
    metrics = json.loads((tmp_path / "m.json").read_text())
    # One TP then one FP: precision 1 up to recall 0.5, i.e. at 51 of the 101 recall thresholds.
    for key in ("mAP", "AP50", "AP75", "AP_small"):
        assert metrics[key] == pytest.approx(51 / 101)
    assert [metrics[f"P@0.{k}"] for k in range(5, 10)] == [0.5] * 5
    assert metrics["overall_iou"] == pytest.approx(100 / 200)
    assert metrics["mean_iou"] == pytest.approx((1 + 1e-6 / (100 + 1e-6)) / 2)


def ytvos_gt(tmp_path: Path) -> tuple[Path, np.ndarray]:
    """A GT root: video "v", frames 00000 and 00005, object 1 a square; expressions "0", "1" refer to it."""
    labels = np.zeros((16, 16), dtype=np.uint8)
    labels[4:10, 4:10] = 1
    root = tmp_path / "gt"
    (root / "Annotations" / "v").mkdir(parents=True)
    for frame in ("00000", "00005"):
        image = Image.fromarray(labels, mode="P")
        image.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
        image.save(root / "Annotations" / "v" / f"{frame}.png")
    expressions = {e: {"exp": "the square", "obj_id": "1"} for e in "01"}
    meta = {"videos": {"v": {"expressions": expressions, "frames": ["00000", "00005"]}}}
    (root / "meta_expressions.json").write_text(json.dumps(meta))
    return root, labels == 1


def write_predictions(folder: Path, mask: np.ndarray) -> None:
    folder.mkdir(parents=True)
    for frame in ("00000", "00005"):
        Image.fromarray(mask.astype(np.uint8) * 255).save(folder / f"{frame}.png")


def test_scoring_ytvos_one_perfect_and_one_empty_expression_gives_one_half(tmp_path: Path) -> None:
    gt_root, mask = ytvos_gt(tmp_path)
    write_predictions(tmp_path / "pred" / "v" / "0", mask)
    write_predictions(tmp_path / "pred" / "v" / "1", np.zeros_like(mask))
    result = run(
        "ytvos", "--predictions", tmp_path / "pred", "--gt-root", gt_root, "--json", tmp_path / "m.json"
    )
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "m.json").read_text()) == {"J": 0.5, "F": 0.5, "J&F": 0.5}
    assert "50.00" in result.stdout


# ------------------------------------------------------------------------------------- bad input


def test_missing_data_folder(checkpoint: Path, tmp_path: Path) -> None:
    assert_user_error(run("a2d", "--data", tmp_path / "nowhere", "--checkpoint", checkpoint), "not found")


def test_unprepared_data_names_the_prepare_command(checkpoint: Path, tmp_path: Path) -> None:
    result = run("ytvos", "--data", tmp_path, "--checkpoint", checkpoint)
    assert_user_error(result, "samples_valid.json", f"rvos prepare ytvos --root {tmp_path}")


def test_checkpoint_of_another_architecture(a2d_root: Path, tmp_path: Path) -> None:
    config = get_preset("tiny")
    config.model.transformer.num_queries = 5
    save_model_checkpoint(build_model("tiny"), tmp_path / "other.pth", config=config_to_dict(config))
    result = run("a2d", "--data", a2d_root, "--checkpoint", tmp_path / "other.pth")
    assert_user_error(result, "other.pth", "does not fit")


def test_official_checkpoint_needs_a_preset(a2d_root: Path, tmp_path: Path) -> None:
    torch.save({"model_state_dict": build_model("tiny").state_dict()}, tmp_path / "mttr.pth.tar")
    result = run("a2d", "--data", a2d_root, "--checkpoint", tmp_path / "mttr.pth.tar")
    assert_user_error(result, "--preset mttr-a2d", "--preset mttr-ytvos")


def test_bad_predictions_json(tmp_path: Path) -> None:
    gt_path, _ = square_gt(tmp_path)
    (tmp_path / "pred.json").write_text('[{"image_id": "a",')
    result = run("a2d", "--predictions", tmp_path / "pred.json", "--coco-gt", gt_path)
    assert_user_error(result, "pred.json:1:19", "predictions file is not valid JSON")


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["a2d", "--predictions", "p.json"], "needs --coco-gt"),
        (["ytvos", "--predictions", "p", "--coco-gt", "gt.json"], "--coco-gt applies to"),
        (
            ["a2d", "--predictions", "p.json", "--coco-gt", "g.json", "--checkpoint", "c"],
            "--checkpoint is for",
        ),
        (["a2d", "--data", "d", "--checkpoint", "c", "--max-frames", "4"], "--max-frames applies to"),
        (["a2d", "--data", "d"], "needs --checkpoint"),
        (["ytvos", "--data", "d", "--checkpoint", "c", "--split", "train"], "only the valid split"),
        (["a2d", "--data", "d", "--checkpoint", "c", "--json", "no/such/dir/m.json"], "does not exist"),
    ],
)
def test_misused_options(args: list[str], fragment: str) -> None:
    assert_user_error(run(*args), fragment)


def test_model_options_reach_the_evaluation_engine(tmp_path: Path, capture_engine) -> None:
    seen = capture_engine(eval_run, "run_evaluation")
    result = run(
        "a2d", "--data", tmp_path / "a2d", "--checkpoint", tmp_path / "ck.pth", "--preset", "mttr-a2d",
        "--text-encoder", tmp_path / "roberta", "--window", 6, "--batch-size", 3, "--device", "cpu",
        "--predictions-out", tmp_path / "pred.json",
        "--set", "data.eval_short_size=40", "--set", "train.window=3",
    )  # fmt: skip
    assert "args" in seen, result.output  # the command reached the engine
    (request,) = seen["args"]
    assert (request.dataset, request.data) == ("a2d", tmp_path / "a2d")
    assert request.checkpoint == tmp_path / "ck.pth"
    assert (request.preset, request.text_encoder) == ("mttr-a2d", str(tmp_path / "roberta"))
    assert (request.window, request.batch_size, request.device) == (6, 3, "cpu")
    assert request.predictions_out == tmp_path / "pred.json" and request.predictions is None
    assert request.overrides == ("data.eval_short_size=40", "train.window=3")


def test_set_is_refused_when_scoring_existing_predictions(tmp_path: Path) -> None:
    result = run(
        "a2d", "--predictions", tmp_path / "p.json", "--coco-gt", tmp_path / "gt.json", "--set", "x=1"
    )
    assert_user_error(result, "--set is for evaluating a model; --predictions scores existing files")


def test_ytvos_options_reach_the_evaluation_engine(tmp_path: Path, capture_engine) -> None:
    seen = capture_engine(eval_run, "run_evaluation")
    result = run(
        "ytvos", "--data", tmp_path, "--checkpoint", tmp_path / "ck.pth", "--max-frames", 12,
        "--split", "valid", "--out", tmp_path / "sub",
    )  # fmt: skip
    assert "args" in seen, result.output
    (request,) = seen["args"]
    assert (request.dataset, request.max_frames, request.split, request.out) == (
        "ytvos", 12, "valid", tmp_path / "sub",
    )  # fmt: skip
    assert (request.preset, request.text_encoder, request.window) == (None, None, None)
