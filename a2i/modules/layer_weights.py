"""A learned, softmax-normalised average of a backbone's hidden states (one weight per layer).

WavBriVL §2.3 takes the WavLM embedding as "the weighted average of all transformer layer
outputs of WavLM, where the weights are learned" (the SUPERB recipe of the WavLM paper). No library
ships this as a module (transformers' ``WavLMForSequenceClassification`` has it inline, tied to its
classifier head), hence these few lines.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn


class SoftmaxLayerWeights(nn.Module):
    """``Σ_l softmax(w)_l · h_l`` over ``num_layers`` hidden states of the same shape.

    The logits start at zero: training begins from the plain mean of the layers.

    Args:
        num_layers: How many hidden states are averaged (WavLM Base+: 13, the embedding output
            and the 12 transformer layers).
    """

    def __init__(self, num_layers: int) -> None:
        super().__init__()
        if num_layers < 1:
            raise ValueError(f"SoftmaxLayerWeights needs at least one layer (got {num_layers})")
        self.logits = nn.Parameter(torch.zeros(num_layers))

    @property
    def weights(self) -> Tensor:
        """The layer weights, positive and summing to 1."""
        return self.logits.softmax(dim=0)

    def forward(self, hidden_states: Sequence[Tensor]) -> Tensor:
        """Hidden states, each ``(B, N, D)`` → their weighted average ``(B, N, D)``."""
        if len(hidden_states) != len(self.logits):
            raise ValueError(
                f"{len(hidden_states)} hidden states given for {len(self.logits)} layer weights"
            )
        stacked = torch.stack(list(hidden_states), dim=0)
        weights = self.weights.to(stacked.dtype).view(-1, *([1] * (stacked.dim() - 1)))
        return (weights * stacked).sum(dim=0)
