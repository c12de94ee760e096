"""The synthetic generator's output is fixed by its seed: digests of every file, recorded once.

`synthetic_digests.json` was recorded with the single-module generator before it became a package, so
this test proves the split changed no byte. Each file has two digests: its bytes, and its content
(decoded pixels of JPEG/PNG, the datasets of an .h5, the frames handed to the video encoder for an .mp4,
the bytes of anything else). Byte digests of encoded files depend on the encoder libraries (libjpeg,
zlib, HDF5, libx264), so they are compared only when those versions match the recorded ones; content
digests are compared always.

Record again (only when the generator is meant to change): `python tests/data/test_synthetic_digests.py`.
"""

from __future__ import annotations

import hashlib
import io
import json
import sys
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import PIL
import pytest
from PIL import Image

from rvos_cli.fileio import write_text_atomic

DIGESTS = Path(__file__).with_name("synthetic_digests.json")
# (format, difficulty, seed): small enough to take about a second each.
CASES = (("a2d", "basic", 3), ("a2d", "full", 5), ("ytvos", "basic", 3), ("ytvos", "full", 5))
NUM_VIDEOS, FRAMES, SIZE = 5, 8, (48, 64)


def encoder_versions() -> dict[str, str]:
    """The library versions the byte digests of encoded files depend on."""
    import av

    from rvos_cli.data.video_io import video_encoder

    return {
        "pillow": PIL.__version__,
        "hdf5": h5py.version.hdf5_version,
        "av": av.__version__,
        "video_encoder": video_encoder(),
    }


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _array_digest(array: np.ndarray) -> str:
    array = np.ascontiguousarray(array)
    return _sha(f"{array.dtype.str}{array.shape}".encode() + array.tobytes())


def _content_digest(path: Path, video_frames: dict[Path, str]) -> str:
    """A digest of what `path` holds, independent of the encoder library that wrote it."""
    if path.suffix == ".mp4":
        return video_frames[path]
    if path.suffix in (".jpg", ".png"):
        with Image.open(path) as image:
            palette = image.getpalette() if image.mode == "P" else None
            return _sha(_array_digest(np.asarray(image)).encode() + repr(palette).encode())
    if path.suffix == ".h5":
        with h5py.File(path, "r") as h5:
            return _sha("".join(f"{name}:{_array_digest(h5[name][()])}" for name in sorted(h5)).encode())
    return _sha(path.read_bytes())


def generate_and_digest(root: Path, fmt: str, difficulty: str, seed: int) -> dict[str, dict[str, str]]:
    """Generate one case into `root`; return {relative path: {'bytes': sha256, 'content': sha256}}."""
    import rvos_cli.data.video_io as video_io

    video_frames: dict[Path, str] = {}
    original = video_io.write_video

    def recording_write_video(path: Path, frames: Any, fps: float, crf: int = 18) -> None:
        frames = list(frames)
        video_frames[Path(path)] = _sha(
            f"{fps}".encode() + b"".join(_array_digest(frame).encode() for frame in frames)
        )
        original(path, frames, fps, crf)

    # The generator binds write_video at import; patch every synthetic module that holds it.
    modules = [m for name, m in sys.modules.items() if name.startswith("rvos_cli.data.synthetic")]
    patched = [m for m in modules if hasattr(m, "write_video")]
    for module in patched:
        module.write_video = recording_write_video
    try:
        from rvos_cli.data.synthetic import generate_synthetic

        generate_synthetic(
            root, NUM_VIDEOS, seed=seed, fmt=fmt, frames_per_video=FRAMES, size=SIZE, difficulty=difficulty
        )
    finally:
        for module in patched:
            module.write_video = original
    files = sorted(p for p in root.rglob("*") if p.is_file())
    return {
        p.relative_to(root).as_posix(): {
            "bytes": _sha(p.read_bytes()),
            "content": _content_digest(p, video_frames),
        }
        for p in files
    }


def _case_key(fmt: str, difficulty: str, seed: int) -> str:
    return f"{fmt}-{difficulty}-seed{seed}"


@pytest.fixture(autouse=True)
def _import_generator() -> None:
    import rvos_cli.data.synthetic  # noqa: F401  (so its modules are in sys.modules before patching)


@pytest.mark.parametrize(("fmt", "difficulty", "seed"), CASES, ids=[_case_key(*case) for case in CASES])
def test_generator_output_matches_recorded_digests(
    tmp_path: Path, fmt: str, difficulty: str, seed: int
) -> None:
    recorded = json.loads(DIGESTS.read_text())
    expected = recorded["cases"][_case_key(fmt, difficulty, seed)]
    actual = generate_and_digest(tmp_path, fmt, difficulty, seed)
    assert sorted(actual) == sorted(expected)
    assert {name: d["content"] for name, d in actual.items()} == {
        name: d["content"] for name, d in expected.items()
    }
    if recorded["encoder_versions"] == encoder_versions():
        assert {name: d["bytes"] for name, d in actual.items()} == {
            name: d["bytes"] for name, d in expected.items()
        }


def _record() -> None:
    import tempfile

    import rvos_cli.data.synthetic  # noqa: F401

    cases = {}
    for case in CASES:
        with tempfile.TemporaryDirectory() as folder:
            cases[_case_key(*case)] = generate_and_digest(Path(folder), *case)
    out = io.StringIO()
    json.dump({"encoder_versions": encoder_versions(), "cases": cases}, out, indent=1, sort_keys=True)
    write_text_atomic(DIGESTS, out.getvalue() + "\n")
    print(f"wrote {DIGESTS} ({sum(len(c) for c in cases.values())} files)")


if __name__ == "__main__":
    _record()
