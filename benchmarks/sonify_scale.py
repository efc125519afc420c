"""Retrieval at scale (Seeing Sound §3.3, Algorithm 1): FAISS against the blocked product.

Unit vectors of CLAP's size (512) stand in for the pool's audio embeddings and the concepts'
text embeddings. ``--data lowrank`` (the default) draws them near a random
``--latent``-dimensional subspace (clips at cosine ≈ 0.9 to it, concepts ≈ 0.7, noisier, like
CLAP's modality gap): a continuum whose neighbours straddle IVF cells. ``--data clustered``
draws them around ``--classes`` separate sound centres (clip–centre cosine ≈ 0.7,
concept–centre ≈ 0.5), which an IVF index finds with a few cells; ``--data random`` (no structure at all) is its worst case.
Every case runs in a fresh child process, so each peak RSS is that case's own; a child that only
builds the inputs gives the memory the inputs themselves take.

1. Exact search: :class:`a2i.build.sonify.retrieval.PoolSearch` (FAISS ``IndexFlatIP``) against
   the hand-written blocked top-k it replaced (kept as the tests' exact reference,
   ``tests/blocked_topk.py``), the whole Algorithm 1 (search, SSR, threshold, draw)::

    nice python benchmarks/sonify_scale.py --data clustered --pool 10000 100000 500000 \\
        --queries 1000 --threads 2

2. The IVF index at 500k clips: build time, search rate and recall@k against exact search
   (1,000 sampled concepts) for each ``--nprobe``; then the paper's scale (1M images × ~6
   concepts = 6M concepts against 0.5M clips) extrapolated from a measured run of
   ``--paper_run`` concepts at ``--paper_nprobe``::

    nice python benchmarks/sonify_scale.py --pool --data clustered --ivf_pool 500000 \\
        --queries 5000 --nprobe 1 2 4 8 --paper_run 100000 --paper_nprobe 4 --threads 2

The measured tables are in docs/scale.md.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

from torch import Tensor

# the blocked top-k lives with the tests, as their exact reference
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))


def embeddings(args: argparse.Namespace, count: int, spread: float, seed: int) -> Tensor:
    """``count`` unit rows of ``args.data``'s kind (``spread``: noise against structure)."""
    import torch

    dim, classes, generator = args.dim, args.classes, torch.Generator().manual_seed(0)
    if args.data == "lowrank":
        basis = torch.linalg.qr(torch.randn(dim, args.latent, generator=generator)).Q
        generator.manual_seed(seed)
        rows = torch.randn(count, args.latent, generator=generator) @ basis.T
        noise = torch.randn(count, dim, generator=generator)
        rows += noise.mul_(spread * (args.latent / dim) ** 0.5)
        rows /= rows.norm(dim=-1, keepdim=True)
        return rows
    centres = torch.randn(classes, dim, generator=generator)
    centres /= centres.norm(dim=-1, keepdim=True)
    generator.manual_seed(seed)
    rows = torch.randn(count, dim, generator=generator)
    rows /= rows.norm(dim=-1, keepdim=True)
    if args.data == "clustered":
        rows *= spread
        rows += centres[torch.randint(classes, (count,), generator=generator)]
        rows /= rows.norm(dim=-1, keepdim=True)  # in place: no transient copy in the peak
    return rows


def child(args: argparse.Namespace, engine: str, pool: int, queries: int) -> None:
    """One case in this process: build the inputs, run ``engine``, print JSON rows."""
    import torch

    from a2i.build.sonify.retrieval import IndexSettings, PoolSearch, query_uniforms

    torch.set_num_threads(args.threads)
    lowrank = args.data == "lowrank"
    audio = embeddings(args, pool, 0.5 if lowrank else 1.0, seed=1)
    text = embeddings(args, queries, 1.0 if lowrank else 1.75, seed=2)
    uniforms = query_uniforms(0, queries)
    rows = []
    began = time.perf_counter()
    if engine == "blocked":
        from blocked_topk import blocked_retrieve

        found = blocked_retrieve(text, audio, uniforms, args.k)
        rows.append({"seconds": time.perf_counter() - began})
    elif engine == "exact":
        search = PoolSearch(audio, IndexSettings(kind="exact"))
        found = search.retrieve(text, uniforms, args.k)
        rows.append({"seconds": time.perf_counter() - began, **search.report.to_dict()})
    elif engine == "ivf":
        nprobes = args.nprobe if queries != args.paper_run else [args.paper_nprobe]
        settings = IndexSettings(kind="ivf", nlist=args.nlist, nprobe=nprobes[0])
        search = PoolSearch(audio, settings)
        del audio  # the index holds its own copy
        for nprobe in nprobes:
            search.probe(nprobe)
            search.report.search_seconds = 0.0
            search.report.queries = search.report.wide_queries = 0
            found = search.retrieve(text, uniforms, args.k)
            search.measure_recall(text, args.k)
            rows.append(search.report.to_dict())
    if engine != "inputs":
        for row in rows:
            row["candidates"] = found.candidates.float().mean().item()
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    for row in rows or [{}]:
        row["peak_mb"] = peak_mb
    print(json.dumps(rows or [{"peak_mb": peak_mb}]))


def run_case(args: argparse.Namespace, engine: str, pool: int, queries: int) -> list[dict]:
    command = [sys.executable, __file__, "--child", engine, str(pool), str(queries)]
    command += ["--dim", str(args.dim), "--threads", str(args.threads), "--k", str(args.k)]
    command += ["--data", args.data, "--classes", str(args.classes), "--latent", str(args.latent)]
    command += ["--nprobe", *map(str, args.nprobe), "--paper_nprobe", str(args.paper_nprobe)]
    command += ["--paper_run", str(args.paper_run)]
    if args.nlist:
        command += ["--nlist", str(args.nlist)]
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    return json.loads(output.strip().splitlines()[-1])


def exact_table(args: argparse.Namespace) -> None:
    print(f"exact search: {args.queries:,} concepts × pool, {args.dim}-d, {args.threads} threads")
    print("| pool clips | engine | seconds | pairs/s | peak RSS MB | working MB |")
    print("|---|---|---|---|---|---|")
    for pool in args.pool:
        inputs = run_case(args, "inputs", pool, args.queries)[0]["peak_mb"]
        for engine, name in (("blocked", "blocked torch top-k"), ("exact", "FAISS IndexFlatIP")):
            case = run_case(args, engine, pool, args.queries)[0]
            rate = pool * args.queries / case["seconds"]
            print(
                f"| {pool:,} | {name} | {case['seconds']:.1f} | {rate:.3g} | "
                f"{case['peak_mb']:.0f} | {case['peak_mb'] - inputs:.0f} |",
                flush=True,
            )


def ivf_table(args: argparse.Namespace) -> None:
    pool = args.ivf_pool
    print(f"IVF: {args.queries:,} concepts × {pool:,} clips, {args.threads} threads, {args.data}")
    print("| nlist | nprobe | build s | search s | concepts/s | recall@k | peak RSS MB |")
    print("|---|---|---|---|---|---|---|")
    for row in run_case(args, "ivf", pool, args.queries):
        print(
            f"| {row['nlist']} | {row['nprobe']} | {row['build_seconds']:.0f} | "
            f"{row['search_seconds']:.1f} | {row['queries'] / row['search_seconds']:,.0f} | "
            f"{row['recall_at_k']:.4f} | {row['peak_mb']:.0f} |",
            flush=True,
        )


def paper_scale(args: argparse.Namespace) -> None:
    row = run_case(args, "ivf", args.ivf_pool, args.paper_run)[0]
    rate = row["queries"] / row["search_seconds"]
    paper = args.paper_images * args.concepts_per_image
    hours = (paper / rate + row["build_seconds"] + row["recall_seconds"]) / 3600
    print(
        f"paper scale: measured {row['queries']:,} concepts × {args.ivf_pool:,} clips at nlist "
        f"{row['nlist']}, nprobe {row['nprobe']}: {row['search_seconds']:.0f} s search "
        f"({rate:,.0f} concepts/s), {row['build_seconds']:.0f} s build, recall@{args.k} "
        f"{row['recall_at_k']:.4f}, {row['wide_queries']} range-searched, peak RSS "
        f"{row['peak_mb']:.0f} MB → {paper:,.0f} concepts: {hours:.2f} h on {args.threads} threads"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pool", type=int, nargs="*", default=[10_000, 100_000, 500_000])
    parser.add_argument("--queries", type=int, default=2_000)
    parser.add_argument("--dim", type=int, default=512, help="the paper's CLAP: 512")
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--data", choices=["lowrank", "clustered", "random"], default="lowrank")
    parser.add_argument("--latent", type=int, default=16, help="lowrank: intrinsic dimension")
    parser.add_argument("--classes", type=int, default=1000, help="clustered: sound classes")
    parser.add_argument("--ivf_pool", type=int, default=0, help="0: no IVF table")
    parser.add_argument("--nlist", type=int, default=0, help="0: IndexSettings' default")
    parser.add_argument("--nprobe", type=int, nargs="+", default=[16, 32, 64, 128])
    parser.add_argument("--paper_run", type=int, default=0, help="0: no paper-scale run")
    parser.add_argument("--paper_nprobe", type=int, default=64)
    parser.add_argument("--paper_images", type=int, default=1_000_000)
    parser.add_argument("--concepts_per_image", type=float, default=6.0,
                        help="paper scale: ~3 concepts from each of two VLMs (not stated)")  # fmt: skip
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.nlist = args.nlist or None
    if args.child:
        child(args, args.child[0], int(args.child[1]), int(args.child[2]))
        return
    if args.pool:
        exact_table(args)
    if args.ivf_pool:
        ivf_table(args)
    if args.ivf_pool and args.paper_run:
        paper_scale(args)


if __name__ == "__main__":
    main()
