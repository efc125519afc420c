"""Time and peak memory of one model window from long files: read_audio_window vs read_audio.

Writes 48 kHz stereo 16-bit WAVs of the given lengths (default 10 s and 2 h, 1.4 GB) to a
temporary folder, then reads each in a fresh child process, so that each peak RSS is that
case's own: a ``--seconds`` window with :func:`read_audio_window` (each of ``--crops``), and
the whole file with :func:`read_audio`, both at ``--sample_rate``. A child that only imports a2i gives the
baseline that every case includes. Peak RSS comes from ``/usr/bin/time -v`` where present, else
from the child's own ``getrusage`` (a fresh process per case: its peak is the case's)::

    python benchmarks/long_audio.py --lengths 10 600 7200 --crops start center loudest
"""

from __future__ import annotations

import argparse
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

RATE, CHANNELS = 48000, 2


def write_wav(path: Path, seconds: int) -> Path:
    """Quiet noise, written a minute at a time so the writer's memory stays small."""
    rng = np.random.default_rng(0)
    with sf.SoundFile(path, "w", RATE, CHANNELS, "PCM_16") as out:
        for start in range(0, seconds, 60):
            frames = min(60, seconds - start) * RATE
            out.write(rng.integers(-300, 300, (frames, CHANNELS), dtype=np.int16))
    return path


def child(mode: str, path: str, sample_rate: int, seconds: float, crop: str) -> None:
    """Run one case in this process and print its read time and own peak RSS."""
    from a2i.audio.io import read_audio, read_audio_window

    began = time.perf_counter()
    if mode == "window":
        samples = read_audio_window(path, sample_rate, seconds, crop).waveform.shape[0]
    elif mode == "full":
        samples = read_audio(path, sample_rate).shape[0]
    else:
        samples = 0
    elapsed = time.perf_counter() - began
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"read_s={elapsed:.3f} samples={samples} self_peak_mb={peak_mb:.0f}")


def run_case(
    mode: str, path: Path | None, args: argparse.Namespace, crop: str = "start"
) -> dict[str, float]:
    command = [sys.executable, __file__, "--child", mode, str(path or "-")]
    command += ["--sample_rate", str(args.sample_rate), "--seconds", str(args.seconds)]
    command += ["--crops", crop]
    timer = Path("/usr/bin/time").exists()
    if timer:
        command = ["/usr/bin/time", "-v", *command]
    began = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - began
    if result.returncode != 0:
        raise SystemExit(f"{mode} {path} failed:\n{result.stderr[-2000:]}")
    fields = dict(re.findall(r"(\w+)=([\d.]+)", result.stdout))
    peak_mb = float(fields["self_peak_mb"])
    if timer:
        peak_mb = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", result.stderr)[1])
        peak_mb /= 1024
    return {"wall": wall, "read": float(fields["read_s"]), "peak": peak_mb}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lengths", type=int, nargs="+", default=[10, 7200], help="seconds")
    parser.add_argument("--seconds", type=float, default=10.0, help="window length")
    parser.add_argument("--sample_rate", type=int, default=16000)
    parser.add_argument(
        "--crops", nargs="+", default=["start"], choices=["start", "center", "loudest"]
    )
    parser.add_argument("--child", nargs=2, metavar=("MODE", "PATH"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child, args.sample_rate, args.seconds, args.crops[0])
        return

    with tempfile.TemporaryDirectory(prefix="a2i-long-audio-") as folder:
        base = run_case("imports", None, args)
        print(f"baseline (imports only): wall {base['wall']:.2f} s, peak RSS {base['peak']:.0f} MB")
        print(f"{'file':>22} {'reader':>24} {'wall s':>8} {'read s':>8} {'peak RSS MB':>12}")
        for seconds in args.lengths:
            began = time.perf_counter()
            path = write_wav(Path(folder) / f"{seconds}s.wav", seconds)
            size = f"{seconds} s, {path.stat().st_size / 1e6:.0f} MB"
            print(f"# wrote {size} in {time.perf_counter() - began:.1f} s", flush=True)
            cases = [("window", crop) for crop in args.crops] + [("full", "start")]
            for mode, crop in cases:
                case = run_case(mode, path, args, crop)
                reader = f"window {args.seconds:g} s {crop}" if mode == "window" else "full"
                print(
                    f"{size:>22} {reader:>24} {case['wall']:8.2f} {case['read']:8.2f} "
                    f"{case['peak']:12.0f}",
                    flush=True,
                )
            path.unlink()


if __name__ == "__main__":
    main()
