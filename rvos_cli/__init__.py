"""rvos: referring video object segmentation with MTTR, from the command line and from Python.

    from rvos_cli import Predictor
    predictor = Predictor.from_checkpoint("best.pth.tar")
    for result in predictor.stream("clip.mp4", ["the dog on the left"]):
        result.index, result.time, result.masks, result.scores

`Predictor` is imported on first use (module `__getattr__`), so `import rvos_cli` and `rvos --help` do
not import torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rvos_cli.errors import RvosError

if TYPE_CHECKING:
    from rvos_cli.engine.predictor import FrameResult, Predictor

__version__ = "0.1.0"
__all__ = ["FrameResult", "Predictor", "RvosError", "__version__"]

_LAZY = {"Predictor": "rvos_cli.engine.predictor", "FrameResult": "rvos_cli.engine.predictor"}


def __getattr__(name: str) -> Any:
    """Import `Predictor` / `FrameResult` (and so torch) only when they are first asked for."""
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'rvos_cli' has no attribute {name!r}")
