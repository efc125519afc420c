"""Retrieval at scale (Seeing Sound §3.3, Algorithm 1): time and peak memory vs pool size.

Random unit vectors of CLAP's size (512) stand in for the pool's audio embeddings and the
concepts' text embeddings; :func:`a2i.build.sonify.retrieval.retrieve` runs the whole algorithm
(blocked similarity products, signed square root, top-k threshold, seeded draw). Each pool size
runs in a fresh child process, so each peak RSS is that case's own; a child that only builds the
inputs gives the memory the inputs themselves take::

    nice python benchmarks/sonify_scale.py --pool 10000 100000 500000 --queries 10000 --threads 2

The paper's scale (1M images, a few concepts each from two VLMs, 0.5M clips) is extrapolated
from the measured rate: the work is one ``queries × pool × 512`` product (plus a top-k merge
per block), linear in both sizes; ``--gpu_tflops`` and ``--gpu_tbps`` turn it into a GPU
estimate (no GPU was at hand when this was written: an estimate, not a measurement).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time


def child(pool: int, queries: int, dim: int, threads: int, run: bool, blocks: list[int]) -> None:
    """One case in this process: build the inputs, optionally retrieve, print JSON."""
    import torch

    from a2i.build.sonify.retrieval import query_uniforms, retrieve

    torch.set_num_threads(threads)
    generator = torch.Generator().manual_seed(0)
    audio = torch.randn(pool, dim, generator=generator)
    audio /= audio.norm(dim=-1, keepdim=True)  # in place: no transient copy in the peak
    text = torch.randn(queries, dim, generator=generator)
    text /= text.norm(dim=-1, keepdim=True)
    uniforms = query_uniforms(0, queries)
    seconds, candidates = 0.0, 0.0
    if run:
        began = time.perf_counter()
        found = retrieve(text, audio, uniforms, 10, query_block=blocks[0], pool_block=blocks[1])
        seconds = time.perf_counter() - began
        candidates = found.candidates.float().mean().item()
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"seconds": seconds, "peak_mb": peak_mb, "candidates": candidates}))


def run_case(args: argparse.Namespace, pool: int, run: bool) -> dict[str, float]:
    command = [sys.executable, __file__, "--child", str(pool), str(int(run))]
    command += ["--queries", str(args.queries), "--dim", str(args.dim)]
    command += ["--threads", str(args.threads), "--blocks", *map(str, args.blocks)]
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    return json.loads(output.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pool", type=int, nargs="+", default=[10_000, 100_000, 500_000])
    parser.add_argument("--queries", type=int, default=10_000)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--blocks", type=int, nargs=2, default=[2048, 32768],
                        help="query_block pool_block")  # fmt: skip
    parser.add_argument("--paper_images", type=int, default=1_000_000)
    parser.add_argument("--concepts_per_image", type=float, default=6.0,
                        help="paper scale: ~3 concepts from each of two VLMs (not stated)")  # fmt: skip
    parser.add_argument("--paper_pool", type=int, default=500_000)
    parser.add_argument("--gpu_tflops", type=float, default=200.0,
                        help="sustained fp16 matmul TFLOP/s assumed for the GPU estimate")  # fmt: skip
    parser.add_argument("--gpu_tbps", type=float, default=4.8,
                        help="GPU memory bandwidth in TB/s (H200: 4.8, H100 SXM: 3.35)")  # fmt: skip
    parser.add_argument("--child", nargs=2, type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], args.queries, args.dim, args.threads, bool(args.child[1]), args.blocks)
        return
    print(
        f"{args.queries} concepts × pool, {args.dim}-d, {args.threads} threads, blocks {args.blocks}"
    )
    print("| pool clips | seconds | pairs/s | GFLOP/s | peak RSS MB | inputs MB | working MB |")
    print("|---|---|---|---|---|---|---|")
    rate = 0.0
    for pool in args.pool:
        inputs = run_case(args, pool, run=False)
        case = run_case(args, pool, run=True)
        pairs = pool * args.queries
        rate = pairs / case["seconds"]
        gflops = 2 * pairs * args.dim / case["seconds"] / 1e9
        print(
            f"| {pool:,} | {case['seconds']:.1f} | {rate:.3g} | {gflops:.1f} | "
            f"{case['peak_mb']:.0f} | {inputs['peak_mb']:.0f} | "
            f"{case['peak_mb'] - inputs['peak_mb']:.0f} |"
        )
    paper_queries = args.paper_images * args.concepts_per_image
    paper_pairs = paper_queries * args.paper_pool
    cpu_hours = paper_pairs / rate / 3600
    flops = 2 * paper_pairs * args.dim
    matmul_s = flops / (args.gpu_tflops * 1e12)
    # each fp16 score is written by the product and read by the block's top-k at least once
    scores_s = paper_pairs * 2 * 2 / (args.gpu_tbps * 1e12)
    print(
        f"paper scale: {paper_queries:,.0f} concepts × {args.paper_pool:,} clips = "
        f"{paper_pairs:.3g} pairs, {flops / 1e15:.1f} PFLOP: at the last measured rate "
        f"{cpu_hours:,.0f} h on {args.threads} CPU threads; on one GPU the product needs "
        f"~{matmul_s:.0f} s at {args.gpu_tflops:g} TFLOP/s and one write + read of the fp16 "
        f"scores ~{scores_s:.0f} s at {args.gpu_tbps:g} TB/s; torch's top-k kernel runs below "
        "bandwidth (not measured here), so expect minutes, not hours"
    )


if __name__ == "__main__":
    main()
