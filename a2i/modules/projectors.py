"""Projections between embedding spaces."""

from __future__ import annotations

from typing import Literal

from torch import nn

ACTIVATIONS: dict[str, type[nn.Module]] = {"gelu": nn.GELU, "relu": nn.ReLU, "silu": nn.SiLU}


class MLPProjector(nn.Sequential):
    """``Linear → activation → Linear``, applied to the last dimension.

    AudioToken's embedder (eq. 5: ``W2 σ(W1 φ(a))``, GELU) is one. A ``Sequential`` so its
    state-dict keys are ``0.*`` and ``2.*``, those of the shipped weights.

    Args:
        in_dim: Input width.
        hidden_dim: Width after the first layer.
        out_dim: Output width.
        activation: The non-linearity between the layers.
    """

    def __init__(
        self,
        in_dim: int,
        hidden_dim: int,
        out_dim: int,
        activation: Literal["gelu", "relu", "silu"] = "gelu",
    ) -> None:
        super().__init__(
            nn.Linear(in_dim, hidden_dim), ACTIVATIONS[activation](), nn.Linear(hidden_dim, out_dim)
        )
