"""Text-to-audio retrieval of Seeing Sound §3.3 (Algorithm 1), for millions of queries at once.

For every sounding concept (a text embedding) the whole audio pool is scored by cosine
similarity in CLAP space; the scores go through a signed square root (SSR), which compresses
the head of the ranking so one clip that matches many concepts slightly better than its
neighbours is not drawn for all of them; the mean of the top-``k`` SSR scores is the concept's
dynamic threshold τ; the clip is drawn uniformly among the pool items whose SSR score is at least
τ (at least the best one: τ is never above the top score). A flat head (many equally good
matches) gives many candidates, a steep one few.

The paper runs Algorithm 1 "in parallel across all the sounding concepts"; with 0.5M clips and
millions of concepts the similarity matrix does not fit anywhere. SSR keeps the order of the
inner products, so the top of each query's ranking is what a nearest-neighbour index returns:
:class:`PoolSearch` puts the unit-length pool in a FAISS inner-product index (exact
``IndexFlatIP``, or ``IndexIVFFlat`` for large pools, its recall@k against exact search measured
on a sample of the queries), fetches the best ``buffer`` clips per query and applies SSR, τ and
the draw to them. When the buffer's last clip still reaches τ the candidates do not all fit in
it, and that query takes a range search over the index for every clip above τ. Candidates are
ordered by pool row and the draw is ``floor(u · count)`` for a per-query uniform ``u``, so the
result never depends on the buffer, the query blocks or the device, only on the scores and ``u``.

The paper publishes no code; this is the reference implementation a2i defines.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import asdict, dataclass
from typing import Any, Literal

import faiss
import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from a2i.errors import ConfigError

logger = logging.getLogger(__name__)

DEFAULT_TOP_K = 10
"""The paper does not give k. 10 averages the head of the ranking, as §3.3 describes: a steep
head (a few very good matches) puts τ between them and the rest, a flat head lets many through;
with k = 1 only the best clip could ever be drawn, and a large k (≥ 100) would average in the
mediocre tail and let it pass."""

IndexKind = Literal["exact", "ivf", "auto"]

DEFAULT_EXACT_MAX_POOL = 200_000
"""``auto`` searches pools up to this many clips exactly: below it exact search of a million
concepts takes hours, not days, on a few CPU cores (docs/scale.md), and needs no recall check."""

DEFAULT_NPROBE = 64
"""IVF cells searched per query. Recall depends on the embeddings: on clustered test data 4 of
1,414 cells reach recall@10 0.9999 at 500k clips, on a continuum of low intrinsic dimension 64
of 512 cells reach 0.96 at 20k (``benchmarks/sonify_scale.py``, docs/scale.md). Each run measures its own recall
(``retrieval.json``) and warns below :data:`RECALL_WARNING`."""

RECALL_WARNING = 0.99
"""recall@k below which a run warns and names ``retrieval_nprobe``."""

IVF_SEED = 1234
"""Seeds the choice of the k-means training sample and k-means itself: the same pool gives the
same IVF index on every run and every rank."""

TRAINING_PER_CELL = 64
"""Clips per IVF cell k-means trains on (a seeded sample): above k-means' minimum of 39, and a
quarter of FAISS's default 256, which would spend most of the build on k-means at 500k clips."""

RANGE_MARGIN = 1e-5
"""Slack of the range search's radius (similarity space) so float rounding never drops a clip
at τ; the exact SSR comparison is applied to what it returns."""

WIDE_BATCH = 256
"""Queries per range search (one radius each: the lowest τ of the batch; thresholds are sorted
so a batch's radii are close)."""


def signed_sqrt(similarity: Tensor) -> Tensor:
    """``sign(s) · sqrt(|s|)``: the SSR of §3.3 (keeps the order, compresses the head)."""
    return similarity.sign() * similarity.abs().sqrt()


def dynamic_threshold(scores: Tensor, k: int) -> Tensor:
    """τ per row: the mean of the ``k`` highest scores of ``scores`` ``(Q, N)``, capped at the top."""
    top = scores.topk(k, dim=-1).values
    return torch.minimum(top.mean(dim=-1), top[..., 0])


def draw_ranks(counts: Tensor, uniforms: Tensor) -> Tensor:
    """``floor(u · count)``: a uniform rank in ``[0, count)`` per query."""
    return torch.minimum(
        (uniforms.double() * counts.double()).floor().long(), (counts - 1).clamp_min(0)
    )


def query_uniforms(seed: int, count: int) -> Tensor:
    """``count`` uniforms in [0, 1) from ``seed`` (float64, on the CPU, the same everywhere)."""
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(count, generator=generator, dtype=torch.float64)


@dataclass(frozen=True)
class IndexSettings:
    """How the pool is searched (the ``retrieval_*`` arguments of the sonify data module).

    Attributes:
        kind: ``exact`` (every clip scored: ``IndexFlatIP``), ``ivf`` (only the clips of the
            ``nprobe`` nearest of ``nlist`` k-means cells: ``IndexIVFFlat``), or ``auto``
            (exact up to ``exact_max_pool`` clips, IVF above).
        exact_max_pool: Largest pool ``auto`` searches exactly.
        nlist: IVF cells (None: ``2·√N``, at most one per 39 clips, k-means' minimum sample).
        nprobe: IVF cells searched per query (more: higher recall, slower).
        buffer: Best clips fetched per query; a query with more candidates takes a range search.
        recall_sample: Queries whose IVF top-k is compared with exact search (0: not measured).
        query_block: Queries searched at once (bounds the memory of the search results).
    """

    kind: IndexKind = "auto"
    exact_max_pool: int = DEFAULT_EXACT_MAX_POOL
    nlist: int | None = None
    nprobe: int = DEFAULT_NPROBE
    buffer: int = 64
    recall_sample: int = 1000
    query_block: int = 16384

    def __post_init__(self) -> None:
        if self.kind not in ("exact", "ivf", "auto"):
            raise ConfigError(f"retrieval index must be exact, ivf or auto (got '{self.kind}')")
        positive = {"nprobe": self.nprobe, "buffer": self.buffer, "query_block": self.query_block}
        if self.nlist is not None:
            positive["nlist"] = self.nlist
        for name, value in positive.items():
            if value < 1:
                raise ConfigError(f"retrieval {name} must be at least 1 (got {value})")
        if self.recall_sample < 0:
            raise ConfigError(f"retrieval recall_sample must be ≥ 0 (got {self.recall_sample})")

    def resolve(self, pool_size: int) -> Literal["exact", "ivf"]:
        """The index a pool of ``pool_size`` clips gets."""
        if self.kind == "auto":
            return "exact" if pool_size <= self.exact_max_pool else "ivf"
        return self.kind

    def cells(self, pool_size: int) -> int:
        """IVF cells for ``pool_size`` clips (the given ``nlist``, else ``2·√N``).

        FAISS suggests 4–16·√N for the fastest search; 2·√N keeps the k-means of a 500k pool
        near a minute on two CPU cores, and the search cost per probed cell is what nprobe sets.
        """
        wanted = self.nlist or round(2 * math.sqrt(pool_size))
        return max(1, min(wanted, pool_size // 39 if self.nlist is None else pool_size))


@dataclass
class SearchReport:
    """How the pool was searched: ``retrieval.json`` of a sonify run.

    Attributes:
        index: ``exact`` or ``ivf`` (resolved from ``auto``).
        pool: Clips in the index.
        queries: Queries searched.
        nlist: IVF cells (None: exact).
        nprobe: IVF cells searched per query (None: exact).
        recall_at_k: Mean share of each sampled query's exact top-k that the index returned
            (1.0 for exact search; None: not measured).
        recall_queries: Queries in the recall sample.
        wide_queries: Queries whose candidates overflowed the buffer (range searched).
        gpu: Whether FAISS searched on a GPU.
        build_seconds: Building (and training) the index.
        search_seconds: Searching, thresholds and draws (the recall check excluded).
        recall_seconds: The recall check.
    """

    index: str
    pool: int
    queries: int = 0
    nlist: int | None = None
    nprobe: int | None = None
    recall_at_k: float | None = None
    recall_queries: int = 0
    wide_queries: int = 0
    gpu: bool = False
    build_seconds: float = 0.0
    search_seconds: float = 0.0
    recall_seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON value (seconds rounded)."""
        row = asdict(self)
        for name in ("build_seconds", "search_seconds", "recall_seconds"):
            row[name] = round(row[name], 3)
        return row


@dataclass
class RetrievalResult:
    """One drawn pool item per query, and why.

    Attributes:
        index: ``(Q,)`` pool row drawn for each query.
        similarity: ``(Q,)`` its cosine similarity to the query.
        score: ``(Q,)`` its SSR score.
        threshold: ``(Q,)`` the dynamic threshold τ (SSR space).
        candidates: ``(Q,)`` how many pool items scored at least τ.
        search: How the pool was searched (None: from a similarity matrix).
    """

    index: Tensor
    similarity: Tensor
    score: Tensor
    threshold: Tensor
    candidates: Tensor
    search: SearchReport | None = None


def retrieve_from_scores(similarity: Tensor, k: int, uniforms: Tensor) -> RetrievalResult:
    """Algorithm 1 on a whole similarity matrix ``(Q, N)`` held in memory (small pools, tests)."""
    _check_k(k, similarity.shape[-1])
    scores = signed_sqrt(similarity)
    threshold = dynamic_threshold(scores, k)
    eligible = scores >= threshold[:, None]
    counts = eligible.sum(dim=1)
    ranks = draw_ranks(counts, uniforms.to(similarity.device))
    index = _nth_true(eligible, ranks)
    rows = torch.arange(len(index), device=similarity.device)
    return RetrievalResult(
        index=index,
        similarity=similarity[rows, index],
        score=scores[rows, index],
        threshold=threshold,
        candidates=counts,
    )


class PoolSearch:
    """The pool in a FAISS inner-product index, searched by Algorithm 1.

    Built once per process: a rank that searches its own share of the queries holds the whole
    pool; the IVF index is seeded (:data:`IVF_SEED`), so every rank and every run builds the
    same one. On a CUDA ``device`` with the ``faiss-gpu`` build installed
    (``faiss.get_num_gpus() > 0``) the top-``buffer`` search runs on that GPU; range searches
    (rare wide queries) stay on the CPU copy, which FAISS's GPU indexes do not provide.

    Args:
        pool: ``(N, D)`` pool (audio) embeddings; normalised here, block by block.
        settings: Index choice and its parameters (default :class:`IndexSettings`).
        device: Where the search runs (a CUDA device uses the GPU build when installed).
    """

    def __init__(
        self,
        pool: Tensor,
        settings: IndexSettings | None = None,
        *,
        device: str | torch.device | None = None,
    ) -> None:
        self.settings = settings or IndexSettings()
        count, self.width = pool.shape
        if count == 0:
            raise ConfigError("retrieval needs at least one pool clip")
        began = time.perf_counter()
        faiss.omp_set_num_threads(torch.get_num_threads())
        kind = self.settings.resolve(count)
        if kind == "exact":
            self._index = faiss.IndexFlatIP(self.width)
            nlist = nprobe = None
        else:
            nlist = self.settings.cells(count)
            nprobe = min(self.settings.nprobe, nlist)
            quantizer = faiss.IndexFlatIP(self.width)
            self._index = faiss.IndexIVFFlat(
                quantizer, self.width, nlist, faiss.METRIC_INNER_PRODUCT
            )
            self._index.cp.seed = IVF_SEED
            self._index.train(_unit(pool[_training_rows(count, nlist)]))
            self._index.nprobe = nprobe
        for first in range(0, count, self.settings.query_block):
            self._index.add(_unit(pool[first : first + self.settings.query_block]))
        self._searcher, self._gpu_resources = _on_device(self._index, device)
        self.report = SearchReport(
            index=kind,
            pool=count,
            nlist=nlist,
            nprobe=nprobe,
            recall_at_k=1.0 if kind == "exact" else None,
            gpu=self._gpu_resources is not None,
            build_seconds=time.perf_counter() - began,
        )

    @torch.no_grad()
    def retrieve(
        self, queries: Tensor, uniforms: Tensor, k: int = DEFAULT_TOP_K
    ) -> RetrievalResult:
        """Algorithm 1 for every query (the report counts the queries and time of every call).

        Args:
            queries: ``(Q, D)`` concept (text) embeddings; normalised here.
            uniforms: ``(Q,)`` uniforms in [0, 1), one draw per query (:func:`query_uniforms`).
            k: Top-k of the dynamic threshold (:data:`DEFAULT_TOP_K`).
        """
        _check_k(k, self.report.pool)
        if queries.shape[-1] != self.width:
            raise ConfigError(
                f"retrieve(): {queries.shape[-1]}-d concept embeddings against a {self.width}-d "
                "pool; embed both with the same CLAP"
            )
        if len(uniforms) != len(queries):
            raise ConfigError(f"retrieve(): {len(uniforms)} uniforms for {len(queries)} queries")
        began = time.perf_counter()
        block = self.settings.query_block
        parts = [
            self._retrieve_block(
                _unit(queries[first : first + block]), uniforms[first : first + block].cpu(), k
            )
            for first in range(0, max(len(queries), 1), block)
        ]
        self.report.queries += len(queries)
        self.report.search_seconds += time.perf_counter() - began
        fields = ("index", "similarity", "score", "threshold", "candidates")
        return RetrievalResult(
            *(torch.cat([getattr(part, name) for part in parts]) for name in fields),
            search=self.report,
        )

    def probe(self, nprobe: int) -> None:
        """Search ``nprobe`` IVF cells per query from now on (recall against speed, no rebuild)."""
        if self.report.nlist is None:
            raise ConfigError("retrieval nprobe applies to an IVF index; this one is exact")
        if nprobe < 1:
            raise ConfigError(f"retrieval nprobe must be at least 1 (got {nprobe})")
        self.report.nprobe = min(nprobe, self.report.nlist)
        self._index.nprobe = self._searcher.nprobe = self.report.nprobe

    def measure_recall(self, queries: Tensor, k: int = DEFAULT_TOP_K) -> float:
        """recall@k against exact search on a seeded sample of ``queries`` (stored in the report).

        Exact search is the IVF index probing all its cells (no second copy of the pool).
        """
        if self.report.nlist is None or not self.settings.recall_sample or not len(queries):
            return self.report.recall_at_k or 1.0
        began = time.perf_counter()
        generator = torch.Generator().manual_seed(IVF_SEED)
        rows = torch.randperm(len(queries), generator=generator)[: self.settings.recall_sample]
        unit = _unit(queries[rows.sort().values])
        _, approximate = self._searcher.search(unit, k)
        everything = faiss.SearchParametersIVF(nprobe=self.report.nlist)
        _, exact = self._searcher.search(unit, k, params=everything)
        hits = sum(
            len(set(found.tolist()) & set(truth.tolist()))
            for found, truth in zip(approximate, exact, strict=True)
        )
        self.report.recall_at_k = hits / (len(unit) * k)
        self.report.recall_queries = len(unit)
        self.report.recall_seconds = time.perf_counter() - began
        return self.report.recall_at_k

    def _retrieve_block(self, queries: np.ndarray, uniforms: Tensor, k: int) -> RetrievalResult:
        """Algorithm 1 on the best ``buffer`` clips of each query (range search when they overflow)."""
        pool = self.report.pool
        keep = min(max(self.settings.buffer, k), pool)
        best, best_index = self._search(queries, keep, k)
        best_score = signed_sqrt(best)
        threshold = torch.minimum(best_score[:, :k].mean(dim=1), best_score[:, 0])
        eligible = best_score >= threshold[:, None]
        counts = eligible.sum(dim=1)
        # candidates in pool-row order: ineligible buffer slots sort last
        order = torch.where(eligible, best_index, pool).sort(dim=1).indices
        ranks = draw_ranks(counts, uniforms).clamp_max(keep - 1)[:, None]
        chosen = order.gather(1, ranks)
        index = best_index.gather(1, chosen)[:, 0]
        similarity = best.gather(1, chosen)[:, 0]
        wide = (eligible[:, -1] & (keep < pool)).nonzero()[:, 0]
        if len(wide):
            picked = self._select_wide(queries[wide.numpy()], best[wide, k - 1], uniforms[wide], k)
            threshold[wide], counts[wide], index[wide], similarity[wide] = picked
            self.report.wide_queries += len(wide)
        return RetrievalResult(index, similarity, signed_sqrt(similarity), threshold, counts)

    def _search(self, queries: np.ndarray, keep: int, k: int) -> tuple[Tensor, Tensor]:
        """Best ``keep`` similarities and pool rows per query (``-inf``, -1 where fewer exist).

        A query whose probed IVF cells hold fewer than ``k`` clips is searched again over all
        cells, so τ is always the mean of ``k`` real scores.
        """
        similarity, rows = self._searcher.search(queries, keep)
        short = rows[:, k - 1] < 0
        if short.any():
            everything = faiss.SearchParametersIVF(nprobe=self.report.nlist)
            similarity[short], rows[short] = self._searcher.search(
                queries[short], keep, params=everything
            )
        best, best_index = torch.from_numpy(similarity), torch.from_numpy(rows)
        best[best_index < 0] = float("-inf")
        return best, best_index

    def _select_wide(
        self, queries: np.ndarray, kth_best: Tensor, uniforms: Tensor, k: int
    ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """τ, count, drawn row and similarity of queries with more candidates than the buffer.

        A range search returns every clip at least as similar as the query's k-th best (so the
        top-k and every candidate), and τ is recomputed from those scores: one computation
        decides both τ and who reaches it, whatever rounding the first search had.
        """
        threshold = torch.zeros(len(queries))
        counts = torch.zeros(len(queries), dtype=torch.long)
        index = torch.zeros(len(queries), dtype=torch.long)
        similarity = torch.zeros(len(queries))
        order = kth_best.argsort(descending=True)
        for first in range(0, len(order), WIDE_BATCH):
            batch = order[first : first + WIDE_BATCH]
            radius = float(kth_best[batch].min()) - RANGE_MARGIN
            limits, found_similarity, found_rows = self._index.range_search(
                queries[batch.numpy()], radius
            )
            for slot, row in enumerate(batch.tolist()):
                span = slice(limits[slot], limits[slot + 1])
                scores = signed_sqrt(torch.from_numpy(found_similarity[span]))
                tau = dynamic_threshold(scores, k)
                eligible = (scores >= tau).nonzero()[:, 0]
                candidates, by_row = torch.from_numpy(found_rows[span])[eligible].sort()
                rank = int(draw_ranks(torch.tensor(len(candidates)), uniforms[row]))
                threshold[row], counts[row] = tau, len(candidates)
                index[row] = candidates[rank]
                similarity[row] = torch.from_numpy(found_similarity[span])[eligible[by_row[rank]]]
        return threshold, counts, index, similarity


@torch.no_grad()
def retrieve(
    queries: Tensor,
    pool: Tensor,
    uniforms: Tensor,
    k: int = DEFAULT_TOP_K,
    *,
    index: IndexSettings | None = None,
    device: str | torch.device | None = None,
) -> RetrievalResult:
    """Algorithm 1 for every query against the whole pool (:class:`PoolSearch`, then its recall).

    Args:
        queries: ``(Q, D)`` concept (text) embeddings; normalised here.
        pool: ``(N, D)`` pool (audio) embeddings; normalised here.
        uniforms: ``(Q,)`` uniforms in [0, 1), one draw per query (:func:`query_uniforms`).
        k: Top-k of the dynamic threshold (:data:`DEFAULT_TOP_K`).
        index: Index choice and its parameters (default :class:`IndexSettings`).
        device: Where the search runs (see :class:`PoolSearch`).
    """
    search = PoolSearch(pool, index, device=device)
    found = search.retrieve(queries, uniforms, k)
    recall = search.measure_recall(queries, k)
    if recall < RECALL_WARNING:
        logger.warning(
            "retrieval: the IVF index found %.3f of the exact top-%d (nprobe %d of %d cells); "
            "raise retrieval_nprobe, or set retrieval_index exact",
            recall,
            k,
            search.report.nprobe,
            search.report.nlist,
        )
    return found


def _unit(vectors: Tensor) -> np.ndarray:
    """Unit-length float32 rows, as the contiguous array FAISS takes."""
    return np.ascontiguousarray(F.normalize(vectors.detach().float().cpu(), dim=-1).numpy())


def _training_rows(count: int, nlist: int) -> Tensor:
    """A seeded sample of :data:`TRAINING_PER_CELL` clips per cell for k-means, in pool order."""
    generator = torch.Generator().manual_seed(IVF_SEED)
    return torch.randperm(count, generator=generator)[: nlist * TRAINING_PER_CELL].sort().values


def _on_device(index: Any, device: str | torch.device | None) -> tuple[Any, Any]:
    """``(index to search, GPU resources or None)``: a GPU copy when FAISS's GPU build can make one."""
    if device is None or torch.device(device).type != "cuda":
        return index, None
    if not hasattr(faiss, "StandardGpuResources") or faiss.get_num_gpus() == 0:
        logger.warning(
            "retrieval searches on the CPU: the installed FAISS has no GPU support "
            "(install faiss-gpu instead of faiss-cpu to search on %s)",
            device,
        )
        return index, None
    resources = faiss.StandardGpuResources()
    return faiss.index_cpu_to_gpu(resources, torch.device(device).index or 0, index), resources


def _nth_true(mask: Tensor, ranks: Tensor) -> Tensor:
    """Column of the ``ranks[i]``-th (0-based) True of each row of ``mask``."""
    position = mask.long().cumsum(dim=1)
    return (mask & (position == (ranks[:, None] + 1))).long().argmax(dim=1)


def _check_k(k: int, pool_size: int) -> None:
    if not 1 <= k <= pool_size:
        raise ConfigError(f"retrieval top_k must be in [1, pool size = {pool_size}] (got {k})")
