"""Property tests: every on-disk reader, fed generated malformed input, raises nothing but `RvosError`.

Readers: A2D videoset.csv, a2d_annotation.txt and the missed-videos list (through `prepare_a2d`), the
JHMDB samples metadata JSON (`prepare_jhmdb`), Ref-YouTube-VOS meta_expressions.json (`prepare_ytvos`),
COCO prediction JSON (`score_a2d_predictions`), YAML config files (`load_config`) and `--set` values
(`apply_overrides`). Each dataset layout is otherwise valid and empty, so an input that parses is
accepted quickly. A few hundred examples per reader; the whole module runs in well under a minute.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from rvos_cli.core.config import apply_overrides, get_preset, load_config
from rvos_cli.data.a2d import prepare_a2d
from rvos_cli.data.jhmdb import prepare_jhmdb
from rvos_cli.data.ytvos import prepare_ytvos
from rvos_cli.engine.scoring import score_a2d_predictions
from rvos_cli.errors import RvosError

FUZZ = settings(
    max_examples=200,
    deadline=None,
    database=None,
    # The same examples every run: CI must not fail on a draw that a previous run never made.
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)

# ---------------------------------------------------------------------------------------- strategies

# Text that looks like the real files: CSV-ish cells with the separators, quotes and digits they use.
CELL = st.text(alphabet=st.sampled_from("ab019 -_,\"'\t.\\é🐶\x00\r"), max_size=12)
CSV_LINES = st.lists(st.lists(CELL, max_size=10).map(",".join), max_size=6).map("\n".join)
RAW_BYTES = st.binary(max_size=200)
NOT_UTF8 = st.binary(min_size=1, max_size=40).map(lambda b: b"video_id,instance_id,query\n\xff\xfe" + b)


def _as_bytes(text: str) -> bytes:
    return text.encode("utf-8", errors="surrogatepass")


FILE_CONTENT = st.one_of(CSV_LINES.map(_as_bytes), RAW_BYTES, NOT_UTF8)

JSON_SCALAR = st.one_of(
    st.none(), st.booleans(), st.integers(-3, 10**12), st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=8),
)  # fmt: skip
JSON_VALUE = st.recursive(
    JSON_SCALAR,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=12,
)


def json_bytes(value: object) -> bytes:
    return json.dumps(value, allow_nan=True).encode()


def _rle(size: object, counts: object) -> dict:
    return {"size": size, "counts": counts}


# COCO results with the right keys and wrong values: the structure-aware half of the fuzzing.
PREDICTION = st.fixed_dictionaries(
    {},
    optional={
        "image_id": st.one_of(st.sampled_from(["v_1", "v_2"]), JSON_SCALAR),
        "segmentation": st.one_of(
            st.builds(_rle, st.one_of(st.just([4, 6]), JSON_VALUE), st.one_of(st.just("04"), JSON_VALUE)),
            JSON_VALUE,
        ),
        "score": st.one_of(st.floats(allow_nan=True, allow_infinity=True), JSON_SCALAR),
        "category_id": JSON_SCALAR,
    },
)
PREDICTIONS = st.one_of(
    st.lists(PREDICTION, max_size=4).map(json_bytes), JSON_VALUE.map(json_bytes), RAW_BYTES
)

META_EXPRESSIONS = st.one_of(
    st.fixed_dictionaries({"videos": st.dictionaries(
        st.text(max_size=5),
        st.fixed_dictionaries({}, optional={
            "expressions": st.dictionaries(st.text(max_size=3), st.one_of(
                st.fixed_dictionaries({}, optional={"exp": JSON_SCALAR, "obj_id": JSON_SCALAR}), JSON_VALUE),
                max_size=3),
            "frames": st.one_of(st.lists(JSON_SCALAR, max_size=3), JSON_VALUE),
        }),
        max_size=3,
    )}).map(json_bytes),
    JSON_VALUE.map(json_bytes),
    RAW_BYTES,
)  # fmt: skip

FRAME_LISTING = st.one_of(
    st.lists(st.fixed_dictionaries({}, optional={
        "video_id": JSON_SCALAR, "frame_indices": st.one_of(st.lists(JSON_SCALAR, max_size=4), JSON_VALUE),
    }), max_size=3).map(json_bytes),
    JSON_VALUE.map(json_bytes),
    RAW_BYTES,
)  # fmt: skip

YAML_KEYS = st.sampled_from(["preset", "model", "train", "data", "loss", "epochs", "lr", "window", "x"])
YAML_TEXT = st.one_of(
    st.recursive(
        st.one_of(st.none(), st.booleans(), st.integers(-5, 10**6), st.floats(), st.text(max_size=6)),
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(YAML_KEYS, inner, max_size=4),
        max_leaves=10,
    ).map(lambda value: json.dumps(value, allow_nan=True)),  # JSON is YAML
    st.text(alphabet=st.sampled_from("abtrain:.- \n\t[]{}&*!|>'\"#%@`0129"), max_size=60),
)
SET_KEY = st.lists(st.sampled_from(["train", "model", "data", "loss", "window", "lr", "epochs", "", "x"]),
                   min_size=1, max_size=3).map(".".join)  # fmt: skip
SET_VALUE = st.text(alphabet=st.sampled_from("0129.-e+abtrue[]{},: '\"!&*|>#%\n"), max_size=16)
SET_ITEM = st.one_of(st.tuples(SET_KEY, SET_VALUE).map("=".join), st.text(max_size=20))


def expect_only_rvos_errors(call) -> None:
    """Run `call`; anything raised must be an `RvosError` with a one-line message."""
    try:
        call()
    except RvosError as error:
        assert "\n" not in str(error), str(error)


# ---------------------------------------------------------------------------------------- layouts


@pytest.fixture(scope="module")
def a2d_layout(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("a2d")
    (root / "Release" / "clips320H").mkdir(parents=True)
    (root / "text_annotations" / "a2d_annotation_with_instances").mkdir(parents=True)
    return root


def write_a2d(root: Path, videoset: bytes, annotations: bytes, missed: bytes) -> None:
    (root / "Release" / "videoset.csv").write_bytes(videoset)
    (root / "text_annotations" / "a2d_annotation.txt").write_bytes(annotations)
    (root / "text_annotations" / "a2d_missed_videos.txt").write_bytes(missed)


VALID_VIDEOSET = b"v1,a,b,c,d,e,f,g,0\n"
VALID_ANNOTATIONS = b"video_id,instance_id,query\n"


@FUZZ
@given(content=FILE_CONTENT, which=st.sampled_from(["videoset", "annotations", "missed"]))
def test_a2d_text_files(a2d_layout: Path, content: bytes, which: str) -> None:
    files = {"videoset": VALID_VIDEOSET, "annotations": VALID_ANNOTATIONS, "missed": b""}
    files[which] = content
    write_a2d(a2d_layout, files["videoset"], files["annotations"], files["missed"])
    expect_only_rvos_errors(lambda: prepare_a2d(a2d_layout, a2d_layout / "out", cache_frames=False))


@pytest.fixture(scope="module")
def jhmdb_layout(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("jhmdb")
    (root / "Rename_Images").mkdir()
    (root / "puppet_mask").mkdir()
    (root / "jhmdb_annotation.txt").write_text("video_id,query\n")
    return root


@FUZZ
@given(listing=FRAME_LISTING, annotations=st.one_of(st.just(b"video_id,query\n"), FILE_CONTENT))
def test_jhmdb_samples_metadata_and_annotations(
    jhmdb_layout: Path, listing: bytes, annotations: bytes
) -> None:
    (jhmdb_layout / "listing.json").write_bytes(listing)
    (jhmdb_layout / "jhmdb_annotation.txt").write_bytes(annotations)
    expect_only_rvos_errors(
        lambda: prepare_jhmdb(
            jhmdb_layout, jhmdb_layout / "out", samples_metadata=jhmdb_layout / "listing.json"
        )
    )


@pytest.fixture(scope="module")
def ytvos_layout(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("ytvos")
    for folder in ("train/JPEGImages", "train/Annotations", "valid/JPEGImages"):
        (root / folder).mkdir(parents=True)
    for split in ("train", "valid", "test"):
        (root / "meta_expressions" / split).mkdir(parents=True)
        (root / "meta_expressions" / split / "meta_expressions.json").write_text('{"videos": {}}')
    return root


@FUZZ
@given(meta=META_EXPRESSIONS, split=st.sampled_from(["train", "valid", "test"]))
def test_ytvos_meta_expressions(ytvos_layout: Path, meta: bytes, split: str) -> None:
    for name in ("train", "valid", "test"):
        path = ytvos_layout / "meta_expressions" / name / "meta_expressions.json"
        path.write_bytes(meta if name == split else b'{"videos": {}}')
    expect_only_rvos_errors(lambda: prepare_ytvos(ytvos_layout, ytvos_layout / "out", window=2))


@pytest.fixture(scope="module")
def coco_gt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two 4×6 ground-truth masks in COCO RLE, one per image, as `rvos prepare` writes them."""
    import numpy as np
    from pycocotools import mask as mask_utils

    path = tmp_path_factory.mktemp("coco") / "gt.json"
    images, annotations = [], []
    for index, image_id in enumerate(["v_1", "v_2"]):
        mask = np.zeros((4, 6), np.uint8, order="F")
        mask[: index + 1, :3] = 1
        rle = mask_utils.encode(mask)
        rle["counts"] = rle["counts"].decode()
        images.append({"id": image_id, "height": 4, "width": 6})
        annotations.append({"id": index + 1, "image_id": image_id, "category_id": 1, "segmentation": rle,
                            "area": float(mask.sum()), "iscrowd": 0})  # fmt: skip
    path.write_text(json.dumps({"images": images, "annotations": annotations, "categories": [{"id": 1}]}))
    return path


@FUZZ
@given(predictions=PREDICTIONS)
def test_coco_prediction_json(coco_gt: Path, predictions: bytes) -> None:
    path = coco_gt.with_name("predictions.json")
    path.write_bytes(predictions)
    try:
        metrics = score_a2d_predictions(path, coco_gt)
    except RvosError as error:
        assert "\n" not in str(error), str(error)
        return
    assert all(math.isfinite(value) for value in metrics.values())  # accepted input gives real numbers


@FUZZ
@given(text=YAML_TEXT)
def test_yaml_config(tmp_path_factory: pytest.TempPathFactory, text: str) -> None:
    path = tmp_path_factory.getbasetemp() / "fuzz-config.yaml"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    expect_only_rvos_errors(lambda: load_config(path))


@FUZZ
@given(items=st.lists(SET_ITEM, min_size=1, max_size=3))
@example(items=["train.lr=a\x01"])  # PyYAML's reader error spans two lines
@example(items=["train=0:"])  # a mapping with an integer key
def test_set_values(items: list[str]) -> None:
    expect_only_rvos_errors(lambda: apply_overrides(get_preset("tiny"), items))


def test_a_video_id_with_a_newline_is_quoted_in_the_one_line_error(ytvos_layout: Path) -> None:
    meta = ytvos_layout / "meta_expressions" / "train" / "meta_expressions.json"
    meta.write_bytes(b'{"videos": {"a\\nb": {}}}')
    try:
        with pytest.raises(RvosError) as caught:
            prepare_ytvos(ytvos_layout, ytvos_layout / "out", window=2)
    finally:
        meta.write_text('{"videos": {}}')
    assert "\n" not in str(caught.value)
    assert "video 'a\\nb' needs 'expressions'" in str(caught.value)
