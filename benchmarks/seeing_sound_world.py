"""Seeing Sound in the synthetic world: stage-1 stand-ins, the audio projector, the harness, §4.5.

Four steps, each with the real CLI, each skipped when its output exists (a rerun resumes):

1. a tiny text-to-image PixArt trained on the world's scene descriptions, the stand-in for
   PixArt-α (``configs/tiny/seeing_sound_t2i.yaml``) → ``a2i/assets/tiny/pixart/``;
2. a tiny AST trained as the world's audio classifier, the stand-in for AudioSet's AST
   (``configs/tiny/seeing_sound_classifier.yaml``) → ``a2i/assets/tiny/ast/``;
3. Seeing Sound's audio projector (+ cross-attention) on the world's audio-image pairs
   (``configs/tiny/seeing_sound.yaml``), then ``a2i test`` with ``configs/eval/world.yaml``;
4. the §4.5 claims as numbers: both sources drawn for a 0 dB mixture; the per-source loudness
   sweep (first minus second source, −20…+20 dB, split evenly between the two so both stay in
   the world's gain range) → fraction of images showing each source, and how abrupt the
   transition is; reverberation → indoor.

Regenerate the shipped weights (steps 1-2) with ``--regenerate_assets``; they are reused
otherwise. Put other methods' report folders beside it with ``--with``::

    OMP_NUM_THREADS=1 python benchmarks/seeing_sound_world.py --out runs/seeing_sound \\
        --table docs/results/seeing_sound.md [--regenerate_assets] [--with runs/audiotoken/...]
"""

from __future__ import annotations

import argparse
import itertools
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import torch
from compare import compare_runs  # benchmarks/compare.py, beside this script
from sound2vision_world import evaluate, train

from a2i.pipelines import AudioToImagePipeline
from a2i.synth.controllability import ControlSweeps, solo_specs
from a2i.synth.datamodule import SyntheticWorldDataModule
from a2i.synth.judge import WorldJudge

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
LOUDNESS_SWEEP_DB = (-20.0, -15.0, -10.0, -5.0, 0.0, 5.0, 10.0, 15.0, 20.0)
SCENES = 40
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


def loudness_sweep(pipeline: AudioToImagePipeline) -> dict[str, object]:
    """Step 4: P(first drawn), P(second drawn) per loudness difference, and the steepest step."""
    world = SyntheticWorldDataModule(image_size=32, clip_seconds=pipeline.model.clip_seconds).world
    sweeps = ControlSweeps(world, WorldJudge.load(), scenes=SCENES, mix_ratios_db=LOUDNESS_SWEEP_DB)
    rows = sweeps.mixture(pipeline, solo_specs(world, SCENES), gather=lambda tensor: tensor)
    first = [row["first_present"] for row in rows]
    steps = [after - before for before, after in itertools.pairwise(first)]
    return {
        "rows": rows,
        "first_present_change": first[-1] - first[0],
        "steepest_5db_step": max(steps, key=abs),
        "steepest_step_at_db": LOUDNESS_SWEEP_DB[steps.index(max(steps, key=abs))],
    }


def markdown(sweep: dict[str, object], report: Path) -> str:
    """The §4.5 table: loudness sweep rows, then the harness's mixture and reverb numbers."""
    metrics = json.loads((report / "metrics.json").read_text())
    controls = metrics.get("controllability", {})
    lines = [
        "| first − second (dB) | first drawn | second drawn | both drawn |",
        "|---|---|---|---|",
    ]
    for row in sweep["rows"]:
        lines.append(
            f"| {row['ratio_db']:+.0f} | {row['first_present']:.2f} | "
            f"{row['second_present']:.2f} | {row['both_present']:.2f} |"
        )
    lines.append("")
    lines.append(
        f"P(first drawn) changes by {sweep['first_present_change']:+.2f} over 40 dB; the steepest "
        f"5 dB step ({sweep['steepest_step_at_db']:+.0f} → "
        f"{sweep['steepest_step_at_db'] + 5:+.0f} dB) changes it by {sweep['steepest_5db_step']:+.2f}."
    )
    for row in controls.get("reverb", []):
        kind = "reverberant" if row["reverb"] else "dry"
        lines.append(f"Judged indoor for {kind} input: {row['indoor']:.2f}.")
    return "\n".join(lines) + "\n"


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
        sweep = loudness_sweep(pipeline)
    section = markdown(sweep, report)
    compare_runs([("Seeing Sound", report)], args.others, args.table)
    if args.table:
        with Path(args.table).open("a", encoding="utf-8") as handle:
            handle.write("\n### Seeing Sound §4.5 in the world\n\n" + section)
    print(section)


if __name__ == "__main__":
    main()
