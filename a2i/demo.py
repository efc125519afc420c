"""``make demo``: tiny Sound2Vision in the synthetic world, end to end on a CPU.

What it runs is exactly what a user would type (printed as it goes):

1. ``a2i world`` writes 200 test clips (wav + manifest) of the synthetic world;
2. ``a2i fit`` trains stage 2 (the audio encoder) of the tiny LDM and GAN variants; stage 1 (image
   encoder, generators, VAE) ships as small a2i-trained weights (see ``configs/tiny/*stage1*``);
3. ``a2i predict`` turns the folder of test wavs into images + grid + manifest;
4. the world's judge scores the images: fraction whose main object is the sound's class.

Everything goes to a new folder ``runs/demo/<timestamp>``; nothing is overwritten.
"""

from __future__ import annotations

import argparse
import shlex
import time
from pathlib import Path

from a2i.cli import main as a2i
from a2i.data.manifest import read_manifest
from a2i.synth.judge import WorldJudge
from a2i.synth.probes import score_prediction_folder
from a2i.synth.world import WORLD_CLASSES

VARIANTS = {
    "ldm": "configs/tiny/sound2vision_ldm.yaml",
    "gan": "configs/tiny/sound2vision_gan.yaml",
}


def run(args: list[str]) -> None:
    """Run one ``a2i`` command in-process, echoing it first."""
    print(f"\n$ a2i {shlex.join(args)}", flush=True)
    a2i(args)


def latest(folder: Path, pattern: str) -> Path:
    """The newest file matching ``pattern`` under ``folder``."""
    return max(folder.rglob(pattern), key=lambda p: p.stat().st_mtime)


def demo(out: Path, variants: list[str], test_clips: int) -> dict[str, float]:
    """Run the demo into ``out``; returns the judge's class accuracy per variant."""
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
    labels = {str(Path(r.audio).relative_to("audio/test")): r.label for r in read_manifest(world)}
    judge = WorldJudge.load()
    scores = {}
    for name in variants:
        logs = out / "logs"
        run(
            [
                "fit",
                "--config",
                VARIANTS[name],
                "--trainer.logger.init_args.save_dir",
                str(logs),
                "--trainer.logger.init_args.name",
                name,
            ]
        )
        config, ckpt = latest(logs / name, "config.yaml"), latest(logs / name, "last.ckpt")
        images = out / "images" / name
        run(
            [
                "predict",
                "--config",
                str(config),
                "--ckpt_path",
                str(ckpt),
                "--audio_dir",
                str(audio_dir),
                "--output_dir",
                str(images),
                "--trainer.logger.init_args.save_dir",
                str(out / "predict_logs"),
            ]
        )
        scores[name] = score_prediction_folder(str(images), labels, judge)["class_accuracy"]
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
    chance = 1.0 / len(WORLD_CLASSES)
    print(f"\nDemo finished in {time.time() - start:.0f} s. Results in {out}/")
    for name, accuracy in scores.items():
        print(
            f"  {name}: images in {out / 'images' / name}/ (grid.png); judge: "
            f"{accuracy:.1%} of {args.test_clips} test sounds drew their own object "
            f"(chance {chance:.0%})"
        )
    print(f"  TensorBoard: tensorboard --logdir {out / 'logs'}")


if __name__ == "__main__":
    main()
