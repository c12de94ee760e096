"""Atomic file writes and the one JSON reader: the leaf every writer and reader of rvos goes through.

A file under its final name is always complete: data goes to a hidden temporary file in the same folder,
is flushed to disk, and is renamed over the final name only when everything was written. A failed write
(a full disk, a closed pipe, a kill) leaves the previous file, if any, untouched and no temporary file
behind (a SIGKILL can leave a hidden `.NAME.PID.tmp`, never a half-written NAME). A folder of outputs
(`atomic_dir`) is filled under a hidden staging name and swapped in whole. Write errors become one
`RvosError` naming the path.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from rvos_cli.errors import RvosError

# Results are meant to be shared; mkstemp-style 0600 files surprise users on shared machines.
FILE_MODE = 0o644
DIR_MODE = 0o755


def temp_path_for(path: Path) -> Path:
    """A hidden temporary name beside `path` (same folder, so the final rename is atomic)."""
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


def write_error(path: Path, error: OSError) -> RvosError:
    """The one-line user error for a failed write of `path` (`error.strerror`, e.g. 'No space left')."""
    reason = error.strerror or str(error)
    if error.errno is None and disk_full(Path(path).parent):
        reason = os.strerror(errno.ENOSPC)  # NumPy reports a short write as "N requested and M written"
    return RvosError(f"{path}: could not write ({reason})")


def disk_full(folder: Path) -> bool:
    """Whether the filesystem holding `folder` has no free block left (False when it cannot be asked)."""
    try:
        return os.statvfs(folder).f_bavail == 0
    except OSError:
        return False


@contextlib.contextmanager
def atomic_path(path: Path | str) -> Iterator[Path]:
    """Yield a temporary path to write; on success it is fsynced and renamed to `path`.

    Takes the final `path` (its parent folder is created); yields the temporary `Path` the caller writes
    (with any library). On an exception the temporary file is removed and `path` keeps its old content;
    an `OSError` is turned into an `RvosError` naming `path`.
    """
    path = Path(path)
    temp = temp_path_for(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        yield temp
        with open(temp, "rb") as handle:
            os.fsync(handle.fileno())
        os.chmod(temp, FILE_MODE)
        os.replace(temp, path)
    except OSError as error:
        raise write_error(path, error) from error
    finally:
        temp.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_open(path: Path | str, mode: str = "w") -> Iterator[IO[Any]]:
    """Open a temporary file for writing (`mode` 'w' text UTF-8 or 'wb'); renamed to `path` on success."""
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_open: mode must be 'w' or 'wb', got {mode!r}")
    with atomic_path(path) as temp:
        encoding = None if "b" in mode else "utf-8"
        with open(temp, mode, encoding=encoding) as handle:
            yield handle
            handle.flush()


@contextlib.contextmanager
def atomic_dir(path: Path | str) -> Iterator[Path]:
    """Yield an empty hidden staging folder beside `path`; on success it replaces the folder `path` whole.

    The caller fills the staging folder (with any writer). When the block ends without an exception an
    earlier `path` is moved aside, the staging folder takes its name and the old one is deleted, so a
    reader sees the old folder or the complete new one. On an exception the staging folder is removed
    and `path` is untouched; an `OSError` becomes an `RvosError` naming `path`. Yields the staging `Path`.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        stage = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    except OSError as error:
        raise write_error(path, error) from error
    try:
        yield stage
        os.chmod(stage, DIR_MODE)
        retired = path.with_name(f".{path.name}.{os.getpid()}.old")
        if path.exists():
            path.rename(retired)  # a rename cannot replace a non-empty folder: move the old one aside
        try:
            stage.rename(path)
        except OSError:
            if retired.exists():
                retired.rename(path)
            raise
        shutil.rmtree(retired, ignore_errors=True)
    except OSError as error:
        raise write_error(path, error) from error
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def zip_folder_atomic(folder: Path | str, zip_path: Path | str, root_name: str | None = None) -> Path:
    """Zip everything under `folder` into `zip_path` atomically; returns `zip_path` as a `Path`.

    Entries are sorted and deflated, so the same files give the same zip; folders get their own entries.
    With `root_name` every entry sits under `root_name/` (e.g. 'Annotations/<video>/...'), else at the
    zip root.
    """
    folder, prefix = Path(folder), f"{root_name}/" if root_name else ""
    with (
        atomic_path(zip_path) as temp,
        zipfile.ZipFile(temp, "w", compression=zipfile.ZIP_DEFLATED) as archive,
    ):
        if prefix:
            archive.writestr(prefix, b"")
        for path in sorted(folder.rglob("*")):
            name = prefix + path.relative_to(folder).as_posix()
            if path.is_dir():
                archive.writestr(f"{name}/", b"")
            else:
                archive.write(path, name)
    return Path(zip_path)


def write_bytes_atomic(path: Path | str, data: bytes) -> Path:
    """Write `data` to `path` atomically; returns `path` as a `Path`."""
    with atomic_open(path, "wb") as handle:
        handle.write(data)
    return Path(path)


def write_text_atomic(path: Path | str, text: str) -> Path:
    """Write `text` (UTF-8) to `path` atomically; returns `path` as a `Path`."""
    with atomic_open(path, "w") as handle:
        handle.write(text)
    return Path(path)


def write_json_atomic(path: Path | str, obj: Any, *, indent: int | None = 2) -> Path:
    """Write `obj` as JSON (a trailing newline; `indent=None` for one compact line) to `path` atomically."""
    with atomic_open(path, "w") as handle:
        json.dump(obj, handle, indent=indent)
        handle.write("\n")
    return Path(path)


def save_npy_atomic(path: Path | str, array: Any) -> Path:
    """Save a NumPy `array` in .npy format to `path` atomically; returns `path`."""
    import numpy as np

    with atomic_open(path, "wb") as handle:
        np.save(handle, array)
    return Path(path)


def read_json(path: Path | str, what: str = "JSON file") -> Any:
    """Read and parse a JSON file; takes its path and a description used in errors ('predictions file').

    Returns the parsed object. A missing file, bytes that are not UTF-8, or text that is not JSON raise one
    `RvosError` naming the file (and the line and column of a syntax error).
    """
    path = Path(path)
    if not path.is_file():
        raise RvosError(f"{path}: {what} not found")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise RvosError(f"{path}: {what} is not UTF-8 text (byte {error.start})") from error
    except OSError as error:
        raise RvosError(f"{path}: cannot read {what} ({error.strerror or error})") from error
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        where = f"{path}:{error.lineno}:{error.colno}"
        raise RvosError(f"{where}: {what} is not valid JSON ({error.msg})") from error
