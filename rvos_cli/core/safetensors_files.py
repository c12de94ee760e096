"""MTTR weights as `.safetensors`: tensors only (nothing to unpickle), the config in the metadata.

A file is read into the same top-level layout `torch.load` gives for a `.pth.tar` checkpoint, so the
loaders of `checkpoints` handle both: `{"model_state_dict": ..., "config": ..., "rvos_version": ...}`,
or `{"state_dict": ...}` for Kinetics Video Swin weights. The config comes from the metadata, else from
a YAML file beside the weights (`NAME.yaml`, `config.yaml`, or the run folder's `config.yaml` for
`RUN/checkpoints/NAME.safetensors`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from torch import Tensor

from rvos_cli.errors import RvosError
from rvos_cli.fileio import atomic_path

SUFFIX = ".safetensors"
CONFIG_KEY = "rvos_config"
KIND_KEY = "rvos_kind"  # 'rvos' | 'official-mttr' | 'kinetics-swin'
VERSION_KEY = "rvos_version"


def is_safetensors(path: Path) -> bool:
    """Whether `path` names a `.safetensors` file (by its suffix)."""
    return Path(path).suffix == SUFFIX


def _unshared(state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Contiguous CPU tensors, each with its own storage (safetensors refuses tensors sharing memory)."""
    seen: set[int] = set()
    tensors = {}
    for key, value in state.items():
        tensor = value.detach().cpu().contiguous()
        pointer = tensor.untyped_storage().data_ptr()
        if pointer in seen:
            tensor = tensor.clone()
        seen.add(tensor.untyped_storage().data_ptr())
        tensors[key] = tensor
    return tensors


def save_safetensors(
    state: Mapping[str, Tensor], path: Path, config: dict[str, Any] | None, kind: str = "rvos"
) -> Path:
    """Write `state` (name → tensor) to `path` atomically with `config` (as JSON) and `kind` as metadata.

    Returns `path`. A write error (a full disk) raises `RvosError` naming the path; no half file remains.
    """
    from safetensors.torch import save_file

    from rvos_cli import __version__

    metadata = {"format": "pt", KIND_KEY: kind, VERSION_KEY: __version__}
    if config is not None:
        metadata[CONFIG_KEY] = json.dumps(config, sort_keys=True)
    tensors = _unshared(state)
    with atomic_path(path) as temp:
        save_file(tensors, temp, metadata=metadata)
    return Path(path)


def read_metadata(path: Path) -> dict[str, str]:
    """The string metadata of a `.safetensors` file (only its header is read); RvosError if unreadable."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as handle:
            return dict(handle.metadata() or {})
    except Exception as err:  # safetensors raises its own error types for a broken header
        raise RvosError(f"{path}: not a readable .safetensors file ({type(err).__name__}: {err})") from None


def _config_beside(path: Path) -> Path | None:
    candidates = [path.with_suffix(".yaml"), path.with_name("config.yaml")]
    if path.parent.name == "checkpoints":
        candidates.append(path.parent.parent / "config.yaml")
    return next((candidate for candidate in candidates if candidate.is_file()), None)


def safetensors_config(path: Path) -> dict[str, Any] | None:
    """The config dict stored with the weights at `path`: its metadata, else a YAML file beside it
    (see the module docstring); None when there is none. RvosError for an unreadable file or config."""
    path = Path(path)
    stored = read_metadata(path).get(CONFIG_KEY)
    if stored is not None:
        try:
            config = json.loads(stored)
        except json.JSONDecodeError as err:
            raise RvosError(f"{path}: its '{CONFIG_KEY}' metadata is not JSON ({err.msg})") from None
        if not isinstance(config, dict):
            raise RvosError(f"{path}: its '{CONFIG_KEY}' metadata is not a mapping")
        return config
    beside = _config_beside(path)
    if beside is None:
        return None
    from rvos_cli.core.config import config_to_dict, load_config

    return config_to_dict(load_config(beside))


def read_safetensors(path: Path) -> dict[str, Any]:
    """Read `path` into the `torch.load` layout of a checkpoint (see the module docstring)."""
    from safetensors.torch import load_file

    path = Path(path)
    metadata = read_metadata(path)
    try:
        tensors = load_file(path, device="cpu")
    except Exception as err:
        raise RvosError(f"{path}: not a readable .safetensors file ({type(err).__name__}: {err})") from None
    kind = metadata.get(KIND_KEY)
    if kind == "kinetics-swin" or (kind is None and any(k.startswith("cls_head.") for k in tensors)):
        return {"state_dict": tensors}
    checkpoint: dict[str, Any] = {"model_state_dict": tensors, "config": safetensors_config(path)}
    if kind == "rvos" and VERSION_KEY in metadata:
        checkpoint["rvos_version"] = metadata[VERSION_KEY]
    return checkpoint
