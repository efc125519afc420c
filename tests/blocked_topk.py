"""The hand-written blocked top-k that a2i used before FAISS: the exact reference of the tests.

It scores ``query_block`` × ``pool_block`` similarities at a time with torch products, keeps a
running top-``buffer`` per query, and takes a counting and a selecting pass over the pool for
queries whose candidates overflow the buffer. ``tests/build/sonify/test_retrieval.py`` checks
that the FAISS search of :mod:`a2i.build.sonify.retrieval` draws the same clips, and
``benchmarks/sonify_scale.py`` times both.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import Tensor

from a2i.build.sonify.retrieval import (
    DEFAULT_TOP_K,
    RetrievalResult,
    _check_k,
    _nth_true,
    draw_ranks,
    signed_sqrt,
)
from a2i.errors import ConfigError

RESULT_FIELDS = ("index", "similarity", "score", "threshold", "candidates")


@torch.no_grad()
def blocked_retrieve(
    queries: Tensor,
    pool: Tensor,
    uniforms: Tensor,
    k: int = DEFAULT_TOP_K,
    *,
    query_block: int = 2048,
    pool_block: int = 32768,
    buffer: int = 64,
    device: str | torch.device | None = None,
    dtype: torch.dtype = torch.float32,
) -> RetrievalResult:
    """Algorithm 1 for every query against the whole pool, in bounded memory.

    Memory on ``device`` is about ``query_block · pool_block`` scores (256 MB at the defaults in
    float32) plus one pool block of embeddings; ``pool`` itself may stay on the CPU (blocks are moved as needed).

    Args:
        queries: ``(Q, D)`` concept (text) embeddings; normalised here.
        pool: ``(N, D)`` pool (audio) embeddings; normalised block by block.
        uniforms: ``(Q,)`` uniforms in [0, 1), one draw per query (:func:`query_uniforms`).
        k: Top-k of the dynamic threshold (:data:`DEFAULT_TOP_K`).
        query_block: Queries scored at once.
        pool_block: Pool rows scored at once.
        buffer: Best scores kept per query during the first pass; queries with more candidates
            than this take two more passes.
        device: Where the products run (default: the device of ``queries``).
        dtype: Precision of the products (float16/bfloat16 halve memory and time on a GPU).
    """
    count, width = pool.shape
    _check_k(k, count)
    if queries.shape[-1] != width:
        raise ConfigError(
            f"blocked_retrieve(): {queries.shape[-1]}-d concept embeddings against a {width}-d pool; "
            "embed both with the same CLAP"
        )
    if len(uniforms) != len(queries):
        raise ConfigError(
            f"blocked_retrieve(): {len(uniforms)} uniforms for {len(queries)} queries"
        )
    device = torch.device(device) if device is not None else queries.device
    buffer = max(buffer, k)
    parts = []
    for first in range(0, len(queries), query_block):
        rows = slice(first, first + query_block)
        block = (queries[rows], pool, uniforms[rows], k, pool_block, buffer, device, dtype)
        parts.append(_retrieve_block(*block))
    return RetrievalResult(
        *(torch.cat([getattr(p, name) for p in parts]) for name in RESULT_FIELDS)
    )


def _retrieve_block(
    queries: Tensor,
    pool: Tensor,
    uniforms: Tensor,
    k: int,
    pool_block: int,
    buffer: int,
    device: torch.device,
    dtype: torch.dtype,
) -> RetrievalResult:
    """Algorithm 1 for one block of queries (all in memory on ``device``).

    SSR keeps the order of the similarities, so the running top-``buffer`` is taken on the raw
    products and SSR is applied to the kept scores only (no pass over the whole block for it).
    """
    exact = _exact(dtype)
    query = F.normalize(queries.to(device=device, dtype=exact), dim=-1).to(dtype)
    rows = len(query)
    keep = min(buffer, len(pool))
    best = torch.full((rows, 0), float("-inf"), device=device, dtype=exact)
    best_index = torch.zeros((rows, 0), dtype=torch.long, device=device)
    for first, similarity in _similarity_blocks(query, pool, pool_block, device, dtype):
        top, columns = similarity.topk(min(keep, similarity.shape[1]), dim=1)
        merged = torch.cat([best, top.to(exact)], 1)
        merged_index = torch.cat([best_index, columns + first], 1)
        best, order = merged.topk(min(keep, merged.shape[1]), dim=1)
        best_index = merged_index.gather(1, order)
    best_score = signed_sqrt(best)
    threshold = torch.minimum(best_score[:, :k].mean(dim=1), best_score[:, 0])
    eligible = best_score >= threshold[:, None]
    counts = eligible.sum(dim=1)
    overflow = eligible[:, -1] & (keep < len(pool))
    # candidates in pool-row order: ineligible buffer slots sort last
    order = torch.where(eligible, best_index, len(pool)).sort(dim=1).indices
    uniforms = uniforms.to(device)
    ranks = draw_ranks(counts, uniforms).clamp_max(keep - 1)[:, None]
    chosen = order.gather(1, ranks)
    index = best_index.gather(1, chosen)[:, 0]
    similarity = best.gather(1, chosen)[:, 0]
    score = best_score.gather(1, chosen)[:, 0]
    if overflow.any():
        wide = overflow.nonzero()[:, 0]
        counts[wide], index[wide], similarity[wide] = _select_wide(
            query[wide], threshold[wide], uniforms[wide], pool, pool_block, device, dtype
        )
        score[wide] = signed_sqrt(similarity[wide])
    return RetrievalResult(
        index=index.cpu(),
        similarity=similarity.cpu(),
        score=score.cpu(),
        threshold=threshold.cpu(),
        candidates=counts.cpu(),
    )


def _select_wide(
    query: Tensor,
    threshold: Tensor,
    uniforms: Tensor,
    pool: Tensor,
    pool_block: int,
    device: torch.device,
    dtype: torch.dtype,
) -> tuple[Tensor, Tensor, Tensor]:
    """Count, then pick, the candidates of queries with more of them than the buffer holds."""
    exact = _exact(dtype)
    counts = torch.zeros(len(query), dtype=torch.long, device=device)
    for _, similarity in _similarity_blocks(query, pool, pool_block, device, dtype):
        counts += (signed_sqrt(similarity.to(exact)) >= threshold[:, None]).sum(dim=1)
    ranks = draw_ranks(counts, uniforms)
    index = torch.full_like(counts, -1)
    chosen = torch.zeros(len(query), device=device, dtype=exact)
    seen = torch.zeros_like(counts)
    for first, similarity in _similarity_blocks(query, pool, pool_block, device, dtype):
        similarity = similarity.to(exact)
        eligible = signed_sqrt(similarity) >= threshold[:, None]
        here = (index < 0) & (ranks < seen + eligible.sum(dim=1))
        if here.any():
            rows = here.nonzero()[:, 0]
            column = _nth_true(eligible[rows], ranks[rows] - seen[rows])
            index[rows] = first + column
            chosen[rows] = similarity[rows, column]
        seen += eligible.sum(dim=1)
    return counts, index, chosen


def _similarity_blocks(
    query: Tensor, pool: Tensor, pool_block: int, device: torch.device, dtype: torch.dtype
) -> Iterator[tuple[int, Tensor]]:
    """``(first row, cosine similarities (Q, block))`` for consecutive blocks of the pool."""
    for first in range(0, len(pool), pool_block):
        block = pool[first : first + pool_block].to(device=device, dtype=_exact(dtype))
        yield first, query @ F.normalize(block, dim=-1).to(dtype).T


def _exact(dtype: torch.dtype) -> torch.dtype:
    """Precision of normalisation and scores: float64 when asked, else float32 (also for halves)."""
    return torch.float64 if dtype == torch.float64 else torch.float32
