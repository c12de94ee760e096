"""`rvos serve` on the command line: option checks, the no-authentication warning, the listening socket."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from rvos_cli.cli.app import app
from rvos_cli.errors import RvosError
from rvos_cli.serve.server import bind_socket, is_loopback

runner = CliRunner()


def serve(*args: str) -> object:
    return runner.invoke(app, ["serve", *args])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--max-upload-mb", "0"], "--max-upload-mb 0: expected a positive number of megabytes"),
        (["--max-seconds", "-1"], "--max-seconds -1: expected a positive number of seconds"),
        (["--keep-results", "0"], "--keep-results 0: expected at least 1"),
        (["--videos", "no-such-folder"], "--videos no-such-folder: not a folder"),
        (["--size", "big"], "--size 'big': expected SHORT,MAX in pixels, e.g. 360,640"),
    ],
)
def test_bad_options_are_one_line_and_exit_2(tmp_path: Path, args: list[str], message: str) -> None:
    result = serve("-c", str(tmp_path / "model.pth"), *args)
    assert result.exit_code == 2
    assert " ".join(result.stderr.split()) == f"error: {message}"


def test_listening_beyond_loopback_warns_that_there_is_no_authentication(tmp_path: Path) -> None:
    result = serve("-c", str(tmp_path / "missing.pth"), "--host", "0.0.0.0", "--port", "8000")
    text = " ".join(result.stderr.split())
    assert "warning: listening on 0.0.0.0: the page has no authentication" in text
    assert "anyone who can reach this machine on port 8000" in text
    assert result.exit_code == 2 and "missing.pth: checkpoint file not found" in text


def test_loopback_hosts_get_no_warning(tmp_path: Path) -> None:
    result = serve("-c", str(tmp_path / "missing.pth"))
    assert "warning" not in result.stderr and result.exit_code == 2


@pytest.mark.parametrize(
    ("host", "loopback"),
    [("127.0.0.1", True), ("127.8.9.10", True), ("::1", True), ("localhost", True), ("0.0.0.0", False),
     ("192.168.1.5", False), ("::", False), ("example.org", False)],
)  # fmt: skip
def test_is_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_port_zero_gets_a_free_port_and_a_taken_port_is_one_clear_error() -> None:
    first = bind_socket("127.0.0.1", 0)
    try:
        port = first.getsockname()[1]
        assert port > 0
        with pytest.raises(RvosError, match=rf"^--host 127.0.0.1 --port {port}: cannot listen there \("):
            bind_socket("127.0.0.1", port)
    finally:
        first.close()
