"""Loading and saving weights: official MTTR checkpoints, Kinetics-400 Video Swin-T, rvos's own
(spec §1.3, §13).

Every load is strict: any key that is missing, unexpected or of another shape fails with a readable list.
`.safetensors` weights (config in the metadata or beside them) load like the `.pth.tar` layout.
Every read is safe: `torch.load(weights_only=True)` with a few exact NumPy types allowed; a file needing
other Python objects is refused unless the user passes `--trust-checkpoint` (`trusted_checkpoints()`).
"""

from __future__ import annotations

import contextlib
import copy
import errno
import os
import pickle
import re
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from rvos_cli.core.config import Config, config_from_dict, get_preset
from rvos_cli.core.model import MTTR, Tokenizer, build_model, build_tokenizer
from rvos_cli.core.safetensors_files import SUFFIX as SAFETENSORS_SUFFIX
from rvos_cli.core.safetensors_files import (
    is_safetensors,
    read_safetensors,
    safetensors_config,
    save_safetensors,
)
from rvos_cli.errors import RvosError
from rvos_cli.fileio import atomic_open, disk_full

# transformers < 4.31 kept RoBERTa's position ids as a persistent buffer; the official files carry it.
OBSOLETE_KEYS = ("transformer.text_encoder.embeddings.position_ids",)
# What a full 4-stage Kinetics Video Swin has that MTTR's 3-stage temporal encoder drops.
_KINETICS_DROPPED = re.compile(r"^(layers\.3\.|layers\.2\.downsample\.|norm\.)")
_MAX_LISTED = 12


@dataclass
class LoadReport:
    """What `load_checkpoint` loaded: the format, how many tensors, and metadata found in the file."""

    kind: str  # 'official-mttr' | 'rvos' | 'kinetics-swin'
    path: Path
    num_tensors: int
    epoch: int | None = None
    dropped: list[str] = field(default_factory=list)
    config: dict[str, Any] | None = None


# Python objects beyond tensors that known checkpoints hold, allowed by exact type (nothing runs code):
# NumPy scalars, small arrays and their dtypes in the `meta` entry of mmaction (Kinetics Video Swin) files.
# Pickles written by NumPy 1.x name the same functions under `numpy.core`.
_NUMPY_DTYPE_CODES = "?bBhHiIlLqQefdgFDGSU"
_trust_checkpoints: ContextVar[bool] = ContextVar("rvos_trust_checkpoints", default=False)
TRUST_FLAG = "--trust-checkpoint"
# How torch's weights-only unpickler words a refused Python object (as opposed to bytes that are no pickle).
_NEEDS_OBJECTS = re.compile(r"Unsupported global|Unsupported class|Can only build", re.IGNORECASE)


def _allowed_globals() -> list[Any]:
    import numpy as np

    multiarray = np._core.multiarray
    dtype_classes = sorted({type(np.dtype(code)) for code in _NUMPY_DTYPE_CODES}, key=lambda t: t.__name__)
    return [
        multiarray.scalar,
        (multiarray.scalar, "numpy.core.multiarray.scalar"),
        multiarray._reconstruct,
        (multiarray._reconstruct, "numpy.core.multiarray._reconstruct"),
        np.ndarray,
        np.dtype,
        *dtype_classes,
    ]


@contextlib.contextmanager
def trusted_checkpoints(enabled: bool = True) -> Iterator[None]:
    """Within the block, a checkpoint the safe loader refuses is fully unpickled (`--trust-checkpoint`).

    Full unpickling RUNS CODE FROM THE FILE: enable it only for files from a source the user trusts.
    Takes whether to enable it (False leaves the safe default, so a CLI can pass its flag through).
    """
    token = _trust_checkpoints.set(enabled or _trust_checkpoints.get())
    try:
        yield
    finally:
        _trust_checkpoints.reset(token)


def _unsafe_globals(path: Path) -> str:
    """The Python globals `path`'s pickle names beyond the allowed ones, for the refusal message."""
    try:
        names = torch.serialization.get_unsafe_globals_in_checkpoint(path)
    except Exception:  # not a zip-format file: the names are not listed
        return ""
    allowed = {f"{g.__module__}.{g.__qualname__}" for g in _allowed_globals() if not isinstance(g, tuple)}
    allowed |= {g[1] for g in _allowed_globals() if isinstance(g, tuple)}
    unknown = [n for n in names if n not in allowed]
    return f" ({', '.join(unknown[:4])}{', ...' if len(unknown) > 4 else ''})" if unknown else ""


def safe_torch_load(path: Path, mmap: bool = False) -> Any:
    """`torch.load` `path` on the CPU with `weights_only=True` plus the narrowly allowed NumPy types.

    Returns the unpickled object. A file that needs other Python objects raises `RvosError` naming the
    file and `--trust-checkpoint`, unless inside `trusted_checkpoints()`, where it is fully unpickled.
    Other read errors propagate (callers word them).
    """
    try:
        with torch.serialization.safe_globals(_allowed_globals()):
            return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except pickle.UnpicklingError as err:
        if not _NEEDS_OBJECTS.search(str(err)):
            raise  # garbage, not a pickle of objects: the caller says the file is unreadable
        if not _trust_checkpoints.get():
            raise RvosError(
                f"{path}: refused: it holds Python objects beyond tensors{_unsafe_globals(path)} and loading "
                f"them could run code from the file; pass {TRUST_FLAG} only if you trust its source"
            ) from None
    return torch.load(path, map_location="cpu", weights_only=False)


def read_checkpoint_file(path: Path) -> dict[str, Any]:
    """`torch.load` a checkpoint safely on the CPU (see `safe_torch_load`), or read a `.safetensors` file
    into the same layout; returns its top-level dict.

    A missing or unreadable file, one that is not a dict, or one that needs arbitrary Python objects
    (without `trusted_checkpoints()`) raises `RvosError`.
    """
    path = Path(path)
    if not path.is_file():
        raise RvosError(f"{path}: checkpoint file not found")
    if is_safetensors(path):
        return read_safetensors(path)
    try:
        obj = safe_torch_load(path)
    except RvosError:
        raise
    except Exception as err:
        raise RvosError(f"{path}: not a readable PyTorch checkpoint ({type(err).__name__}: {err})") from None
    if not isinstance(obj, Mapping):
        raise RvosError(f"{path}: expected a dict of tensors or a dict with 'model_state_dict'")
    return dict(obj)


def _strip_prefix(state: Mapping[str, Tensor], prefix: str) -> dict[str, Tensor]:
    if state and all(k.startswith(prefix) for k in state):
        return {k[len(prefix) :]: v for k, v in state.items()}
    return dict(state)


def _model_state(obj: Mapping[str, Any]) -> tuple[dict[str, Tensor], list[str]]:
    """The MTTR state dict of an official or rvos checkpoint without a DDP prefix or obsolete keys;
    returns (state, dropped keys)."""
    state = _strip_prefix(obj.get("model_state_dict", obj), "module.")
    dropped = [k for k in OBSOLETE_KEYS if k in state]
    return {k: v for k, v in state.items() if k not in OBSOLETE_KEYS}, dropped


def _listing(title: str, items: list[str]) -> str:
    shown = ", ".join(items[:_MAX_LISTED])
    more = f" (+{len(items) - _MAX_LISTED} more)" if len(items) > _MAX_LISTED else ""
    return f"{title} ({len(items)}): {shown}{more}"


def strict_load(module: nn.Module, state: Mapping[str, Tensor], source: str) -> int:
    """Load `state` into `module` requiring identical names and shapes; returns the number of tensors.

    Raises `RvosError` listing the missing, unexpected and mis-shaped keys otherwise.
    """
    expected = module.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    misshaped = [
        f"{k} {tuple(state[k].shape)} vs {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state and tuple(state[k].shape) != tuple(v.shape)
    ]
    if missing or unexpected or misshaped:
        parts = [
            _listing(title, items)
            for title, items in (
                ("missing", missing),
                ("unexpected", unexpected),
                ("shape mismatch (file vs model)", misshaped),
            )
            if items
        ]
        raise RvosError(f"{source}: does not fit this model's architecture; " + "; ".join(parts))
    module.load_state_dict(state, strict=True)
    return len(state)


def adapt_kinetics_swin(state: Mapping[str, Tensor]) -> tuple[dict[str, Tensor], list[str]]:
    """Turn a Kinetics-400 Video Swin-T state dict (mmaction layout) into MTTR backbone weights.

    Keeps the `backbone.` entries without the prefix, sums the patch kernel `[C,3,2,4,4]` over time to
    `[C,3,1,4,4]`, moves `layers.{0,1}.downsample` to `downsamples.{0,1}` and drops stage 4, the third
    merging and the final norm. Returns (state dict for `model.backbone`, dropped keys).
    """
    backbone = {k[len("backbone.") :]: v for k, v in state.items() if k.startswith("backbone.")}
    kernel = backbone.get("patch_embed.proj.weight")
    if kernel is not None and kernel.dim() == 5:
        backbone["patch_embed.proj.weight"] = kernel.sum(dim=2, keepdim=True)
    adapted, dropped = {}, []
    for key, value in backbone.items():
        if _KINETICS_DROPPED.match(key):
            dropped.append(key)
            continue
        match = re.match(r"^layers\.(\d+)\.downsample\.(.*)$", key)
        adapted[f"downsamples.{match.group(1)}.{match.group(2)}" if match else key] = value
    return adapted, dropped


def _kind_of(obj: Mapping[str, Any]) -> str:
    if "model_state_dict" in obj:
        return "rvos" if "rvos_version" in obj else "official-mttr"
    inner = obj.get("state_dict")
    if isinstance(inner, Mapping) and any(str(k).startswith("backbone.") for k in inner):
        return "kinetics-swin"
    if any(str(k).startswith(("backbone.", "module.backbone.")) for k in obj):
        return "official-mttr"
    return "unknown"


def load_checkpoint(model: nn.Module, path: Path) -> LoadReport:
    """Load an official MTTR checkpoint, a Kinetics Video Swin-T checkpoint, or an rvos checkpoint.

    Official MTTR: a dict with `model_state_dict` or a bare state dict (an obsolete RoBERTa
    `position_ids` entry is dropped), loaded strictly into the whole model. Kinetics: loaded strictly into
    `model.backbone` after the spec §1.3 adaptation. rvos: as official, plus its saved config and epoch.
    Returns a `LoadReport`; anything that does not fit raises `RvosError` naming the keys.
    """
    path = Path(path)
    obj = read_checkpoint_file(path)
    kind = _kind_of(obj)
    if kind == "unknown":
        raise RvosError(
            f"{path}: not an MTTR, rvos or Kinetics Video Swin checkpoint (top-level keys: {sorted(obj)[:8]})"
        )
    if kind == "kinetics-swin":
        backbone_state, dropped = adapt_kinetics_swin(obj["state_dict"])
        count = strict_load(model.backbone, backbone_state, str(path))  # type: ignore[arg-type]
        return LoadReport(kind, path, count, dropped=dropped)
    state, dropped = _model_state(obj)
    count = strict_load(model, state, str(path))
    epoch = obj.get("epoch")
    return LoadReport(
        kind,
        path,
        count,
        epoch=epoch if isinstance(epoch, int) else None,
        dropped=dropped,
        config=obj.get("config"),
    )


def save_model_safetensors(model: nn.Module, path: Path, config: dict[str, Any] | None) -> Path:
    """Write `model`'s weights to `path` (`.safetensors`) with the resolved `config` in its metadata.

    What `rvos train` writes beside its final and best `.pth.tar` checkpoints: weights anyone can load
    without unpickling. Returns `path`; a write error raises `RvosError` and leaves no half file.
    """
    return save_safetensors(model.state_dict(), path, config, kind="rvos")


def convert_checkpoint(source: Path, out: Path, config: dict[str, Any] | None = None) -> LoadReport:
    """Convert an official MTTR, rvos or Kinetics Video Swin checkpoint `source` to `out` (.safetensors).

    Keeps the weights only (no optimizer or RNG state), without a DDP `module.` prefix or the obsolete
    RoBERTa `position_ids`. `config` (e.g. a preset's, for an official file) is stored in the metadata,
    else the one `source` holds. Returns a `LoadReport` of what was written (kind, tensor count, config).
    """
    source, out = Path(source), Path(out)
    if not is_safetensors(out):
        raise RvosError(f"{out}: the converted file must end in {SAFETENSORS_SUFFIX}")
    obj = read_checkpoint_file(source)
    kind = _kind_of(obj)
    if kind == "unknown":
        raise RvosError(f"{source}: not an MTTR, rvos or Kinetics Video Swin checkpoint")
    if kind == "kinetics-swin":
        state = dict(obj["state_dict"])
        save_safetensors(state, out, None, kind=kind)
        return LoadReport(kind, out, len(state))
    state, dropped = _model_state(obj)
    stored = config if config is not None else obj.get("config")
    stored = stored if isinstance(stored, dict) else None
    save_safetensors(state, out, stored, kind=kind)
    return LoadReport(kind, out, len(state), dropped=dropped, config=stored)


def save_model_checkpoint(
    model: nn.Module, path: Path, config: dict[str, Any] | None = None, **extra: Any
) -> None:
    """Write an rvos checkpoint in the official layout (`model_state_dict`, plus `extra` entries such as
    `epoch`, `optimizer_state_dict`, ...), with the resolved config and the rvos version, atomically."""
    from rvos_cli import __version__

    payload = {"model_state_dict": model.state_dict(), "config": config, "rvos_version": __version__, **extra}
    write_torch_file(payload, path)


def write_torch_file(obj: Any, path: Path) -> Path:
    """`torch.save` `obj` to `path` atomically; returns `path`.

    A write error (a full disk) raises `RvosError` naming the path and leaves the previous file intact.
    """
    with atomic_open(path, "wb") as handle:
        try:
            torch.save(obj, handle)
        except RuntimeError as error:  # torch's zip writer reports a short write as a RuntimeError
            if disk_full(Path(path).parent):
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)) from error
            raise OSError(str(error)) from error
    return Path(path)


def _stored_config(checkpoint: Path) -> Any:
    """The `config` entry of a `.pth` checkpoint (memory-mapped: only that entry is read), or None."""
    try:
        obj: Any = safe_torch_load(checkpoint, mmap=True)
    except RvosError:
        raise
    except Exception:  # not a zip-format file: the plain reader says what is wrong, or reads it
        obj = read_checkpoint_file(checkpoint)
    return obj.get("config") if isinstance(obj, Mapping) else None


def checkpoint_config(
    checkpoint: Path, preset: str | None = None, default_preset: str | None = None
) -> Config:
    """The config of the network `checkpoint` needs.

    `preset` when given, else the config an rvos checkpoint stores, else `default_preset` (official MTTR
    checkpoints store none); with no default an RvosError asks for `--preset`. Only the small config entry
    is read (the file is memory-mapped). Raises RvosError for a missing file or an invalid stored config.
    """
    checkpoint = Path(checkpoint)
    if not checkpoint.is_file():
        raise RvosError(f"{checkpoint}: checkpoint file not found")
    if preset:
        return get_preset(preset)
    stored = safetensors_config(checkpoint) if is_safetensors(checkpoint) else _stored_config(checkpoint)
    if not isinstance(stored, dict):
        if default_preset:
            return get_preset(default_preset)
        raise RvosError(
            f"{checkpoint}: stores no rvos config (an official MTTR checkpoint?); pass --preset mttr-a2d "
            "(A2D-/JHMDB-Sentences checkpoints) or --preset mttr-ytvos (Ref-YouTube-VOS)"
        )
    try:
        return config_from_dict(stored)
    except RvosError as err:
        raise RvosError(f"{checkpoint}: its stored config is invalid ({err}); pass --preset") from None


def load_trained_model(
    checkpoint: Path, config: Config, text_encoder: str | None = None
) -> tuple[MTTR, Tokenizer]:
    """Build the network `config` describes, load `checkpoint` strictly, switch to eval mode (CPU).

    The text encoder is built from its config only: its weights are in the checkpoint. `text_encoder`
    overrides the config's encoder name or folder. Returns (model, tokenizer). Raises RvosError for an
    unreadable file, a backbone-only (Kinetics) checkpoint, or tensors that do not fit the architecture.
    """
    model_config = copy.deepcopy(config.model)
    model_config.text_encoder.pretrained = False
    model = build_model(model_config, text_encoder)
    tokenizer = build_tokenizer(model_config, text_encoder)
    try:
        report = load_checkpoint(model, checkpoint)
    except RvosError as err:
        raise RvosError(f"{err} (model built as preset {config.preset!r})") from None
    if report.kind == "kinetics-swin":
        raise RvosError(
            f"{checkpoint}: holds only Video Swin backbone weights (Kinetics-400); this needs a full MTTR "
            "checkpoint (an official one or one written by `rvos train`)"
        )
    return model.eval(), tokenizer
