"""`rvos viz samples|overlay|curves`: pictures of predictions, ground truth and training runs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from rvos_cli.cli.common import out_console
from rvos_cli.cli.options import OUTPUT_PANEL, OverwriteOption, out_option

viz_app = typer.Typer(
    help="Pictures: predictions next to ground truth, overlays of prediction folders, training curves.",
    no_args_is_help=True,
)


@viz_app.command("samples")
def samples_command(
    predictions: Annotated[Path, typer.Option(help="COCO results (rvos eval --predictions-out).")],
    data: Annotated[Path, typer.Option(help="The A2D-Sentences root (prepared with rvos prepare a2d).")],
    out: Annotated[Path | None, out_option("runs/viz/samples, one PNG per sample")] = None,
    overwrite: OverwriteOption = False,
    coco_gt: Annotated[Path | None, typer.Option(help="Ground truth (default DATA/rvos_prepared).")] = None,
    limit: Annotated[int, typer.Option(min=1, help="How many samples to draw.")] = 24,
) -> None:
    """Ground truth next to the top-scoring prediction of each A2D/JHMDB test sample, with its sentence."""
    from rvos_cli.engine.run_dir import output_dir
    from rvos_cli.viz.a2d_samples import render_a2d_sample_files

    out = output_dir(out, overwrite, "viz", "samples")
    written = render_a2d_sample_files(predictions, data, out, coco_gt, limit)
    out_console.print(f"wrote {len(written)} pictures to {out}")


@viz_app.command("overlay")
def overlay_command(
    frames: Annotated[Path, typer.Argument(help="A video or a folder of frames.")],
    predictions: Annotated[Path, typer.Argument(help="Folder of <expression>/<frame>.png masks.")],
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            help="OUT.gif, OUT.mp4, or a folder of PNGs (default: runs/viz/<predictions folder>/overlay.mp4, "
            "-2, -3 on repeats).",
            rich_help_panel=OUTPUT_PANEL,
        ),
    ] = None,
    overwrite: OverwriteOption = False,
    fps: Annotated[float, typer.Option(help="Frames per second of the output.")] = 6.0,
) -> None:
    """Overlay a folder of predicted masks (e.g. Annotations/<video>/ of a submission) on its frames."""
    from rvos_cli.engine.run_dir import next_run_dir, output_dir, output_file
    from rvos_cli.viz.side_by_side import render_prediction_folder

    if out is None:
        out = next_run_dir("viz", predictions.resolve().name or "overlay") / "overlay.mp4"
    elif out.suffix:
        out = output_file(out, overwrite)
    else:
        out = output_dir(out, overwrite, "viz", predictions.resolve().name)
    out_console.print(f"wrote {render_prediction_folder(frames, predictions, out, fps=fps)}")


@viz_app.command("curves")
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
