"""Bad requests to POST /jobs: each gets one clear message naming what is wrong, and the server goes on."""

from __future__ import annotations

import wave
from pathlib import Path

import pytest

SENTENCES = ["the square", "the gradient"]


def error_of(response) -> str:
    assert response.headers["content-type"] == "application/json"
    return response.json()["error"]


def test_a_text_file_named_mp4_is_refused_naming_the_users_file(server, tmp_path: Path, clip: Path) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("not a video at all\n" * 20)
    response = server.submit(notes, SENTENCES, name="holiday.mp4")
    assert response.status_code == 400
    message = error_of(response)
    assert message.startswith("holiday.mp4: not a readable video")
    assert str(server.settings.work_dir) not in message
    assert list(server.settings.work_dir.iterdir()) == []  # the upload's folder is gone
    assert server.wait(server.submit(clip, SENTENCES).json()["id"])["state"] == "done"  # still serving


def test_a_file_without_a_video_stream_is_refused(server, tmp_path: Path) -> None:
    sound = tmp_path / "sound.wav"
    with wave.open(str(sound), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(8000)
        out.writeframes(b"\x00\x00" * 8000)
    response = server.submit(sound, SENTENCES, name="sound.mp4")
    expected = "sound.mp4: holds only audio (1 audio stream(s)), no video stream to segment"
    assert (response.status_code, error_of(response)) == (400, expected)


@pytest.mark.parametrize(
    ("sentences", "message"),
    [
        (["the square", "   "], "sentence 2 is empty: type what to segment, or remove the line"),
        ([], "add at least one sentence describing the object to segment"),
        (["x"] * 9, "9 sentences: at most 8 at a time (one colour each)"),
    ],
)
def test_bad_sentences_are_refused(server, clip: Path, sentences: list[str], message: str) -> None:
    response = server.submit(clip, sentences)
    assert (response.status_code, error_of(response)) == (400, message)


def test_no_video_is_refused(server) -> None:
    response = server.client.post("/jobs", data={"sentences": SENTENCES})
    assert (response.status_code, error_of(response)) == (400, "choose a video file to upload")


def test_an_empty_file_is_refused(server, tmp_path: Path) -> None:
    (tmp_path / "empty.mp4").write_bytes(b"")
    response = server.submit(tmp_path / "empty.mp4", SENTENCES)
    assert (response.status_code, error_of(response)) == (400, "empty.mp4: the file is empty")


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"start": "-1"}, "start '-1': expected a number of seconds ≥ 0"),
        ({"end": "soon"}, "end 'soon': expected a number of seconds"),
        ({"start": "2"}, "moving.mp4: start 2 s is at or past the end of the video (2.0 s)"),
        ({"start": "1", "end": "0.5"}, "moving.mp4: the end (0.5 s) must come after the start (1 s)"),
    ],
)
def test_bad_times_are_refused(server, clip: Path, fields: dict[str, str], message: str) -> None:
    response = server.submit(clip, SENTENCES, **fields)
    assert (response.status_code, error_of(response)) == (400, message)


def test_an_upload_over_the_size_limit_is_refused(make_server, tmp_path: Path, clip: Path) -> None:
    assert clip.stat().st_size > 2000
    server = make_server(max_upload_mb=0.002)
    response = server.submit(clip, SENTENCES)
    message = "moving.mp4: the file is larger than the 0.002 MB this server accepts (--max-upload-mb)"
    assert (response.status_code, error_of(response)) == (400, message)


def test_a_declared_length_over_the_limit_is_refused_before_reading(make_server) -> None:
    server = make_server(max_upload_mb=1)
    headers = {"content-type": "multipart/form-data; boundary=x", "content-length": "2000000"}
    response = server.client.post("/jobs", content=b"--x--\r\n", headers=headers)
    message = "the upload: the file is larger than the 1 MB this server accepts (--max-upload-mb)"
    assert (response.status_code, error_of(response)) == (413, message)


def test_a_clip_longer_than_max_seconds_is_refused_unless_cut(
    make_server, tmp_path: Path, clip: Path
) -> None:
    server = make_server(max_seconds=1.5)
    response = server.submit(clip, SENTENCES)
    assert response.status_code == 400
    assert error_of(response) == (
        "moving.mp4: 2.0 s to segment, but this server takes at most 1.5 s (--max-seconds); "
        "set an end time or upload a shorter clip"
    )
    accepted = server.submit(clip, SENTENCES, start="0.5")
    assert accepted.status_code == 201 and accepted.json()["frames_total"] == 15


def test_videos_of_the_server_folder_are_offered_and_used(make_server, tmp_path: Path, clip: Path) -> None:
    folder = tmp_path / "videos"
    folder.mkdir()
    (folder / "b.mp4").write_bytes(clip.read_bytes())
    (folder / "a.webm").write_bytes(b"x")
    (folder / "readme.txt").write_text("not offered")
    server = make_server(videos_dir=folder)
    assert server.client.get("/info").json()["videos"] == ["a.webm", "b.mp4"]
    response = server.client.post("/jobs", data={"sentences": SENTENCES, "video_name": "b.mp4"})
    assert response.status_code == 201
    assert server.wait(response.json()["id"])["state"] == "done"
    assert (folder / "b.mp4").exists()  # the server's own video is never deleted
    for name in ("readme.txt", "../videos/b.mp4"):
        response = server.client.post("/jobs", data={"sentences": SENTENCES, "video_name": name})
        assert (response.status_code, error_of(response)) == (400, f"{name}: not one of the server's videos")
