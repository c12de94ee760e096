"""Writing one job's outputs as the Predictor's results stream in, in a background thread.

Outputs (in the job's `out` folder): `overlay.mp4` (H.264 at the source rate, one colour per sentence and
the legend, drawn by `result.overlay()`), the browser preview (`preview.webm` or `.gif`, see `preview`),
`masks.zip` (`masks/<k>/<frame:05d>.png`, 0/255, as `rvos infer --save png` lays them out) and
`predictions.json` (the same layout as `rvos infer`'s). Each overlay is drawn once and feeds both videos.
Results reach the thread through a bounded queue, so memory does not grow with the video, and every file
appears under its final name only once complete.
"""

from __future__ import annotations

import contextlib
import io
import json
import queue
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from rvos_cli.data.video_io import write_video
from rvos_cli.fileio import atomic_open, atomic_path
from rvos_cli.serve.preview import PreviewWriter, preview_name

OVERLAY_MP4 = "overlay.mp4"
MASKS_ZIP = "masks.zip"
PREDICTIONS_JSON = "predictions.json"
_END = object()


class JobWriter:
    """Writes the outputs of one job into `out_dir` from per-frame results (the Predictor's).

    `sentences` are the K sentences, `fps` the source's rate, `size` its (height, width), `first_frame`
    and `num_frames` the planned range (they go into predictions.json and pace the preview). Call `add`
    for every result in order, then `finish` (or `abort` to drop everything).
    """

    def __init__(
        self,
        out_dir: Path,
        sentences: list[str],
        fps: float,
        size: tuple[int, int],
        first_frame: int,
        num_frames: int,
    ) -> None:
        self._out = Path(out_dir)
        self._out.mkdir(parents=True, exist_ok=True)
        self._sentences = sentences
        self._fps = fps
        self._header = {
            "sentences": sentences,
            "fps": fps,
            "size": list(size),
            "first_frame": first_frame,
            "num_frames": num_frames,
        }
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=8)
        self._aborted = threading.Event()
        self._error: BaseException | None = None
        self._score_sums = [0.0] * len(sentences)
        self._count = 0
        self._thread = threading.Thread(target=self._run, name="rvos-serve-write", daemon=True)
        self._thread.start()

    def add(self, result: Any) -> None:
        """Queue one result (`index`, `frame`, `masks` `[K, H0, W0]`, `scores`, `overlay()`, `rle(k)`)."""
        while True:
            if self._error is not None:
                raise self._error
            try:
                self._queue.put(result, timeout=0.1)
                return
            except queue.Full:
                continue

    def finish(self) -> dict[str, str]:
        """Wait until everything is written; returns {kind: file name}; re-raises a writing error."""
        self._queue.put(_END)
        self._thread.join()
        if self._error is not None:
            raise self._error
        return {
            "overlay_mp4": OVERLAY_MP4,
            "preview": preview_name(),
            "masks_zip": MASKS_ZIP,
            "predictions_json": PREDICTIONS_JSON,
        }

    def abort(self) -> None:
        """Stop writing and wait for the thread; no output appears (temporary files are removed)."""
        self._aborted.set()
        while self._thread.is_alive():
            with contextlib.suppress(queue.Empty):
                self._queue.get(timeout=0.05)  # make room so the thread sees the abort
            with contextlib.suppress(queue.Full):
                self._queue.put_nowait(_END)

    def _results(self) -> Iterator[Any]:
        while True:
            item = self._queue.get()
            if self._aborted.is_set():
                raise RuntimeError("job aborted")  # unwinds the writers, which drop their temporary files
            if item is _END:
                return
            yield item

    def _run(self) -> None:
        rle_paths = [self._out / f".rle-{k}.jsonl" for k in range(len(self._sentences))]
        try:
            with contextlib.ExitStack() as stack:
                zip_temp = stack.enter_context(atomic_path(self._out / MASKS_ZIP))
                # PNGs are compressed already: storing them keeps zipping nearly free.
                masks_zip = stack.enter_context(zipfile.ZipFile(zip_temp, "w", zipfile.ZIP_STORED))
                preview = stack.enter_context(
                    PreviewWriter(self._out / preview_name(), self._fps, int(self._header["num_frames"]))
                )
                rle_files = [stack.enter_context(open(path, "w")) for path in rle_paths]
                overlays = (
                    self._write_frame(result, masks_zip, preview, rle_files) for result in self._results()
                )
                write_video(self._out / OVERLAY_MP4, overlays, self._fps)
            self._assemble_json(rle_paths)
        except BaseException as error:
            self._error = error
        finally:
            for path in rle_paths:
                path.unlink(missing_ok=True)

    def _write_frame(
        self, result: Any, masks_zip: zipfile.ZipFile, preview: PreviewWriter, rle_files: list[Any]
    ) -> np.ndarray:
        """Write one result's PNGs and RLE lines, feed the preview; returns its overlay for the MP4."""
        for k, score in enumerate(result.scores):
            self._score_sums[k] += score
            buffer = io.BytesIO()
            Image.fromarray(result.masks[k].astype(np.uint8) * 255).save(buffer, format="PNG")
            masks_zip.writestr(f"masks/{k}/{result.index:05d}.png", buffer.getvalue())
            line = {"frame": result.index, "score": round(float(score), 6), "segmentation": result.rle(k)}
            rle_files[k].write(json.dumps(line) + "\n")
        self._count += 1
        overlay = result.overlay()
        preview.add(overlay)
        return overlay

    def _assemble_json(self, rle_paths: list[Path]) -> None:
        """Write predictions.json from the per-sentence RLE lines without loading them all at once."""
        header = dict(self._header, num_frames=self._count)
        with atomic_open(self._out / PREDICTIONS_JSON) as out:
            out.write(json.dumps(header)[:-1] + ', "predictions": [')
            for k, sentence in enumerate(self._sentences):
                score = self._score_sums[k] / self._count if self._count else 0.0
                entry = {"sentence_index": k, "sentence": sentence, "score": round(score, 6)}
                out.write(("" if k == 0 else ", ") + json.dumps(entry)[:-1] + ', "frames": [')
                with open(rle_paths[k]) as lines:
                    for i, line in enumerate(lines):
                        out.write(("" if i == 0 else ", ") + line.rstrip("\n"))
                out.write("]}")
            out.write("]}\n")
