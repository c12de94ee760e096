"""The mask PNG codec: binary masks 0/255, DAVIS-palette label maps, one-line errors naming the file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from rvos_cli.core.mask_png import (
    davis_palette,
    label_png_bytes,
    mask_png_bytes,
    read_label_png,
    read_mask_png,
)
from rvos_cli.errors import RvosError


def test_mask_round_trip_is_0_and_255_greyscale(tmp_path: Path) -> None:
    mask = np.zeros((3, 4), dtype=bool)
    mask[1, 2] = True
    path = tmp_path / "m.png"
    path.write_bytes(mask_png_bytes(mask))
    with Image.open(path) as image:
        assert image.mode == "L" and sorted(np.unique(np.asarray(image)).tolist()) == [0, 255]
    assert np.array_equal(read_mask_png(path), mask)


def test_label_round_trip_keeps_ids_and_the_davis_palette(tmp_path: Path) -> None:
    labels = np.array([[0, 1], [2, 255]], dtype=np.uint8)
    path = tmp_path / "l.png"
    path.write_bytes(label_png_bytes(labels))
    with Image.open(path) as image:
        assert image.mode == "P" and image.getpalette()[:9] == [0, 0, 0, 128, 0, 0, 0, 128, 0]
    assert np.array_equal(read_label_png(path), labels)
    assert len(davis_palette()) == 768


def test_rgb_mask_counts_any_colour_channel(tmp_path: Path) -> None:
    rgb = np.zeros((2, 2, 3), dtype=np.uint8)
    rgb[0, 1, 2] = 1  # a dark blue pixel still counts as foreground
    Image.fromarray(rgb).save(tmp_path / "rgb.png")
    assert read_mask_png(tmp_path / "rgb.png").tolist() == [[False, True], [False, False]]


def test_errors_name_the_file(tmp_path: Path) -> None:
    Image.new("RGB", (2, 2)).save(tmp_path / "rgb.png")
    with pytest.raises(RvosError) as caught:
        read_label_png(tmp_path / "rgb.png")
    expected = f"{tmp_path / 'rgb.png'}: expected a palette ('P') annotation PNG, got mode RGB"
    assert str(caught.value) == expected
    with pytest.raises(RvosError) as caught:
        read_mask_png(tmp_path / "none.png")
    assert str(caught.value) == f"{tmp_path / 'none.png'}: missing prediction PNG"
    (tmp_path / "junk.png").write_bytes(b"junk")
    with pytest.raises(RvosError, match=r"junk\.png: not a readable mask PNG"):
        read_mask_png(tmp_path / "junk.png", "mask")
