"""Does the tiny model learn the synthetic referring task on a CPU, and does it read the sentence?

    python benchmarks/learning_proof.py [--minutes 20] [--videos 96] [--difficulty basic|full]
                                        [--work runs/learning-proof]

1. `rvos prepare synthetic --difficulty D` (A2D format, held-out split of unseen colour×shape pairs and
   phrasings);
2. `rvos train --preset tiny --time-limit MINUTES --eval` (held-out metrics after every epoch; the time
   limit counts the evaluations too);
3. the best checkpoint scored on the held-out split twice: with each clip's own sentences, and with the
   sentences shuffled across clips (each clip paired with another clip's sentence). A model that reads
   the text scores far lower on the second.
Prints a table and writes `benchmarks/results/learning-D.json` (scores, per-epoch curve, commands) and
`benchmarks/results/learning-D.png` (loss and held-out mIoU). Data and run folder stay in `--work`.
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def rvos(*args: str) -> None:
    """Run one `rvos` command in this interpreter's environment; stop on failure."""
    subprocess.run([sys.executable, "-m", "rvos_cli", *args], check=True)


def held_out_scores(checkpoint: Path, data: Path, seed: int = 0) -> tuple[dict, dict]:
    """A2D metrics of `checkpoint` on the held-out split: (with each clip's own sentences, with sentences
    of other clips). The model and the ground truth are loaded once for both."""
    from rvos_cli.data import PREPARED_DIRNAME
    from rvos_cli.data.a2d import A2DSentencesDataset
    from rvos_cli.data.transforms import VideoTransforms
    from rvos_cli.engine.evaluator import evaluate_a2d
    from rvos_cli.engine.predictor import Predictor

    predictor = Predictor.from_checkpoint(checkpoint, device="cpu", dtype="fp32", default_preset=None)
    config = predictor.config
    prepared = data / PREPARED_DIRNAME
    transforms = VideoTransforms(
        config.data.eval_short_size, config.data.eval_max_size, horizontal_flip=False
    )
    dataset = A2DSentencesDataset(prepared, data, "test", config.train.window, transforms)
    coco_gt = json.loads((prepared / "coco_gt_test.json").read_text())
    own = evaluate_a2d(predictor, dataset, coco_gt, batch_size=8, progress=False)
    # samples are [sentence, video, frame, instance]: give each video a sentence of another video
    videos = sorted({sample[1] for sample in dataset.samples})
    partner = dict(zip(videos, videos[1:] + videos[:1], strict=True))
    by_video: dict[str, list[str]] = {}
    for sentence, video, *_ in dataset.samples:
        by_video.setdefault(video, []).append(sentence)
    rng = random.Random(seed)
    dataset.samples = [[rng.choice(by_video[partner[s[1]]]), *s[1:]] for s in dataset.samples]
    shuffled = evaluate_a2d(predictor, dataset, coco_gt, batch_size=8, progress=False)
    return own, shuffled


def epoch_curve(run: Path) -> list[dict]:
    """Per-epoch (epoch, minutes of training, loss, held-out mean IoU) from the run's metrics log."""
    curve = []
    for line in (run / "metrics.jsonl").read_text().splitlines():
        record = json.loads(line)
        if record["kind"] == "epoch":
            curve.append(
                {
                    "epoch": record["epoch"],
                    "minutes": round(record["time"] / 60, 2),
                    "loss": round(record["loss"], 4),
                    "mean_iou": round(record.get("mean_iou", float("nan")), 4),
                }
            )
    return curve


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=20.0)
    parser.add_argument("--videos", type=int, default=96)
    parser.add_argument("--difficulty", choices=("basic", "full"), default="basic")
    parser.add_argument("--work", type=Path, default=Path("runs") / "learning-proof")
    args = parser.parse_args()
    work = args.work / args.difficulty
    data, run = work / "data", work / "run"
    shutil.rmtree(run, ignore_errors=True)  # a fresh run each time (rvos train refuses another run's folder)
    prepare = ["prepare", "synthetic", "--out", str(data), "--videos", str(args.videos), "--seed", "0"]
    prepare += ["--difficulty", args.difficulty]
    train = ["train", "--preset", "tiny", "--data", str(data), "--out", str(run), "--eval", "--no-progress"]
    train += ["--time-limit", str(args.minutes)]
    rvos(*prepare)
    rvos(*train)
    checkpoint = run / "checkpoints" / "best.pth.tar"
    own, shuffled = held_out_scores(checkpoint, data)
    results = HERE / "results"
    rvos("viz", "curves", str(run), "--out", str(results / f"learning-{args.difficulty}.png"))

    from rich.console import Console
    from rich.table import Table

    table = Table(
        title=f"tiny preset, {args.minutes:g} min of training, held-out synthetic split ({args.difficulty})"
    )
    for column in ("sentences", "mean IoU", "overall IoU", "mAP", "P@0.5"):
        table.add_column(column)
    for name, scores in (("own", own), ("shuffled across clips", shuffled)):
        table.add_row(name, *(f"{scores[k]:.3f}" for k in ("mean_iou", "overall_iou", "mAP", "P@0.5")))
    Console().print(table)
    import torch

    summary = {
        "commands": [" ".join(["rvos", *prepare]), " ".join(["rvos", *train])],
        "machine": {
            "cpus": torch.get_num_threads(),
            "torch": torch.__version__,
            "python": platform.python_version(),
        },
        "own": own,
        "shuffled": shuffled,
        "epochs": epoch_curve(run),
    }
    (results / f"learning-{args.difficulty}.json").write_text(json.dumps(summary, indent=2) + "\n")


if __name__ == "__main__":
    main()
