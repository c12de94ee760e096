"""The Python API: a Predictor streams one mask and score per sentence for every frame of a video.

    python examples/python_api.py [CHECKPOINT [VIDEO]]

Without CHECKPOINT it writes an untrained tiny checkpoint (seconds, nothing downloaded): the masks are
then meaningless, but every call is the real one. Without VIDEO it segments frames made in memory.
"""

import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

from rvos_cli import Predictor


def untrained_tiny_checkpoint(path: Path) -> Path:
    """Write a tiny-preset checkpoint with random weights (as `rvos train` lays it out) to `path`."""
    from rvos_cli.core.checkpoints import save_model_checkpoint
    from rvos_cli.core.config import config_to_dict, get_preset
    from rvos_cli.core.model import build_model

    torch.manual_seed(0)
    save_model_checkpoint(build_model("tiny"), path, config=config_to_dict(get_preset("tiny")))
    return path


def moving_square(num_frames: int = 12) -> list[np.ndarray]:
    """RGB uint8 frames [120, 160, 3]: a white square moving right over grey."""
    frames = []
    for t in range(num_frames):
        frame = np.full((120, 160, 3), 90, dtype=np.uint8)
        frame[40:80, 8 * t : 8 * t + 40] = 255
        frames.append(frame)
    return frames


with tempfile.TemporaryDirectory() as tmp:
    checkpoint = sys.argv[1] if len(sys.argv) > 1 else untrained_tiny_checkpoint(Path(tmp) / "tiny.pth")
    video = sys.argv[2] if len(sys.argv) > 2 else moving_square()  # a file, a frame folder or frames
    predictor = Predictor.from_checkpoint(checkpoint, device="auto", dtype="auto", window=8, overlap=2)
    print(f"{predictor.config.preset} on {predictor.device} ({predictor.dtype})")

    sentences = ["the white square", "the grey background"]
    for result in predictor.stream(video, sentences):
        areas = [int(mask.sum()) for mask in result.masks]  # masks: bool [K, H0, W0]
        scores = ", ".join(f"{score:.3f}" for score in result.scores)
        print(f"frame {result.index} ({result.time:.2f} s): mask pixels {areas}, scores {scores}")

    overlay = result.overlay()  # uint8 [36·K + H0, W0, 3]: legend on top, one colour per sentence
    rle = result.rle(0)  # COCO RLE {'size': [H0, W0], 'counts': str} of sentence 0's mask
    print(f"last overlay {list(overlay.shape)}, RLE size {rle['size']}")
