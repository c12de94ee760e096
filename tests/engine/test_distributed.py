"""Distributed training: the resumable sampler, and 2-process gloo DDP against one process on the combined
batch (tiny model, dropout and drop path 0, frozen text encoder in eval mode so nothing is random)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

from rvos_cli.core.config import Config, apply_overrides, get_preset
from rvos_cli.core.losses import build_criterion
from rvos_cli.data.a2d import A2DSentencesDataset
from rvos_cli.data.collate import collate
from rvos_cli.data.transforms import VideoTransforms
from rvos_cli.engine import distributed as D
from rvos_cli.engine.recipe import compute_loss

# ------------------------------------------------------------------------------------------ sampler


def test_ranks_split_an_unshuffled_epoch_round_robin_padding_from_the_head() -> None:
    orders = [
        D.EpochSampler(5, seed=0, rank=r, num_replicas=2, shuffle=False).epoch_indices() for r in (0, 1)
    ]
    assert orders == [[0, 2, 4], [1, 3, 0]]


def test_shuffled_ranks_cover_every_sample_of_the_epoch() -> None:
    samplers = [D.EpochSampler(7, seed=3, rank=r, num_replicas=2) for r in (0, 1)]
    for sampler in samplers:
        sampler.set_epoch(4)
    union = sorted(samplers[0].epoch_indices() + samplers[1].epoch_indices())
    assert set(union) == set(range(7)) and len(union) == 8


def test_order_depends_on_seed_plus_epoch_only() -> None:
    first, second = D.EpochSampler(10, seed=1), D.EpochSampler(10, seed=0)
    second.set_epoch(1)
    expected = torch.randperm(10, generator=torch.Generator().manual_seed(1)).tolist()
    assert first.epoch_indices() == second.epoch_indices() == expected


def test_start_skips_the_samples_already_trained_on() -> None:
    sampler = D.EpochSampler(10, seed=5)
    sampler.set_epoch(2)
    full = list(sampler)
    restored = D.EpochSampler(10, seed=5)
    sampler.set_epoch(2, start=4)
    restored.load_state_dict(sampler.state_dict())
    assert list(restored) == full[4:] and len(restored) == 6


def test_helpers_are_no_ops_in_a_single_process() -> None:
    value = torch.tensor([1.0, 2.0])
    assert torch.equal(D.all_reduce_mean(value), value)
    assert D.all_gather_object({"a": 1}) == [{"a": 1}]
    assert D.broadcast_object("x") == "x"
    model = torch.nn.Linear(2, 2)
    assert D.wrap_model(model, "cpu") is model and D.unwrap(model) is model


# ------------------------------------------------------------------------------------------ DDP


def deterministic_config() -> Config:
    """Tiny preset with every source of randomness in the forward pass off (no flip: items built here)."""
    return apply_overrides(
        get_preset("tiny"),
        [
            "model.backbone.drop_path_rate=0.0",
            "model.transformer.dropout=0.0",
            "model.text_encoder.pretrained=false",  # random frozen weights are as good here, and load faster
        ],
    )


def two_clips(root: Path) -> list[dict]:
    dataset = A2DSentencesDataset(root / "rvos_prepared", root, "train", 2, VideoTransforms(64, 96, False))
    return [dataset[0], dataset[3]]


def gradients(config: Config, items: list[dict], wrap: bool) -> tuple[dict[str, torch.Tensor], float]:
    """Gradients of every trainable parameter after one backward pass over `items`, and the loss
    averaged over processes as the trainer logs it."""
    from rvos_cli.core.model import build_model, build_tokenizer

    torch.manual_seed(0)
    model = build_model(config.model)
    model.train()
    model.transformer.text_encoder.eval()  # its dropout is the one random op left
    wrapped = D.wrap_model(model, "cpu") if wrap else model
    criterion = build_criterion(config.loss)
    _, total = compute_loss(wrapped, criterion, build_tokenizer(config.model), collate(items), "cpu", False)
    total.backward()
    grads = {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    return grads, float(D.all_reduce_mean(total.detach()).item())


def _ddp_worker(rank: int, store: str, root: str, out: str) -> None:
    os.environ.update({"RANK": str(rank), "WORLD_SIZE": "2", "LOCAL_RANK": str(rank)})
    torch.set_num_threads(1)
    info, _, created = D.init_distributed("cpu", init_method=f"file://{store}")
    try:
        grads, loss = gradients(deterministic_config(), [two_clips(Path(root))[rank]], wrap=True)
        if info.is_main:
            torch.save({"grads": grads, "loss": loss}, out)
    finally:
        D.cleanup(created)


def test_two_process_gloo_ddp_matches_one_process_on_the_combined_batch(
    data_root: Path, tmp_path: Path
) -> None:
    out = tmp_path / "ddp.pt"
    workers = mp.spawn(
        _ddp_worker, args=(str(tmp_path / "store"), str(data_root), str(out)), nprocs=2, join=False
    )
    single, single_loss = gradients(deterministic_config(), two_clips(data_root), wrap=False)  # meanwhile
    while not workers.join():
        pass
    ddp = torch.load(out, weights_only=True)
    assert ddp["grads"].keys() == single.keys()
    assert ddp["loss"] == pytest.approx(single_loss, rel=1e-5)
    # Summation order differs between the two set-ups, so compare up to float32 round-off: the whole
    # gradient to 1e-5 relative, and each tensor that carries gradient to 1e-3 relative. A wrong averaging
    # or a missing rank would be off by O(1).
    whole = torch.cat([g.flatten() for g in single.values()]).norm()
    difference = torch.cat([(ddp["grads"][n] - g).flatten() for n, g in single.items()]).norm()
    assert difference <= 1e-5 * whole
    for name, grad in single.items():
        if grad.norm() > 1e-6 * whole:
            assert (ddp["grads"][name] - grad).norm() <= 1e-3 * grad.norm(), name
    assert sum(g.abs().sum() for g in single.values()) > 0


@pytest.mark.slow  # torchrun with two CPU processes: about 25 s on 2 cores
def test_train_command_under_torchrun_writes_from_rank_zero_only(data_root: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    sets = ["data.train_short_size=64", "data.train_max_size=96", "train.num_workers=0"]
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
        "-m", "rvos_cli", "train", "--preset", "tiny", "--data", str(data_root),
        *[arg for item in sets for arg in ("--set", item)],
        "--window", "2", "--batch-size", "2", "--epochs", "1", "--no-eval", "--no-progress",
        "--out", str(run),
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run(command, check=True, capture_output=True, timeout=300, env=env)
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    # 7 clips over 2 ranks → 4 per rank → 2 steps of 2 clips; one writer → one record per step.
    assert [(r["kind"], r.get("step")) for r in records] == [("step", 1), ("step", 2), ("epoch", None)]
    saved = torch.load(run / "checkpoints" / "00.pth.tar", weights_only=True)
    assert saved["world_size"] == 2 and len(saved["rng_states"]) == 2
    assert not any(k.startswith("module.") for k in saved["model_state_dict"])
