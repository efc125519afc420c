"""Helpers for torchmetrics states, and the base of the metrics over paired embeddings."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor
from torchmetrics import Metric


def cat_state(state: list[Tensor] | Tensor) -> Tensor:
    """A ``dist_reduce_fx="cat"`` state as one tensor: a list before DDP sync, a tensor after."""
    if isinstance(state, Tensor):
        return state
    return torch.cat(state) if state else torch.zeros(0)


class PairedEmbeddings(Metric):
    """A score over pairs of embeddings (a clip and its frame, an image and its reference).

    Scores that compare each pair with every other pair of the set (retrieval ranks, relative
    similarity, the modality gap) need all of them, so the states are the unit-normalised
    embeddings themselves (``dist_reduce_fx="cat"``): under DDP every rank computes on the whole
    set and the result equals that of one process. A subclass names the two sides (:attr:`sides`),
    adds pairs with :meth:`add_pairs` and reads them back with :meth:`pairs`.
    """

    full_state_update = False
    is_differentiable = False
    sides: tuple[str, str] = ("first", "second")
    """Names of the two states (and of the sides in error messages)."""

    def __init__(self) -> None:
        super().__init__()
        for side in self.sides:
            self.add_state(side, [], dist_reduce_fx="cat")

    def add_pairs(self, first: Tensor, second: Tensor) -> None:
        """Append paired ``(B, D)`` embeddings, L2-normalised in float32."""
        if first.shape != second.shape:
            raise ValueError(
                f"paired embeddings differ in shape: {self.sides[0]} {tuple(first.shape)}, "
                f"{self.sides[1]} {tuple(second.shape)}"
            )
        for side, embeddings in zip(self.sides, (first, second), strict=True):
            getattr(self, side).append(F.normalize(embeddings.detach().float(), dim=-1))

    def pairs(self) -> tuple[Tensor, Tensor]:
        """Every pair added so far (on every rank, once synced): two ``(N, D)`` tensors."""
        first, second = self.sides
        return cat_state(getattr(self, first)), cat_state(getattr(self, second))
