"""Algorithm 1: signed square root, dynamic threshold, seeded draw among candidates."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from a2i.build.sonify.retrieval import (
    dynamic_threshold,
    query_uniforms,
    retrieve,
    retrieve_from_scores,
    signed_sqrt,
)
from a2i.errors import ConfigError

# 5 concepts × 6 clips; entries are ± squares so the SSR is exact by hand.
SIMILARITY = torch.tensor(
    [
        [0.81, 0.64, 0.16, 0.36, 0.25, 0.09],
        [0.09, 0.81, 0.81, 0.01, -0.04, 0.64],
        [-0.25, -0.16, 0.04, 0.0, 0.0, -0.01],
        [0.36, 0.36, 0.36, 0.36, 0.36, 0.36],
        [0.16, 0.49, -0.81, 0.25, 0.49, 0.09],
    ],
    dtype=torch.float64,
)
SSR = torch.tensor(
    [
        [0.9, 0.8, 0.4, 0.6, 0.5, 0.3],
        [0.3, 0.9, 0.9, 0.1, -0.2, 0.8],
        [-0.5, -0.4, 0.2, 0.0, 0.0, -0.1],
        [0.6, 0.6, 0.6, 0.6, 0.6, 0.6],
        [0.4, 0.7, -0.9, 0.5, 0.7, 0.3],
    ],
    dtype=torch.float64,
)
# k = 3: the means of the three best SSR scores per row.
THRESHOLD = torch.tensor(
    [(0.9 + 0.8 + 0.6) / 3, (0.9 + 0.9 + 0.8) / 3, 0.2 / 3, 0.6, (0.7 + 0.7 + 0.5) / 3],
    dtype=torch.float64,
)
# clips scoring at least the threshold, by hand; row 3 is flat: the threshold is capped at the top
# score (a rounded mean could exceed it), so every clip is a candidate
CANDIDATES = [{0, 1}, {1, 2}, {2}, {0, 1, 2, 3, 4, 5}, {1, 4}]


def test_signed_square_root_and_dynamic_threshold_match_a_hand_computation():
    assert torch.allclose(signed_sqrt(SIMILARITY), SSR, atol=1e-12)
    assert torch.allclose(dynamic_threshold(SSR, 3), THRESHOLD, atol=1e-12)
    result = retrieve_from_scores(SIMILARITY, 3, torch.zeros(5, dtype=torch.float64))
    assert torch.allclose(result.threshold, THRESHOLD, atol=1e-12)
    assert result.candidates.tolist() == [len(c) for c in CANDIDATES]
    # u = 0 draws the first candidate in pool order
    assert result.index.tolist() == [min(c) for c in CANDIDATES]
    assert torch.allclose(result.score, SSR[torch.arange(5), result.index])
    assert torch.allclose(result.similarity, SIMILARITY[torch.arange(5), result.index])


def test_the_draw_is_seeded_and_only_ever_picks_candidates_at_or_above_the_threshold():
    seen: list[set[int]] = [set() for _ in CANDIDATES]
    for seed in range(200):
        uniforms = query_uniforms(seed, 5)
        result = retrieve_from_scores(SIMILARITY, 3, uniforms)
        again = retrieve_from_scores(SIMILARITY, 3, query_uniforms(seed, 5))
        assert torch.equal(result.index, again.index)
        assert (result.score >= result.threshold).all()
        for row, index in enumerate(result.index.tolist()):
            assert index in CANDIDATES[row]
            seen[row].add(index)
    assert seen == CANDIDATES  # every candidate is drawn for some seed


@pytest.mark.parametrize(
    ("query_block", "pool_block", "buffer"),
    [(7, 50, 4), (64, 1000, 256), (3, 9, 3), (50, 333, 16)],
)
def test_blocked_retrieval_equals_the_whole_matrix_whatever_the_blocks(
    query_block, pool_block, buffer
):
    generator = torch.Generator().manual_seed(0)
    queries = torch.randn(40, 8, generator=generator, dtype=torch.float64)
    pool = torch.randn(300, 8, generator=generator, dtype=torch.float64)
    # 20 copies each of two queries: flat heads with more candidates than small buffers hold
    pool[:40] = queries[:2].repeat(20, 1)
    uniforms = query_uniforms(1, 40)
    similarity = F.normalize(queries, dim=-1) @ F.normalize(pool, dim=-1).T
    expected = retrieve_from_scores(similarity, 3, uniforms)
    assert expected.candidates[:2].tolist() == [20, 20]
    blocks = {"query_block": query_block, "pool_block": pool_block, "buffer": buffer}
    found = retrieve(queries, pool, uniforms, 3, dtype=torch.float64, **blocks)
    assert torch.equal(found.index, expected.index)
    assert torch.equal(found.candidates, expected.candidates)
    assert torch.allclose(found.similarity, expected.similarity, atol=1e-12)
    single = retrieve(queries.float(), pool.float(), uniforms, 3, **blocks)  # float32 default
    assert torch.equal(single.index, expected.index)


def test_k_outside_the_pool_is_refused():
    with pytest.raises(ConfigError, match="top_k"):
        retrieve(torch.randn(2, 4), torch.randn(3, 4), query_uniforms(0, 2), k=4)
