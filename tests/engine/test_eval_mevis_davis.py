"""MeViS and Ref-DAVIS17 evaluation with a stand-in predictor: output layouts, scores, submission zip."""

from __future__ import annotations

import re
import shutil
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from dataset_builders import make_davis, make_mevis
from PIL import Image

from rvos_cli.data.davis import prepare_davis
from rvos_cli.data.mevis import prepare_mevis
from rvos_cli.engine.eval_davis import evaluate_davis, score_davis
from rvos_cli.engine.eval_mevis import evaluate_mevis, score_mevis_folder
from rvos_cli.errors import RvosError


@dataclass
class Result:
    index: int
    masks: np.ndarray  # [K, H0, W0]


class StandIn:
    """A predictor whose mask for a sentence is `mask_for(sentence, frame index, frame)`; records calls."""

    def __init__(self, mask_for) -> None:
        self.mask_for = mask_for
        self.calls: list[list[str]] = []

    def stream(self, frames, sentences):
        self.calls.append(list(sentences))
        for t, frame in enumerate(frames):
            yield Result(t, np.stack([self.mask_for(s, t, frame) for s in sentences]))


def empty(sentence: str, t: int, frame: np.ndarray) -> np.ndarray:
    return np.zeros(frame.shape[:2], dtype=bool)


# ------------------------------------------------------------------------------------------ MeViS


@pytest.fixture
def mevis(tmp_path: Path) -> tuple[Path, Path]:
    root = make_mevis(tmp_path / "mevis")
    prepare_mevis(root, root / "rvos_prepared", window=2)
    return root, root / "rvos_prepared"


def test_valid_u_predictions_are_0_255_pngs_and_empty_masks_score_the_empty_gt_frames(
    mevis, tmp_path
) -> None:
    root, prepared = mevis
    # valid_u: one expression whose object is absent in frame 0 (null RLE) and present in frame 1.
    result = evaluate_mevis(StandIn(empty), root, prepared, "valid_u", tmp_path / "out", progress=False)
    assert (result["J"], result["F"], result["J&F"]) == (0.5, 0.5, 0.5)
    assert result["by_kind"]["single-object"]["expressions"] == 1
    assert result["per_expression"] == [
        {"video": "vu1", "exp_id": "0", "kind": "single-object", "J": 0.5, "F": 0.5}
    ]
    png = tmp_path / "out/predictions/vu1/0/00001.png"
    with Image.open(png) as image:
        assert image.mode == "L" and image.size == (20, 16)


def test_scoring_an_existing_folder_matches_and_a_missing_video_scores_zero(mevis, tmp_path) -> None:
    root, prepared = mevis

    def oracle(sentence, t, frame):  # the valid_u object: a 4x4 square at (2, 2) in frame 1 only
        mask = np.zeros(frame.shape[:2], dtype=bool)
        if t == 1:
            mask[2:6, 2:6] = True
        return mask

    evaluate_mevis(StandIn(oracle), root, prepared, "valid_u", tmp_path / "out", progress=False)
    scored = score_mevis_folder(tmp_path / "out/predictions", root, progress=False)
    assert (scored["J"], scored["F"]) == (1.0, 1.0)
    shutil.rmtree(tmp_path / "out/predictions/vu1")
    assert score_mevis_folder(tmp_path / "out/predictions", root / "valid_u", progress=False)["J&F"] == 0.0
    (tmp_path / "out/predictions/vu1/0").mkdir(parents=True)
    with pytest.raises(RvosError, match=r"vu1/0/00000\.png: missing prediction PNG"):
        score_mevis_folder(tmp_path / "out/predictions", root, progress=False)


def test_valid_split_writes_the_submission_zip_with_video_folders_at_its_root(mevis, tmp_path) -> None:
    root, prepared = mevis
    result = evaluate_mevis(StandIn(empty), root, prepared, "valid", tmp_path / "out", progress=False)
    with zipfile.ZipFile(result["submission"]) as archive:
        names = sorted(archive.namelist())
        assert names == ["vv1/", "vv1/0/", "vv1/0/00000.png"]
        with archive.open("vv1/0/00000.png") as handle, Image.open(handle) as image:
            assert image.mode == "L" and np.asarray(image).max() == 0 and image.size == (20, 16)


def test_all_expressions_of_a_video_share_one_pass_with_normalised_sentences(mevis, tmp_path) -> None:
    root, prepared = mevis
    stand_in = StandIn(empty)
    evaluate_mevis(stand_in, root, prepared, "valid_u", tmp_path / "out", progress=False)
    assert stand_in.calls == [["x"]]


# ------------------------------------------------------------------------------------------ DAVIS


def object_of(sentence: str) -> int:
    return int(re.search(r"\d+", sentence).group())


def davis_predictor(run_masks):
    """Masks per run: run_masks[k](obj_id, frame) with k from the sentence wording of make_davis."""

    def mask_for(sentence, t, frame):
        k = 3 if " b full" in sentence else 2 if "voiture" in sentence else 1 if "full" in sentence else 0
        return run_masks[k](object_of(sentence), frame)

    return StandIn(mask_for)


def at(obj: int, frame: np.ndarray) -> np.ndarray:
    mask = np.zeros(frame.shape[:2], dtype=bool)
    mask[obj, obj] = True  # make_davis draws object k as the single pixel (k, k)
    return mask


def swapped(obj: int, frame: np.ndarray) -> np.ndarray:
    return at(3 - obj, frame)


def nothing(obj: int, frame: np.ndarray) -> np.ndarray:
    return np.zeros(frame.shape[:2], dtype=bool)


@pytest.fixture
def davis(tmp_path: Path) -> Path:
    root = make_davis(tmp_path / "davis")
    prepare_davis(root, root / "rvos_prepared")
    return root


def test_four_runs_are_written_as_indexed_pngs_and_averaged(davis, tmp_path) -> None:
    predictor = davis_predictor([at, at, swapped, nothing])
    result = evaluate_davis(predictor, davis, davis / "rvos_prepared", tmp_path / "out", progress=False)
    assert predictor.calls[0][:2] == ["car 1 first, café", "car 2 first, café"]  # run-major, 8 sentences
    assert len(predictor.calls[0]) == 8
    with Image.open(tmp_path / "out/anno_2/classic-car/00001.png") as image:
        labels = np.asarray(image)
        assert image.mode == "P" and labels[1, 1] == 2 and labels[2, 2] == 1
    runs = result["runs"]
    assert [runs[k]["J&F-Mean"] for k in ("anno_0", "anno_1", "anno_2", "anno_3")] == [1.0, 1.0, 1.0, 0.0]
    assert result["mean"]["J&F-Mean"] == 0.75 and result["task"] == "unsupervised"
    assert [o["object"] for o in runs["anno_0"]["objects"]] == [1, 2]


def test_semi_supervised_keeps_ids_and_needs_its_own_annotations(davis, tmp_path) -> None:
    predictor = davis_predictor([at, at, swapped, nothing])
    evaluate_davis(predictor, davis, davis / "rvos_prepared", tmp_path / "out", progress=False)
    with pytest.raises(RvosError, match=r"Annotations/480p: missing \(the semi-supervised task reads"):
        score_davis(tmp_path / "out", davis, "semi-supervised", progress=False)
    shutil.copytree(davis / "DAVIS/Annotations_unsupervised", davis / "DAVIS/Annotations")
    result = score_davis(tmp_path / "out", davis, "semi-supervised", progress=False)
    assert result["runs"]["anno_2"]["J-Mean"] == 0.0  # swapped ids are not re-associated
    assert result["mean"]["J-Mean"] == 0.5


def test_a_missing_run_folder_is_named(davis, tmp_path) -> None:
    (tmp_path / "pred/anno_0").mkdir(parents=True)
    with pytest.raises(RvosError, match=r"pred/anno_0/classic-car/00000\.png: missing"):
        score_davis(tmp_path / "pred", davis, progress=False)
    with pytest.raises(RvosError, match="--davis-task weak"):
        score_davis(tmp_path / "pred", davis, "weak", progress=False)
