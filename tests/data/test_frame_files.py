"""FrameFiles: a sized, indexable sequence of frames decoded from image files on access."""

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from rvos_cli.data.frame_files import FrameFiles
from rvos_cli.errors import RvosError


def test_frames_are_read_in_the_given_order_on_access(tmp_path: Path) -> None:
    for value in (10, 200):
        Image.fromarray(np.full((4, 6, 3), value, np.uint8)).save(tmp_path / f"{value}.png")
    frames = FrameFiles([tmp_path / "200.png", tmp_path / "10.png"])
    assert len(frames) == 2
    assert frames[0].shape == (4, 6, 3) and frames[0].dtype == np.uint8 and frames[0][0, 0, 0] == 200
    assert [int(frame[0, 0, 0]) for frame in frames] == [200, 10]
    (tmp_path / "bad.png").write_bytes(b"no image")
    with pytest.raises(RvosError, match=r"bad\.png: not a readable frame image"):
        FrameFiles([tmp_path / "bad.png"])[0]
