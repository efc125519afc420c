"""``a2i predict`` against a per-file batch-1 loop with the same weights, for each tiny method.

For the tiny Sound2Vision GAN, Sound2Vision LDM and AudioToken configs, a run is trained for one
step by ``a2i fit`` (the images' quality does not enter a speed measurement; the weights are the
same in both arms), and ``--files`` test clips of the synthetic world are written as wavs. Then,
alternating, each arm runs as a fresh process:

- ``a2i predict --config RUN/config.yaml --ckpt_path RUN/checkpoints/last.ckpt --audio_dir …
  --output_dir …`` (batches of the config's batch size, PNG + grid + manifest), once on all the
  files and once on one file (start-up + one image): its rate is the extra files over the extra
  seconds, shown only when those exceed the start-up's run-to-run spread;
- a Python loop, ``AudioToImagePipeline.from_run(RUN, batch_size=1)`` then one call and one PNG
  per file: start-up is the time from the process's launch to the loaded pipeline, the rate is
  files over the loop's seconds.

Usage (a few minutes on 2 cores)::

    python benchmarks/predict_throughput.py --files 64 --repeats 2
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from loaded_machine import timed_run  # benchmarks/loaded_machine.py, beside this script

METHODS = {
    "Sound2Vision GAN": "configs/tiny/sound2vision_gan.yaml",
    "Sound2Vision LDM": "configs/tiny/sound2vision_ldm.yaml",
    "AudioToken": "configs/tiny/audiotoken.yaml",
}
READY = "READY "
LOOP = "LOOP "


def loop_main(run: str, audio_dir: str, out: str) -> None:
    """The batch-1 arm, in its own process: prints when loaded and the loop's seconds."""
    from a2i.pipelines import AudioToImagePipeline

    pipe = AudioToImagePipeline.from_run(run, batch_size=1)
    print(READY + repr(time.time()), flush=True)
    start = time.perf_counter()
    files = sorted(Path(audio_dir).glob("*.wav"))
    for path in files:
        image = pipe(str(path), output_type="pil").images[0][0]
        image.save(Path(out) / f"{path.stem}.png")
    print(LOOP + repr(time.perf_counter() - start), flush=True)


def child(args: list[str]) -> tuple[float, str]:
    """Run this script (or ``a2i``) as a fresh process; wall seconds and its stdout."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, *args], env=env, capture_output=True, text=True, check=False
    )
    if done.returncode:
        raise RuntimeError(f"{' '.join(args[:4])} failed:\n{done.stderr[-3000:]}")
    return time.perf_counter() - start, done.stdout


def train_one_step(config: str, logs: Path, name: str) -> Path:
    """``a2i fit`` for one step; returns the run folder."""
    child(
        [
            "-m",
            "a2i",
            "fit",
            "--config",
            config,
            "--trainer.max_steps",
            "1",
            "--trainer.num_sanity_val_steps",
            "0",
            "--trainer.enable_progress_bar",
            "false",
            "--trainer.logger.init_args.save_dir",
            str(logs),
            "--trainer.logger.init_args.name",
            name,
        ]
    )
    return next((logs / name).rglob("config.yaml")).parent


def predict_cli(run: Path, audio_dir: Path, out: Path) -> float:
    """Wall seconds of one ``a2i predict`` process on every wav of ``audio_dir``."""
    seconds, _ = child(
        [
            "-m",
            "a2i",
            "predict",
            "--config",
            str(run / "config.yaml"),
            "--ckpt_path",
            str(run / "checkpoints" / "last.ckpt"),
            "--audio_dir",
            str(audio_dir),
            "--output_dir",
            str(out),
        ]
    )
    return seconds


def predict_loop(run: Path, audio_dir: Path, out: Path) -> tuple[float, float]:
    """Start-up seconds (launch → loaded pipeline) and loop seconds of the batch-1 arm."""
    out.mkdir(parents=True)
    launched = time.time()
    _, stdout = child([__file__, "_loop", str(run), str(audio_dir), str(out)])
    lines = stdout.splitlines()
    ready = float(next(x for x in lines if x.startswith(READY)).removeprefix(READY))
    loop = float(next(x for x in lines if x.startswith(LOOP)).removeprefix(LOOP))
    return ready - launched, loop


def main() -> None:
    if len(sys.argv) == 5 and sys.argv[1] == "_loop":
        loop_main(*sys.argv[2:])
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=64, help="test wavs predicted per run")
    parser.add_argument("--repeats", type=int, default=2, help="alternating runs per arm")
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    args = parser.parse_args()
    from a2i.synth.materialize import materialize_world
    from a2i.synth.world import SyntheticWorld

    with timed_run(prefix="a2i_predict_bench_") as work:
        world = work / "world"
        materialize_world(
            world, sizes={"test": args.files}, world=SyntheticWorld(image_size=32), audio_only=True
        )
        many = world / "audio" / "test"
        one = work / "one"
        one.mkdir()
        shutil.copy(sorted(many.glob("*.wav"))[0], one)
        rows = []
        for method in args.methods:
            run = train_one_step(METHODS[method], work / "logs", method.replace(" ", "_"))
            cli_many, cli_one, loop_start, loop_rate = [], [], [], []
            for repeat in range(args.repeats):
                tag = f"{method.replace(' ', '_')}_{repeat}"
                cli_many.append(predict_cli(run, many, work / f"cli_{tag}"))
                cli_one.append(predict_cli(run, one, work / f"cli1_{tag}"))
                start, loop = predict_loop(run, many, work / f"loop_{tag}")
                loop_start.append(start)
                loop_rate.append(args.files / loop)
            many_s, one_s = statistics.mean(cli_many), statistics.mean(cli_one)
            # The extra files' rate; None when they cost less than the start-up's spread.
            extra = many_s - one_s
            cli_rate = (args.files - 1) / extra if extra > 0.05 * one_s else None
            rows.append(
                (
                    method,
                    cli_rate,
                    one_s,
                    many_s,
                    statistics.mean(loop_rate),
                    statistics.mean(loop_start),
                )
            )
            print(f"  {method}: {rows[-1]}", flush=True)
        print(f"\n{args.files} files, mean of {args.repeats} alternating runs per arm")
        print(
            f"| method | a2i predict, 1 file s | a2i predict, {args.files} files s | a2i predict "
            f"images/s after start-up | batch-1 loop start-up s | batch-1 loop images/s | "
            f"{args.files} files: loop s / a2i predict s |"
        )
        print("|---|---|---|---|---|---|---|")
        for method, rate, one, total, loop, loop_startup in rows:
            shown = f"{rate:.1f}" if rate is not None else "— (within start-up noise)"
            loop_total = loop_startup + args.files / loop
            print(
                f"| {method} | {one:.1f} | {total:.1f} | {shown} | {loop_startup:.1f} | "
                f"{loop:.2f} | {loop_total / total:.1f}× |"
            )


if __name__ == "__main__":
    main()
