"""Offline-first lookup of Hugging Face model files (text encoder config, weights, tokenizer).

A name that is a local folder is read from it. A hub name is read from the local cache first; only when
it is missing there and the hub answers is anything downloaded. With `HF_HUB_OFFLINE=1`, or a hub that
cannot be reached, the lookup fails at once with one line saying which files are needed and how to pass
a local folder, instead of the hub client's retry loop.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from rvos_cli.errors import RvosError

T = TypeVar("T")

# One short probe of the hub: a missing network fails at once, a silent one after this many seconds.
PROBE_TIMEOUT_SECONDS = 3.0
TOKENIZER_FILES = (
    "tokenizer files (tokenizer.json or vocab.json + merges.txt / vocab.txt, tokenizer_config.json)"
)
WEIGHT_FILES = "weights (model.safetensors or pytorch_model.bin)"
# The text encoder of the official MTTR checkpoints; its weights are inside those checkpoints.
OFFICIAL_ENCODER = "roberta-base"
OFFICIAL_ENCODER_FILES = ("config.json", "vocab.json", "merges.txt", "tokenizer.json")


def hub_offline() -> bool:
    """Whether `HF_HUB_OFFLINE` asks for no network access (read now, not when the hub client loaded)."""
    from huggingface_hub import constants

    value = os.environ.get("HF_HUB_OFFLINE")
    if value is not None:
        return value.strip().upper() in ("1", "ON", "YES", "TRUE")
    return bool(constants.HF_HUB_OFFLINE)


def hub_reachable(timeout: float = PROBE_TIMEOUT_SECONDS) -> bool:
    """One HEAD request to the hub endpoint (proxies honoured), no retries: True when anything answers."""
    from huggingface_hub import constants, get_session

    try:
        get_session().head(constants.ENDPOINT, timeout=timeout)
    except Exception:  # any transport failure means: do not try to download
        return False
    return True


def needed_files(name: str, weights: bool) -> str:
    """What a command needs of encoder `name` (config, tokenizer, and `weights` when it trains from them)."""
    files = f"config.json, {WEIGHT_FILES} and the {TOKENIZER_FILES}" if weights else ""
    files = files or f"config.json and the {TOKENIZER_FILES}"
    if name == OFFICIAL_ENCODER and not weights:
        files += (
            "; for official MTTR checkpoints only roberta-base's config and tokenizer files are needed, "
            "never its weights (they are in the checkpoint)"
        )
    return files


def missing_error(name: str, weights: bool, reason: str) -> RvosError:
    """The one-line error for hub files of `name` that are neither cached nor downloadable (`reason`)."""
    from huggingface_hub import constants

    cache = constants.HF_HUB_CACHE
    files = " ".join(OFFICIAL_ENCODER_FILES) + " " if name == OFFICIAL_ENCODER and not weights else ""
    return RvosError(
        f"text encoder {name!r}: not in the local Hugging Face cache ({cache}) and {reason}; it needs "
        f"{needed_files(name, weights)}; fetch them where there is network (`hf download {name} {files}"
        "--local-dir DIR`) and pass the folder with --text-encoder DIR (rvos train: --set "
        "model.text_encoder.name=DIR)"
    )


def load_offline_first(load: Callable[..., T], name: str, weights: bool) -> T:
    """Call a `from_pretrained`-style `load(name, **kwargs)` with the offline-first policy above.

    Takes the loader, the folder or hub name, and whether the command needs the weights (for the message).
    Returns what `load` returns. Raises `RvosError` when a hub name is neither cached nor downloadable;
    other loader errors (a folder without the files, a corrupt config) propagate to the caller.
    """
    if Path(name).exists():
        return load(name)
    try:
        return load(name, local_files_only=True)
    except (OSError, ValueError):
        pass  # not (completely) in the cache
    if hub_offline():
        raise missing_error(name, weights, "HF_HUB_OFFLINE=1 forbids downloading") from None
    if not hub_reachable():
        raise missing_error(name, weights, "the hub cannot be reached") from None
    return load(name)
