"""Segment what a sentence refers to in the first frames of a clip with the Python API (no CLI).

    python examples/segment_clip.py CLIP.mp4 "the red circle moving left" --checkpoint CKPT [--preset tiny]

The Predictor builds the network from the checkpoint's saved config (rvos checkpoints) or a preset
(official ones, default mttr-ytvos) and loads the weights strictly; the text encoder's weights are in the
checkpoint, so nothing is downloaded (an official checkpoint needs roberta-base's tokenizer and config
files: `--text-encoder DIR`). Prints the mask area and score per frame.
"""

from __future__ import annotations

import argparse
import itertools
from pathlib import Path

from rvos_cli import Predictor


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("clip", type=Path, help="video file or folder of frames")
    parser.add_argument("sentence")
    parser.add_argument("--checkpoint", type=Path, required=True)
    parser.add_argument("--preset", default=None, help="architecture of an official MTTR checkpoint")
    parser.add_argument("--text-encoder", default=None, help="local folder with the tokenizer and config")
    parser.add_argument("--frames", type=int, default=8, help="how many frames from the start")
    args = parser.parse_args()

    predictor = Predictor.from_checkpoint(args.checkpoint, args.preset, args.text_encoder)
    results = predictor.stream(args.clip, [args.sentence])
    for result in itertools.islice(results, args.frames):
        print(f"frame {result.index}: {int(result.masks[0].sum())} pixels, score {result.scores[0]:.3f}")
    results.close()  # stops decoding the rest of the clip


if __name__ == "__main__":
    main()
