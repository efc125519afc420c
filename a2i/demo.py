"""``make demo``: tiny Sound2Vision in the synthetic world, end to end on a CPU.

What it runs is exactly what a user would type (printed as it goes):

1. ``a2i world`` writes 200 test clips (wav + manifest) of the synthetic world;
2. ``a2i fit`` trains stage 2 (the audio encoder) once and exports it: stage 1 (image encoder,
   generators, VAE) ships as small a2i-trained weights (see ``configs/tiny/*stage1*``), and the
   tiny GAN and LDM were both trained on the same tiny image encoder's features, so one audio
   encoder aligned to that space serves both generators (Sound2Vision §3.1: stage 2 sees the
   image encoder only; the generator is frozen and plays no part in the loss);
3. ``a2i predict`` turns the folder of test wavs into images + grid + manifest, once per
   generator, each reading the exported audio encoder;
4. the world's judge scores the images: fraction whose main object is the sound's class.

Everything goes to a new folder ``runs/demo/<timestamp>``; nothing is overwritten.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import os
import shlex
import time
from collections.abc import Iterator
from pathlib import Path

import torch
import yaml

from a2i.cli import main as a2i
from a2i.data.manifest import read_manifest
from a2i.synth.judge import WorldJudge
from a2i.synth.probes import score_prediction_folder
from a2i.synth.world import WORLD_CLASSES

VARIANTS = {
    "ldm": "configs/tiny/sound2vision_ldm.yaml",
    "gan": "configs/tiny/sound2vision_gan.yaml",
}


SHARED_PARTS = ("audio_encoder", "image_encoder")
"""What stage 2 trains and aligns to: the variants must configure them alike to share it."""

GLIBC_M_TRIM_THRESHOLD, GLIBC_M_MMAP_THRESHOLD = -1, -3
KEEP_FREED_BYTES = 1 << 30


def keep_freed_memory() -> bool:
    """Let glibc reuse freed tensor memory instead of returning it to the system at every step.

    Tensors above glibc's mmap threshold (at most 32 MB) get fresh pages from the kernel on
    every allocation, and each page faults in zeroed: the tiny audio encoder's 100 MB
    activations made ~40% of a training step's CPU time system time (160k page faults per step,
    ``benchmarks/demo_profile.py``). Raising the mmap and trim thresholds keeps that memory in
    the process, the remedy PyTorch's CPU performance guide reaches with jemalloc/tcmalloc.
    Returns False where the C library is not glibc (nothing changed).
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    return bool(
        libc.mallopt(GLIBC_M_MMAP_THRESHOLD, KEEP_FREED_BYTES)
        and libc.mallopt(GLIBC_M_TRIM_THRESHOLD, 2 * KEEP_FREED_BYTES)
    )


@contextlib.contextmanager
def cores_beside_loader(loader_workers: int) -> Iterator[int]:
    """Within the block, torch has one intra-op thread per core the loader workers leave free.

    Each DataLoader worker renders batches on a core of its own; more torch threads than the
    remaining cores make OpenMP threads spin and wait on descheduled siblings (on a busy 2-core
    machine a step at 2 threads cost 3.7 times the CPU time of 1 thread,
    ``benchmarks/demo_profile.py step``). Yields the thread count; torch's own is restored after.
    """
    before = torch.get_num_threads()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    threads = max(1, (cores or 1) - loader_workers)
    torch.set_num_threads(threads)
    try:
        yield threads
    finally:
        torch.set_num_threads(before)


def loader_workers(configs: list[str]) -> int:
    """The DataLoader workers of the first config, once the configs are checked to share stage 2.

    Raises:
        ValueError: The variants configure the audio or image encoder differently (stage 2
            could then not be shared).
    """
    loaded = [yaml.safe_load(Path(config).read_text(encoding="utf-8")) for config in configs]
    parts = [{k: c["model"]["init_args"][k] for k in SHARED_PARTS} for c in loaded]
    if any(p != parts[0] for p in parts):
        raise ValueError(f"{', '.join(configs)} differ in {' or '.join(SHARED_PARTS)}")
    return int(loaded[0]["data"]["init_args"].get("num_workers", 0))


def run(args: list[str]) -> None:
    """Run one ``a2i`` command in-process, echoing it first."""
    print(f"\n$ a2i {shlex.join(args)}", flush=True)
    a2i(args)


def demo(out: Path, variants: list[str], test_clips: int) -> dict[str, float]:
    """Run the demo into ``out``; returns the judge's class accuracy per variant."""
    configs = [VARIANTS[name] for name in variants]
    workers = loader_workers(configs)
    keep_freed_memory()
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
    stage2 = out / "stage2"
    with cores_beside_loader(workers):
        run(
            [
                "fit",
                "--config",
                configs[0],
                "--model.init_args.export_dir",
                str(stage2),
                "--trainer.logger.init_args.save_dir",
                str(out / "logs"),
                "--trainer.logger.init_args.name",
                "stage2",
            ]
        )
    judge = WorldJudge.load()
    scores = {}
    for name in variants:
        images = out / "images" / name
        run(
            [
                "predict",
                "--config",
                VARIANTS[name],
                "--model.init_args.audio_encoder.init_args.pretrained",
                str(stage2 / "audio_encoder.safetensors"),
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
