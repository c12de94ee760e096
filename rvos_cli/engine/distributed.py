"""torch.distributed for training and evaluation: set-up from torchrun's environment, DDP wrapping, the
collective helpers the trainer needs, and a deterministic, resumable sampler.

Everything is a no-op in a single process, so the trainer calls these helpers unconditionally. Under
`torchrun --nproc-per-node N` (env RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT) the same
code runs one process per device: gloo on the CPU, nccl on GPUs.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.utils.data import Sampler

# Rank 0 alone evaluates and writes checkpoints while the others wait at a barrier; allow that much.
COLLECTIVE_TIMEOUT = timedelta(hours=2)


@dataclass(frozen=True)
class DistInfo:
    """Where this process sits: global rank, number of processes, rank on this machine."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        """True on the process that writes files and prints (rank 0)."""
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        """True when more than one process takes part."""
        return self.world_size > 1


def env_dist_info() -> DistInfo:
    """Read RANK / WORLD_SIZE / LOCAL_RANK as torchrun sets them (defaults: a single process)."""
    return DistInfo(
        rank=int(os.environ.get("RANK", 0)),
        world_size=int(os.environ.get("WORLD_SIZE", 1)),
        local_rank=int(os.environ.get("LOCAL_RANK", 0)),
    )


def is_initialized() -> bool:
    """True when a default process group exists."""
    return dist.is_available() and dist.is_initialized()


def current_info() -> DistInfo:
    """The `DistInfo` of the live process group, or a single process when there is none."""
    if not is_initialized():
        return DistInfo()
    return DistInfo(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", 0)))


def init_distributed(device: str, init_method: str = "env://") -> tuple[DistInfo, str, bool]:
    """Join the process group described by the environment, if there is one.

    `device` is what the user asked for (cpu, cuda, cuda:N). Returns (info, the device this process
    uses — `cuda:LOCAL_RANK` on GPUs —, whether this call created the group and so must destroy it).
    """
    info = env_dist_info()
    if not info.enabled:
        return info, device, False
    if is_initialized():
        return current_info(), _process_device(device, info), False
    device = _process_device(device, info)
    backend = "nccl" if device.startswith("cuda") else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(torch.device(device))
    dist.init_process_group(
        backend,
        init_method=init_method,
        rank=info.rank,
        world_size=info.world_size,
        timeout=COLLECTIVE_TIMEOUT,
    )
    return info, device, True


def _process_device(device: str, info: DistInfo) -> str:
    return f"cuda:{info.local_rank}" if device.startswith("cuda") else device


def cleanup(created: bool) -> None:
    """Destroy the process group if `init_distributed` created it."""
    if created and is_initialized():
        dist.destroy_process_group()


def barrier() -> None:
    """Wait for every process (no-op in a single process)."""
    if is_initialized():
        dist.barrier()


def all_reduce_mean(tensor: Tensor) -> Tensor:
    """Mean of `tensor` (any shape) over the processes; returns a new tensor, the input is unchanged."""
    result = tensor.detach().clone()
    if is_initialized():
        dist.all_reduce(result)
        result /= dist.get_world_size()
    return result


def all_reduce_max(tensor: Tensor) -> Tensor:
    """Element-wise maximum of `tensor` over the processes (a copy)."""
    result = tensor.detach().clone()
    if is_initialized():
        dist.all_reduce(result, op=dist.ReduceOp.MAX)
    return result


def all_gather_object(obj: Any) -> list[Any]:
    """Every process's `obj` (picklable), in rank order; `[obj]` in a single process."""
    if not is_initialized():
        return [obj]
    gathered: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, obj)
    return gathered


def broadcast_object(obj: Any, src: int = 0) -> Any:
    """Rank `src`'s `obj` on every process (the argument is ignored elsewhere)."""
    if not is_initialized():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def wrap_model(model: nn.Module, device: str) -> nn.Module:
    """`DistributedDataParallel(model)` when distributed (model already on `device`), else `model`."""
    if not is_initialized():
        return model
    from torch.nn.parallel import DistributedDataParallel

    device_ids = [torch.device(device).index] if device.startswith("cuda") else None
    return DistributedDataParallel(model, device_ids=device_ids)


def unwrap(model: nn.Module) -> nn.Module:
    """The bare model inside a DDP wrapper (its state dict has the official, un-prefixed names)."""
    return model.module if hasattr(model, "module") else model


class EpochSampler(Sampler[int]):
    """Shuffled, seeded sample order that a rank can resume in the middle of an epoch.

    Each epoch the order is `randperm(num_samples)` from a generator seeded with `seed + epoch`, padded by
    repeating its head to a multiple of `num_replicas` (no sample is dropped, like DistributedSampler
    with drop_last False); rank r takes positions r, r + num_replicas, ... `start` skips that many of
    this rank's indices (the samples already trained on before an interruption).
    """

    def __init__(
        self, num_samples: int, seed: int, rank: int = 0, num_replicas: int = 1, shuffle: bool = True
    ) -> None:
        self.num_samples = num_samples
        self.seed = seed
        self.rank = rank
        self.num_replicas = num_replicas
        self.shuffle = shuffle
        self.epoch = 0
        self.start = 0

    @property
    def per_rank(self) -> int:
        """Indices each rank gets per epoch (before skipping `start`)."""
        return math.ceil(self.num_samples / self.num_replicas)

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        """Select the order of `epoch` and skip its first `start` indices of this rank."""
        self.epoch = epoch
        self.start = start

    def epoch_indices(self) -> list[int]:
        """All of this rank's indices of the current epoch, in order (ignoring `start`)."""
        if self.shuffle:
            generator = torch.Generator().manual_seed(self.seed + self.epoch)
            order = torch.randperm(self.num_samples, generator=generator).tolist()
        else:
            order = list(range(self.num_samples))
        total = self.per_rank * self.num_replicas
        while len(order) < total:
            order += order[: total - len(order)]
        return order[self.rank : total : self.num_replicas]

    def __iter__(self) -> Iterator[int]:
        return iter(self.epoch_indices()[self.start :])

    def __len__(self) -> int:
        return self.per_rank - self.start

    def state_dict(self) -> dict[str, int]:
        """What `load_state_dict` needs to continue: epoch, position, seed and the rank layout."""
        return {
            "epoch": self.epoch,
            "start": self.start,
            "seed": self.seed,
            "num_replicas": self.num_replicas,
            "num_samples": self.num_samples,
        }

    def load_state_dict(self, state: dict[str, int]) -> None:
        """Restore `epoch` and `start` from `state_dict()`."""
        self.set_epoch(int(state["epoch"]), int(state["start"]))
