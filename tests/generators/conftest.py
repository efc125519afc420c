"""Fixtures for the generator tests: tiny seeded scenes, unit-norm conditions, a short training."""

from __future__ import annotations

from collections.abc import Callable, Iterable

import pytest
import torch
import torch.nn.functional as F

BATCH = 8
SIZE = 32
CONDITION_DIM = 64


def make_scenes(batch: int = BATCH, size: int = SIZE, seed: int = 0) -> torch.Tensor:
    """Two-band backgrounds (sky over grass) with one coloured square each, in ``[0, 1]``."""
    rng = torch.Generator().manual_seed(seed)
    images = torch.empty(batch, 3, size, size)
    images[:, :, : size // 2] = torch.tensor([0.55, 0.75, 0.95])[:, None, None]
    images[:, :, size // 2 :] = torch.tensor([0.30, 0.60, 0.25])[:, None, None]
    for index in range(batch):
        side = int(torch.randint(size // 4, size // 2, (1,), generator=rng))
        top, left = torch.randint(0, size - side, (2,), generator=rng).tolist()
        colour = torch.rand(3, generator=rng) * 0.4 + torch.tensor([0.6, 0.0, 0.0])
        images[index, :, top : top + side, left : left + side] = colour[:, None, None]
    return images


@pytest.fixture
def scenes() -> torch.Tensor:
    """A fixed batch of 8 tiny scenes."""
    return make_scenes()


@pytest.fixture
def conditions() -> torch.Tensor:
    """Unit-norm 64-d embeddings, one per scene."""
    return F.normalize(
        torch.randn(BATCH, CONDITION_DIM, generator=torch.Generator().manual_seed(1))
    )


Losses = Callable[[], dict[str, torch.Tensor]]


@pytest.fixture
def train() -> Callable[..., dict[str, torch.Tensor]]:
    """Take ``steps`` Adam steps on ``losses()["loss"]`` over ``parameters``; the last losses."""

    def run(
        losses: Losses, parameters: Iterable[torch.nn.Parameter], steps: int = 20, **adam
    ) -> dict[str, torch.Tensor]:
        optimizer = torch.optim.Adam(parameters, **adam)
        for _ in range(steps):
            last = losses()
            optimizer.zero_grad()
            last["loss"].backward()
            optimizer.step()
        return last

    return run
