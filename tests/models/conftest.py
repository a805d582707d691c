"""Shared by the model tests: one CPU thread (the machines are shared), a fixed seed, a names batch maker."""

from collections.abc import Callable

import pytest
import torch

torch.set_num_threads(1)

NamesBatch = Callable[..., tuple[torch.Tensor, torch.Tensor]]


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


def _names_batch(
    lengths: list[int], batch_first: bool, time: int | None = None, seed: int = 0, pad: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Random ASCII letters (codes 65..122) filled up with ``pad`` to ``time`` (default: the longest length)."""
    g = torch.Generator().manual_seed(seed)
    time = max(lengths) if time is None else time
    x = torch.full((len(lengths), time), pad, dtype=torch.long)  # (batch, time)
    for i, n in enumerate(lengths):
        x[i, :n] = torch.randint(65, 123, (n,), generator=g)
    return (x if batch_first else x.T.contiguous()), torch.tensor(lengths)


@pytest.fixture
def names_batch() -> NamesBatch:
    return _names_batch
