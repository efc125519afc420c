"""Throughput of ``a2i prepare`` and of reading its shards, against a training step.

Writes a VGGSound-layout fixture from the synthetic world (10 s clips, 64 px, h264 + AAC),
prepares it with 0, 1 and 2 worker processes (clips/s), then times loading batches of 16 from
the shards (4 s crops, 32 px, as ``configs/tiny/sound2vision_gan.yaml`` trains) against one
training step of that tiny Sound2Vision GAN, and says whether loading keeps up::

    OMP_NUM_THREADS=1 python benchmarks/prepare_throughput.py --clips 48
"""

from __future__ import annotations

import argparse
import multiprocessing
import shutil
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import torch
import yaml

from a2i.data.frames import MidFrame
from a2i.data.vggsound import VGGSoundDataModule
from a2i.synth.video_datasets import VGGSOUND_LABELS, write_vggsound_fixture

MODEL_CONFIG = "configs/tiny/sound2vision_gan.yaml"


def datamodule(root: Path, prepared: Path, workers: int, loaders: int) -> VGGSoundDataModule:
    return VGGSoundDataModule(
        str(root),
        prepared=str(prepared),
        classes=list(VGGSOUND_LABELS),
        val_fraction=0.1,
        frame_selector=MidFrame(),
        shard_size=8,
        prepare_workers=workers,
        batch_size=16,
        num_workers=loaders,
        clip_seconds=4.0,
        image_size=32,
    )


def step_seconds(batch: dict) -> float:
    """Median time of one optimisation step of the tiny Sound2Vision GAN (configs/tiny)."""
    from jsonargparse import ArgumentParser

    from a2i.methods.base import A2IMethod

    parser = ArgumentParser()
    parser.add_subclass_arguments(A2IMethod, "model")
    with open(MODEL_CONFIG, encoding="utf-8") as handle:
        section = yaml.safe_load(handle)["model"]
    model = parser.instantiate(parser.parse_object({"model": section})).model
    optimizer = model.configure_optimizers()
    timings = []
    for _ in range(5):
        start = time.perf_counter()
        loss = model.training_step(batch, 0)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        timings.append(time.perf_counter() - start)
    return sorted(timings)[len(timings) // 2]


def warm_forkserver() -> None:
    """Start prepare's worker server once, so pool timings exclude its one-time import."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["a2i.data.prepare"])
    with ProcessPoolExecutor(1, mp_context=context) as pool:
        pool.submit(int, 0).result()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--clips", type=int, default=48, help="clips in the fixture (x 1/6 per split)"
    )
    parser.add_argument("--workers", type=int, nargs="*", default=[0, 1, 2])
    parser.add_argument("--fps", type=float, default=25.0, help="frame rate of the fixture videos")
    parser.add_argument("--size", type=int, default=128, help="frame side of the fixture videos")
    args = parser.parse_args()
    torch.manual_seed(0)
    work = Path(tempfile.mkdtemp(prefix="a2i_prepare_bench_"))
    try:
        per_label = max(1, args.clips // len(VGGSOUND_LABELS))
        start = time.perf_counter()
        write_vggsound_fixture(
            work / "raw",
            per_class=(per_label - per_label // 4, per_label // 4),
            fps=args.fps,
            image_size=args.size,
        )
        print(
            f"fixture: {per_label * 3} clips of 10 s, {args.fps:g} fps, {args.size} px written in "
            f"{time.perf_counter() - start:.1f} s"
        )
        warm_forkserver()
        rows = []
        for workers in args.workers:
            data = datamodule(work / "raw", work / f"prepared_{workers}", workers, 0)
            report = data.prepare_data(progress=False)
            rows.append(
                (
                    f"prepare, {workers} worker(s)",
                    report.processed,
                    report.seconds,
                    f"{report.clips_per_second:.2f} clips/s",
                )
            )
        prepared = work / f"prepared_{args.workers[-1]}"
        batch = None
        for loaders in (0, 2):
            data = datamodule(work / "raw", prepared, 0, loaders)
            loader = data.train_dataloader()
            start = time.perf_counter()
            batches = list(loader)
            count, batch = len(batches), batches[0]
            seconds = time.perf_counter() - start
            rows.append(
                (
                    f"load batches of 16, {loaders} loader worker(s)",
                    count,
                    seconds,
                    f"{seconds / max(count, 1):.3f} s/batch",
                )
            )
        step = step_seconds(batch)
        rows.append(
            ("tiny Sound2Vision GAN step (batch 16, 4 s, 32 px)", 1, step, f"{step:.3f} s/step")
        )
        print("\n| measurement | items | seconds | rate |\n|---|---|---|---|")
        for name, items, seconds, rate in rows:
            print(f"| {name} | {items} | {seconds:.2f} | {rate} |")
        load = rows[-2][2] / max(rows[-2][1], 1)
        verdict = "keeps up" if load <= step else "is slower than the step: add loader workers"
        print(f"\nloading with 2 workers ({load:.3f} s/batch) {verdict} (step {step:.3f} s)")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
