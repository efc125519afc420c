"""AudioToken in the synthetic world, with and without the classification loss, scored by ``a2i test``.

Trains the tiny AudioToken Embedder (``configs/tiny/audiotoken.yaml``; frozen tiny BEATs and tiny
text-to-image LDM from ``a2i/assets/tiny/``) once with L = L_LDM + λ_l1‖e‖₁ (eq. 8) and once with
+ λ_CL·L_CL (eq. 9, λ_CL = 0.01), evaluates both with ``configs/eval/world.yaml`` and prints one
table; pass Sound2Vision's report folders with ``--with`` to put them side by side::

    OMP_NUM_THREADS=1 python benchmarks/audiotoken_world.py --out runs/audiotoken \\
        --with runs/loss_ablation/gan_nce_l2 runs/loss_ablation/ldm_nce_l2
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from compare import compare_runs  # benchmarks/compare.py, beside this script
from sound2vision_world import evaluate, train

CONFIG = "configs/tiny/audiotoken.yaml"
RUNS = {
    "AudioToken": [],
    "AudioToken + L_CL": ["--model.init_args.lambda_cl", "0.01"],
}


def main() -> None:
    """Train, evaluate and print the comparison table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/audiotoken")
    parser.add_argument("--with", dest="others", nargs="*", default=[], help="more report folders")
    parser.add_argument("--table", help="also write the comparison table to this Markdown file")
    args = parser.parse_args()
    out = Path(args.out)
    rows = []
    for title, run_args in RUNS.items():
        start = time.time()
        name = "audiotoken_cl" if run_args else "audiotoken"
        ckpt = train(out, name, CONFIG, run_args)
        rows.append((title, evaluate(out, name, CONFIG, run_args, ckpt)))
        print(f"{title}: {time.time() - start:.0f} s", flush=True)
    compare_runs(rows, args.others, args.table)


if __name__ == "__main__":
    main()
