"""``a2i predict`` killed at random instants, run twice at once, and on a disk that fills up.

Over a folder of ``--files`` tiny wavs, with the shipped tiny GAN (no training needed), each
scenario runs the real CLI as fresh processes and reruns until the folder is finished:

- **kills**: ``--kills`` times, a run is killed with SIGKILL at a random instant after it starts
  writing (its manifest grows): every other kill within ``--window`` seconds, the others within
  0.2 s (mostly amid the first batch's images); then it is rerun; a last run goes to the end;
- **two at once**: two runs start together into one folder, both are killed the same way, again
  ``--kills`` times; a last pair goes to the end (one writes, the other is refused or finds the
  work done);
- **full disk**: the output folder is a tmpfs of about half the size the outputs need (root
  only; skipped otherwise); the run stops at the full disk, then the tmpfs is enlarged and the
  same command rerun.

A kill "left a half batch" when, right after it, the folder held images without their rows, a
temporary file or a torn last manifest line: the state a rerun must repair. The table: kills
(processes killed: two a round when both runs of a pair were alive), reruns, half batches, the
final exit status(es), images == inputs, rows == images, temporary files left. Usage (about 6
minutes on 2 shared cores at the full size)::

    python benchmarks/predict_faults.py --files 2000 --kills 5
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "configs" / "tiny" / "sound2vision_gan_shipped.yaml"
MANIFEST = "manifest.jsonl"


@dataclass
class Outcome:
    """What one scenario did and left."""

    scenario: str
    kills: int = 0
    reruns: int = 0
    half_batches: int = 0
    final_exit: str = ""
    images: int = 0
    inputs: int = 0
    rows: int = 0
    temps: int = 0
    notes: list[str] = field(default_factory=list)


def write_inputs(folder: Path, count: int) -> Path:
    """``count`` 0.1 s tones at 16 kHz."""
    folder.mkdir(parents=True, exist_ok=True)
    t = np.arange(1600) / 16000
    for i in range(count):
        wave = 0.3 * np.sin(2 * np.pi * (100 + (i % 400) * 5) * t)
        sf.write(folder / f"clip{i:05d}.wav", wave.astype(np.float32), 16000)
    return folder


def start(inputs: Path, out: Path) -> subprocess.Popen:
    """``a2i predict`` as a fresh process."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    command = [sys.executable, "-m", "a2i", "predict", "--config", str(CONFIG)]
    command += ["--audio_dir", str(inputs), "--output_dir", str(out)]
    return subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )


def manifest_size(out: Path) -> int:
    path = out / MANIFEST
    return path.stat().st_size if path.exists() else -1


def kill_while_writing(runs: list[subprocess.Popen], out: Path, delay: float) -> int:
    """Kill ``runs`` ``delay`` seconds after the folder's manifest grows; how many were alive."""
    before = manifest_size(out)
    while any(run.poll() is None for run in runs) and manifest_size(out) == before:
        time.sleep(0.005)
    time.sleep(delay)
    killed = 0
    for run in runs:
        if run.poll() is None:
            run.send_signal(signal.SIGKILL)
            killed += 1
        run.communicate()
    return killed


def half_batch_left(out: Path) -> bool:
    """Does the folder hold images without rows, a temporary file or a torn last line?"""
    if not (out / MANIFEST).exists():
        return False
    text = (out / MANIFEST).read_text()
    if text and not text.endswith("\n"):
        return True
    rows = [json.loads(line) for line in text.splitlines() if line.strip()]
    listed = {r["output"] for r in rows if "type" not in r and r["status"] == "ok"}
    images = {p.name for p in out.glob("clip*.png")}
    return images != listed or any(p.name.endswith(".tmp") for p in out.iterdir())


def check(outcome: Outcome, inputs: Path, out: Path) -> Outcome:
    """Count what the folder holds at the end."""
    outcome.inputs = len(list(inputs.glob("*.wav")))
    outcome.images = len(list(out.glob("clip*.png")))
    records = [json.loads(line) for line in (out / MANIFEST).read_text().splitlines()]
    outputs = [r["output"] for r in records if "type" not in r and r["status"] == "ok"]
    outcome.rows = len(outputs) if len(set(outputs)) == len(outputs) else -len(outputs)
    outcome.temps = sum(p.name.endswith(".tmp") for p in out.rglob("*"))
    return outcome


def kill_delay(kill: int, window: float, rng: random.Random) -> float:
    """Seconds from the first write to the kill: alternately within ``window`` and 0.2 s."""
    return rng.uniform(0, window if kill % 2 else 0.2)


def with_kills(inputs: Path, out: Path, kills: int, window: float, rng: random.Random) -> Outcome:
    outcome = Outcome("kills")
    for kill in range(kills):
        delay = kill_delay(kill, window, rng)
        outcome.kills += kill_while_writing([start(inputs, out)], out, delay)
        outcome.half_batches += half_batch_left(out)
    final = start(inputs, out)
    _, err = final.communicate()
    outcome.reruns = kills
    outcome.final_exit = str(final.returncode)
    if final.returncode:
        outcome.notes.append(err.strip().splitlines()[-1])
    return check(outcome, inputs, out)


def two_at_once(inputs: Path, out: Path, kills: int, window: float, rng: random.Random) -> Outcome:
    outcome = Outcome("two runs at once")
    for kill in range(kills):
        pair = [start(inputs, out), start(inputs, out)]
        outcome.kills += kill_while_writing(pair, out, kill_delay(kill, window, rng))
        outcome.half_batches += half_batch_left(out)
    pair = [start(inputs, out), start(inputs, out)]
    results = [(run.pid, *run.communicate(), run.returncode) for run in pair]
    outcome.reruns = kills
    outcome.final_exit = " and ".join(str(code) for *_, code in results)
    for pid, _, err, code in results:
        (other,) = [p for p, *_ in results if p != pid]
        if code == 2 and f"(pid {other} on " in err:
            outcome.notes.append("the refused run named the other's pid")
        elif code:
            outcome.notes.append(err.strip().splitlines()[-1])
    return check(outcome, inputs, out)


def full_disk(inputs: Path, work: Path) -> Outcome:
    outcome = Outcome("full disk (tmpfs)")
    disk = work / "disk"
    disk.mkdir()
    size_kib = 2 * len(list(inputs.glob("*.wav")))  # ~4 KiB a file: half of what is needed
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size_kib}k", "tmpfs", str(disk)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode:
        outcome.notes.append(f"skipped: cannot mount a tmpfs ({mounted.stderr.strip()})")
        return outcome
    try:
        out = disk / "out"
        first = start(inputs, out)
        _, err = first.communicate()
        outcome.notes.append(f"{size_kib} KiB: exit {first.returncode}, {err.strip()!r}")
        outcome.half_batches += half_batch_left(out)
        subprocess.run(["mount", "-o", f"remount,size={8 * size_kib}k", str(disk)], check=True)
        final = start(inputs, out)
        _, err = final.communicate()
        outcome.reruns = 1
        outcome.final_exit = str(final.returncode)
        if final.returncode:
            outcome.notes.append(err.strip().splitlines()[-1])
        return check(outcome, inputs, out)
    finally:
        subprocess.run(["umount", str(disk)], check=False)


def table(outcomes: list[Outcome]) -> str:
    lines = [
        "| scenario | kills | reruns | half batches | final exit | images == inputs "
        "| rows == images | tmp left |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for o in outcomes:
        if not o.final_exit:
            lines.append(f"| {o.scenario} | skipped | | | | | | |")
            continue
        images = f"{o.images} == {o.inputs}" if o.images == o.inputs else f"{o.images} ≠ {o.inputs}"
        rows = f"{o.rows} == {o.images}" if o.rows == o.images else f"{o.rows} ≠ {o.images}"
        lines.append(
            f"| {o.scenario} | {o.kills} | {o.reruns} | {o.half_batches} | {o.final_exit} "
            f"| {images} | {rows} | {o.temps} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--files", type=int, default=2000)
    parser.add_argument("--kills", type=int, default=5)
    parser.add_argument("--window", type=float, default=4.0, help="kill within this many s")
    parser.add_argument("--seed", type=int, default=25)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory(prefix="a2i-faults-") as tmp:
        work = Path(tmp)
        inputs = write_inputs(work / "in", args.files)
        started = time.perf_counter()
        outcomes = [
            with_kills(inputs, work / "kills", args.kills, args.window, rng),
            two_at_once(inputs, work / "pair", args.kills, args.window, rng),
            full_disk(inputs, work),
        ]
        minutes = (time.perf_counter() - started) / 60
    print(table(outcomes))
    for outcome in outcomes:
        for note in outcome.notes:
            print(f"{outcome.scenario}: {note}")
    print(f"{args.files} files, {minutes:.1f} min")


if __name__ == "__main__":
    main()
