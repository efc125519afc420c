"""Process settings of a tiny CPU fit: glibc/torch defaults vs a2i's (``a2i/runtime.py``), side by side.

Each arm is a whole ``a2i fit`` process of the demo's tiny Sound2Vision-GAN stage 2 (batch 64, one
loader worker rendering the world), timed by the kernel (wall, user and system CPU, peak RSS):

1. **defaults**: ``A2I_KEEP_DEFAULTS=1`` — glibc's adaptive mmap/trim thresholds, one torch thread
   per core beside the loader worker;
2. **allocator only**: the same with ``MALLOC_MMAP_THRESHOLD_``/``MALLOC_TRIM_THRESHOLD_`` set;
3. **a2i**: as shipped (thresholds set by ``tune_allocator``, torch threads = cores − workers).

The arms alternate over ``--repeats`` rounds; start-up and validation are in every arm's figure, so
the step time is from the difference between ``--steps`` and a 1-step run of the same arm::

    python benchmarks/fit_threads.py --steps 100 --repeats 2
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from loaded_machine import timed_run  # benchmarks/loaded_machine.py, beside this script

CONFIG = "configs/tiny/sound2vision_gan.yaml"
ARMS = {
    "defaults": {"A2I_KEEP_DEFAULTS": "1"},
    "allocator only": {
        "A2I_KEEP_DEFAULTS": "1",
        "MALLOC_MMAP_THRESHOLD_": str(256 << 20),
        "MALLOC_TRIM_THRESHOLD_": str(512 << 20),
    },
    "a2i": {},
}
CLEARED = (
    "A2I_KEEP_DEFAULTS",
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "MALLOC_MMAP_THRESHOLD_",
    "MALLOC_TRIM_THRESHOLD_",
    "MALLOC_TOP_PAD_",
)


def fit(steps: int, env: dict[str, str], work: Path) -> dict[str, float]:
    """One ``a2i fit`` process: wall seconds, user and system CPU seconds, peak RSS in GiB."""
    environment = {k: v for k, v in os.environ.items() if k not in CLEARED} | env
    save_dir = tempfile.mkdtemp(dir=work)
    start = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-m", "a2i", "fit", "--config", CONFIG,
         "--trainer.max_steps", str(steps), "--trainer.val_check_interval", str(steps),
         "--trainer.logger.init_args.save_dir", save_dir, "--trainer.enable_progress_bar", "false"],
        env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    _, status, usage = os.wait4(process.pid, 0)  # this child's own rusage (workers included)
    wall = time.perf_counter() - start
    if status != 0:
        raise SystemExit(f"a2i fit failed (status {status}) with {env}")
    return {
        "wall": wall,
        "user": usage.ru_utime,
        "sys": usage.ru_stime,
        "rss": usage.ru_maxrss / 2**20,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    results: dict[str, list[dict[str, float]]] = {name: [] for name in ARMS}
    start_up: dict[str, list[float]] = {name: [] for name in ARMS}
    with timed_run(prefix="a2i_fit_threads_") as work:
        for run in range(args.repeats):
            for name, env in ARMS.items():
                start_up[name].append(fit(1, env, work)["wall"])
                results[name].append(fit(args.steps, env, work))
                row = results[name][-1]
                print(f"  round {run} {name}: {row['wall']:.1f} s wall, sys {row['sys']:.1f} s")
        print(
            f"\n{args.steps} steps of {CONFIG} (batch 64, 1 loader worker), mean of {args.repeats}"
        )
        print("| settings | wall s | s/step | user CPU s | system CPU s | peak RSS GiB |")
        print("|---|---|---|---|---|---|")
        for name, rows in results.items():
            mean = {key: statistics.mean(row[key] for row in rows) for key in rows[0]}
            per_step = (mean["wall"] - statistics.mean(start_up[name])) / (args.steps - 1)
            print(
                f"| {name} | {mean['wall']:.1f} | {per_step:.3f} | {mean['user']:.1f} | "
                f"{mean['sys']:.1f} | {mean['rss']:.2f} |"
            )


if __name__ == "__main__":
    main()
