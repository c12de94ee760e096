"""The atomic-write leaf: complete files or none, old content kept on failure, one-line errors."""

from __future__ import annotations

import errno
import json
import os
import zipfile
from pathlib import Path

import numpy as np
import pytest

from rvos_cli.errors import RvosError
from rvos_cli.fileio import (
    atomic_dir,
    atomic_open,
    atomic_path,
    read_json,
    save_npy_atomic,
    write_bytes_atomic,
    write_json_atomic,
    write_text_atomic,
    zip_folder_atomic,
)


def test_writers_round_trip(tmp_path: Path) -> None:
    write_bytes_atomic(tmp_path / "a" / "b.bin", b"\x00\x01")
    write_text_atomic(tmp_path / "t.txt", "héllo")
    write_json_atomic(tmp_path / "j.json", {"x": [1, 2]})
    save_npy_atomic(tmp_path / "n.npy", np.arange(3))
    assert (tmp_path / "a" / "b.bin").read_bytes() == b"\x00\x01"
    assert (tmp_path / "t.txt").read_text(encoding="utf-8") == "héllo"
    assert (tmp_path / "j.json").read_text() == '{\n  "x": [\n    1,\n    2\n  ]\n}\n'
    assert np.load(tmp_path / "n.npy").tolist() == [0, 1, 2]
    assert oct((tmp_path / "t.txt").stat().st_mode & 0o777) == "0o644"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "j.json", "n.npy", "t.txt"]


def test_failure_keeps_old_content_and_leaves_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "ckpt.bin"
    target.write_bytes(b"good")
    with pytest.raises(ZeroDivisionError), atomic_open(target, "wb") as handle:
        handle.write(b"half")
        raise ZeroDivisionError
    assert target.read_bytes() == b"good"
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt.bin"]


def test_disk_full_becomes_one_line_error_naming_the_path(tmp_path: Path) -> None:
    target = tmp_path / "out.json"
    target.write_text("old")
    with pytest.raises(RvosError) as caught, atomic_path(target):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    assert str(caught.value) == f"{target}: could not write (No space left on device)"
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]


def test_read_json_errors_name_file_and_position(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"a": 1,\n oops}')
    with pytest.raises(RvosError, match=r"bad.json:2:2: predictions file is not valid JSON"):
        read_json(bad, "predictions file")
    latin = tmp_path / "latin.json"
    latin.write_bytes(b'{"a": "\xe9"}')
    with pytest.raises(RvosError, match=r"latin.json: JSON file is not UTF-8 text \(byte 7\)"):
        read_json(latin)
    with pytest.raises(RvosError, match=r"missing.json: JSON file not found"):
        read_json(tmp_path / "missing.json")
    good = tmp_path / "good.json"
    good.write_text(json.dumps({"k": [1]}))
    assert read_json(good) == {"k": [1]}


def test_atomic_dir_replaces_the_whole_folder_only_on_success(tmp_path: Path) -> None:
    target = tmp_path / "Annotations"
    (target / "old_video").mkdir(parents=True)
    (target / "old_video" / "0.png").write_bytes(b"old")
    with atomic_dir(target) as stage:
        (stage / "v").mkdir()
        (stage / "v" / "1.png").write_bytes(b"new")
        assert stage.parent == tmp_path and stage.name.startswith(".Annotations.")
        assert (target / "old_video" / "0.png").read_bytes() == b"old"  # readers still see the old one
    assert sorted(p.relative_to(target).as_posix() for p in target.rglob("*")) == ["v", "v/1.png"]
    assert oct(target.stat().st_mode & 0o777) == "0o755"
    with pytest.raises(ZeroDivisionError), atomic_dir(target) as stage:
        (stage / "half.png").write_bytes(b"half")
        raise ZeroDivisionError
    assert sorted(p.relative_to(target).as_posix() for p in target.rglob("*")) == ["v", "v/1.png"]
    assert [p.name for p in tmp_path.iterdir()] == ["Annotations"]


def test_zip_folder_atomic_sorted_entries_under_an_optional_root(tmp_path: Path) -> None:
    folder = tmp_path / "preds"
    (folder / "v2" / "0").mkdir(parents=True)
    (folder / "v1").mkdir()
    (folder / "v2" / "0" / "00000.png").write_bytes(b"png")
    with_root = zip_folder_atomic(folder, tmp_path / "a.zip", "Annotations")
    at_root = zip_folder_atomic(folder, tmp_path / "b.zip")
    with zipfile.ZipFile(with_root) as archive:
        names = archive.namelist()
        assert archive.read("Annotations/v2/0/00000.png") == b"png"
    assert names == ["Annotations/", "Annotations/v1/", "Annotations/v2/", "Annotations/v2/0/",
                     "Annotations/v2/0/00000.png"]  # fmt: skip
    with zipfile.ZipFile(at_root) as archive:
        assert archive.namelist() == ["v1/", "v2/", "v2/0/", "v2/0/00000.png"]
