"""Choosing intermediate layers of a transformer audio encoder (AudioToken §2.1 reads 4, 8, 12).

Shared by the AST, WavLM and BEATs encoders, which expose the same ``hidden_layers`` argument.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from a2i.errors import ConfigError


def check_hidden_layers(
    owner: str, hidden_layers: Sequence[int] | None, num_layers: int
) -> tuple[int, ...] | None:
    """``hidden_layers`` as a tuple, checked to be 1-based layers of a ``num_layers`` model."""
    if hidden_layers is None:
        return None
    layers = tuple(hidden_layers)
    bad = [i for i in layers if not 1 <= i <= num_layers]
    if bad or not layers:
        raise ConfigError(
            f"{owner}.hidden_layers {hidden_layers}: layers are numbered 1..{num_layers} for "
            f"this model (bad: {bad or 'empty'})"
        )
    return layers


def concat_hidden_states(hidden_states: Sequence[Tensor], layers: Sequence[int]) -> Tensor:
    """Outputs of ``layers`` side by side along features.

    ``hidden_states[0]`` is the embedding output (transformers' convention), ``hidden_states[i]``
    the output of layer ``i``.
    """
    return torch.cat([hidden_states[i] for i in layers], dim=-1)
