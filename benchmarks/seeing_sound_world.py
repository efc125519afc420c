"""Seeing Sound in the synthetic world: stage-1 stand-ins, the audio projector, the harness, §4.5.

Four steps, each with the real CLI, each skipped when its output exists (a rerun resumes):

1. a tiny text-to-image PixArt trained on the world's scene descriptions, the stand-in for
   PixArt-α (``configs/tiny/seeing_sound_t2i.yaml``) → ``a2i/assets/tiny/pixart/``;
2. a tiny AST trained as the world's audio classifier, the stand-in for AudioSet's AST
   (``configs/tiny/seeing_sound_classifier.yaml``) → ``a2i/assets/tiny/ast/``;
3. Seeing Sound's audio projector (+ cross-attention) on the world's audio-image pairs
   (``configs/tiny/seeing_sound.yaml``), then ``a2i test`` with ``configs/eval/world.yaml``;
4. the §4.5 ablations as numbers (``benchmarks/seeing_sound_ablations.py``): one source's
   loudness varied with the other fixed → fraction of images showing each source, and how
   abrupt the transition is; two sources separated vs mixed; reverberation → indoor.

Regenerate the shipped weights (steps 1-2) with ``--regenerate_assets``; they are reused
otherwise. Put other methods' report folders beside it with ``--with``::

    OMP_NUM_THREADS=1 python benchmarks/seeing_sound_world.py --out runs/seeing_sound \\
        --table docs/results/seeing_sound.md [--regenerate_assets] [--with runs/audiotoken/...]
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import torch
from compare import compare_runs  # benchmarks/compare.py, beside this script
from seeing_sound_ablations import loudness_sweep, markdown, separated_vs_mixed
from sound2vision_world import evaluate, train

from a2i.pipelines import AudioToImagePipeline

ROOT = Path(__file__).resolve().parents[1]
ASSETS = {
    "pixart_t2i": (
        "configs/tiny/seeing_sound_t2i.yaml",
        ["a2i/assets/tiny/pixart/transformer.safetensors"],
    ),
    "ast_classifier": (
        "configs/tiny/seeing_sound_classifier.yaml",
        ["a2i/assets/tiny/ast/audio_encoder.safetensors"],
    ),
}
CONFIG = "configs/tiny/seeing_sound.yaml"
OVERWRITE = ["--model.init_args.overwrite_export", "true"]
T = TypeVar("T")


def timed(seconds: dict[str, tuple[float, float]], name: str, run: Callable[[], T]) -> T:
    """Run ``run`` and record its wall-clock and CPU seconds (the machine may be shared)."""
    wall, cpu = time.time(), time.process_time()
    result = run()
    seconds[name] = (time.time() - wall, time.process_time() - cpu)
    return result


def train_assets(out: Path, regenerate: bool, seconds: dict[str, tuple[float, float]]) -> None:
    """Steps 1-2: train and export the stand-ins unless their files exist."""
    for name, (config, files) in ASSETS.items():
        if regenerate or not all((ROOT / f).exists() for f in files):
            timed(seconds, name, lambda c=config, n=name: train(out, n, c, OVERWRITE))


def reverb_lines(report: Path) -> str:
    """The harness's reverb → indoor numbers of the report."""
    controls = json.loads((report / "metrics.json").read_text()).get("controllability", {})
    return "".join(
        f"Judged indoor for {'reverberant' if row['reverb'] else 'dry'} input: {row['indoor']:.2f}.\n"
        for row in controls.get("reverb", [])
    )


def main() -> None:
    """Train what is missing, evaluate, sweep and print the tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/seeing_sound")
    parser.add_argument("--regenerate_assets", action="store_true")
    parser.add_argument("--with", dest="others", nargs="*", default=[], help="more report folders")
    parser.add_argument("--table", help="also write the tables to this Markdown file")
    args = parser.parse_args()
    out = Path(args.out)
    seconds: dict[str, tuple[float, float]] = {}
    train_assets(out, args.regenerate_assets, seconds)
    ckpt = timed(seconds, "audio_projector", lambda: train(out, "seeing_sound", CONFIG, []))
    report = timed(seconds, "evaluation", lambda: evaluate(out, "seeing_sound", CONFIG, [], ckpt))
    for name, (wall, cpu) in seconds.items():
        print(f"{name}: {wall:.0f} s wall, {cpu:.0f} s CPU", flush=True)
    pipeline = AudioToImagePipeline.from_run(ckpt)
    with torch.no_grad():
        sweep, separation = loudness_sweep(pipeline), separated_vs_mixed(pipeline)
    section = markdown("Seeing Sound, true pairs", sweep, separation) + "\n" + reverb_lines(report)
    compare_runs([("Seeing Sound", report)], args.others, args.table)
    if args.table:
        with Path(args.table).open("a", encoding="utf-8") as handle:
            handle.write("\n### Seeing Sound §4.5 in the world\n\n" + section)
    print(section)


if __name__ == "__main__":
    main()
