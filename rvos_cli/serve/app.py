"""The HTTP side of `rvos serve`: the page, its static files and the JSON API the page (or a script) uses.

    GET    /                          the page
    GET    /info                      model, limits and the server's videos (--videos DIR)
    POST   /jobs                      multipart form: video (file) or video_name, sentences (repeated),
                                      start / end (seconds, optional) → 201 and the job
    GET    /jobs/{id}                 the job: state, progress, queue position, error, file URLs
    GET    /jobs/{id}/events          server-sent events: the job after every change, until it ends
    DELETE /jobs/{id}                 cancel a queued or running job, or delete a finished one's files
    GET    /jobs/{id}/files/{name}    overlay.mp4, preview.webm (or .gif), masks.zip, predictions.json

Errors are JSON `{"error": "message"}` with status 400 (bad request), 404 (no such job or file),
413 (upload too large) or 503 (queue full).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse, StreamingResponse
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException

from rvos_cli.engine.frame_reader import frame_range
from rvos_cli.errors import RvosError
from rvos_cli.serve import uploads
from rvos_cli.serve.jobs import Job, JobQueue, JobState, new_job_id
from rvos_cli.viz.overlay import PALETTE, sentence_colour

STATIC_DIR = Path(__file__).parent / "static"
EVENT_POLL_SECONDS = 0.05
KEEP_ALIVE_SECONDS = 15.0
FINISHED_STATES = {state.value for state in JobState if state.finished}
FORM_OVERHEAD_BYTES = 64 * 1024  # room for the sentences and multipart boundaries around the video
MEDIA_TYPES = {
    ".mp4": "video/mp4",
    ".webm": "video/webm",
    ".gif": "image/gif",
    ".zip": "application/zip",
    ".json": "application/json",
}


@dataclass
class ServeSettings:
    """What the server was started with: limits, the optional videos folder, where jobs live, the model."""

    work_dir: Path
    max_upload_mb: float = 500.0
    max_seconds: float | None = None
    videos_dir: Path | None = None
    model: dict[str, Any] = field(default_factory=dict)


def file_url(job_id: str, name: str) -> str:
    """The URL of one output file of a job."""
    return f"/jobs/{job_id}/files/{name}"


def create_app(predictor: Any, jobs: JobQueue, settings: ServeSettings) -> FastAPI:
    """The FastAPI app serving the page and the API over `jobs` (probing uploads with `predictor`)."""

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        await run_in_threadpool(jobs.shutdown)

    app = FastAPI(title="rvos serve", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    @app.exception_handler(HTTPException)
    async def http_error(_: Request, error: HTTPException) -> JSONResponse:
        return JSONResponse({"error": str(error.detail)}, status_code=error.status_code)

    @app.exception_handler(RvosError)
    async def user_error(_: Request, error: RvosError) -> JSONResponse:
        return JSONResponse({"error": str(error)}, status_code=400)

    @app.get("/")
    async def page() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", media_type="text/html")

    @app.get("/info")
    async def info() -> dict[str, Any]:
        return {
            "model": settings.model,
            "limits": {"max_upload_mb": settings.max_upload_mb, "max_seconds": settings.max_seconds},
            "videos": uploads.list_videos(settings.videos_dir),
            "palette": [_hex(colour) for colour in PALETTE],
        }

    _add_job_routes(app, predictor, jobs, settings)
    return app


def _add_job_routes(app: FastAPI, predictor: Any, jobs: JobQueue, settings: ServeSettings) -> None:
    """The job API on `app`: create, describe, cancel, progress events, and a job's files."""

    @app.post("/jobs", status_code=201)
    async def create_job(request: Request) -> dict[str, Any]:
        job = await _job_from_request(request, predictor, settings)
        try:
            jobs.submit(job)
        except RvosError as err:
            await run_in_threadpool(_remove_folder, job.folder)
            raise HTTPException(503, str(err)) from None
        return _describe(jobs, job.id)

    @app.get("/jobs/{job_id}")
    async def get_job(job_id: str) -> dict[str, Any]:
        return _describe(jobs, job_id)

    @app.delete("/jobs/{job_id}")
    async def cancel_job(job_id: str) -> dict[str, Any]:
        job = _job_or_404(jobs, job_id)
        await run_in_threadpool(jobs.cancel, job)
        return _describe(jobs, job_id) if jobs.get(job_id) else {"id": job_id, "state": "deleted"}

    @app.get("/jobs/{job_id}/events")
    async def job_events(job_id: str) -> StreamingResponse:
        _job_or_404(jobs, job_id)
        headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
        return StreamingResponse(_event_stream(jobs, job_id), media_type="text/event-stream", headers=headers)

    @app.get("/jobs/{job_id}/files/{name}")
    async def job_file(job_id: str, name: str) -> FileResponse:
        job = _job_or_404(jobs, job_id)
        if name not in job.files.values():
            raise HTTPException(404, f"job {job_id} has no file {name!r}")
        path = job.out_dir / name
        media_type = MEDIA_TYPES.get(path.suffix, "application/octet-stream")
        if name == job.files.get("preview"):
            return FileResponse(path, media_type=media_type)
        download = f"{Path(job.video_name).stem}-{name}"
        return FileResponse(path, media_type=media_type, filename=download)


def _job_or_404(jobs: JobQueue, job_id: str) -> Job:
    job = jobs.get(job_id)
    if job is None:
        raise HTTPException(404, f"no job {job_id} (it never existed, or its results were removed)")
    return job


def _describe(jobs: JobQueue, job_id: str) -> dict[str, Any]:
    """The job's JSON view; HTTP 404 if there is no such job."""
    summary = _summary(jobs, job_id)
    if summary is None:
        raise HTTPException(404, f"no job {job_id} (it never existed, or its results were removed)")
    return summary


def _summary(jobs: JobQueue, job_id: str) -> dict[str, Any] | None:
    """The job's JSON view plus each sentence's overlay colour as '#rrggbb' (None: no such job)."""
    summary = jobs.describe(job_id, file_url)
    if summary is not None:
        summary["colours"] = [_hex(sentence_colour(k)) for k in range(len(summary["sentences"]))]
    return summary


def _hex(colour: tuple[int, int, int]) -> str:
    return "#{:02x}{:02x}{:02x}".format(*colour)


async def _event_stream(jobs: JobQueue, job_id: str) -> AsyncIterator[str]:
    """Server-sent events: `data: <job JSON>` after every change of the job; ends when the job does."""
    seen = -1
    last_sent = time.monotonic()
    while True:
        summary = _summary(jobs, job_id)
        if summary is None:
            yield "event: gone\ndata: {}\n\n"
            return
        if summary["version"] != seen:
            seen = summary["version"]
            last_sent = time.monotonic()
            yield f"data: {json.dumps(summary)}\n\n"
            if summary["state"] in FINISHED_STATES:
                return
        elif time.monotonic() - last_sent > KEEP_ALIVE_SECONDS:
            last_sent = time.monotonic()
            yield ": keep-alive\n\n"
        await asyncio.sleep(EVENT_POLL_SECONDS)


async def _job_from_request(request: Request, predictor: Any, settings: ServeSettings) -> Job:
    """Read and check the POST /jobs form; returns a Job whose folder holds the upload (RvosError if bad)."""
    length = request.headers.get("content-length", "")
    limit_bytes = settings.max_upload_mb * 1_000_000 + FORM_OVERHEAD_BYTES
    if length.isdigit() and int(length) > limit_bytes:
        raise HTTPException(413, uploads.too_large_message("the upload", settings.max_upload_mb))
    form = await request.form(max_files=1, max_fields=uploads.MAX_SENTENCES + 8)
    try:
        sentences = uploads.check_sentences([str(s) for s in form.getlist("sentences")])
        start = uploads.parse_seconds(_text(form.get("start")), "start") or 0.0
        end = uploads.parse_seconds(_text(form.get("end")), "end")
        video = form.get("video")
        job_id = new_job_id()
        folder = settings.work_dir / job_id
        if isinstance(video, UploadFile) and video.filename:
            name = Path(video.filename).name
            source = folder / f"input{uploads.upload_suffix(name)}"
            await run_in_threadpool(uploads.save_upload, video.file, source, name, settings.max_upload_mb)
        else:
            name = _text(form.get("video_name")) or ""
            source = _server_video(settings.videos_dir, name)
        try:
            info = await run_in_threadpool(uploads.probe_upload, predictor, source, name)
            uploads.check_range(info, name, start, end, settings.max_seconds)
        except BaseException:
            await run_in_threadpool(_remove_folder, folder)
            raise
    finally:
        await form.close()
    frames = frame_range(info, start, end)
    return Job(
        id=job_id,
        video_name=name,
        source=source,
        sentences=sentences,
        start=start,
        end=end,
        frames=frames,
        num_frames=frames.num_frames,
        size=(info.height, info.width),
        folder=folder,
    )


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _server_video(videos_dir: Path | None, name: str) -> Path:
    """The path of one of the --videos folder's videos, by name; RvosError if there is no such video."""
    if not name:
        also = " or one of the server's videos" if videos_dir else ""
        raise RvosError(f"choose a video file to upload{also}")
    if videos_dir is None or name not in uploads.list_videos(videos_dir):
        raise RvosError(f"{name}: not one of the server's videos")
    return videos_dir / name


def _remove_folder(folder: Path) -> None:
    shutil.rmtree(folder, ignore_errors=True)
