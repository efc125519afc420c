"""Pooling of token sequences into one vector."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class AttentivePooling(nn.Module):
    """Attention-weighted mean over a token sequence (AudioToken §2.1 eq. 6, "Atten-Pooling" [35]).

    As in the public AudioToken code, a token's weight combines a *unary* potential (a two-layer
    1×1-conv MLP of the token) and a *pairwise* one (its mean cosine similarity to every token,
    through two 1×1-conv projections), merged by a bias-free 1×1 conv and normalised by a softmax
    over tokens.

    Args:
        dim: Token width (the text encoder's, 768 for Stable Diffusion v1.x).
        dropout: Dropout on the unary MLP's hidden layer. The paper names none; the official code
            applies ``F.dropout`` (p 0.5, at training *and* inference: guyyariv/AudioToken
            ab7d280, modules/FGA/atten.py:24). 0 (a2i's default) keeps generation deterministic
            for a given seed; when set, it acts at inference too, as in the official code.
    """

    def __init__(self, dim: int, dropout: float = 0.0) -> None:
        super().__init__()
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"AttentivePooling.dropout must be in [0, 1), got {dropout}")
        self.dropout = dropout
        self.unary = nn.Sequential(nn.Conv1d(dim, dim, 1), nn.ReLU(), nn.Conv1d(dim, 1, 1))
        self.pair_query = nn.Conv1d(dim, dim, 1)
        self.pair_key = nn.Conv1d(dim, dim, 1)
        self.merge = nn.Conv1d(2, 1, 1, bias=False)

    def weights(self, tokens: Tensor) -> Tensor:
        """Softmax weights ``(B, N)`` of tokens ``(B, N, D)``."""
        channels = tokens.transpose(1, 2)  # (B, D, N): 1×1 convs act per token
        embed, relu, reduce = self.unary  # a Sequential so the state-dict keys stay unary.0/2
        unary = reduce(F.dropout(relu(embed(channels)), self.dropout, training=self.dropout > 0))
        query = F.normalize(self.pair_query(channels), dim=1)
        key = F.normalize(self.pair_key(channels), dim=1)
        pairwise = (query.transpose(1, 2) @ key).mean(dim=2)[:, None]  # (B, 1, N)
        return self.merge(torch.cat([unary, pairwise], dim=1))[:, 0].softmax(dim=-1)

    def forward(self, tokens: Tensor) -> Tensor:
        """``(B, N, D)`` → ``(B, D)``."""
        return (self.weights(tokens)[:, None] @ tokens)[:, 0]
