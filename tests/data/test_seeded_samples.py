"""SeededSamples: the base of the sample-list datasets (length, epoch, per-sample generator)."""

from __future__ import annotations

import torch

from rvos_cli.data.prepare import SeededSamples, sample_generator


class _Three(SeededSamples):
    def __init__(self, seed: int) -> None:
        self.samples, self.seed = ["a", "b", "c"], seed


def test_generator_depends_on_seed_epoch_and_index_only() -> None:
    dataset = _Three(seed=7)
    assert len(dataset) == 3 and dataset.epoch == 0
    first = torch.rand(4, generator=dataset.generator(2))
    assert torch.equal(first, torch.rand(4, generator=sample_generator(7, 0, 2)))
    assert torch.equal(first, torch.rand(4, generator=_Three(seed=7).generator(2)))
    dataset.set_epoch(1)
    assert not torch.equal(first, torch.rand(4, generator=dataset.generator(2)))
    assert torch.equal(
        torch.rand(4, generator=dataset.generator(2)), torch.rand(4, generator=sample_generator(7, 1, 2))
    )
