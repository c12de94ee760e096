"""Forward time and peak memory of the full MTTR presets on the CPU (issue: core model benchmark).

Each configuration runs in its own process (2 torch threads, random weights, roberta-base-shaped text
encoder built offline) so that peak resident memory is that configuration's alone. bf16 autocast is
compared with fp32 on the same inputs: the share of mask pixels that agree after the 0.5 threshold and
the largest difference of P(referred).

    python benchmarks/bench_model.py [--repeats 2] [--out benchmarks/results/model.json]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
CASES = [
    # name, preset, frames, height, width, valid frames ("all" or "centre")
    ("mttr-ytvos 12x360x640, all valid", "mttr-ytvos", 12, 360, 640, "all"),
    ("mttr-a2d 8x320x576, 1 valid", "mttr-a2d", 8, 320, 576, "centre"),
]
REFERENCE = {"mttr-ytvos": (25.0, 5.4), "mttr-a2d": (7.0, 3.1)}  # seconds, GB (issue, fp32)


def run_case(preset: str, T: int, H: int, W: int, valid: str, dtype: str, repeats: int, dump: str) -> dict:
    """Child process: build the model, time `repeats` forwards after one warm-up, save outputs to `dump`."""
    import torch

    sys.path.insert(0, str(HERE))
    from _offline import fake_token_ids, roberta_base_config_folder

    from rvos_cli.core.config import TextEncoderConfig, get_preset
    from rvos_cli.core.model import build_model

    torch.set_num_threads(2)
    config = get_preset(preset).model
    folder = roberta_base_config_folder(Path(tempfile.mkdtemp()))
    config.text_encoder = TextEncoderConfig(name=str(folder), pretrained=False)
    torch.manual_seed(0)
    model = build_model(config).eval()
    generator = torch.Generator().manual_seed(0)
    frames = torch.randn(T, 1, 3, H, W, generator=generator)
    padding = torch.zeros(T, 1, H, W, dtype=torch.bool)
    text = fake_token_ids(1)
    valid_indices = torch.arange(T) if valid == "all" else torch.tensor([T // 2])
    rss_model = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6
    times = []
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype == "bf16"):
        for i in range(repeats + 1):
            start = time.perf_counter()
            out = model(
                frames, padding, text["input_ids"], text["attention_mask"], valid_indices, return_aux=False
            )
            if i > 0:
                times.append(time.perf_counter() - start)
    torch.save({k: out[k].float() for k in ("pred_masks", "pred_is_referred")}, dump)
    return {
        "seconds": min(times),
        "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6,
        "rss_after_build_gb": rss_model,
        "torch": torch.__version__,
    }


def agreement(fp32_dump: str, bf16_dump: str) -> dict:
    """Mask agreement and P(referred) difference of bf16 against fp32 outputs."""
    import torch

    a, b = torch.load(fp32_dump, weights_only=True), torch.load(bf16_dump, weights_only=True)
    same = ((a["pred_masks"] > 0) == (b["pred_masks"] > 0)).float().mean().item()
    prob_a, prob_b = a["pred_is_referred"].softmax(-1)[..., 0], b["pred_is_referred"].softmax(-1)[..., 0]
    return {"mask_pixel_agreement": same, "max_abs_p_referred_diff": (prob_a - prob_b).abs().max().item()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--out", type=Path, default=HERE / "results" / "model.json")
    parser.add_argument("--child", nargs=7, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        preset, T, H, W, valid, dtype, dump = args.child
        print(json.dumps(run_case(preset, int(T), int(H), int(W), valid, dtype, args.repeats, dump)))
        return

    from rich.console import Console
    from rich.table import Table

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, preset, T, H, W, valid in CASES:
            dumps = {}
            for dtype in ("fp32", "bf16"):
                dumps[dtype] = os.path.join(tmp, f"{preset}-{dtype}.pt")
                cmd = [
                    sys.executable,
                    __file__,
                    "--repeats",
                    str(args.repeats),
                    "--child",
                    preset,
                    str(T),
                    str(H),
                    str(W),
                    valid,
                    dtype,
                    dumps[dtype],
                ]
                result = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
                rows.append({"case": name, "preset": preset, "dtype": dtype, **result})
                print(
                    f"{name} {dtype}: {result['seconds']:.2f} s, {result['peak_rss_gb']:.2f} GB",
                    file=sys.stderr,
                )
            rows[-1].update(agreement(dumps["fp32"], dumps["bf16"]))

    table = Table(title="MTTR forward on CPU (2 threads, batch 1, random weights, no aux masks)")
    for column in (
        "case",
        "dtype",
        "seconds",
        "peak RSS GB",
        "reference s / GB",
        "speed-up",
        "bf16 mask agreement",
    ):
        table.add_column(column)
    for row in rows:
        ref_s, ref_gb = REFERENCE[row["preset"]]
        table.add_row(
            row["case"],
            row["dtype"],
            f"{row['seconds']:.2f}",
            f"{row['peak_rss_gb']:.2f}",
            f"{ref_s:.0f} / {ref_gb:.1f}" if row["dtype"] == "fp32" else "",
            f"{ref_s / row['seconds']:.1f}x" if row["dtype"] == "fp32" else "",
            f"{row['mask_pixel_agreement']:.4f}" if "mask_pixel_agreement" in row else "",
        )
    Console().print(table)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp_out = args.out.with_suffix(".json.tmp")
    tmp_out.write_text(json.dumps({"rows": rows, "reference_fp32": REFERENCE}, indent=2))
    tmp_out.replace(args.out)
    print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
