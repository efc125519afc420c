"""Where ``make demo``'s training time goes, and its speed-ups measured A/B in the same run.

Two measurements, both alternating the arms so that a busy machine slows them alike:

``step``
    One stage-2 step of the tiny Sound2Vision configs (the demo's ``a2i fit``) split into its
    parts — rendering the world's batch, the audio front end, the audio trunk, the frozen image
    encoder, loss, backward, optimizer — in process CPU seconds and wall seconds, for the
    changes one at a time (:data:`STEP_ARMS`): one torch thread (the other core renders in the
    loader worker, :func:`a2i.demo.cores_beside_loader`), the audio trunk channels-last
    (``SpectrogramResNet``'s layout), freed memory kept by glibc
    (:func:`a2i.demo.keep_freed_memory`).
``fit``
    Whole ``a2i fit`` processes of ``--steps`` steps: the old settings (world rendered in the
    training process, NCHW trunk, default threads and allocator) against the shipped config with
    the demo's process settings, and against it without each of those settings: seconds per
    step (mean after the first 5), and the processes' user and system CPU seconds (loader
    workers included).

Usage (a few minutes on 2 cores)::

    python benchmarks/demo_profile.py step --repeats 3
    python benchmarks/demo_profile.py fit --steps 40 --repeats 2
"""

from __future__ import annotations

import argparse
import ctypes
import functools
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import lightning as L
import torch
import yaml

CONFIGS = {"gan": "configs/tiny/sound2vision_gan.yaml", "ldm": "configs/tiny/sound2vision_ldm.yaml"}
STEP_TIMES = "STEP_TIMES "
WARMUP_STEPS = 5


def build(config: str) -> tuple[L.LightningModule, L.LightningDataModule]:
    """The model and datamodule of a run config, as ``a2i fit`` builds them."""
    from jsonargparse import ArgumentParser

    from a2i.data.base import AudioVisualDataModule
    from a2i.methods.base import A2IMethod

    parser = ArgumentParser()
    parser.add_subclass_arguments(A2IMethod, "model")
    parser.add_subclass_arguments(AudioVisualDataModule, "data")
    with open(config, encoding="utf-8") as handle:
        sections = yaml.safe_load(handle)
    torch.manual_seed(0)
    built = parser.instantiate(
        parser.parse_object({"model": sections["model"], "data": sections["data"]})
    )
    return built.model, built.data


class Sections:
    """Accumulates process CPU and wall seconds per named part of a step."""

    def __init__(self) -> None:
        self.cpu: dict[str, float] = defaultdict(float)
        self.wall: dict[str, float] = defaultdict(float)

    def time(self, name: str, work):
        cpu, wall = time.process_time(), time.perf_counter()
        result = work()
        self.cpu[name] += time.process_time() - cpu
        self.wall[name] += time.perf_counter() - wall
        return result


def set_allocator(kept: bool) -> None:
    """glibc's malloc as the demo sets it (freed memory kept) or with 128 KiB thresholds."""
    from a2i.demo import GLIBC_M_MMAP_THRESHOLD, GLIBC_M_TRIM_THRESHOLD, keep_freed_memory

    if kept:
        keep_freed_memory()
        return
    libc = ctypes.CDLL("libc.so.6")
    libc.mallopt(GLIBC_M_MMAP_THRESHOLD, 128 * 1024)
    libc.mallopt(GLIBC_M_TRIM_THRESHOLD, 128 * 1024)


STEP_ARMS = (
    ("before", "nchw", 2, False),
    ("before, 1 thread", "nchw", 1, False),
    ("+ channels-last", "channels_last", 1, False),
    ("+ freed memory kept (after)", "channels_last", 1, True),
    ("after, 2 threads", "channels_last", 2, True),
)
"""(name, trunk layout, torch threads, glibc keeps freed memory): the old settings, then one
change at a time on one thread, then the new settings at torch's default 2 threads."""


def step_parts(config: str, repeats: int, batches: int) -> None:
    """Print the per-part table of one stage-2 step for each of :data:`STEP_ARMS`."""
    from a2i.data.base import collate_batch
    from a2i.interfaces import AUDIO, IMAGE

    model, data = build(config)
    dataset = data.dataset("train")
    size = data.batch_size
    torch.set_num_threads(1)
    rendered = [
        collate_batch([dataset[i] for i in range(b * size, (b + 1) * size)]) for b in range(batches)
    ]
    optimizer = model.configure_optimizers()
    model.train()
    encoder = model.audio_encoder
    results = {arm[0]: Sections() for arm in STEP_ARMS}
    system = dict.fromkeys(results, 0.0)
    for repeat in range(repeats + 1):  # the first round warms caches and is not counted
        for name, layout, threads, kept in STEP_ARMS:
            torch.set_num_threads(threads)
            set_allocator(kept)
            fmt = torch.channels_last if layout == "channels_last" else torch.contiguous_format
            encoder.trunk.to(memory_format=fmt)
            parts = results[name] if repeat else Sections()
            before = resource.getrusage(resource.RUSAGE_SELF).ru_stime
            for index, batch in enumerate(rendered):
                first = index * size + batches * size * repeat
                parts.time(
                    "render batch",
                    lambda first=first: collate_batch(
                        [dataset[i % len(dataset)] for i in range(first, first + size)]
                    ),
                )
                spectrogram = parts.time(
                    "audio front end", lambda b=batch: encoder.front_end(b[AUDIO])
                )
                audio_z = parts.time(
                    "audio trunk + projection",
                    lambda s=spectrogram: encoder.project(encoder.trunk(s)),
                )
                image_z = parts.time(
                    "image encoder", lambda b=batch: model.image_features(b[IMAGE])
                )
                loss = parts.time("loss", lambda a=audio_z, v=image_z: model.loss(a, v))
                parts.time("backward", loss.backward)
                parts.time("optimizer", lambda: (optimizer.step(), optimizer.zero_grad()))
            if repeat:
                system[name] += resource.getrusage(resource.RUSAGE_SELF).ru_stime - before
    count = repeats * batches
    print(f"\n{config}: seconds per step of {size} (mean of {count}), CPU / wall")
    names = list(results[STEP_ARMS[0][0]].cpu)
    print("| part | " + " | ".join(results) + " |")
    print("|---" * (len(results) + 1) + "|")
    for row in [*names, "step without render", "total"]:
        keys = names if row == "total" else [n for n in names if n != "render batch"]
        keys = keys if row in ("total", "step without render") else [row]
        cells = []
        for parts in results.values():
            cpu = sum(parts.cpu[k] for k in keys) / count
            wall = sum(parts.wall[k] for k in keys) / count
            cells.append(f"{cpu:.3f} / {wall:.3f}")
        print(f"| {row} | " + " | ".join(cells) + " |")
    cells = [f"{system[name] / count:.3f}" for name in results]
    print("| of the total CPU: system | " + " | ".join(cells) + " |")


class StepTimer(L.Callback):
    """Prints the wall seconds between successive training-batch starts (``fit`` arms)."""

    def __init__(self) -> None:
        super().__init__()
        self.starts: list[float] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.starts.append(time.perf_counter())

    def on_train_end(self, trainer, pl_module) -> None:
        gaps = [b - a for a, b in zip(self.starts, self.starts[1:], strict=False)]
        print(STEP_TIMES + json.dumps(gaps[WARMUP_STEPS:]), flush=True)


FIT_ARMS = (
    "before",
    "after",
    "after, torch's default threads",
    "after, glibc's default allocator",
)


def fit_arm(arm: str, argv: list[str]) -> None:
    """Run ``a2i fit`` in this process as one of :data:`FIT_ARMS`.

    ``before`` restores the old settings (NCHW trunk, world rendered in the training process,
    torch's default threads, glibc's default allocator); ``after`` is the shipped config with
    the demo's process settings (:func:`a2i.demo.keep_freed_memory`,
    :func:`a2i.demo.cores_beside_loader`); the last two leave one of those settings out.
    """
    from a2i.cli import main as a2i
    from a2i.demo import cores_beside_loader, keep_freed_memory
    from a2i.encoders.audio import resnet_spectrogram

    args = ["fit", *argv, "--trainer.callbacks+=demo_profile.StepTimer"]
    if arm == "before":
        init = resnet_spectrogram.SpectrogramResNet.__init__

        @functools.wraps(init)  # jsonargparse reads the wrapped signature
        def nchw_init(self, *args, **kwargs) -> None:
            init(self, *args, **kwargs)
            self.trunk.to(memory_format=torch.contiguous_format)

        resnet_spectrogram.SpectrogramResNet.__init__ = nchw_init
        a2i([*args, "--data.init_args.num_workers", "0"])
        return
    if arm != "after, glibc's default allocator":
        keep_freed_memory()
    if arm == "after, torch's default threads":
        a2i(args)
        return
    with cores_beside_loader(1):  # the shipped tiny configs' num_workers
        a2i(args)


def whole_fits(config: str, steps: int, repeats: int) -> None:
    """Alternate ``before``/``after`` fit processes; print s/step and the processes' CPU split."""
    rows: dict[str, list[dict[str, float]]] = defaultdict(list)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parent)}
    with tempfile.TemporaryDirectory() as logs:
        for repeat in range(repeats):
            for arm in FIT_ARMS:
                args = [
                    "--config",
                    config,
                    "--trainer.max_steps",
                    str(steps),
                    "--trainer.val_check_interval",
                    str(steps),
                    "--trainer.limit_val_batches",
                    "1",
                    "--trainer.num_sanity_val_steps",
                    "0",
                    "--trainer.enable_progress_bar",
                    "false",
                    "--trainer.logger.init_args.save_dir",
                    logs,
                    "--trainer.logger.init_args.name",
                    f"{FIT_ARMS.index(arm)}-{repeat}",
                ]
                before = resource.getrusage(resource.RUSAGE_CHILDREN)
                start = time.perf_counter()
                done = subprocess.run(
                    [sys.executable, __file__, "_fit", arm, "--", *args],
                    env=env,
                    capture_output=True,
                    text=True,
                    check=True,
                )
                wall = time.perf_counter() - start
                after = resource.getrusage(resource.RUSAGE_CHILDREN)
                line = next(x for x in done.stdout.splitlines() if x.startswith(STEP_TIMES))
                gaps = json.loads(line.removeprefix(STEP_TIMES))
                rows[arm].append(
                    {
                        "step": statistics.mean(gaps),
                        "wall": wall,
                        "user": after.ru_utime - before.ru_utime,
                        "sys": after.ru_stime - before.ru_stime,
                    }
                )
                print(f"  {arm} #{repeat}: {rows[arm][-1]}", flush=True)
    print(f"\n{config}, {steps} steps, {repeats} alternating runs per arm (mean)")
    print("| arm | s/step | process wall s | user CPU s | system CPU s | system share |")
    print("|---|---|---|---|---|---|")
    for arm, runs in rows.items():
        mean = {k: statistics.mean(r[k] for r in runs) for k in runs[0]}
        share = mean["sys"] / (mean["user"] + mean["sys"])
        print(
            f"| {arm} | {mean['step']:.3f} | {mean['wall']:.1f} | {mean['user']:.1f} | "
            f"{mean['sys']:.1f} | {share:.0%} |"
        )


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "_fit":  # one arm, in its own process
        fit_arm(sys.argv[2], sys.argv[4:])
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("part", choices=["step", "fit"])
    parser.add_argument("--config", default="gan", choices=list(CONFIGS))
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--batches", type=int, default=2, help="step: batches per repeat")
    parser.add_argument("--steps", type=int, default=40, help="fit: training steps per run")
    args = parser.parse_args()
    print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at start")
    if args.part == "step":
        step_parts(CONFIGS[args.config], args.repeats, args.batches)
    else:
        whole_fits(CONFIGS[args.config], args.steps, args.repeats)
    print(f"load average {os.getloadavg()[0]:.1f} at the end")


if __name__ == "__main__":
    main()
