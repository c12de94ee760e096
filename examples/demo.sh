#!/usr/bin/env bash
# `make demo`: the whole rvos loop on the embedded default, in about 12 minutes on 2 CPU cores.
#   1. generate + prepare a synthetic A2D-format referring dataset   (rvos prepare synthetic --difficulty basic)
#   2. train the tiny model for a few minutes                       (rvos train --preset tiny)
#   3. evaluate it on the held-out split                             (rvos eval a2d)
#   4. segment a held-out clip from a sentence                       (rvos infer)
set -euo pipefail
OUT=${1:-demo_out}
TRAIN_MINUTES=${TRAIN_MINUTES:-8}
BIN=$(dirname "$0")/../.venv/bin
RVOS="$BIN/rvos"

"$RVOS" prepare synthetic --out "$OUT/data" --videos 64 --seed 0 --difficulty basic
rm -rf "$OUT/run"  # a demo trains afresh each time (rvos train refuses a folder holding another run)
"$RVOS" train --preset tiny --data "$OUT/data" --out "$OUT/run" --time-limit "$TRAIN_MINUTES" --eval \
  --checkpoint-every 100
CKPT="$OUT/run/checkpoints/best.pth.tar"
[ -f "$CKPT" ] || CKPT="$OUT/run/checkpoints/last.pth.tar"
"$RVOS" eval a2d --data "$OUT/data" --checkpoint "$CKPT" --json "$OUT/eval.json"

# A held-out clip and one of its sentences.
read -r CLIP SENTENCE < <("$BIN/python" - "$OUT/data" <<'PY'
import csv, sys
from pathlib import Path
root = Path(sys.argv[1])
test = [row[0] for row in csv.reader(open(root / "Release" / "videoset.csv")) if row[8] == "1"]
for row in csv.DictReader(open(root / "text_annotations" / "a2d_annotation.txt")):
    if row["video_id"] == test[0]:
        print(root / "Release" / "clips320H" / f"{test[0]}.mp4", row["query"])
        break
PY
)
"$RVOS" infer "$CLIP" "$SENTENCE" --checkpoint "$CKPT" --out "$OUT/infer" --save mp4,png,json,gif
"$RVOS" viz curves "$OUT/run"
echo
echo "demo done:"
echo "  sentence:       $SENTENCE"
echo "  overlay video:  $OUT/infer/overlay.mp4 (and overlay.gif)"
echo "  metrics:        $OUT/eval.json"
echo "  training curve: $OUT/run/curves.png"
