"""The examples run as a user runs them (a fresh interpreter, the hub switched off) and the README shows
the Python API example exactly as it is in examples/python_api.py."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch

from rvos_cli.core.checkpoints import save_model_checkpoint
from rvos_cli.core.config import config_to_dict, get_preset
from rvos_cli.core.model import build_model
from rvos_cli.data.video_io import write_video

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
# Any attempt to reach the Hugging Face hub fails at once instead of downloading.
OFFLINE = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}


def run_example(name: str, *args: str) -> list[str]:
    """Run examples/NAME with ARGS offline; returns its stdout lines (the run must succeed)."""
    env = {**os.environ, **OFFLINE, "PYTHONPATH": str(ROOT)}
    child = subprocess.run(
        [sys.executable, str(EXAMPLES / name), *args], capture_output=True, text=True, env=env, timeout=300
    )
    assert child.returncode == 0, child.stderr[-3000:]
    return child.stdout.strip().splitlines()


def test_python_api_example_streams_every_frame_of_its_clip() -> None:
    lines = run_example("python_api.py")
    assert re.fullmatch(r"tiny on cpu \((fp32|bf16)\)", lines[0])
    frame_lines = [line for line in lines if line.startswith("frame ")]
    assert [int(line.split()[1]) for line in frame_lines] == list(range(12))
    assert frame_lines[3].startswith("frame 3 (0.10 s): mask pixels [")
    assert lines[-1] == "last overlay [192, 160, 3], RLE size [120, 160]"  # 36·2 + 120 rows


def test_segment_clip_example_loads_a_checkpoint_without_the_hub(tmp_path: Path) -> None:
    torch.manual_seed(0)
    checkpoint = tmp_path / "tiny.pth"
    save_model_checkpoint(build_model("tiny"), checkpoint, config=config_to_dict(get_preset("tiny")))
    clip = tmp_path / "clip.mp4"
    write_video(clip, [np.full((48, 64, 3), 20 * i, dtype=np.uint8) for i in range(10)], fps=10)
    lines = run_example("segment_clip.py", str(clip), "the bright frame", "--checkpoint", str(checkpoint),
                        "--frames", "3")  # fmt: skip
    assert [line.split(":")[0] for line in lines] == ["frame 0", "frame 1", "frame 2"]
    assert all(re.fullmatch(r"frame \d: \d+ pixels, score 0\.\d{3}", line) for line in lines)


def readme_python_api_block() -> str:
    """The first ```python block of the README's "Python API" section."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("\n## Python API\n", 1)[1].split("\n## ", 1)[0]
    return section.split("```python\n", 1)[1].split("```", 1)[0]


def test_readme_shows_the_python_api_example_verbatim() -> None:
    assert readme_python_api_block() == (EXAMPLES / "python_api.py").read_text(encoding="utf-8")
