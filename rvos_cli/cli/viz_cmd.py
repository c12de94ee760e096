"""`rvos viz samples|overlay|curves`: pictures of predictions, ground truth and training runs."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from rvos_cli.cli.common import out_console, user_errors_exit_2
from rvos_cli.data import PREPARED_DIRNAME
from rvos_cli.errors import RvosError
from rvos_cli.fileio import read_json

if TYPE_CHECKING:
    import numpy as np

viz_app = typer.Typer(
    help="Pictures: predictions next to ground truth, overlays of prediction folders, training curves.",
    no_args_is_help=True,
)

A2D_IMAGE_ID = re.compile(r"^v_(?P<video>.+)_f_(?P<frame>\d+)(_i_(?P<instance>\d+))?$")


def a2d_frame_loader(data: Path, prepared: Path) -> Callable[[str], np.ndarray]:
    """Image id `v_<video>_f_<frame>[_i_<inst>]` → RGB frame, from the frame cache or the A2D clip."""
    import numpy as np

    from rvos_cli.data.video_io import read_frames

    def load(image_id: str) -> np.ndarray:
        match = A2D_IMAGE_ID.match(image_id)
        if match is None:
            raise RvosError(f"image id {image_id!r}: expected v_<video>_f_<frame>[_i_<instance>]")
        video, frame = match["video"], int(match["frame"]) - 1  # A2D frame numbers are 1-based
        cache = prepared / "frames" / f"{video}.npy"
        if cache.is_file():
            return np.load(cache, mmap_mode="r")[frame]
        clip = data / "Release" / "clips320H" / f"{video}.mp4"
        if not clip.is_file():
            raise RvosError(f"{clip}: clip of image {image_id} not found (is --data the A2D root?)")
        return read_frames(clip, [frame])[0]

    return load


def _sentences_by_image(prepared: Path) -> dict[str, str]:
    samples_file = prepared / "samples_test.json"
    if not samples_file.is_file():
        return {}
    samples = read_json(samples_file, "prepared samples file")
    return {f"v_{video}_f_{frame}_i_{instance}": text for text, video, frame, instance in samples}


@viz_app.command("samples")
@user_errors_exit_2
def samples_command(
    predictions: Annotated[Path, typer.Option(help="COCO results (rvos eval --predictions-out).")],
    data: Annotated[Path, typer.Option(help="The A2D-Sentences root (prepared with rvos prepare a2d).")],
    out: Annotated[Path, typer.Option(help="Folder for one PNG per sample.")] = Path("viz_samples"),
    coco_gt: Annotated[Path | None, typer.Option(help="Ground truth (default DATA/rvos_prepared).")] = None,
    limit: Annotated[int, typer.Option(min=1, help="How many samples to draw.")] = 24,
) -> None:
    """Ground truth next to the top-scoring prediction of each A2D/JHMDB test sample, with its sentence."""
    from rvos_cli.viz.side_by_side import render_a2d_samples

    prepared = data / PREPARED_DIRNAME
    gt = read_json(coco_gt or prepared / "coco_gt_test.json", "ground-truth file")
    sentences = _sentences_by_image(prepared)
    for image in gt["images"]:  # type: ignore[index]
        image.setdefault("sentence", sentences.get(image["id"]))
        if image["sentence"] is None:
            del image["sentence"]
    predicted = read_json(predictions, "predictions file")
    written = render_a2d_samples(gt, predicted, a2d_frame_loader(data, prepared), out, limit)
    out_console.print(f"wrote {len(written)} pictures to {out}")


@viz_app.command("overlay")
@user_errors_exit_2
def overlay_command(
    frames: Annotated[Path, typer.Argument(help="A video or a folder of frames.")],
    predictions: Annotated[Path, typer.Argument(help="Folder of <expression>/<frame>.png masks.")],
    out: Annotated[Path, typer.Option(help="OUT.gif, OUT.mp4, or a folder of PNGs.")] = Path("overlay.mp4"),
    fps: Annotated[float, typer.Option(help="Frames per second of the output.")] = 6.0,
) -> None:
    """Overlay a folder of predicted masks (e.g. Annotations/<video>/ of a submission) on its frames."""
    from rvos_cli.viz.side_by_side import render_prediction_folder

    out_console.print(f"wrote {render_prediction_folder(frames, predictions, out, fps=fps)}")


@viz_app.command("curves")
@user_errors_exit_2
def curves_command(
    run: Annotated[Path, typer.Argument(help="A run folder of rvos train, or its metrics.jsonl.")],
    out: Annotated[Path | None, typer.Option(help="PNG to write (default RUN/curves.png).")] = None,
) -> None:
    """Loss, learning rate and evaluation metrics of a training run."""
    from rvos_cli.viz.curves import plot_training_curves

    log = run / "metrics.jsonl" if run.is_dir() else run
    target = out or (run if run.is_dir() else run.parent) / "curves.png"
    out_console.print(f"wrote {plot_training_curves(log, target)}")


def register(app: typer.Typer) -> None:
    """Add `rvos viz ...` to the application."""
    app.add_typer(viz_app, name="viz")
