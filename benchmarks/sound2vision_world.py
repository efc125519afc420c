"""Sound2Vision in the synthetic world: every variant × loss trained, then scored by ``a2i test``.

For each generator variant (GAN, LDM) and each alignment loss of the paper's Table 2 (``l2``,
``nce_cosine`` = L_nce, ``nce_l2`` = L_total), stage 2 is trained with the real CLI on the tiny
config (a finished run is reused), then ``a2i test`` with ``configs/eval/world.yaml`` writes the
full evaluation report of :mod:`a2i.callbacks.evaluation` (judge, CLIP R@k, AIS/IIS/AIC, FID/KID/IS
on the world feature network, control sweeps, modality gap). The reports are collected into one
side-by-side table by ``benchmarks/compare.py``.

Usage (about 10 minutes of training and 3 of evaluation per model on one CPU core)::

    OMP_NUM_THREADS=1 python benchmarks/sound2vision_world.py --out runs/loss_ablation \\
        --table docs/results/sound2vision_losses.md
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from compare import compare_runs  # benchmarks/compare.py, beside this script

from a2i.cli import main as a2i

CONFIGS = {"gan": "configs/tiny/sound2vision_gan.yaml", "ldm": "configs/tiny/sound2vision_ldm.yaml"}
LOSSES = ("l2", "nce_cosine", "nce_l2")
EVAL_CONFIG = "configs/eval/world.yaml"


def train(out: Path, name: str, config: str, args: list[str]) -> Path:
    """``a2i fit`` (or reuse a finished run) and return the run's last checkpoint."""
    logs = out / name
    done = sorted(logs.rglob("last.ckpt"))
    if done:
        return done[-1]
    a2i(
        [
            "fit",
            "--config",
            config,
            *args,
            "--trainer.logger.init_args.save_dir",
            str(out),
            "--trainer.logger.init_args.name",
            name,
            "--trainer.enable_progress_bar",
            "false",
        ]
    )
    return sorted(logs.rglob("last.ckpt"))[-1]


def evaluate(
    out: Path,
    name: str,
    config: str,
    args: list[str],
    ckpt: Path,
    eval_config: str = EVAL_CONFIG,
    version: str = "eval",
    kind: str = "evaluation",
) -> Path:
    """``a2i test`` with ``eval_config`` (or reuse its report); returns the report folder.

    The report lands in ``out/name/version/kind`` (``kind``: the callback's folder name,
    ``evaluation`` or ``downstream``).
    """
    report = out / name / version / kind
    if (report / "metrics.json").exists():
        return report
    a2i(
        [
            "test",
            "--config",
            config,
            "--config",
            eval_config,
            *args,
            "--ckpt_path",
            str(ckpt),
            "--trainer.logger.init_args.save_dir",
            str(out),
            "--trainer.logger.init_args.name",
            name,
            "--trainer.logger.init_args.version",
            version,
            "--trainer.enable_progress_bar",
            "false",
        ]
    )
    return report


def main() -> None:
    """Train, evaluate and print the comparison table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/loss_ablation")
    parser.add_argument("--variants", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    parser.add_argument("--losses", nargs="+", default=list(LOSSES), choices=LOSSES)
    parser.add_argument("--table", help="also write the comparison table to this Markdown file")
    parser.add_argument(
        "--fit_args",
        nargs=argparse.REMAINDER,
        default=[],
        help="extra 'a2i fit' arguments, e.g. --trainer.max_steps 100",
    )
    args = parser.parse_args()
    out = Path(args.out)
    rows = []
    for variant in args.variants:
        for loss in args.losses:
            start = time.time()
            name, loss_args = f"{variant}_{loss}", ["--model.init_args.loss", loss]
            ckpt = train(out, name, CONFIGS[variant], loss_args + args.fit_args)
            report = evaluate(out, name, CONFIGS[variant], loss_args, ckpt)
            rows.append((f"{variant.upper()} {loss}", report))
            print(f"{variant}/{loss}: {time.time() - start:.0f} s", flush=True)
    compare_runs(rows, out=args.table)


if __name__ == "__main__":
    main()
