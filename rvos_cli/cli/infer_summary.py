"""The closing tables of `rvos infer`: one video in detail, or one row per video of a batch."""

from __future__ import annotations

from typing import Any

from rich.table import Table

LABELS = {
    "mp4": "overlay video",
    "gif": "overlay GIF",
    "json": "predictions",
    "jsonl": "per-frame JSON Lines",
    "png": "mask PNGs",
}


def every(stride: int) -> str:
    """'every 2nd frame', 'every 3rd frame', 'every 11th frame', ..."""
    suffix = "th" if 10 <= stride % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(stride % 10, "th")
    return f"every {stride}{suffix} frame"


def frames_text(video: dict[str, Any], stride: int) -> str:
    """'20 (source frames 0–19)', with the stride and the reduced output rate when stride > 1."""
    text = f"{video['num_frames']} (source frames {video['first_frame']}–{video['last_frame']}"
    if stride > 1:
        text += f", {every(stride)}; outputs at {video['output_fps']:.2f} fps"
    return text + ")"


def video_table(video: dict[str, Any], summary: dict[str, Any]) -> Table:
    """What one video's run did: sentences and mean scores, frames, sizes, speed and the output paths."""
    table = Table(title="rvos infer", show_header=False)
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    table.add_row("video", video["video"])
    for index, (sentence, score) in enumerate(zip(summary["sentences"], video["scores"], strict=True)):
        table.add_row(f"sentence {index}", f"{sentence}  (mean score {score:.3f})")
    table.add_row("frames", frames_text(video, summary["stride"]))
    (height, width), (resized_h, resized_w) = video["size"], video["processed_size"]
    table.add_row("size", f"{height}×{width}, processed at {resized_h}×{resized_w}")
    table.add_row("speed", f"{video['frames_per_second']:.2f} frames/s ({video['seconds']:.1f} s)")
    for kind, path in video["outputs"].items():
        table.add_row(LABELS[kind], path)
    return table


def batch_table(summary: dict[str, Any]) -> Table:
    """One row per video (frames, rate, speed, mean score per sentence, output folder or error)."""
    sentences = summary["sentences"]
    title = (
        f"rvos infer: {summary['num_videos']} videos, {summary['num_frames']} frames in "
        f"{summary['seconds']:.1f} s; sentences: " + "; ".join(f"{k}: {s}" for k, s in enumerate(sentences))
    )
    if summary["stride"] > 1:
        title += f" ({every(summary['stride'])})"
    table = Table(title=title)
    for column in ("video", "frames", "output fps", "frames/s", "mean scores", "output folder"):
        table.add_column(column, overflow="fold")
    for video in summary["videos"]:
        if video["status"] != "ok":
            table.add_row(video["video"], "–", "–", "–", "–", f"[red]failed:[/] {video['error']}")
            continue
        scores = " ".join(f"{score:.3f}" for score in video["scores"])
        table.add_row(
            video["video"], str(video["num_frames"]), f"{video['output_fps']:.2f}",
            f"{video['frames_per_second']:.2f}", scores, video["out_dir"],
        )  # fmt: skip
    return table
