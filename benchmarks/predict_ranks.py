"""``a2i predict`` on 1 and on 2 processes (Lightning DDP on CPU): throughput of the same request.

The shipped tiny Sound2Vision GAN (no training) draws ``--files`` test clips of the synthetic
world. Each arm is the real command in a fresh process, alternating, ``--repeats`` times:

- ``1 process``: ``a2i predict --config tiny/sound2vision_gan_shipped --audio_dir … --output_dir …``;
- ``2 processes``: the same plus ``--trainer.devices 2 --trainer.strategy ddp`` (Lightning's
  launcher starts rank 1; each rank draws every second batch).

Both arms run on ``--accelerator`` (cpu by default; gpu: one GPU per process).

Every arm runs once on all the files (wall time, images per second overall) and once on ``--few``
of them (the start-up: imports, the second process's launch, the process group's set-up).
Threads: torch gets the cores divided by the processes (:func:`a2i.runtime.fit_cpu_threads`), as
a user's run would, unless ``OMP_NUM_THREADS`` is set.

Usage (minutes on 2 cores)::

    python benchmarks/predict_ranks.py --files 200 --repeats 2
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CONFIG = "tiny/sound2vision_gan_shipped"
ARMS = {
    "1 process": [],
    "2 processes": ["--trainer.devices", "2", "--trainer.strategy", "ddp"],
}


def a2i(*args: str) -> float:
    """Run ``a2i ARGS`` as a fresh process; its wall seconds (it must succeed)."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "a2i", *args], check=True, env=env, capture_output=True)
    return time.perf_counter() - start


def predict(audio_dir: Path, out: Path, extra: list[str]) -> float:
    shutil.rmtree(out, ignore_errors=True)
    args = ["predict", "--config", CONFIG, "--audio_dir", str(audio_dir), "--output_dir", str(out)]
    return a2i(*args, *extra)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=200, help="world test clips drawn")
    parser.add_argument("--few", type=int, default=8, help="clips of the start-up run")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--accelerator", default="cpu", help="cpu or gpu (one per process)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        world = root / "world"
        sizes = ["--train", "0", "--val", "0", "--test", str(args.files)]
        a2i("world", "--out", str(world), *sizes, "--audio_only")
        files = sorted(world.rglob("*.wav"))[: args.files]
        few = root / "few"
        few.mkdir()
        for path in files[: args.few]:
            shutil.copy(path, few / path.name)
        every = root / "all"
        every.mkdir()
        for path in files:
            shutil.copy(path, every / path.name)
        times: dict[str, dict[str, list[float]]] = {arm: {"all": [], "few": []} for arm in ARMS}
        for _ in range(args.repeats):
            for arm, extra in ARMS.items():
                flags = [*extra, "--trainer.accelerator", args.accelerator]
                times[arm]["all"].append(predict(every, root / "out", flags))
                times[arm]["few"].append(predict(few, root / "out", flags))
    where = f"{os.cpu_count()} cores" if args.accelerator == "cpu" else args.accelerator
    print(f"a2i predict, {CONFIG}, {len(files)} clips, {where}, median of {args.repeats}")
    print(f"| processes | wall s, {len(files)} clips | images/s | wall s, {args.few} clips |")
    print("|---|---|---|---|")
    for arm in ARMS:
        whole = statistics.median(times[arm]["all"])
        start = statistics.median(times[arm]["few"])
        print(f"| {arm} | {whole:.1f} | {len(files) / whole:.1f} | {start:.1f} |")


if __name__ == "__main__":
    main()
