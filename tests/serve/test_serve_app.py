"""The JSON API of `rvos serve` through FastAPI's TestClient, over the fake Predictor.

With two sentences on the 48×80 clip the fake's masks are rows 0–23 (sentence 0) and rows 24–47
(sentence 1) of every frame, with scores 0.5 and 0.6.
"""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image
from pycocotools import mask as mask_utils

from rvos_cli.data.video_io import iter_frames, probe_video

SENTENCES = ["the square", "the gradient"]


def expected_mask(k: int) -> np.ndarray:
    """Sentence k's fake mask on the 48×80 clip (two sentences): the top or the bottom 24 rows."""
    mask = np.zeros((48, 80), dtype=bool)
    mask[24 * k : 24 * (k + 1)] = True
    return mask


def test_a_job_runs_to_the_end_and_serves_its_four_files(server, clip: Path, tmp_path: Path) -> None:
    response = server.submit(clip, SENTENCES)
    assert response.status_code == 201, response.text
    job = response.json()
    assert job["frames_total"] == 20 and job["sentences"] == SENTENCES and job["video"] == "moving.mp4"
    assert job["colours"] == ["#29abe2", "#ed1e79"]  # the overlay palette's first two colours
    done = server.wait(job["id"])
    assert done["state"] == "done" and done["frames_done"] == 20 and done["error"] is None
    assert set(done["files"]) == {"overlay_mp4", "preview", "masks_zip", "predictions_json"}

    overlay = server.client.get(done["files"]["overlay_mp4"])
    assert overlay.headers["content-type"] == "video/mp4" and overlay.content[4:8] == b"ftyp"
    assert 'filename="moving-overlay.mp4"' in overlay.headers["content-disposition"]
    (tmp_path / "overlay.mp4").write_bytes(overlay.content)
    info = probe_video(tmp_path / "overlay.mp4")
    assert (info.num_frames, info.height, info.width, info.fps) == (20, 48 + 2 * 36, 80, 10.0)

    preview = server.client.get(done["files"]["preview"])
    assert done["files"]["preview"].endswith("preview.webm")
    assert preview.headers["content-type"] == "video/webm" and preview.content[:4] == b"\x1a\x45\xdf\xa3"
    (tmp_path / "preview.webm").write_bytes(preview.content)
    assert len(list(iter_frames(tmp_path / "preview.webm"))) == 20  # 10 fps ≤ 10: every frame is kept

    archive = zipfile.ZipFile(io.BytesIO(server.client.get(done["files"]["masks_zip"]).content))
    names = sorted(archive.namelist())
    assert names == [f"masks/{k}/{i:05d}.png" for k in range(2) for i in range(20)]
    for k in range(2):
        png = np.asarray(Image.open(io.BytesIO(archive.read(f"masks/{k}/00007.png"))))
        np.testing.assert_array_equal(png, expected_mask(k).astype(np.uint8) * 255)

    predictions = server.client.get(done["files"]["predictions_json"]).json()
    assert {k: predictions[k] for k in ("sentences", "fps", "size", "first_frame", "num_frames")} == {
        "sentences": SENTENCES,
        "fps": 10.0,
        "size": [48, 80],
        "first_frame": 0,
        "num_frames": 20,
    }
    for k, entry in enumerate(predictions["predictions"]):
        assert (entry["sentence_index"], entry["sentence"], entry["score"]) == (
            k,
            SENTENCES[k],
            0.5 + 0.1 * k,
        )
        assert [f["frame"] for f in entry["frames"]] == list(range(20))
        rle = dict(entry["frames"][3]["segmentation"], counts=entry["frames"][3]["segmentation"]["counts"])
        np.testing.assert_array_equal(mask_utils.decode(rle).astype(bool), expected_mask(k))


def test_the_upload_is_deleted_when_the_job_ends_and_only_outputs_remain(server, clip: Path) -> None:
    job = server.wait(server.submit(clip, SENTENCES).json()["id"])
    folder = server.settings.work_dir / job["id"]
    assert sorted(p.name for p in folder.iterdir()) == ["out"]
    outputs = sorted(p.name for p in (folder / "out").iterdir())
    assert outputs == ["masks.zip", "overlay.mp4", "predictions.json", "preview.webm"]


def test_events_stream_progress_until_the_job_is_done(server, clip: Path) -> None:
    job_id = server.submit(clip, SENTENCES).json()["id"]
    updates = []
    with server.client.stream("GET", f"/jobs/{job_id}/events") as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        for line in response.iter_lines():
            if line.startswith("data: "):
                updates.append(json.loads(line[len("data: ") :]))
    done = [u["frames_done"] for u in updates]
    assert done == sorted(done) and done[-1] == 20
    assert updates[-1]["state"] == "done" and updates[-1]["eta_seconds"] is None
    assert all(u["state"] in ("queued", "running") for u in updates[:-1])


def test_a_start_and_end_time_segment_only_that_stretch(server, clip: Path) -> None:
    # 10 fps: 0.5 s → frame 5, 1.2 s → frame 12 (exclusive)
    job = server.submit(clip, SENTENCES, start="0.5", end="1.2").json()
    assert job["frames_total"] == 7
    done = server.wait(job["id"])
    predictions = server.client.get(done["files"]["predictions_json"]).json()
    assert predictions["first_frame"] == 5 and predictions["num_frames"] == 7
    assert [f["frame"] for f in predictions["predictions"][0]["frames"]] == list(range(5, 12))


def test_info_tells_the_page_the_model_the_limits_and_the_palette(server) -> None:
    info = server.client.get("/info").json()
    assert info["model"] == {"preset": "fake", "device": "cpu", "dtype": "fp32"}
    assert info["limits"] == {"max_upload_mb": 500.0, "max_seconds": None}
    assert info["videos"] == [] and info["palette"][:2] == ["#29abe2", "#ed1e79"]


def test_the_page_and_its_scripts_come_from_the_server_only(server) -> None:
    page = server.client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    for asset in ("/static/app.js", "/static/style.css"):
        assert asset in page.text
        assert server.client.get(asset).status_code == 200
    for text in (page.text, server.client.get("/static/app.js").text):
        assert "http://" not in text and "https://" not in text
