"""The job queue behind the API: one job at a time, queue places, cancelling, failures, old results."""

from __future__ import annotations

import time
from pathlib import Path

from rvos_cli.errors import RvosError
from rvos_cli.serve import server as server_module

SENTENCES = ["the square"]


def test_jobs_queue_behind_the_running_one_and_report_their_place(make_server, clip: Path) -> None:
    server = make_server(delay=0.03)
    first = server.submit(clip, SENTENCES).json()
    assert server.predictor.started.wait(10)
    second = server.submit(clip, SENTENCES).json()
    third = server.submit(clip, SENTENCES).json()
    assert (second["state"], second["queue_position"]) == ("queued", 1)
    assert (third["state"], third["queue_position"]) == ("queued", 2)
    assert server.client.get(f"/jobs/{first['id']}").json()["queue_position"] == 0
    assert server.wait(first["id"])["state"] == "done"
    assert server.client.get(f"/jobs/{third['id']}").json()["queue_position"] in (0, 1)
    assert server.wait(second["id"])["state"] == "done"
    assert server.wait(third["id"])["state"] == "done"
    assert server.predictor.streams_started == 3


def test_cancelling_a_running_job_closes_the_stream_and_deletes_its_files(make_server, clip: Path) -> None:
    server = make_server(delay=0.05)
    job = server.submit(clip, SENTENCES).json()
    queued = server.submit(clip, SENTENCES).json()
    assert server.predictor.started.wait(10)
    assert server.client.delete(f"/jobs/{job['id']}").status_code == 200
    cancelled = server.wait(job["id"])
    assert cancelled["state"] == "cancelled" and cancelled["files"] == {}
    assert 0 < cancelled["frames_done"] < 20
    assert server.predictor.closed == 1
    assert not (server.settings.work_dir / job["id"]).exists()
    assert server.wait(queued["id"])["state"] == "done"  # the next job runs


def test_free_memory_goes_back_to_the_system_after_every_job_however_it_ends(
    make_server, clip: Path, monkeypatch
) -> None:
    releases: list[int] = []
    monkeypatch.setattr(server_module, "release_free_memory", lambda: releases.append(1) or True)
    server = make_server(delay=0.05)
    job = server.submit(clip, SENTENCES).json()
    assert server.predictor.started.wait(10)
    server.client.delete(f"/jobs/{job['id']}")
    assert server.wait(job["id"])["state"] == "cancelled"
    _wait_for(lambda: len(releases) == 1)
    assert server.wait(server.submit(clip, SENTENCES).json()["id"])["state"] == "done"
    _wait_for(lambda: len(releases) == 2)  # after the result is visible, before the next job
    time.sleep(0.2)
    assert len(releases) == 2


def _wait_for(condition, seconds: float = 10.0) -> None:
    """Poll `condition()` until it holds (AssertionError after `seconds`)."""
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.01)


def test_cancelling_a_queued_job_removes_it_at_once(make_server, clip: Path) -> None:
    server = make_server(delay=0.03)
    running = server.submit(clip, SENTENCES).json()
    queued = server.submit(clip, SENTENCES).json()
    answer = server.client.delete(f"/jobs/{queued['id']}").json()
    assert answer["state"] == "cancelled"
    assert not (server.settings.work_dir / queued["id"]).exists()
    assert server.wait(running["id"])["state"] == "done"
    assert server.predictor.streams_started == 1


def test_a_crash_fails_the_job_and_the_next_job_still_runs(server, clip: Path) -> None:
    real_stream = server.predictor.stream

    def crashing_stream(*args, **kwargs):
        for result in real_stream(*args, **kwargs):
            yield result
            raise ZeroDivisionError("division by zero")

    server.predictor.stream = crashing_stream
    failed = server.wait(server.submit(clip, SENTENCES).json()["id"])
    assert failed["state"] == "failed"
    assert failed["error"] == "internal error (ZeroDivisionError: division by zero)"
    assert not (server.settings.work_dir / failed["id"]).exists()
    server.predictor.stream = real_stream
    assert server.wait(server.submit(clip, SENTENCES).json()["id"])["state"] == "done"


def test_a_user_error_while_streaming_fails_the_job_with_its_message(server, clip: Path) -> None:
    def truncated(*args, **kwargs):
        raise RvosError("moving.mp4: truncated video after frame 3")
        yield

    server.predictor.stream = truncated
    failed = server.wait(server.submit(clip, SENTENCES).json()["id"])
    assert (failed["state"], failed["error"]) == ("failed", "moving.mp4: truncated video after frame 3")


def test_only_the_newest_results_are_kept(make_server, clip: Path) -> None:
    server = make_server(keep_results=1)
    first = server.wait(server.submit(clip, SENTENCES).json()["id"])
    second = server.wait(server.submit(clip, SENTENCES).json()["id"])
    assert second["state"] == "done"
    response = server.client.get(f"/jobs/{first['id']}")
    assert response.status_code == 404
    assert response.json()["error"] == f"no job {first['id']} (it never existed, or its results were removed)"
    assert sorted(p.name for p in server.settings.work_dir.iterdir()) == [second["id"]]


def test_results_older_than_keep_seconds_are_removed(make_server, clip: Path) -> None:
    server = make_server(keep_seconds=0.3)
    first = server.wait(server.submit(clip, SENTENCES).json()["id"])
    time.sleep(0.4)
    server.wait(server.submit(clip, SENTENCES).json()["id"])
    assert server.client.get(f"/jobs/{first['id']}").status_code == 404


def test_deleting_a_finished_job_deletes_its_files(server, clip: Path) -> None:
    job = server.wait(server.submit(clip, SENTENCES).json()["id"])
    assert server.client.delete(f"/jobs/{job['id']}").json() == {"id": job["id"], "state": "deleted"}
    assert server.client.get(f"/jobs/{job['id']}").status_code == 404
    assert list(server.settings.work_dir.iterdir()) == []


def test_only_a_jobs_own_output_files_are_served(server, clip: Path) -> None:
    job = server.wait(server.submit(clip, SENTENCES).json()["id"])
    for name in ("input.mp4", "%2E%2E%2Finput.mp4", "..%2F..%2Fout", "secret.txt"):
        response = server.client.get(f"/jobs/{job['id']}/files/{name}")
        assert response.status_code == 404, name
    assert server.client.get("/jobs/unknown/files/overlay.mp4").status_code == 404


def test_stopping_the_server_deletes_every_job_folder(make_server, clip: Path) -> None:
    server = make_server(delay=0.05)
    server.submit(clip, SENTENCES)
    server.submit(clip, SENTENCES)
    assert server.predictor.started.wait(10)
    server.client.__exit__(None, None, None)  # runs the app's shutdown
    assert list(server.settings.work_dir.iterdir()) == []
    assert server.predictor.closed == 1
