"""How a sentence's mask is chosen among the predicted sequences: the modes and the default threshold.

"top1" is MTTR's TSVS (the one sequence with the best score); "threshold" (MeViS, where a sentence may
refer to several objects or to none) keeps every sequence whose TSVS score exceeds the threshold.
Torch-free, so the CLI can show these defaults without importing the model code.
"""

from __future__ import annotations

from rvos_cli.errors import RvosError

SELECT_MODES = ("top1", "threshold")
# P(referred) > 1/2 means the head prefers "referred" over "not referred": the natural cut for a 2-way
# softmax (LMPM's 0.8 is for a different score, its query classifier).
DEFAULT_SCORE_THRESHOLD = 0.5


def check_selection(select: str, score_threshold: float) -> None:
    """RvosError unless `select` is one of `SELECT_MODES` and `score_threshold` lies in [0, 1]."""
    if select not in SELECT_MODES:
        raise RvosError(f"--select {select!r}: expected one of {', '.join(SELECT_MODES)}")
    if not 0.0 <= score_threshold <= 1.0:
        raise RvosError(f"--score-threshold {score_threshold}: expected a value between 0 and 1")
