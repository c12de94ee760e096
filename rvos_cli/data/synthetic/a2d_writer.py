"""Writing synthetic clips in the A2D-Sentences layout (spec §10.1).

Release/videoset.csv, Release/clips320H/<vid>.mp4, text_annotations/a2d_annotation.txt,
text_annotations/a2d_missed_videos.txt (empty),
text_annotations/a2d_annotation_with_instances/<vid>/<frame:05d>.h5 (every 4th frame, 1-based)
"""

from __future__ import annotations

import io
from pathlib import Path

import h5py
import numpy as np

from rvos_cli.data.synthetic.attributes import DIRECTIONS, SHAPES
from rvos_cli.data.synthetic.clip import SyntheticClip, SyntheticObject, a2d_annotated_frames
from rvos_cli.data.synthetic.encode import csv_bytes
from rvos_cli.data.video_io import write_video
from rvos_cli.fileio import write_bytes_atomic

A2D_FPS = 24.0


def a2d_class_id(obj: SyntheticObject) -> int:
    """An A2D-like two-digit actor-action id: shape index (actor) and direction index (action), 1-based."""
    return 10 * (SHAPES.index(obj.shape) + 1) + DIRECTIONS.index(obj.direction) + 1


def a2d_frame_h5(clip: SyntheticClip, frame: int) -> bytes | None:
    """The A2D `.h5` of 1-based `frame` as bytes, or None if no object is visible in it.

    Datasets: instance `[N]` ids; reMask uint8 `[N, W, H]` (N > 1) or `[W, H]` (N == 1), MATLAB-transposed;
    reBBox float `[4, N]` rows x1, y1, x2, y2 (inclusive pixel coords); id `[N]` class ids.
    """
    labels = clip.labels[frame - 1]
    ids = [obj.obj_id for obj in clip.objects if (labels == obj.obj_id).any()]
    if not ids:
        return None
    masks = np.stack([labels == i for i in ids]).astype(np.uint8)  # [N, H, W]
    boxes = np.zeros((4, len(ids)), dtype=np.float64)
    for n, mask in enumerate(masks):
        rows, cols = np.nonzero(mask)
        boxes[:, n] = [cols.min(), rows.min(), cols.max(), rows.max()]
    re_mask = masks.transpose(0, 2, 1) if len(ids) > 1 else masks[0].T
    classes = {obj.obj_id: a2d_class_id(obj) for obj in clip.objects}
    buffer = io.BytesIO()
    with h5py.File(buffer, "w") as h5:
        # track_times=False keeps the bytes identical between runs
        h5.create_dataset("instance", data=np.array(ids, dtype=np.int64), track_times=False)
        h5.create_dataset("reMask", data=np.ascontiguousarray(re_mask), track_times=False)
        h5.create_dataset("reBBox", data=boxes, track_times=False)
        h5.create_dataset("id", data=np.array([classes[i] for i in ids], dtype=np.int64), track_times=False)
    return buffer.getvalue()


class A2dWriter:
    """Writes clips in the A2D-Sentences layout; the CSV files are written by `finish`."""

    splits = ("train", "test")

    def __init__(self, root: Path) -> None:
        self.root = root
        self.videoset: list[list[str]] = []
        self.queries: list[list[str]] = []

    def add(self, clip: SyntheticClip, split: str) -> None:
        """Write the clip's mp4 and per-frame h5 files; remember its CSV rows."""
        frames = len(clip.frames)
        write_video(self.root / "Release/clips320H" / f"{clip.video_id}.mp4", clip.frames, fps=A2D_FPS)
        annotated = 0
        for frame in a2d_annotated_frames(frames):
            data = a2d_frame_h5(clip, frame)
            if data is not None:
                folder = self.root / "text_annotations/a2d_annotation_with_instances" / clip.video_id
                write_bytes_atomic(folder / f"{frame:05d}.h5", data)
                annotated += 1
        height, width = clip.labels.shape[1:]
        self.videoset.append(
            [
                clip.video_id,
                str(a2d_class_id(clip.objects[0])),
                "0",
                f"{frames / A2D_FPS:.2f}",
                str(height),
                str(width),
                str(frames),
                str(annotated),
                "0" if split == "train" else "1",
            ]
        )
        self.queries += [[clip.video_id, str(ref.obj_id), ref.text] for ref in clip.referrals]

    def finish(self) -> None:
        """Write videoset.csv, a2d_annotation.txt and an empty a2d_missed_videos.txt."""
        write_bytes_atomic(self.root / "Release/videoset.csv", csv_bytes(self.videoset))
        annotation = csv_bytes([["video_id", "instance_id", "query"], *self.queries])
        write_bytes_atomic(self.root / "text_annotations/a2d_annotation.txt", annotation)
        write_bytes_atomic(self.root / "text_annotations/a2d_missed_videos.txt", b"")
