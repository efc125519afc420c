"""Each Sound2Vision alignment loss against a hand computation on a small batch."""

import math

import pytest
import torch

from a2i.errors import ConfigError
from a2i.losses.alignment import AlignmentLoss


def unit(rows):
    t = torch.tensor(rows, dtype=torch.float64)
    return t / t.norm(dim=1, keepdim=True)


AUDIO = [[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]
IMAGE = [[1.0, 0.2], [0.1, 1.0], [-1.0, 1.0]]


def hand_infonce(sim):
    """(1/2B) Σ_j [-log softmax_row(sim)_jj - log softmax_col(sim)_jj], written out with loops."""
    b = len(sim)
    total = 0.0
    for j in range(b):
        row = sum(math.exp(sim[j][k]) for k in range(b))
        col = sum(math.exp(sim[k][j]) for k in range(b))
        total += -math.log(math.exp(sim[j][j]) / row) - math.log(math.exp(sim[j][j]) / col)
    return total / (2 * b)


def test_l2_regression_matches_hand_computation():
    a, v = unit(AUDIO), unit(IMAGE)
    expected = sum(math.dist(a[j].tolist(), v[j].tolist()) for j in range(3)) / 3
    got = AlignmentLoss("l2")(
        torch.tensor(AUDIO, dtype=torch.float64), torch.tensor(IMAGE, dtype=torch.float64)
    )
    assert got.item() == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize("temperature", [1.0, 0.1])
def test_l2_distance_infonce_matches_eq_1_and_2(temperature):
    a, v = unit(AUDIO), unit(IMAGE)
    sim = [
        [-math.dist(a[j].tolist(), v[k].tolist()) / temperature for k in range(3)] for j in range(3)
    ]
    got = AlignmentLoss("nce_l2", temperature)(
        torch.tensor(AUDIO, dtype=torch.float64), torch.tensor(IMAGE, dtype=torch.float64)
    )
    assert got.item() == pytest.approx(hand_infonce(sim), rel=1e-9)


def test_cosine_infonce_matches_hand_computation():
    a, v = unit(AUDIO), unit(IMAGE)
    sim = [[float(a[j] @ v[k]) for k in range(3)] for j in range(3)]
    got = AlignmentLoss("nce_cosine")(
        torch.tensor(AUDIO, dtype=torch.float64), torch.tensor(IMAGE, dtype=torch.float64)
    )
    assert got.item() == pytest.approx(hand_infonce(sim), rel=1e-9)


def test_infonce_is_symmetric_and_scale_invariant():
    a, v = torch.randn(5, 8, generator=torch.Generator().manual_seed(0)), torch.randn(5, 8)
    loss = AlignmentLoss("nce_l2")
    assert loss(a, v).item() == pytest.approx(loss(v, a).item(), rel=1e-6)
    assert loss(3 * a, v).item() == pytest.approx(loss(a, v).item(), rel=1e-6)


def test_bad_temperature_is_a_config_error():
    with pytest.raises(ConfigError, match="temperature"):
        AlignmentLoss("nce_l2", temperature=0.0)
