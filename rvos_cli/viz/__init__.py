"""Visualisation: mask overlays with a sentence legend, side-by-side renders, training curves, GIFs."""

from rvos_cli.viz.animate import write_gif, write_png
from rvos_cli.viz.curves import plot_training_curves, read_training_log
from rvos_cli.viz.overlay import (
    PALETTE,
    draw_legend,
    legend_strip,
    overlay_masks,
    render_overlay_frames,
    sentence_colour,
)
from rvos_cli.viz.side_by_side import render_a2d_samples, render_prediction_folder, side_by_side

__all__ = [
    "PALETTE",
    "draw_legend",
    "legend_strip",
    "overlay_masks",
    "plot_training_curves",
    "read_training_log",
    "render_a2d_samples",
    "render_overlay_frames",
    "render_prediction_folder",
    "sentence_colour",
    "side_by_side",
    "write_gif",
    "write_png",
]
