"""Segment what a sentence refers to in a short clip with the Python API (no CLI).

    python examples/segment_clip.py CLIP.mp4 "the red circle moving left" --checkpoint CKPT [--preset tiny]

Builds the model from the checkpoint's saved config (rvos checkpoints) or a preset (official ones),
runs one window over the first frames, picks the referred sequence by temporal segment voting and
prints the mask area per frame.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from rvos_cli.core.checkpoints import load_checkpoint, read_checkpoint_file
from rvos_cli.core.config import config_from_dict, get_preset
from rvos_cli.core.inference import video_postprocess
from rvos_cli.core.model import build_model, build_tokenizer
from rvos_cli.data.transforms import VideoTransforms
from rvos_cli.data.video_io import iter_frames


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("clip", type=Path)
    parser.add_argument("sentence")
    parser.add_argument("--checkpoint", type=Path, required=True)
    parser.add_argument("--preset", default=None, help="needed for official MTTR checkpoints")
    parser.add_argument("--frames", type=int, default=8)
    args = parser.parse_args()

    saved = read_checkpoint_file(args.checkpoint).get("config")
    config = get_preset(args.preset) if args.preset or not saved else config_from_dict(saved)
    model = build_model(config.model).eval()
    load_checkpoint(model, args.checkpoint)
    tokenizer = build_tokenizer(config.model)

    clip = np.stack([frame for _, frame in zip(range(args.frames), iter_frames(args.clip), strict=False)])
    transform = VideoTransforms(config.data.eval_short_size, config.data.eval_max_size, horizontal_flip=False)
    frames, _, _ = transform(clip, [None] * len(clip), args.sentence)  # [T, 3, h, w]
    h, w = frames.shape[-2:]
    text = tokenizer([args.sentence])
    with torch.no_grad():
        out = model(
            frames[:, None],
            torch.zeros(len(frames), 1, h, w, dtype=torch.bool),
            text["input_ids"],
            text["attention_mask"],
            return_aux=False,
        )
    masks, query, score = video_postprocess(
        out["pred_masks"][:, 0], out["pred_is_referred"][:, 0], (h, w), (h, w), clip.shape[1:3]
    )
    print(f"query {query} chosen with mean P(referred) {score:.3f}")
    for t, mask in enumerate(masks):
        print(f"frame {t}: {int(mask.sum())} pixels")


if __name__ == "__main__":
    main()
