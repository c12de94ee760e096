"""Running `rvos serve`: the job runner over a loaded Predictor, the app around it, and uvicorn.

The model is loaded once, before the server accepts a connection; jobs then run one at a time in the
job queue's worker thread. The listening socket is bound here (not by uvicorn) so that a port in use is
one clear error and `--port 0` can report the free port it got.
"""

from __future__ import annotations

import contextlib
import functools
import ipaddress
import socket
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rvos_cli.core.allocator import release_free_memory
from rvos_cli.errors import RvosError
from rvos_cli.serve.app import ServeSettings, create_app
from rvos_cli.serve.jobs import Job, JobCancelledError, JobQueue
from rvos_cli.serve.outputs import write_job_outputs

GRACEFUL_SHUTDOWN_SECONDS = 3
# The memory release runs this long after a job's end is recorded: its garbage collection holds the GIL
# for about 0.15 s, and the event streams (polling every EVENT_POLL_SECONDS) should tell the page first.
RELEASE_DELAY_SECONDS = 0.25


def run_job(predictor: Any, job: Job, progress: Callable[[int], None]) -> dict[str, str]:
    """Segment `job` with `predictor` and write its outputs into `job.out_dir`; returns {kind: file name}.

    Calls `progress(frames_done)` after every frame. Once `job.cancel_requested` is set, the next frame
    raises JobCancelledError, which closes the Predictor's stream (stopping its reader, freeing its
    memory) and drops every output written so far.
    """

    def on_frame(done: int, total: int) -> None:
        if job.cancel_requested.is_set():
            raise JobCancelledError
        progress(done)

    return write_job_outputs(predictor, job.source, job.sentences, job.frames, job.out_dir, on_frame)


def build_app(predictor: Any, settings: ServeSettings, **queue_options: Any) -> tuple[Any, JobQueue]:
    """The FastAPI app and its job queue over a loaded `predictor` (`queue_options` go to JobQueue).

    After every job, however it ended, the free heap memory goes back to the system: without that, an
    `mttr-ytvos` server's peak grew by 520 MB over 5 jobs.
    """
    runner = functools.partial(run_job, predictor)
    jobs = JobQueue(runner, after_job=release_memory_after_events, **queue_options)
    return create_app(predictor, jobs, settings), jobs


def release_memory_after_events() -> None:
    """Wait `RELEASE_DELAY_SECONDS`, then hand the free memory back (`core.allocator.release_free_memory`)."""
    time.sleep(RELEASE_DELAY_SECONDS)
    release_free_memory()


def is_loopback(host: str) -> bool:
    """True for 'localhost' and loopback addresses (127.0.0.0/8, ::1)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def bind_socket(host: str, port: int) -> socket.socket:
    """A listening TCP socket on host:port (port 0 = any free port); RvosError if it cannot be bound."""
    try:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError as err:
        raise RvosError(f"--host {host} --port {port}: cannot listen there ({err.strerror or err})") from None
    sock.listen(64)
    sock.set_inheritable(True)
    return sock


def serve(
    predictor: Any,
    settings: ServeSettings,
    host: str,
    port: int,
    announce: Callable[[str], None],
    keep_results: int,
) -> None:
    """Serve the page on host:port until interrupted; `announce(url)` is called once it listens.

    Job folders live in a fresh temporary folder under `settings.work_dir`, removed on the way out.
    """
    import uvicorn

    sock = bind_socket(host, port)
    settings.work_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="rvos-serve-", dir=settings.work_dir) as work:
        settings.work_dir = Path(work)
        app, _ = build_app(predictor, settings, keep_results=keep_results)
        config = uvicorn.Config(
            app, log_level="warning", timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS, access_log=False
        )
        server = uvicorn.Server(config)
        shown = f"[{host}]" if ":" in host else host
        announce(f"http://{shown}:{sock.getsockname()[1]}/")
        # uvicorn re-raises the Ctrl-C it handled once it has shut down: that is the normal way out here.
        with contextlib.closing(sock), contextlib.suppress(KeyboardInterrupt):
            server.run(sockets=[sock])
