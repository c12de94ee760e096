"""Tests for rvos_cli.data.video_io: round trips through H.264, frame folders, slicing and every error."""

from __future__ import annotations

import re
import wave
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from rvos_cli.data.video_io import VideoInfo, iter_frames, probe_video, read_frames, write_video
from rvos_cli.errors import RvosError


def flat_frames(count: int, height: int = 48, width: int = 64) -> list[np.ndarray]:
    """Frames of one grey level each, 0, 40, 80, ... (flat areas survive H.264 almost exactly)."""
    return [np.full((height, width, 3), 40 * i, dtype=np.uint8) for i in range(count)]


@pytest.fixture
def video(tmp_path: Path) -> Path:
    """A 6-frame 48x64 mp4 at 12.5 fps of flat grey levels 0, 40, ..., 200."""
    path = tmp_path / "clip.mp4"
    write_video(path, flat_frames(6), fps=12.5)
    return path


def test_probe_reports_what_was_written(video: Path) -> None:
    assert probe_video(video) == VideoInfo(fps=12.5, num_frames=6, height=48, width=64)


def test_round_trip_pixels_close(video: Path) -> None:
    frames = read_frames(video)
    assert frames.shape == (6, 48, 64, 3) and frames.dtype == np.uint8
    expected = np.stack(flat_frames(6)).astype(int)
    assert np.abs(frames.astype(int) - expected).max() <= 3


@pytest.mark.parametrize("suffix", [".mkv", ".avi", ".mov"])
def test_other_containers_round_trip(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"clip{suffix}"
    write_video(path, flat_frames(5), fps=25)
    assert probe_video(path).num_frames == 5
    assert np.abs(read_frames(path, [4])[0].astype(int) - 160).max() <= 3


def test_odd_size_is_padded_to_even_by_edge_repeat(tmp_path: Path) -> None:
    frame = np.zeros((33, 47, 3), dtype=np.uint8)
    frame[-1, :] = 200  # last row bright: the padded row 33 repeats it
    path = tmp_path / "odd.mp4"
    write_video(path, [frame, frame], fps=10)
    decoded = read_frames(path, [0])[0]
    assert decoded.shape == (34, 48, 3)
    assert abs(int(decoded[33, 10, 0]) - 200) <= 6


def test_same_frames_give_identical_bytes(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 256, size=(48, 64, 3), dtype=np.uint8) for _ in range(8)]
    write_video(tmp_path / "a.mp4", frames, fps=24)
    write_video(tmp_path / "b.mp4", frames, fps=24)
    assert (tmp_path / "a.mp4").read_bytes() == (tmp_path / "b.mp4").read_bytes()


def test_iter_frames_slices_start_end(video: Path) -> None:
    levels = [int(frame[0, 0, 0]) for frame in iter_frames(video, start=2, end=5)]
    assert len(levels) == 3
    assert all(abs(level - 40 * i) <= 3 for level, i in zip(levels, [2, 3, 4], strict=True))


def test_iter_frames_end_past_last_frame_stops_at_last(video: Path) -> None:
    assert len(list(iter_frames(video, start=4, end=100))) == 2


def test_read_frames_keeps_order_and_repeats(video: Path) -> None:
    frames = read_frames(video, [3, 0, 3])
    assert [round(int(f[0, 0, 0]) / 40) for f in frames] == [3, 0, 3]


def test_read_frames_out_of_range_names_length(video: Path) -> None:
    with pytest.raises(RvosError, match=r"frame index 9 is out of range \(the video has 6 frames\)"):
        read_frames(video, [2, 9])


def test_negative_start_rejected(video: Path) -> None:
    with pytest.raises(RvosError, match="must not be negative"):
        list(iter_frames(video, start=-1))


def write_png_folder(folder: Path, count: int) -> list[np.ndarray]:
    """Write `count` random 20x30 PNG frames named 00000.png ... and return them."""
    folder.mkdir()
    rng = np.random.default_rng(1)
    frames = [rng.integers(0, 256, size=(20, 30, 3), dtype=np.uint8) for _ in range(count)]
    for i, frame in enumerate(frames):
        Image.fromarray(frame).save(folder / f"{i:05d}.png")
    return frames


def test_folder_of_frames_probe(tmp_path: Path) -> None:
    write_png_folder(tmp_path / "frames", 4)
    assert probe_video(tmp_path / "frames") == VideoInfo(fps=30.0, num_frames=4, height=20, width=30)


def test_folder_of_frames_slice_is_exact(tmp_path: Path) -> None:
    frames = write_png_folder(tmp_path / "frames", 4)
    (tmp_path / "frames" / "notes.txt").write_text("not a frame")
    got = list(iter_frames(tmp_path / "frames", start=1, end=3))
    assert len(got) == 2
    assert np.array_equal(got[0], frames[1]) and np.array_equal(got[1], frames[2])


def test_empty_folder_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(RvosError, match="holds no frames"):
        probe_video(tmp_path / "empty")


def test_missing_file(tmp_path: Path) -> None:
    missing = tmp_path / "nothing.mp4"
    with pytest.raises(RvosError, match=f"^{re.escape(str(missing))}: no such file"):
        probe_video(missing)


def test_text_file_renamed_mp4(tmp_path: Path) -> None:
    fake = tmp_path / "fake.mp4"
    fake.write_text("this is not a video\n" * 20)
    with pytest.raises(RvosError, match=f"^{re.escape(str(fake))}: not a readable video"):
        list(iter_frames(fake))


def test_mp4_cut_in_half(video: Path, tmp_path: Path) -> None:
    data = video.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(RvosError, match=f"^{re.escape(str(cut))}: "):
        read_frames(cut)


def test_avi_cut_in_half_reports_missing_frames(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    frames = [rng.integers(0, 256, size=(48, 64, 3), dtype=np.uint8) for _ in range(12)]
    full = tmp_path / "full.avi"
    write_video(full, frames, fps=12)
    data = full.read_bytes()
    cut = tmp_path / "cut.avi"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(RvosError, match="truncated"):
        list(iter_frames(cut))


def test_audio_only_file_has_no_video_stream(tmp_path: Path) -> None:
    path = tmp_path / "sound.wav"
    with wave.open(str(path), "wb") as sound:
        sound.setnchannels(1)
        sound.setsampwidth(2)
        sound.setframerate(8000)
        sound.writeframes(bytes(1600))
    with pytest.raises(RvosError, match="no video stream"):
        probe_video(path)


def test_write_no_frames_leaves_nothing(tmp_path: Path) -> None:
    with pytest.raises(RvosError, match="no frames to write"):
        write_video(tmp_path / "none.mp4", [], fps=10)
    assert list(tmp_path.iterdir()) == []


def test_write_mismatched_frame_size(tmp_path: Path) -> None:
    frames = [np.zeros((16, 16, 3), np.uint8), np.zeros((18, 16, 3), np.uint8)]
    with pytest.raises(RvosError, match=r"frame 1 is \[18, 16\], frame 0 was \[16, 16\]"):
        write_video(tmp_path / "bad.mp4", frames, fps=10)
    assert list(tmp_path.iterdir()) == []


def test_write_unsupported_suffix(tmp_path: Path) -> None:
    with pytest.raises(RvosError, match="can only write videos ending in"):
        write_video(tmp_path / "clip.gif", flat_frames(2), fps=10)
