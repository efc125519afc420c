"""``make demo``'s judged result across thread counts and CPU kernels: the range the README quotes.

A float result moves with summation order, so the demo's score is checked where another machine would
differ: torch's intra-op thread count (``OMP_NUM_THREADS``) and the CPU kernels torch, oneDNN and MKL
dispatch to (``ATEN_CPU_CAPABILITY`` with ``ONEDNN_MAX_CPU_ISA``/``MKL_ENABLE_INSTRUCTIONS`` to
match; a machine with AVX-512 can emulate the older CPUs). Each variant is a whole
``python -m a2i.demo`` process into its own folder; the table gives the judge's class accuracy
of both generators (the main object is one of the sound's own; and the labelled one, on a
two-source mix the louder), the single-source scenes' score, and the demo's wall time::

    python benchmarks/demo_range.py --out runs/demo_range            # 6 variants, one at a time
    python benchmarks/demo_range.py --threads 1 --capabilities avx2  # one variant

``--parallel 2`` runs two variants at once (the results are the same, the times are not the
demo's: a variant's time is only quoted from a run with ``--parallel 1`` on an idle machine).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

CAPABILITIES = {
    "avx512": {
        "ATEN_CPU_CAPABILITY": "avx512",
        "ONEDNN_MAX_CPU_ISA": "AVX512_CORE",
        "MKL_ENABLE_INSTRUCTIONS": "AVX512",
    },
    "avx2": {
        "ATEN_CPU_CAPABILITY": "avx2",
        "ONEDNN_MAX_CPU_ISA": "AVX2",
        "MKL_ENABLE_INSTRUCTIONS": "AVX2",
    },
    "default": {
        "ATEN_CPU_CAPABILITY": "default",
        "ONEDNN_MAX_CPU_ISA": "SSE41",
        "MKL_ENABLE_INSTRUCTIONS": "SSE4_2",
    },
}
"""Environment of each kernel family: torch's own dispatch plus oneDNN's and MKL's ceilings."""


def run_variant(out: Path, threads: int, capability: str) -> dict:
    """One demo process; its scores and wall time."""
    folder = out / f"threads{threads}-{capability}"
    env = dict(os.environ, **CAPABILITIES[capability])
    env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = str(threads)
    start = time.perf_counter()
    log = out / f"threads{threads}-{capability}.log"
    with log.open("w") as stream:
        result = subprocess.run(
            [sys.executable, "-m", "a2i.demo", "--out", str(folder)],
            env=env,
            stdout=stream,
            stderr=subprocess.STDOUT,
        )
    seconds = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"demo variant threads={threads} {capability} failed: see {log}")
    scores = json.loads((folder / "scores.json").read_text())
    return {"threads": threads, "capability": capability, "seconds": seconds, "scores": scores}


def table(rows: list[dict]) -> str:
    """Markdown: one row per variant, then the range of each score over the variants."""
    lines = [
        "| threads | kernels | LDM: own object | GAN: own object | LDM: labelled | GAN: labelled "
        "| single-source LDM / GAN | demo time |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        ldm, gan = row["scores"]["ldm"], row["scores"]["gan"]
        lines.append(
            f"| {row['threads']} | {row['capability']} | {ldm['source_accuracy']:.1%} | "
            f"{gan['source_accuracy']:.1%} | {ldm['class_accuracy']:.1%} | "
            f"{gan['class_accuracy']:.1%} | {ldm['single_source_accuracy']:.1%} / "
            f"{gan['single_source_accuracy']:.1%} | {row['seconds']:.0f} s |"
        )
    lines.append("")
    for name in ("ldm", "gan"):
        for key, what in (("source_accuracy", "own object"), ("class_accuracy", "labelled")):
            values = [row["scores"][name][key] for row in rows]
            lines.append(
                f"- {name.upper()} {what}: {min(values):.1%}–{max(values):.1%} over {len(rows)} variants"
            )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("runs/demo_range"))
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument(
        "--capabilities", nargs="+", default=list(CAPABILITIES), choices=list(CAPABILITIES)
    )
    parser.add_argument("--parallel", type=int, default=1)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    variants = [(t, c) for t in args.threads for c in args.capabilities]
    with ThreadPoolExecutor(args.parallel) as pool:
        rows = list(pool.map(lambda v: run_variant(args.out, *v), variants))
    text = table(rows)
    (args.out / "table.md").write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
