"""Sound2Vision in the synthetic world: class accuracy per variant × loss, and the controls.

For each generator variant (GAN, LDM) and each alignment loss of the paper's Table 2 (``l2``,
``nce_cosine`` = L_nce, ``nce_l2`` = L_total), stage 2 is trained with the real CLI on the tiny
config, then the judge scores images generated from the test split's audio:

- class accuracy: the main judged object is the sound's class (chance = 1/10);
- with ``--controls``: Spearman ρ between input gain and judged size, the rate at which a
  two-source mix draws both sources, and the rate at which reverberant input is judged indoor.

Usage (about 4 minutes per trained model on 2 CPU cores)::

    OMP_NUM_THREADS=1 python benchmarks/sound2vision_world.py --out runs/bench_s2v --controls
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from a2i.cli import main as a2i
from a2i.methods.sound2vision import Sound2Vision
from a2i.synth.judge import WorldJudge
from a2i.synth.probes import class_accuracy, generate, mixture_probe, reverb_probe, volume_probe
from a2i.synth.world import SyntheticWorld

CONFIGS = {"gan": "configs/tiny/sound2vision_gan.yaml", "ldm": "configs/tiny/sound2vision_ldm.yaml"}
LOSSES = ("l2", "nce_cosine", "nce_l2")


def train(out: Path, variant: str, loss: str, extra: list[str]) -> Path:
    """Fit stage 2 (or reuse a finished run) and return its last checkpoint."""
    logs = out / f"{variant}_{loss}"
    done = sorted(logs.rglob("last.ckpt"))
    if done:
        return done[-1]
    a2i(
        [
            "fit",
            "--config",
            CONFIGS[variant],
            "--model.init_args.loss",
            loss,
            "--trainer.logger.init_args.save_dir",
            str(out),
            "--trainer.logger.init_args.name",
            f"{variant}_{loss}",
            "--trainer.enable_progress_bar",
            "false",
            *extra,
        ]
    )
    return sorted(logs.rglob("last.ckpt"))[-1]


def evaluate(ckpt: Path, count: int, controls: bool) -> dict:
    """Judge images generated from ``count`` test scenes (and the control probes)."""
    model = Sound2Vision.load_from_checkpoint(ckpt, map_location="cpu").eval()
    world = SyntheticWorld(image_size=model.generator.image_size, clip_seconds=4.0)
    judge = WorldJudge.load()
    specs = [world.sample_spec("test", i) for i in range(count)]
    labels = torch.tensor([s.sources[0] for s in specs])
    result = {"class_accuracy": class_accuracy(judge, generate(model, world, specs), labels)}
    if controls:
        result["volume"] = volume_probe(model, world, judge)
        result["mixture"] = mixture_probe(model, world, judge)
        result["reverb"] = reverb_probe(model, world, judge)
    return result


def main() -> None:
    """Train, judge and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/bench_sound2vision")
    parser.add_argument("--variants", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    parser.add_argument("--losses", nargs="+", default=list(LOSSES), choices=LOSSES)
    parser.add_argument("--test_scenes", type=int, default=200)
    parser.add_argument("--controls", action="store_true", help="also run the control probes")
    parser.add_argument(
        "--fit_args",
        nargs=argparse.REMAINDER,
        default=[],
        help="extra 'a2i fit' arguments, e.g. --trainer.max_steps 100",
    )
    args = parser.parse_args()
    out = Path(args.out)
    results = {}
    for variant in args.variants:
        for loss in args.losses:
            start = time.time()
            ckpt = train(out, variant, loss, args.fit_args)
            results[f"{variant}/{loss}"] = evaluate(ckpt, args.test_scenes, args.controls)
            results[f"{variant}/{loss}"]["seconds"] = round(time.time() - start)
            print(json.dumps({f"{variant}/{loss}": results[f"{variant}/{loss}"]}), flush=True)
    (out / f"results_{'_'.join(args.variants)}_{time.strftime('%Y%m%d-%H%M%S')}.json").write_text(
        json.dumps(results, indent=2)
    )

    print(f"\nJudge on {args.test_scenes} test scenes (chance 10%):")
    print(
        "| variant | loss | class accuracy | gain→size ρ | both sources | reverb→indoor | dry→outdoor |"
    )
    print("|---|---|---|---|---|---|---|")
    for key, r in results.items():
        variant, loss = key.split("/")
        rho = f"{r['volume']['spearman_rho']:.2f}" if "volume" in r else "–"
        both = f"{r['mixture']['both_present']:.0%}" if "mixture" in r else "–"
        indoor = f"{r['reverb']['reverb_indoor']:.0%}" if "reverb" in r else "–"
        outdoor = f"{r['reverb']['dry_outdoor']:.0%}" if "reverb" in r else "–"
        print(
            f"| {variant} | {loss} | {r['class_accuracy']:.1%} | {rho} | {both} | {indoor} | {outdoor} |"
        )


if __name__ == "__main__":
    main()
