"""The pretrained start of the paper's recipe (spec §1.3): Kinetics-400 Video Swin-T weights in the backbone.

`model.backbone_weights` names the released mmaction checkpoint; `core.checkpoints.adapt_kinetics_swin`
turns it into MTTR's 3-stage backbone (patch kernel summed over time, stage 4, the last patch merging and
the final norm dropped) and it is loaded strictly. The `mttr-*` presets need it for a fresh run unless
the caller says `from_scratch`; a resumed run takes its weights from the checkpoint instead.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from torch import nn

from rvos_cli.core.config import Config
from rvos_cli.errors import RvosError

KINETICS_FILE = "swin_tiny_patch244_window877_kinetics400_1k.pth"
KINETICS_SOURCE = "the Video Swin Transformer release (SwinTransformer/Video-Swin-Transformer on GitHub)"
# What the adapter drops, by key prefix after `backbone.`, in the order the start line lists them.
DROPPED_PARTS = (("layers.3.", "stage 4"), ("layers.2.downsample.", "last merging"), ("norm.", "final norm"))


@dataclass
class BackboneLoad:
    """What `load_backbone_weights` put into the backbone: the file, its SHA-256, the number of tensors
    loaded and the number dropped per part ("stage 4", "last merging", "final norm", "classifier head")."""

    path: Path
    sha256: str
    loaded: int
    dropped: dict[str, int] = field(default_factory=dict)

    def summary(self) -> str:
        """One line for the start of a run."""
        dropped = ", ".join(f"{part} {count}" for part, count in self.dropped.items())
        return (
            f"backbone: loaded {self.loaded} tensors from {self.path} (sha256 {self.sha256[:12]}); "
            f"dropped: {dropped or 'nothing'}"
        )


def sha256_of(path: Path) -> str:
    """The hex SHA-256 of the file at `path`, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def require_backbone_weights(config: Config, from_scratch: bool) -> None:
    """Check, before a fresh run, that the backbone weights it needs are there.

    An `mttr-*` preset without `model.backbone_weights` raises RvosError naming the Kinetics file and where
    it is released, unless `from_scratch`; a named file that does not exist raises RvosError too.
    """
    path = config.model.backbone_weights
    if path is None:
        if config.preset.startswith("mttr-") and not from_scratch:
            raise RvosError(
                f"{config.preset} trains from the Kinetics-400 Video Swin-T weights: pass --backbone-weights "
                f"PATH/{KINETICS_FILE} (from {KINETICS_SOURCE}), or --from-scratch for random weights"
            )
        return
    if not Path(path).is_file():
        raise RvosError(f"--backbone-weights {path}: no such file (expected {KINETICS_FILE})")


def load_backbone_weights(model: nn.Module, path: Path | str) -> BackboneLoad:
    """Load a Kinetics-400 Video Swin-T checkpoint (mmaction layout: {'state_dict': {'backbone.*',
    'cls_head.*'}, 'meta': ...}) into `model.backbone`, strictly, after the spec §1.3 adaptation.

    Returns a `BackboneLoad` (counts of loaded and dropped tensors, the file's SHA-256). Raises RvosError
    when the file is not such a checkpoint or its tensors do not fit the backbone (another preset).
    """
    from rvos_cli.core.checkpoints import adapt_kinetics_swin, read_checkpoint_file, strict_load

    path = Path(path)
    state = read_checkpoint_file(path).get("state_dict")
    if not isinstance(state, dict) or not any(str(key).startswith("backbone.") for key in state):
        raise RvosError(
            f"--backbone-weights {path}: not a Kinetics Video Swin checkpoint (expected a 'state_dict' of "
            f"backbone.* tensors, as in {KINETICS_FILE})"
        )
    adapted, dropped_keys = adapt_kinetics_swin(state)
    loaded = strict_load(model.backbone, adapted, f"--backbone-weights {path}")  # type: ignore[arg-type]
    dropped = {part: sum(key.startswith(prefix) for key in dropped_keys) for prefix, part in DROPPED_PARTS}
    dropped["classifier head"] = sum(str(key).startswith("cls_head.") for key in state)
    others = sum(not str(key).startswith(("backbone.", "cls_head.")) for key in state)
    if others:
        dropped["other"] = others
    return BackboneLoad(path, sha256_of(path), loaded, {k: v for k, v in dropped.items() if v})
