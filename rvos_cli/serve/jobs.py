"""The job queue of `rvos serve`: one job runs at a time in a worker thread, the others wait in order.

A job goes queued → running → done | failed | cancelled. Each job owns a folder under the server's work
folder holding its upload and, once done, its outputs. The upload is deleted when the job ends however it
ends; a failed or cancelled job's folder goes at once; a finished job's outputs are kept until more than
`keep_results` finished jobs exist or they are older than `keep_seconds`. Every change to a job bumps its
`version`, which is what the server-sent events stream watches.
"""

from __future__ import annotations

import collections
import contextlib
import enum
import shutil
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rvos_cli.errors import RvosError

MAX_QUEUED = 16
KEEP_RESULTS = 10
KEEP_SECONDS = 3600.0
# How often the worker wakes up to drop expired results when no job arrives.
SWEEP_SECONDS = 60.0


class JobState(str, enum.Enum):
    """Where a job is in its life."""

    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def finished(self) -> bool:
        """True once the job will not change any more."""
        return self in (JobState.DONE, JobState.FAILED, JobState.CANCELLED)


class JobCancelledError(Exception):
    """Raised inside a runner when its job's cancel was requested."""


@dataclass
class Job:
    """One request: a video (`source`, shown to the user as `video_name`), sentences and a time range.

    `start` / `end` are seconds (end None = to the end), `frames` the Predictor's FrameRange of them,
    `num_frames` the progress total (the frames that were done, once done), `size` the source's
    (height, width). `files` maps an output kind ('overlay_mp4', 'preview', 'masks_zip',
    'predictions_json') to a file name inside `folder / "out"` once the job is done.
    """

    id: str
    video_name: str
    source: Path
    sentences: list[str]
    start: float
    end: float | None
    frames: Any
    num_frames: int
    size: tuple[int, int]
    folder: Path
    state: JobState = JobState.QUEUED
    frames_done: int = 0
    error: str | None = None
    files: dict[str, str] = field(default_factory=dict)
    created_at: float = field(default_factory=time.time)
    started_at: float | None = None
    finished_at: float | None = None
    version: int = 0
    cancel_requested: threading.Event = field(default_factory=threading.Event, repr=False)

    @property
    def out_dir(self) -> Path:
        """The folder the job's outputs are written to."""
        return self.folder / "out"

    def speed(self) -> tuple[float | None, float | None]:
        """(frames per second so far, seconds left at that speed); None while unknown."""
        if self.started_at is None or self.frames_done == 0:
            return None, None
        elapsed = (self.finished_at or time.time()) - self.started_at
        fps = self.frames_done / max(elapsed, 1e-6)
        left = max(self.num_frames - self.frames_done, 0) / fps
        return fps, left


def new_job_id() -> str:
    """A random, URL-safe job id (12 hex digits)."""
    return uuid.uuid4().hex[:12]


Runner = Callable[[Job, Callable[[int], None]], dict[str, str]]


class JobQueue:
    """Runs jobs one at a time in a worker thread with `runner(job, progress) -> files`.

    The runner calls `progress(frames_done)` as frames finish and should raise `JobCancelledError` soon after
    `job.cancel_requested` is set; an `RvosError` fails the job with its message, anything else fails it
    with "internal error" (and a traceback on stderr) while the server keeps running. `after_job()` runs
    in the worker once each job's end is recorded (so clients see the result first), before the next job.
    """

    def __init__(
        self,
        runner: Runner,
        max_queued: int = MAX_QUEUED,
        keep_results: int = KEEP_RESULTS,
        keep_seconds: float = KEEP_SECONDS,
        after_job: Callable[[], object] | None = None,
    ) -> None:
        self._runner = runner
        self._after_job = after_job
        self._max_queued = max_queued
        self._keep_results = keep_results
        self._keep_seconds = keep_seconds
        self._jobs: dict[str, Job] = {}
        self._waiting: collections.deque[str] = collections.deque()
        self._lock = threading.Condition()
        self._stopping = False
        self._worker = threading.Thread(target=self._work, name="rvos-serve-jobs", daemon=True)
        self._worker.start()

    def submit(self, job: Job) -> None:
        """Queue `job` (its folder exists and holds its upload); RvosError if the queue is full."""
        with self._lock:
            if len(self._waiting) >= self._max_queued:
                raise RvosError(
                    f"the queue is full ({self._max_queued} jobs waiting); try again when one has finished"
                )
            self._jobs[job.id] = job
            self._waiting.append(job.id)
            self._lock.notify_all()

    def get(self, job_id: str) -> Job | None:
        """The job with this id, or None if there is none (or its results were removed)."""
        with self._lock:
            return self._jobs.get(job_id)

    def position(self, job: Job) -> int:
        """How many jobs run or wait before `job` (0 once it runs or has finished)."""
        with self._lock:
            if job.state is not JobState.QUEUED or job.id not in self._waiting:
                return 0
            running = any(j.state is JobState.RUNNING for j in self._jobs.values())
            return self._waiting.index(job.id) + int(running)

    def describe(self, job_id: str, file_url: Callable[[str, str], str]) -> dict[str, Any] | None:
        """A consistent JSON view of the job (see `job_summary`), or None if there is no such job."""
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None:
                return None
            return job_summary(job, self.position(job), lambda name: file_url(job_id, name))

    def cancel(self, job: Job) -> None:
        """Cancel a queued job at once, or ask a running one to stop; finished jobs are removed."""
        with self._lock:
            if job.state is JobState.QUEUED:
                self._waiting.remove(job.id)
                self._finish(job, JobState.CANCELLED)
                self._bump_waiting()
            elif job.state is JobState.RUNNING:
                job.cancel_requested.set()
            else:
                self._remove(job)

    def shutdown(self, timeout: float = 10.0) -> None:
        """Cancel everything, stop the worker and delete every job folder."""
        with self._lock:
            self._stopping = True
            for job in list(self._jobs.values()):
                if job.state is JobState.RUNNING:
                    job.cancel_requested.set()
            self._lock.notify_all()
        self._worker.join(timeout)
        with self._lock:
            for job in list(self._jobs.values()):
                self._remove(job)

    def _work(self) -> None:
        while True:
            with self._lock:
                while not self._waiting and not self._stopping:
                    if not self._lock.wait(SWEEP_SECONDS):
                        self._sweep()
                if self._stopping:
                    return
                job = self._jobs[self._waiting.popleft()]
                job.state = JobState.RUNNING
                job.started_at = time.time()
                job.version += 1
                self._bump_waiting()
            self._run(job)

    def _run(self, job: Job) -> None:
        """Run one job outside the lock and record how it ended."""

        def progress(frames_done: int) -> None:
            with self._lock:
                job.frames_done = frames_done
                job.version += 1

        outcome, error = JobState.DONE, None
        try:
            files = self._runner(job, progress)
        except JobCancelledError:
            outcome, error, files = JobState.CANCELLED, None, {}
        except RvosError as err:
            outcome, error, files = JobState.FAILED, str(err), {}
        except Exception as err:
            traceback.print_exc(file=sys.stderr)
            outcome, error, files = JobState.FAILED, f"internal error ({type(err).__name__}: {err})", {}
        with self._lock:
            job.files = files
            job.error = error
            self._finish(job, outcome)
            self._sweep()
        if self._after_job is not None:
            self._after_job()

    def _finish(self, job: Job, state: JobState) -> None:
        """Record the end of a job and delete what it no longer needs (caller holds the lock)."""
        job.state = state
        job.finished_at = time.time()
        if state is JobState.DONE:
            job.num_frames = job.frames_done
        job.version += 1
        if state is JobState.DONE:
            for path in job.folder.iterdir():
                if path != job.out_dir:
                    _delete(path)
        else:
            _delete(job.folder)

    def _sweep(self) -> None:
        """Remove finished jobs beyond `keep_results` or older than `keep_seconds` (caller holds the lock)."""
        finished = sorted(
            (j for j in self._jobs.values() if j.state.finished), key=lambda j: j.finished_at or 0.0
        )
        now = time.time()
        for index, job in enumerate(finished):
            too_many = index < len(finished) - self._keep_results
            if too_many or now - (job.finished_at or now) > self._keep_seconds:
                self._remove(job)

    def _remove(self, job: Job) -> None:
        _delete(job.folder)
        self._jobs.pop(job.id, None)

    def _bump_waiting(self) -> None:
        """Tell the event streams of waiting jobs that their place in the queue changed."""
        for job_id in self._waiting:
            self._jobs[job_id].version += 1


def _delete(path: Path) -> None:
    """Remove a file or folder if it is there."""
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def job_summary(job: Job, position: int, file_url: Callable[[str], str]) -> dict[str, Any]:
    """The JSON view of a job that `GET /jobs/{id}` returns and the event stream sends."""
    fps, eta = job.speed()
    return {
        "id": job.id,
        "state": job.state.value,
        "version": job.version,
        "video": job.video_name,
        "sentences": job.sentences,
        "start": job.start,
        "end": job.end,
        "size": list(job.size),
        "frames_total": job.num_frames,
        "frames_done": job.frames_done,
        "frames_per_second": None if fps is None else round(fps, 3),
        "seconds": None
        if job.started_at is None
        else round((job.finished_at or time.time()) - job.started_at, 3),
        "eta_seconds": None if eta is None or job.state.finished else round(eta, 1),
        "queue_position": position,
        "error": job.error,
        "files": {kind: file_url(name) for kind, name in job.files.items()},
    }
