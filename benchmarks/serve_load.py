"""``a2i serve`` under load, through HTTP as a browser's requests: a hostile upload, and memory.

Starts ``a2i serve`` in a child process (what a fresh clone serves, the tiny GAN whose weights ship
with a2i; or ``--run``) and sends it requests with ``gradio_client``, the page's own API:

- ``stall``: writes a FLAC of 6 hours of 192 kHz silence (``--hours``; libsndfile's encoder, about
  half a minute), uploads it with crop "loudest" and, right after, a 4 s world clip, and prints
  when each answered, counted from the first upload. The server runs one request at a time, so
  the clip waits for the FLAC: before reads were bounded the FLAC took 45-48 s.
- ``memory``: draws ``--requests`` uploads in a row (world clips, each a new file, 4 images) and
  prints the server's resident memory (VmRSS) every ``--every`` requests, to see whether it levels
  off::

    python benchmarks/serve_load.py stall
    python benchmarks/serve_load.py memory --requests 3000 --every 250
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import soundfile as sf
from gradio_client import Client, handle_file

from a2i.data.manifest import read_manifest
from a2i.serve.models import SHIPPED_LABEL
from a2i.synth.materialize import materialize_world
from a2i.synth.world import SyntheticWorld

STARTED = "a2i serve: "


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_server(port: int, runs: list[str], folder: Path) -> subprocess.Popen:
    """``a2i serve`` in a child process, once it printed its start line."""
    command = [sys.executable, "-m", "a2i.commands.serve", "--port", str(port)]
    command += [*(f"--run={run}" for run in runs), "--models_dir", str(folder / "none")]
    environment = {**os.environ, "PYTHONPATH": os.getcwd()}
    server = subprocess.Popen(
        command, cwd=folder, env=environment, stdout=subprocess.PIPE, text=True
    )
    for line in server.stdout:
        if line.startswith(STARTED):
            print(line.strip(), flush=True)
            threading.Thread(target=server.stdout.read, daemon=True).start()  # drain
            return server
    raise SystemExit(f"a2i serve exited with {server.wait()} before serving")


def resident_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def draw_arguments(sound: Path, label: str, crop: str = "start", images: int = 4) -> list:
    """The Draw tab's inputs: sound, model, images, seed, crop, gain, mix (file, gain), image
    (file, weight), prompt, guidance, steps."""
    return [handle_file(str(sound)), label, images, 0, crop, 0, None, 0, None, 0.5, "", 0, 0]


def write_silence(path: Path, hours: float, rate: int = 192000) -> Path:
    """Mono 16-bit FLAC of silence, a minute at a time."""
    minute = np.zeros(60 * rate, np.int16)
    with sf.SoundFile(path, "w", rate, 1, "PCM_16") as out:
        for _ in range(round(hours * 60)):
            out.write(minute)
    return path


def stall(client: Client, label: str, folder: Path, sounds: list[Path], hours: float) -> None:
    began = time.perf_counter()
    silence = write_silence(folder / "silence.flac", hours)
    size = silence.stat().st_size / 1e6
    print(
        f"wrote {hours:g} h of 192 kHz silence as FLAC: {size:.1f} MB in "
        f"{time.perf_counter() - began:.0f} s",
        flush=True,
    )
    client.predict(*draw_arguments(sounds[0], label), api_name="/generate")  # warm-up
    began = time.perf_counter()
    hostile = client.submit(*draw_arguments(silence, label, "loudest"), api_name="/generate")
    time.sleep(0.05)  # queued behind it
    other = client.submit(*draw_arguments(sounds[1], label), api_name="/generate")
    answers = {}
    for name, job in (("silence", hostile), ("clip", other)):
        status = job.result(timeout=600)[-1]
        answers[name] = time.perf_counter() - began
        print(f"{name}: answered {answers[name]:.2f} s after the first upload: {status}")


def memory(client: Client, label: str, sounds: list[Path], server: int, every: int) -> None:
    print(f"requests  RSS (MB)  s/request  (server pid {server})")
    print(f"{0:8d}  {resident_mb(server):8.0f}", flush=True)
    began = time.perf_counter()
    for count, sound in enumerate(sounds, 1):
        client.predict(*draw_arguments(sound, label), api_name="/generate")
        if count % every == 0:
            per_request = (time.perf_counter() - began) / every
            print(f"{count:8d}  {resident_mb(server):8.0f}  {per_request:9.3f}", flush=True)
            began = time.perf_counter()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=["stall", "memory"])
    parser.add_argument("--run", action="append", default=[], help="as `a2i serve --run`")
    parser.add_argument("--hours", type=float, default=6.0, help="stall: length of the FLAC")
    parser.add_argument("--requests", type=int, default=3000, help="memory: uploads drawn")
    parser.add_argument("--every", type=int, default=250, help="memory: RSS printed each N")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        count = args.requests if args.mode == "memory" else 2
        materialize_world(
            folder,
            sizes={"test": count},
            world=SyntheticWorld(image_size=32, clip_seconds=4.0),
            audio_only=True,
        )
        sounds = [folder / record.audio for record in read_manifest(folder)]
        port = free_port()
        server = start_server(port, args.run, folder)
        try:
            client = Client(f"http://127.0.0.1:{port}/", verbose=False)
            label = args.run[0] if args.run else SHIPPED_LABEL
            if args.mode == "stall":
                stall(client, label, folder, sounds, args.hours)
            else:
                memory(client, label, sounds, server.pid, args.every)
        finally:
            server.terminate()
            server.wait()


if __name__ == "__main__":
    main()
