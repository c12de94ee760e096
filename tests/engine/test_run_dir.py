"""The run folder: which checkpoint a resume picks, the run a checkpoint belongs to, last/best links and
pruning of old epoch files."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from rvos_cli.engine import run_dir as R
from rvos_cli.errors import RvosError


def _run_with(tmp_path: Path, *names: str) -> Path:
    run = tmp_path / "run"
    R.checkpoint_dir(run).mkdir(parents=True)
    for name in names:
        (R.checkpoint_dir(run) / name).write_bytes(name.encode())
    return run


def test_resume_prefers_last_then_the_newest_epoch_file(tmp_path: Path) -> None:
    run = _run_with(tmp_path, "00.pth.tar", "03.pth.tar", "last.pth.tar")
    assert R.resolve_resume(run) == run / "checkpoints" / "last.pth.tar"
    (run / "checkpoints" / "last.pth.tar").unlink()
    assert R.resolve_resume(run) == run / "checkpoints" / "03.pth.tar"
    assert R.run_dir_of(R.resolve_resume(run)) == run and R.run_dir_of(tmp_path / "x.pth") is None


def test_resume_without_checkpoints_names_the_folder(tmp_path: Path) -> None:
    run = _run_with(tmp_path)
    with pytest.raises(RvosError, match=f"--resume {run}: no checkpoint in {run / 'checkpoints'}"):
        R.resolve_resume(run)
    with pytest.raises(RvosError, match="holds checkpoints of an earlier run"):
        R.refuse_earlier_run(_run_with(tmp_path / "b", "00.pth.tar"))


def test_links_share_the_epoch_file_and_pruning_keeps_the_newest(tmp_path: Path) -> None:
    run = _run_with(tmp_path, "00.pth.tar", "01.pth.tar", "02.pth.tar")
    folder = R.checkpoint_dir(run)
    R.link_or_copy(folder / "01.pth.tar", folder / "best.pth.tar")
    R.link_or_copy(R.epoch_checkpoint(run, 2), folder / "last.pth.tar")
    assert os.path.samefile(folder / "02.pth.tar", folder / "last.pth.tar")
    assert R.prune_epoch_checkpoints(run, keep=1) == [folder / "00.pth.tar", folder / "01.pth.tar"]
    assert sorted(p.name for p in folder.iterdir()) == ["02.pth.tar", "best.pth.tar", "last.pth.tar"]
    assert (folder / "best.pth.tar").read_bytes() == b"01.pth.tar"


def test_a_checkpoint_is_written_whole(tmp_path: Path) -> None:
    import torch

    path = R.write_checkpoint({"epoch": 3, "w": torch.ones(2)}, tmp_path / "c" / "x.pth.tar")
    assert torch.load(path, weights_only=True)["epoch"] == 3
    assert [p.name for p in path.parent.iterdir()] == ["x.pth.tar"]


def test_a_new_run_gets_the_first_free_name_with_a_numbered_suffix(tmp_path: Path) -> None:
    assert R.next_run_dir("infer", "bikes", tmp_path) == tmp_path / "infer" / "bikes"
    (tmp_path / "infer" / "bikes").mkdir(parents=True)
    assert R.next_run_dir("infer", "bikes", tmp_path) == tmp_path / "infer" / "bikes-2"
    (tmp_path / "infer" / "bikes-2").mkdir()
    (tmp_path / "infer" / "bikes-4").mkdir()  # a gap is filled first
    assert R.next_run_dir("infer", "bikes", tmp_path) == tmp_path / "infer" / "bikes-3"
    assert R.next_run_dir("train", "bikes", tmp_path) == tmp_path / "train" / "bikes"
    assert not (tmp_path / "train").exists()  # only named, not created


def test_an_explicit_out_folder_with_outputs_needs_overwrite(tmp_path: Path) -> None:
    out = tmp_path / "mine"
    assert R.output_dir(out, False, "infer", "bikes") == out  # does not exist yet
    out.mkdir()
    assert R.output_dir(out, False, "infer", "bikes") == out  # empty: nothing to replace
    (out / "overlay.mp4").write_bytes(b"earlier")
    with pytest.raises(RvosError) as err:
        R.output_dir(out, False, "infer", "bikes")
    assert str(err.value) == (
        f"--out {out}: already holds outputs; pass --overwrite to replace them, "
        "or leave out --out to write a new runs/infer/bikes[-N] folder"
    )
    assert R.output_dir(out, True, "infer", "bikes") == out
    with pytest.raises(RvosError, match=r"is a file; expected a folder"):
        R.output_dir(out / "overlay.mp4", True, "infer", "bikes")
    assert R.output_dir(None, False, "infer", "bikes", tmp_path) == tmp_path / "infer" / "bikes"


def test_clearing_an_earlier_run_removes_only_the_run_files(tmp_path: Path) -> None:
    run = _run_with(tmp_path, "00.pth.tar", "last.pth.tar")
    for name in (R.CONFIG_FILE, R.METRICS_FILE, "notes.txt"):
        (run / name).write_text("x")
    (run / R.VALIDATION_DIR / "epoch_00").mkdir(parents=True)
    R.clear_earlier_run(run)
    assert [p.name for p in run.iterdir()] == ["notes.txt"]


def test_an_explicit_output_file_needs_overwrite_when_it_exists(tmp_path: Path) -> None:
    target = tmp_path / "clip.gif"
    assert R.output_file(target, False) == target
    target.write_bytes(b"earlier")
    with pytest.raises(RvosError) as err:
        R.output_file(target, False)
    assert str(err.value) == f"--out {target}: already exists; pass --overwrite to replace it"
    assert R.output_file(target, True) == target
    with pytest.raises(RvosError, match="is a folder; expected a file name"):
        R.output_file(tmp_path, True)
