"""Shared blocks: the projector's layout (shipped weights' key names) and attentive pooling."""

from __future__ import annotations

import torch

from a2i.methods.audiotoken import AudioTokenEmbedder
from a2i.modules.pooling import AttentivePooling
from a2i.modules.projectors import MLPProjector


def test_projector_is_linear_activation_linear_with_sequential_keys():
    projector = MLPProjector(6, 5, 4, activation="relu")
    assert set(projector.state_dict()) == {"0.weight", "0.bias", "2.weight", "2.bias"}
    x = torch.randn(2, 3, 6)
    expected = projector[2](torch.relu(projector[0](x)))
    assert torch.equal(projector(x), expected)


def test_audiotoken_embedder_keeps_its_state_dict_names():
    keys = set(AudioTokenEmbedder(audio_dim=6, text_dim=4).state_dict())
    assert keys == {
        "project.0.weight",
        "project.0.bias",
        "project.2.weight",
        "project.2.bias",
        "pool.unary.0.weight",
        "pool.unary.0.bias",
        "pool.unary.2.weight",
        "pool.unary.2.bias",
        "pool.pair_query.weight",
        "pool.pair_query.bias",
        "pool.pair_key.weight",
        "pool.pair_key.bias",
        "pool.merge.weight",
    }


def test_attentive_pooling_is_a_weighted_mean_over_tokens():
    pool = AttentivePooling(4)
    tokens = torch.randn(2, 5, 4)
    weights = pool.weights(tokens)
    assert weights.shape == (2, 5)
    assert torch.allclose(weights.sum(dim=-1), torch.ones(2))
    assert torch.allclose(pool(tokens), (weights[..., None] * tokens).sum(dim=1), atol=1e-6)
