"""A job's outputs: exactly what `rvos infer` writes, plus the browser preview and the masks as one zip.

`write_job_outputs` runs `rvos infer`'s engine (`engine.infer.run_inference`: the Predictor's stream into
its output writer thread, staged and committed on success) with `overlay.mp4`, `masks/` and
`predictions.json`; every overlay frame that writer draws is also handed to the preview encoder, so each
overlay is drawn once and feeds both videos. Then `masks/` becomes `masks.zip`. The job's `out` folder
ends up holding overlay.mp4, preview.webm (or .gif), masks.zip and predictions.json.
"""

from __future__ import annotations

import shutil
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from rvos_cli.engine.infer import run_inference
from rvos_cli.engine.output_writer import MASKS_DIR, OVERLAY_MP4, PREDICTIONS_JSON
from rvos_cli.fileio import atomic_path
from rvos_cli.serve.preview import PreviewWriter, preview_name

SAVE = frozenset({"mp4", "png", "json"})
MASKS_ZIP = "masks.zip"


def write_job_outputs(
    predictor: Any,
    source: Path,
    sentences: list[str],
    frames: Any,
    out_dir: Path,
    progress: Callable[[int, int], None],
) -> dict[str, str]:
    """Segment `frames` (a FrameRange of `source`) with `predictor` and write the outputs into `out_dir`.

    `progress(done, total)` is called after every frame; an exception raised there (a cancel) stops the
    run and leaves no output behind. Returns {'overlay_mp4' | 'preview' | 'masks_zip' |
    'predictions_json': file name in `out_dir`}.
    """
    with PreviewWriter(out_dir / preview_name(), frames.fps / frames.stride, frames.num_frames) as preview:
        run_inference(
            PreviewTee(predictor, preview.add),
            source,
            sentences,
            out_dir,
            save=SAVE,
            progress=progress,
            frames=frames,
        )
    zip_folder(out_dir / MASKS_DIR, out_dir / MASKS_ZIP)
    return {
        "overlay_mp4": OVERLAY_MP4,
        "preview": preview_name(),
        "masks_zip": MASKS_ZIP,
        "predictions_json": PREDICTIONS_JSON,
    }


class PreviewTee:
    """A Predictor whose results also hand every legend overlay they draw to `on_overlay`.

    Everything but `stream` is the wrapped predictor's. The output writer asks each result for its
    overlay once (for overlay.mp4), in its own thread; that is when `on_overlay` sees it too.
    """

    def __init__(self, predictor: Any, on_overlay: Callable[[Any], None]) -> None:
        self._predictor = predictor
        self._on_overlay = on_overlay

    def __getattr__(self, name: str) -> Any:
        return getattr(self._predictor, name)

    def stream(self, *args: Any, **kwargs: Any) -> Iterator[Any]:
        """The wrapped `stream(...)`, each result wrapped; closing this generator closes the wrapped one."""
        results = self._predictor.stream(*args, **kwargs)
        try:
            for result in results:
                yield _TeeResult(result, self._on_overlay)
        finally:
            results.close()


class _TeeResult:
    """One result of the wrapped Predictor; `overlay()` also passes the image with the legend on."""

    def __init__(self, result: Any, on_overlay: Callable[[Any], None]) -> None:
        self._result = result
        self._on_overlay = on_overlay

    def __getattr__(self, name: str) -> Any:
        return getattr(self._result, name)

    def overlay(self, legend: bool = True) -> Any:
        image = self._result.overlay(legend)
        if legend:
            self._on_overlay(image)
        return image


def zip_folder(folder: Path, target: Path) -> None:
    """Replace `folder` by the zip `target` holding its files under `<folder name>/...` (sorted).

    PNGs are compressed already, so they are stored: zipping costs little more than copying.
    """
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    with atomic_path(target) as temp, zipfile.ZipFile(temp, "w", zipfile.ZIP_STORED) as archive:
        for path in files:
            archive.write(path, f"{folder.name}/{path.relative_to(folder).as_posix()}")
    shutil.rmtree(folder)
