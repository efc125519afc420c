"""Helpers for torchmetrics states."""

from __future__ import annotations

import torch
from torch import Tensor


def cat_state(state: list[Tensor] | Tensor) -> Tensor:
    """A ``dist_reduce_fx="cat"`` state as one tensor: a list before DDP sync, a tensor after."""
    if isinstance(state, Tensor):
        return state
    return torch.cat(state) if state else torch.zeros(0)
