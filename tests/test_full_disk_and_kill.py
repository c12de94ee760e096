"""Every writer survives a full disk and a kill: prepare, train (checkpoints, metrics log), eval and infer.

A full disk is a small tmpfs the test mounts (root only; skipped otherwise) and fills to leave a little
room. The outcome is one line naming the path and exit 2, nothing truncated under a final name, the
previous checkpoint intact; with the space back, `prepare` and `train --resume` finish correctly. A kill
is a SIGKILL of the command in a subprocess at several points; every file under a final name is whole.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from rvos_cli.cli.app import app
from rvos_cli.core.checkpoints import read_checkpoint_file
from rvos_cli.data.synthetic import generate_synthetic
from rvos_cli.data.video_io import probe_video, write_video

runner = CliRunner()
REPO_ROOT = Path(__file__).resolve().parents[1]
TRAIN_SETS = ["--set", "data.train_short_size=64", "--set", "data.train_max_size=96",
              "--set", "train.num_workers=0", "--window", "2", "--batch-size", "2", "--no-eval",
              "--no-progress"]  # fmt: skip
NO_SPACE = "could not write (No space left on device)"


def error_line(result: object) -> str:
    lines = [line for line in result.output.splitlines() if line.startswith("error:")]  # type: ignore[attr-defined]
    assert result.exit_code == 2 and len(lines) == 1, result.output  # type: ignore[attr-defined]
    return lines[0]


class SmallDisk:
    """A mounted tmpfs; `leave(n)` fills it until about n bytes stay free, `free_up()` undoes that."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.filler = path / ".filler"

    def available(self) -> int:
        stat = os.statvfs(self.path)
        return stat.f_bavail * stat.f_frsize

    def leave(self, free_bytes: int) -> None:
        with open(self.filler, "ab") as handle:
            handle.write(b"\0" * max(self.available() - free_bytes, 0))

    def free_up(self) -> None:
        self.filler.unlink(missing_ok=True)


@pytest.fixture
def small_disk(request: pytest.FixtureRequest) -> Iterator[SmallDisk]:
    """A tmpfs (`size` from the test's `disk_size` marker, default 4 MiB), unmounted afterwards."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    marker = request.node.get_closest_marker("disk_size")
    size = marker.args[0] if marker else "4m"
    mount_point = Path(tempfile.mkdtemp(prefix="rvos-small-disk-"))
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mount_point)],
                             capture_output=True, text=True)  # fmt: skip
    if mounted.returncode != 0:
        mount_point.rmdir()
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield SmallDisk(mount_point)
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)
        mount_point.rmdir()


def hidden_temp_files(folder: Path) -> list[Path]:
    return [p for p in folder.rglob(".*") if p.name != ".filler"]


def assert_whole(folder: Path) -> None:
    """Every file under a final (not hidden) name in `folder` is complete: JSON parses, .npy loads, a
    checkpoint loads, a video decodes, a PNG opens."""
    from PIL import Image

    for path in folder.rglob("*"):
        if not path.is_file() or any(part.startswith(".") for part in path.relative_to(folder).parts):
            continue
        if path.suffix == ".json":
            json.loads(path.read_text())
        elif path.suffix == ".jsonl":
            for line in path.read_text().splitlines():
                json.loads(line)
        elif path.suffix == ".npy":
            np.load(path)
        elif path.name.endswith((".pth.tar", ".safetensors")):
            read_checkpoint_file(path)
        elif path.suffix in (".mp4", ".gif"):
            assert probe_video(path).num_frames > 0
        elif path.suffix == ".png":
            with Image.open(path) as image:
                image.load()


# ---------------------------------------------------------------------------------------- prepare


@pytest.fixture(scope="module")
def a2d_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-clip synthetic A2D download and its prepared reference on an ordinary disk."""
    root = tmp_path_factory.mktemp("a2d")
    generate_synthetic(root, num_videos=2, seed=0, fmt="a2d", frames_per_video=4, size=(64, 96))
    result = runner.invoke(app, ["prepare", "a2d", "--root", str(root), "--out", str(root / "reference")])
    assert result.exit_code == 0, result.output
    return root


def assert_same_files(folder: Path, reference: Path) -> None:
    names = sorted(p.relative_to(reference) for p in reference.rglob("*") if p.is_file())
    assert (
        sorted(p.relative_to(folder) for p in folder.rglob("*") if p.is_file() and p.name != ".filler")
        == names
    )
    for name in names:
        assert (folder / name).read_bytes() == (reference / name).read_bytes(), name


def test_prepare_on_a_full_disk_fails_in_one_line_and_finishes_once_space_is_back(
    a2d_root: Path, small_disk: SmallDisk
) -> None:
    out = small_disk.path / "prepared"
    small_disk.leave(100_000)  # room for one clip's frame cache (73,728 bytes), not both
    line = error_line(runner.invoke(app, ["prepare", "a2d", "--root", str(a2d_root), "--out", str(out)]))
    assert line.startswith(f"error: {out}") and line.endswith(NO_SPACE)
    assert_whole(out)
    assert hidden_temp_files(small_disk.path) == []
    small_disk.free_up()
    result = runner.invoke(app, ["prepare", "a2d", "--root", str(a2d_root), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert_same_files(out, a2d_root / "reference")


def run_killed(command: list[str], after_seconds: float, cwd: Path) -> None:
    """Start `rvos COMMAND` in a subprocess and SIGKILL it `after_seconds` later (if still running)."""
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    process = subprocess.Popen([sys.executable, "-m", "rvos_cli", *command], cwd=cwd, env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    time.sleep(after_seconds)
    process.send_signal(signal.SIGKILL)
    process.wait()


@pytest.mark.slow
@pytest.mark.parametrize("after_seconds", [2.5, 4.0, 5.5])
def test_prepare_killed_leaves_only_whole_files_and_a_rerun_finishes(
    a2d_root: Path, tmp_path: Path, after_seconds: float
) -> None:
    out = tmp_path / "prepared"
    run_killed(["prepare", "a2d", "--root", str(a2d_root), "--out", str(out)], after_seconds, tmp_path)
    if out.exists():
        assert_whole(out)
    result = runner.invoke(app, ["prepare", "a2d", "--root", str(a2d_root), "--out", str(out)])
    assert result.exit_code == 0, result.output
    for temp in hidden_temp_files(out):  # what a kill may leave: hidden temporaries, never final names
        temp.unlink()
    assert_same_files(out, a2d_root / "reference")


# ---------------------------------------------------------------------------------------- train


@pytest.mark.slow
@pytest.mark.disk_size("400m")
def test_train_on_a_full_disk_keeps_the_last_checkpoint_and_resumes_once_space_is_back(
    data_root: Path, small_disk: SmallDisk
) -> None:
    run = small_disk.path / "run"
    base = ["train", "--preset", "tiny", "--data", str(data_root), *TRAIN_SETS, "--checkpoint-every", "2"]
    first = runner.invoke(app, [*base, "--out", str(run), "--max-steps", "2"])
    assert first.exit_code == 0, first.output
    last = run / "checkpoints" / "last.pth.tar"
    before = last.read_bytes()
    small_disk.leave(20_000_000)  # less than one checkpoint (~110 MB)
    line = error_line(runner.invoke(app, [*base, "--resume", str(run), "--max-steps", "4"]))
    assert line == f"error: {run / 'checkpoints' / '00.pth.tar'}: {NO_SPACE}"  # step 4 ends epoch 0
    assert last.read_bytes() == before  # the previous good checkpoint is intact
    assert hidden_temp_files(run) == []
    assert_whole(run)
    small_disk.free_up()
    resumed = runner.invoke(app, [*base, "--resume", str(run), "--max-steps", "4"])
    assert resumed.exit_code == 0, resumed.output
    assert read_checkpoint_file(last)["global_step"] == 4
    steps = [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()
             if json.loads(line)["kind"] == "step"]  # fmt: skip
    assert steps == [1, 2, 3, 4]


def test_the_metrics_log_on_a_full_disk_keeps_whole_lines(small_disk: SmallDisk) -> None:
    from rvos_cli.engine.logging import MetricsLog
    from rvos_cli.errors import RvosError

    log = MetricsLog(small_disk.path / "metrics.jsonl")
    log.write({"kind": "step", "step": 1, "loss": 0.5})
    small_disk.leave(0)
    with pytest.raises(RvosError) as error:
        log.write({"kind": "step", "step": 2, "loss": 0.25, "note": "x" * 100_000})
    log.close()
    assert str(error.value) == f"{small_disk.path / 'metrics.jsonl'}: {NO_SPACE}"
    assert (small_disk.path / "metrics.jsonl").read_text() == '{"kind": "step", "step": 1, "loss": 0.5}\n'


# ---------------------------------------------------------------------------------------- eval / infer


@pytest.fixture(scope="module")
def checkpoint(small_eval_checkpoint: Path) -> Path:
    return small_eval_checkpoint


def test_eval_on_a_full_disk_writes_no_half_predictions_or_metrics(
    data_root: Path, checkpoint: Path, small_disk: SmallDisk
) -> None:
    small_disk.leave(8_192)
    predictions, metrics = small_disk.path / "p.json", small_disk.path / "m.json"
    args = ["eval", "a2d", "--data", str(data_root), "--checkpoint", str(checkpoint),
            "--predictions-out", str(predictions), "--json", str(metrics)]  # fmt: skip
    line = error_line(runner.invoke(app, args))
    assert line == f"error: {predictions}: {NO_SPACE}"
    assert not predictions.exists() and not metrics.exists()
    assert hidden_temp_files(small_disk.path) == []


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    rng = np.random.default_rng(0)
    path = tmp_path_factory.mktemp("clip") / "clip.mp4"
    write_video(path, [rng.integers(0, 256, (32, 48, 3), dtype=np.uint8) for _ in range(6)], fps=10)
    return path


def test_infer_on_a_full_disk_leaves_no_outputs_under_final_names(
    clip: Path, checkpoint: Path, small_disk: SmallDisk
) -> None:
    small_disk.leave(8_192)
    out = small_disk.path / "out"
    args = ["infer", str(clip), "a thing", "-c", str(checkpoint), "--out", str(out), "--size", "32,48",
            "--save", "mp4,png,json,gif"]  # fmt: skip
    line = error_line(runner.invoke(app, args))
    assert line.startswith(f"error: {small_disk.path}") and line.endswith(NO_SPACE)
    assert not out.exists() or not [path for path in out.rglob("*") if path.is_file()]
    assert hidden_temp_files(small_disk.path) == []


@pytest.mark.slow
@pytest.mark.parametrize("after_seconds", [4.0, 6.0, 8.0])
def test_infer_killed_leaves_only_whole_outputs(
    clip: Path, checkpoint: Path, tmp_path: Path, after_seconds: float
) -> None:
    out = tmp_path / "out"
    args = ["infer", str(clip), "a thing", "-c", str(checkpoint), "--out", str(out), "--size", "32,48",
            "--save", "mp4,png,json,gif"]  # fmt: skip
    run_killed(args, after_seconds, tmp_path)
    if out.exists():
        assert_whole(out)
    shutil.rmtree(out, ignore_errors=True)
