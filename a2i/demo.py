"""``make demo``: tiny Sound2Vision in the synthetic world, end to end on a CPU.

What it runs is exactly what a user would type (printed as it goes):

1. ``a2i world`` writes 200 test clips (wav + manifest) of the synthetic world;
2. ``a2i fit`` trains stage 2 (the audio encoder) once, with the tiny GAN config; stage 1 (image
   encoder, generators, VAE) ships as small a2i-trained weights (see ``configs/tiny/*stage1*``).
   Both tiny generators draw from the same frozen image encoder's features, so one stage-2 audio
   encoder serves both (Sound2Vision §3: stage 2 only learns that feature space); its trained
   parts are exported to ``stage2/`` (``audio_encoder.safetensors`` and ``state.safetensors``, the
   running image-feature norm the LDM's conditions take their length from);
3. ``a2i predict`` turns the folder of test wavs into images + grid + manifest: the GAN from the
   training run, the LDM from ``configs/ldm.yaml`` (the tiny LDM config naming the stage-2 weights);
4. the world's judge scores the images: the fraction whose main object is one of the sound's own
   objects (a two-source mix has two), and the stricter labelled one (:mod:`a2i.synth.probes`
   says why the demo quotes the first).

Everything goes to a new folder ``runs/demo/<timestamp>``; nothing is overwritten. ``a2i serve``
offers the newest demo's run and config (``a2i/serve/models.py``).
"""

from __future__ import annotations

import argparse
import json
import shlex
import time
from pathlib import Path

import yaml

from a2i.cli import main as a2i
from a2i.commands.next_steps import (
    WORLD_EVALUATION,
    command,
    executable,
    shown_path,
    test_command,
)
from a2i.data.manifest import read_manifest
from a2i.io_utils import atomic_write_text
from a2i.pipelines.loading import runs_inside
from a2i.synth.judge import WorldJudge
from a2i.synth.probes import score_prediction_folder

VARIANTS = {
    "ldm": "configs/tiny/sound2vision_ldm.yaml",
    "gan": "configs/tiny/sound2vision_gan.yaml",
}
TRAINED_WITH = "gan"
"""The config stage 2 trains with (its validation draws with the GAN: cheaper than sampling)."""
STAGE2_STEPS = 450
STAGE2_SCHEDULE = [
    "--model.init_args.lr_schedule",
    "cosine",
    "--model.init_args.warmup_steps",
    "30",
]
"""a2i's choice for the demo, not the paper's (Sound2Vision trains at a constant rate): at a
constant rate the judge's score of a 400-step encoder moved with the thread count (72-92%), and
800 steps did not fit the demo's time; a cosine decay to zero over 450 steps draws every
single-source test sound's object (``benchmarks/demo_range.py`` measures the range)."""


def run(args: list[str]) -> None:
    """Run one ``a2i`` command in-process, echoing it first."""
    print(f"\n$ a2i {shlex.join(args)}", flush=True)
    a2i(args)


def latest(folder: Path, pattern: str) -> Path:
    """The newest file matching ``pattern`` under ``folder``."""
    return max(folder.rglob(pattern), key=lambda p: p.stat().st_mtime)


def config_with_stage2(variant: str, export: Path, out: Path) -> Path:
    """``out/configs/<variant>.yaml``: the variant's tiny config reading the stage-2 export."""
    config = yaml.safe_load(Path(VARIANTS[variant]).read_text())
    config["model"]["init_args"]["pretrained"] = str(export)
    path = out / "configs" / f"{variant}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    header = f"# {VARIANTS[variant]} with the audio encoder trained by this demo's stage 2.\n"
    path.write_text(header + yaml.safe_dump(config, sort_keys=False))
    return path


def demo(out: Path, variants: list[str], test_clips: int) -> dict[str, dict[str, float]]:
    """Run the demo into ``out``; returns the judge's scores per variant (also ``scores.json``)."""
    world = out / "world"
    run(
        [
            "world",
            "--out",
            str(world),
            "--train",
            "0",
            "--val",
            "0",
            "--test",
            str(test_clips),
            "--image_size",
            "32",
            "--audio_only",
        ]
    )
    audio_dir = world / "audio" / "test"
    records = read_manifest(world)
    labels = {str(Path(r.audio).relative_to("audio/test")): r.label for r in records}
    sources = {str(Path(r.audio).relative_to("audio/test")): r.meta["sources"] for r in records}
    logs, stage2 = out / "logs", out / "stage2"
    run(
        [
            "fit",
            "--config",
            VARIANTS[TRAINED_WITH],
            "--trainer.max_steps",
            str(STAGE2_STEPS),
            *STAGE2_SCHEDULE,
            "--model.init_args.export_dir",
            str(stage2),
            "--trainer.logger.init_args.save_dir",
            str(logs),
            "--trainer.logger.init_args.name",
            TRAINED_WITH,
        ]
    )
    judge = WorldJudge.load()
    scores = {}
    for name in variants:
        if name == TRAINED_WITH:
            run_dir = logs / name
            model = ["--config", str(latest(run_dir, "config.yaml"))]
            model += ["--ckpt_path", str(latest(run_dir, "last.ckpt"))]
        else:
            model = [
                "--config",
                str(config_with_stage2(name, stage2, out)),
            ]
        images = out / "images" / name
        run(["predict", *model, "--audio_dir", str(audio_dir), "--output_dir", str(images)])
        scores[name] = score_prediction_folder(str(images), labels, judge, sources)
    atomic_write_text(out / "scores.json", json.dumps(scores, indent=2) + "\n")
    return scores


def main(argv: list[str] | None = None) -> None:
    """Entry point of ``python -m a2i.demo`` (``make demo``)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=f"runs/demo/{time.strftime('%Y%m%d-%H%M%S')}")
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--test_clips", type=int, default=200)
    args = parser.parse_args(argv)
    out = Path(args.out)
    if out.exists():
        raise SystemExit(f"a2i demo: '{out}' exists; choose another --out")
    start = time.time()
    scores = demo(out, args.variants, args.test_clips)
    print(f"\nDemo finished in {time.time() - start:.0f} s. Results in {out}/")
    for name, score in scores.items():
        print(
            f"  {name}: judge: {score['source_accuracy']:.1%} of {score['images']} test sounds "
            f"drew their own object (chance {score['chance']:.0%}); the labelled one (of a "
            f"two-source mix, the louder): {score['class_accuracy']:.1%}. Images in "
            f"{out / 'images' / name}/ (grid.png)"
        )
    print("\nNext, runnable as printed (any folder of sounds works as --audio_dir):")
    for line in next_commands(out, args.variants):
        print(f"  {line}")


def next_commands(out: Path, variants: list[str]) -> list[str]:
    """Test the trained run, draw again with each variant, serve them, see the training curves."""
    (run_dir,) = runs_inside(out / "logs" / TRAINED_WITH)
    checkpoint = run_dir / "checkpoints" / "last.ckpt"
    config = run_dir / "config.yaml"
    lines = [test_command(config, checkpoint, WORLD_EVALUATION)]
    for name in variants:
        model = ["--ckpt_path", checkpoint] if name == TRAINED_WITH else []
        model_config = config if name == TRAINED_WITH else out / "configs" / f"{name}.yaml"
        lines.append(
            command(
                "predict",
                "--config",
                model_config,
                *model,
                "--audio_dir",
                out / "world" / "audio" / "test",
                "--output_dir",
                out / "images" / f"{name}_again",
            )
        )
    tensorboard = executable("tensorboard", "tensorboard.main")
    logs = shlex.quote(shown_path(out / "logs"))
    return [*lines, command("serve"), f"{tensorboard} --logdir {logs}"]


if __name__ == "__main__":
    main()
