"""`rvos serve --checkpoint CKPT`: a local web page to segment a video from sentences."""

from __future__ import annotations

import importlib.util
import os
import sys
import tempfile
from pathlib import Path
from typing import Annotated, Any

import typer

from rvos_cli.cli.common import err_console
from rvos_cli.cli.options import (
    CheckpointOption,
    DeviceOption,
    PresetOption,
    TextEncoderOption,
    TrustCheckpointOption,
)
from rvos_cli.errors import RvosError

WEB_MODULES = ("fastapi", "uvicorn", "multipart")


def register(app: typer.Typer) -> None:
    """Add the `serve` command to `app`."""
    app.command("serve")(serve)


def serve(
    checkpoint: CheckpointOption,
    preset: PresetOption = None,
    text_encoder: TextEncoderOption = None,
    device: DeviceOption = "auto",
    dtype: Annotated[str, typer.Option(help="auto, fp32 or bf16.")] = "auto",
    host: Annotated[
        str, typer.Option(help="Address to listen on; anything but loopback exposes the page to others.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on (0: any free port, printed).")] = 7860,
    max_upload_mb: Annotated[float, typer.Option(help="Largest video upload accepted, in MB.")] = 500.0,
    max_seconds: Annotated[
        float, typer.Option(help="Longest stretch of video one job may segment, in seconds.")
    ] = 600.0,
    videos: Annotated[
        Path | None, typer.Option(help="Folder of videos the page offers besides uploading one.")
    ] = None,
    size: Annotated[
        str | None,
        typer.Option(help="SHORT,MAX resize in pixels (default: the preset's; 360,640 for mttr-ytvos)."),
    ] = None,
    keep_results: Annotated[
        int, typer.Option(help="Finished jobs whose files are kept (older ones are deleted; 1 h at most).")
    ] = 10,
    work_dir: Annotated[
        Path | None, typer.Option(help="Where uploads and results live while kept (default: system temp).")
    ] = None,
    trust_checkpoint: TrustCheckpointOption = False,
) -> None:
    """Serve a web page on HOST:PORT: pick a video, type sentences, watch the overlay, download the results.

    The model is loaded once; jobs run one at a time and further ones queue. The page and its API
    (POST /jobs, GET /jobs/{id}, GET /jobs/{id}/events, GET /jobs/{id}/files/NAME) need no network.
    """
    _check_web_modules()
    _check_limits(max_upload_mb, max_seconds, keep_results, videos)
    # Idle OpenMP threads sleep instead of spinning, leaving the cores to the page's own threads (preview
    # encoder, output writer, event streams); read once, when torch loads, so set before importing it.
    if "torch" not in sys.modules:
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    from rvos_cli.cli.infer_cmd import parse_size
    from rvos_cli.serve.server import is_loopback

    resize = parse_size(size) if size is not None else None
    if not is_loopback(host):
        err_console.print(
            f"[yellow]warning:[/] listening on {host}: the page has no authentication; anyone who can "
            f"reach this machine on port {port} can upload videos and use the model",
            highlight=False,
            soft_wrap=True,
        )
    from rvos_cli import Predictor
    from rvos_cli.core.allocator import use_one_arena
    from rvos_cli.core.checkpoints import trusted_checkpoints
    from rvos_cli.serve.app import ServeSettings
    from rvos_cli.serve.server import serve as run_server

    use_one_arena()  # before any job thread exists: steadier peaks job after job (core/allocator.py)
    with trusted_checkpoints(trust_checkpoint):
        predictor = Predictor.from_checkpoint(
            checkpoint, preset=preset, text_encoder=text_encoder, device=device, dtype=dtype, size=resize
        )
    work = work_dir if work_dir is not None else Path(tempfile.gettempdir())
    settings = ServeSettings(work, max_upload_mb, max_seconds, videos, _model_info(checkpoint, predictor))

    def announce(url: str) -> None:
        err_console.print(f"rvos serve: model loaded, open {url} (Ctrl-C to stop)", highlight=False)

    run_server(predictor, settings, host, port, announce, keep_results)


def _model_info(checkpoint: Path, predictor: Any) -> dict[str, Any]:
    """What the page says about the model: checkpoint file name, preset, device, dtype."""
    return {
        "checkpoint": checkpoint.name,
        "preset": getattr(predictor.config, "preset", None),
        "device": predictor.device,
        "dtype": predictor.dtype,
    }


def _check_web_modules() -> None:
    """RvosError naming the install command when the web server's packages are missing."""
    missing = [name for name in WEB_MODULES if importlib.util.find_spec(name) is None]
    if missing:
        raise RvosError(
            f"rvos serve needs {', '.join(missing)}: install them with pip install 'rvos-cli[serve]'"
        )


def _check_limits(max_upload_mb: float, max_seconds: float, keep_results: int, videos: Path | None) -> None:
    """RvosError for a non-positive limit or a --videos that is not a folder."""
    if max_upload_mb <= 0:
        raise RvosError(f"--max-upload-mb {max_upload_mb:g}: expected a positive number of megabytes")
    if max_seconds <= 0:
        raise RvosError(f"--max-seconds {max_seconds:g}: expected a positive number of seconds")
    if keep_results < 1:
        raise RvosError(f"--keep-results {keep_results}: expected at least 1")
    if videos is not None and not videos.is_dir():
        raise RvosError(f"--videos {videos}: not a folder")
