"""Algorithm 1: signed square root, dynamic threshold, seeded draw among candidates; FAISS search."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from blocked_topk import blocked_retrieve

from a2i.build.sonify.retrieval import (
    IndexSettings,
    PoolSearch,
    dynamic_threshold,
    query_uniforms,
    retrieve,
    retrieve_from_scores,
    signed_sqrt,
)
from a2i.errors import ConfigError

# 5 concepts × 6 clips of signed square-root similarities, exact by hand.
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
SIMILARITY = SSR.sign() * SSR**2
"""The cosine similarities those are the SSR of (a square keeps its sign)."""
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


@pytest.mark.parametrize(("query_block", "buffer"), [(7, 4), (64, 256), (3, 3), (50, 16)])
def test_faiss_retrieval_equals_the_whole_matrix_whatever_the_blocks(query_block, buffer):
    generator = torch.Generator().manual_seed(0)
    queries = torch.randn(40, 8, generator=generator, dtype=torch.float64)
    pool = torch.randn(300, 8, generator=generator, dtype=torch.float64)
    # 20 copies each of two queries: flat heads with more candidates than small buffers hold
    pool[:40] = queries[:2].repeat(20, 1)
    uniforms = query_uniforms(1, 40)
    similarity = F.normalize(queries, dim=-1) @ F.normalize(pool, dim=-1).T
    expected = retrieve_from_scores(similarity, 3, uniforms)
    assert expected.candidates[:2].tolist() == [20, 20]
    index = IndexSettings(kind="exact", query_block=query_block, buffer=buffer)
    found = retrieve(queries, pool, uniforms, 3, index=index)
    assert torch.equal(found.index, expected.index)
    assert torch.equal(found.candidates, expected.candidates)
    assert torch.allclose(found.similarity.double(), expected.similarity, atol=1e-6)
    assert found.search.index == "exact"
    assert found.search.wide_queries == (2 if buffer < 20 else 0)


def seeded_pool(queries: int, clips: int, width: int = 32, seed: int = 0):
    """Clustered unit vectors: concepts near the clips of their sound (as CLAP's are)."""
    generator = torch.Generator().manual_seed(seed)
    centres = torch.randn(16, width, generator=generator)
    pool = centres[torch.arange(clips) % 16] + 0.6 * torch.randn(clips, width, generator=generator)
    text = centres[torch.arange(queries) % 16] + 0.6 * torch.randn(
        queries, width, generator=generator
    )
    return text, pool


def test_faiss_exact_gives_the_blocked_top_k_and_the_same_draws():
    """The FAISS index replaced a hand-written blocked top-k: same top-k ids, same recipes."""
    text, pool = seeded_pool(300, 2000)
    uniforms = query_uniforms(3, 300)
    reference = blocked_retrieve(text, pool, uniforms, 10, query_block=64, pool_block=500)
    found = retrieve(text, pool, uniforms, 10, index=IndexSettings(kind="exact"))
    assert torch.equal(found.index, reference.index)
    assert torch.equal(found.candidates, reference.candidates)
    assert torch.allclose(found.similarity, reference.similarity, atol=1e-6)
    assert torch.allclose(found.threshold, reference.threshold, atol=1e-6)
    # the top-10 ids themselves (the reference's buffer is the exact top of every row)
    unit_text, unit_pool = F.normalize(text, dim=-1), F.normalize(pool, dim=-1)
    exact_top = (unit_text @ unit_pool.T).topk(10, dim=1).indices
    search = PoolSearch(pool, IndexSettings(kind="exact"))
    _, faiss_top = search._search(unit_text.numpy(), 10, 10)
    assert torch.equal(faiss_top.sort(dim=1).values, exact_top.sort(dim=1).values)


def test_ivf_probing_every_cell_is_exact_and_a_partial_probe_reports_its_recall(caplog):
    text, pool = seeded_pool(200, 4000)
    uniforms = query_uniforms(5, 200)
    exact = retrieve(text, pool, uniforms, 10, index=IndexSettings(kind="exact"))
    every_cell = IndexSettings(kind="ivf", nlist=16, nprobe=16, recall_sample=50)
    found = retrieve(text, pool, uniforms, 10, index=every_cell)
    assert torch.equal(found.index, exact.index)
    assert found.search.recall_at_k == 1.0 and found.search.recall_queries == 50
    assert (found.search.nlist, found.search.nprobe) == (16, 16)
    partial = retrieve(
        text, pool, uniforms, 10, index=IndexSettings(kind="ivf", nlist=16, nprobe=1)
    )
    assert 0 < partial.search.recall_at_k < 1
    assert "raise retrieval_nprobe" in caplog.text  # a low recall is not silent
    assert partial.search.to_dict()["index"] == "ivf"
    again = retrieve(text, pool, uniforms, 10, index=IndexSettings(kind="ivf", nlist=16, nprobe=1))
    assert torch.equal(partial.index, again.index)  # the seeded k-means gives the same index


def test_auto_is_exact_up_to_its_pool_size_and_ivf_above():
    assert IndexSettings(exact_max_pool=100).resolve(100) == "exact"
    assert IndexSettings(exact_max_pool=100).resolve(101) == "ivf"
    assert IndexSettings().cells(500_000) == round(2 * 500_000**0.5)
    assert IndexSettings().cells(1000) == 25  # at least 39 training clips per cell
    with pytest.raises(ConfigError, match="exact, ivf or auto"):
        IndexSettings(kind="hnsw")
    with pytest.raises(ConfigError, match="nprobe"):
        IndexSettings(nprobe=0)


def test_a_pool_search_serves_several_query_shards_and_empty_ones():
    """The per-rank use: one index, each rank's share of the queries searched separately."""
    text, pool = seeded_pool(100, 500)
    uniforms = query_uniforms(2, 100)
    search = PoolSearch(pool, IndexSettings(kind="exact"))
    whole = retrieve(text, pool, uniforms, 10, index=IndexSettings(kind="exact"))
    halves = [
        search.retrieve(text[rows], uniforms[rows], 10) for rows in (slice(0, 37), slice(37, None))
    ]
    assert torch.equal(torch.cat([half.index for half in halves]), whole.index)
    assert search.report.queries == 100
    assert len(search.retrieve(text[:0], uniforms[:0], 10).index) == 0


def test_k_outside_the_pool_is_refused():
    with pytest.raises(ConfigError, match="top_k"):
        retrieve(torch.randn(2, 4), torch.randn(3, 4), query_uniforms(0, 2), k=4)
    with pytest.raises(ConfigError, match="same CLAP"):
        retrieve(torch.randn(2, 5), torch.randn(3, 4), query_uniforms(0, 2), k=2)
