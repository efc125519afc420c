"""Throughput of ``a2i prepare`` on realistic footage, beside a bare PyAV decode of the same clips.

The clips are what VGGSound holds: 10 s of textured, moving video (a multi-scale colour texture
panned across the frame, film grain, a moving object) as H.264 (libx264 ``veryfast``, CRF 21,
High profile with B-frames, 25 fps) with stereo AAC at 44.1 kHz, written by PyAV (no ffmpeg
binary needed) in the VGGSound layout. For each frame size:

1. **where the time goes**: one process, one thread, CPU seconds per clip of each stage of the
   work — opening and probing, H.264 decoding, AAC decoding, resampling to 16 kHz mono, RGB
   conversion with resizing of the 1 fps frames, the frame selector, FLAC, JPEG and the tar —
   against ``a2i prepare``'s own per-clip CPU in process;
2. **throughput**, alternating arms over the same clips: a bare PyAV decode (every video and
   audio packet decoded, the frames at ``--frame_rate`` converted to RGB at the prepared size,
   nothing resampled or written: what ``ffmpeg -i clip -vf fps=1`` does) and ``a2i prepare``
   (MidFrame, shards of ``--shard_size``),
   both in pools of ``--workers`` processes started from a warm forkserver; the forkserver's
   one-time start (importing a2i) is reported on its own. The ratio is prepare's rate over the
   bare decode's.

Usage (a few minutes on 2 cores)::

    python benchmarks/prepare_throughput.py --clips 40 --sizes 640x360 1280x720
"""

from __future__ import annotations

import argparse
import csv
import math
import multiprocessing
import statistics
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import torch
import torch.nn.functional as F
from loaded_machine import timed_run  # benchmarks/loaded_machine.py, beside this script

FPS = 25
SECONDS = 10.0
AUDIO_RATE = 44100
LABELS = ("dog barking", "playing piano")
VGGSOUND_CLIPS = 200_000
VGGSOUND_CORES = 16


def texture(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A colour field with detail at four scales: upsampled noise octaves, ``(H, W, 3)`` uint8."""
    out = torch.zeros(1, 3, height, width)
    for scale, weight in ((64, 0.5), (16, 0.3), (4, 0.15), (1, 0.05)):
        shape = (1, 3, max(2, height // scale), max(2, width // scale))
        low = torch.from_numpy(rng.standard_normal(shape, dtype=np.float32))
        out += weight * F.interpolate(low, size=(height, width), mode="bicubic")
    out = (out - out.mean()) / out.std() * 0.22 + 0.5
    return (out.clamp(0, 1)[0].permute(1, 2, 0) * 255).to(torch.uint8).numpy()


def write_clip(path: Path, width: int, height: int, seed: int) -> None:
    """10 s of panned texture with grain and a moving square, H.264 + stereo AAC 44.1 kHz."""
    rng = np.random.default_rng(seed)
    big = texture(rng, height * 5 // 8 * 2, width * 5 // 8 * 2)  # 1.25× the frame
    grain = [rng.integers(-6, 7, (height, width, 3), dtype=np.int16) for _ in range(4)]
    count = round(SECONDS * FPS)
    t = np.arange(round(SECONDS * AUDIO_RATE)) / AUDIO_RATE
    pitch = 180 + 200 * rng.random()
    swell = 0.6 + 0.4 * np.sin(2 * np.pi * 0.7 * t)
    left = 0.2 * np.sin(2 * np.pi * pitch * t) * swell + 0.05 * rng.standard_normal(t.size)
    right = 0.2 * np.sin(2 * np.pi * 1.5 * pitch * t + 1) + 0.05 * rng.standard_normal(t.size)
    pcm = np.stack([left, right]).astype(np.float32)
    spare_y, spare_x = big.shape[0] - height, big.shape[1] - width
    side = height // 8
    with av.open(str(path), "w", format="mp4") as container:
        video = container.add_stream("libx264", rate=Fraction(FPS))
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        video.options = {"preset": "veryfast", "crf": "21"}
        audio = container.add_stream("aac", rate=AUDIO_RATE)
        audio.layout = "stereo"
        written = 0
        for index in range(count):
            s = index / count
            y = int(spare_y * (0.5 + 0.5 * math.sin(2 * math.pi * 0.8 * s)))
            x = int(spare_x * s)
            image = big[y : y + height, x : x + width].astype(np.int16) + grain[index % 4]
            cy = int(height * (0.5 + 0.3 * math.sin(4 * math.pi * s)))
            cx = int(width * (0.2 + 0.6 * s))
            image[max(0, cy - side) : cy + side, max(0, cx - side) : cx + side] = (230, 60, 40)
            frame = av.VideoFrame.from_ndarray(image.clip(0, 255).astype(np.uint8), "rgb24")
            frame.pts = index
            container.mux(video.encode(frame))
            until = pcm.shape[1] if index == count - 1 else round((index + 1) / FPS * AUDIO_RATE)
            while written < until:
                chunk = np.ascontiguousarray(pcm[:, written : written + 1024])
                sound = av.AudioFrame.from_ndarray(chunk, format="fltp", layout="stereo")
                sound.sample_rate, sound.pts = AUDIO_RATE, written
                container.mux(audio.encode(sound))
                written += chunk.shape[1]
        container.mux(video.encode())
        container.mux(audio.encode())


def write_dataset(root: Path, width: int, height: int, clips: int, workers: int) -> list[Path]:
    """``vggsound.csv`` + ``video/`` of ``clips`` clips (a quarter in test), written in a pool."""
    (root / "video").mkdir(parents=True)
    rows = []
    for index in range(clips):
        split = "test" if index % 4 == 3 else "train"
        rows.append((f"clip{index:04d}", 0, LABELS[index % len(LABELS)], split))
    with open(root / "vggsound.csv", "w", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerows(rows)
    paths = [root / "video" / f"{ytid}_{start:06d}.mp4" for ytid, start, _, _ in rows]
    with ProcessPoolExecutor(workers) as pool:
        list(pool.map(write_clip, paths, [width] * clips, [height] * clips, range(clips)))
    return paths


def prepared_size(width: int, height: int, max_side: int) -> tuple[int, int]:
    """The frame size prepare stores (longer side ``max_side``), as :mod:`a2i.build.video`."""
    scale = min(1.0, max_side / max(width, height))
    return max(1, round(width * scale)), max(1, round(height * scale))


def bare_decode(
    path: Path, frame_rate: float, max_side: int, sample_rate: int, resample: bool = True
) -> dict:
    """The reference: decode every packet, RGB-convert one frame per grid time (and resample).

    Returns CPU seconds per stage (PyAV's own calls only: demuxing and decoding is one stage
    per stream, conversion and resampling are timed around their calls).
    """
    clock = time.process_time
    stages = dict.fromkeys(("open", "video decode", "audio decode", "resample", "rgb"), 0.0)
    start = clock()
    with av.open(str(path)) as container:
        video, sound = container.streams.video[0], container.streams.audio[0]
        video.thread_type, video.thread_count = "SLICE", 1
        width, height = prepared_size(video.width, video.height, max_side)
        resampler = av.AudioResampler(format="fltp", rate=sample_rate)
        stages["open"] = clock() - start
        grid = 0.0
        for packet in container.demux(video, sound):
            start = clock()
            frames = packet.decode()
            kind = "video decode" if packet.stream is video else "audio decode"
            stages[kind] += clock() - start
            for frame in frames:
                start = clock()
                if packet.stream is video:
                    if frame.time is not None and frame.time + 1e-6 >= grid:
                        frame.to_ndarray(
                            format="rgb24", width=width, height=height, interpolation="AREA"
                        )
                        grid += 1 / frame_rate
                    stages["rgb"] += clock() - start
                elif resample:
                    for out in resampler.resample(frame):
                        out.to_ndarray().mean(axis=0)
                    stages["resample"] += clock() - start
    return stages


def bare_job(path: Path, frame_rate: float, max_side: int, sample_rate: int) -> None:
    """Pool job of the bare decode arm: decoding and the grid's RGB frames, no resampling."""
    torch.set_num_threads(1)
    bare_decode(path, frame_rate, max_side, sample_rate, resample=False)


def datamodule(root: Path, prepared: Path, args: argparse.Namespace, workers: int):
    """The VGGSound datamodule over the benchmark's clips (MidFrame, 256 px frames)."""
    from a2i.build.frames import MidFrame
    from a2i.data.vggsound import VGGSoundDataModule

    return VGGSoundDataModule(
        str(root),
        prepared=str(prepared),
        classes=list(LABELS),
        val_fraction=0.0,
        frame_selector=MidFrame(),
        frame_rate=args.frame_rate,
        frame_size=args.frame_size,
        shard_size=args.shard_size,
        prepare_workers=workers,
        clip_seconds=4.0,
        image_size=32,
    )


def stage_table(paths: list[Path], args: argparse.Namespace) -> list[tuple[str, float]]:
    """CPU seconds per clip of each stage, in this process on one thread."""
    from a2i.build.clips import VideoClip
    from a2i.build.frames import MidFrame
    from a2i.build.prepare import PrepareSettings, prepare_one
    from a2i.build.shards import encode_flac, encode_jpeg, write_shard

    torch.set_num_threads(1)
    settings = PrepareSettings(frame_rate=args.frame_rate, frame_size=args.frame_size)
    totals: dict[str, float] = {}
    prepare_cpu, selector, prepared = 0.0, MidFrame(), []
    for path in paths:
        for name, seconds in bare_decode(
            path, args.frame_rate, args.frame_size, settings.sample_rate
        ).items():
            totals[name] = totals.get(name, 0.0) + seconds
        start = time.process_time()
        clip = prepare_one(VideoClip(path.stem, str(path), "train"), settings, selector)
        prepare_cpu += time.process_time() - start
        prepared.append(clip)
        for name, work in (
            ("FLAC", lambda c=clip: encode_flac(c.audio, c.sample_rate)),
            ("JPEG", lambda c=clip: encode_jpeg(c.frame)),
        ):
            start = time.process_time()
            work()
            totals[name] = totals.get(name, 0.0) + time.process_time() - start
    with tempfile.TemporaryDirectory() as out:
        start = time.process_time()
        write_shard(Path(out), "train-00000", prepared)
        shard = time.process_time() - start
    count = len(paths)
    decode = sum(totals[k] for k in ("open", "video decode", "audio decode", "rgb"))
    rows = [(name, seconds / count) for name, seconds in totals.items()]
    rows.append(("bare decode (open, decode, rgb: the throughput arm)", decode / count))
    rows.append(("a2i: decode + select (prepare_one)", prepare_cpu / count))
    rows.append(("a2i: write_shard (FLAC + JPEG + tar)", shard / count))
    return rows


def start_forkserver() -> float:
    """Start prepare's forkserver (it imports a2i once); returns the seconds it took."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["a2i.build.prepare"])
    start = time.perf_counter()
    with ProcessPoolExecutor(1, mp_context=context) as pool:
        pool.submit(int, 0).result()
    return time.perf_counter() - start


def bare_rate(paths: list[Path], args: argparse.Namespace) -> float:
    """Clips per second of the bare decode in a fresh pool of ``--workers`` (warm forkserver)."""
    context = multiprocessing.get_context("forkserver")
    start = time.perf_counter()
    with ProcessPoolExecutor(args.workers, mp_context=context) as pool:
        jobs = [
            pool.submit(bare_job, path, args.frame_rate, args.frame_size, 16000) for path in paths
        ]
        for job in jobs:
            job.result()
    return len(paths) / (time.perf_counter() - start)


def prepare_rate(root: Path, work: Path, args: argparse.Namespace, run: int) -> float:
    """Clips per second of ``a2i prepare`` (its own report) with ``--workers`` processes."""
    data = datamodule(root, work / f"prepared_{root.name}_{run}", args, args.workers)
    report = data.prepare_data(progress=False)
    return report.clips_per_second


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=40, help="clips per frame size")
    parser.add_argument("--sizes", nargs="+", default=["640x360", "1280x720"])
    parser.add_argument("--workers", type=int, default=2, help="processes of both arms")
    parser.add_argument("--repeats", type=int, default=2, help="alternating runs per arm")
    parser.add_argument("--stage_clips", type=int, default=6, help="clips timed per stage")
    parser.add_argument("--frame_rate", type=float, default=1.0)
    parser.add_argument("--frame_size", type=int, default=256)
    parser.add_argument("--shard_size", type=int, default=4, help="small: keeps workers busy")
    args = parser.parse_args()
    with timed_run(prefix="a2i_prepare_bench_") as work:
        forkserver = start_forkserver()
        print(f"forkserver start (imports a2i once per `a2i prepare`): {forkserver:.1f} s")
        results = []
        for size in args.sizes:
            width, height = (int(v) for v in size.split("x"))
            root = work / size
            start = time.perf_counter()
            paths = write_dataset(root, width, height, args.clips, args.workers)
            megabits = sum(p.stat().st_size for p in paths) * 8 / 1e6 / (len(paths) * SECONDS)
            print(
                f"\n{size}: {len(paths)} clips written in {time.perf_counter() - start:.0f} s "
                f"({megabits:.2f} Mbit/s)"
            )
            print("| stage (CPU s per clip, 1 process, 1 thread) | seconds |\n|---|---|")
            for name, seconds in stage_table(paths[: args.stage_clips], args):
                print(f"| {name} | {seconds:.4f} |")
            bare, prepared = [], []
            for run in range(args.repeats):
                bare.append(bare_rate(paths, args))
                prepared.append(prepare_rate(root, work, args, run))
                print(f"  run {run}: bare {bare[-1]:.2f} clips/s, prepare {prepared[-1]:.2f}")
            results.append((size, statistics.mean(bare), statistics.mean(prepared)))
        print(
            f"\n{args.workers} workers, frames at {args.frame_rate:g} fps, mean of {args.repeats}"
        )
        print("| clips | bare PyAV decode | a2i prepare | ratio | VGGSound 200k on 16 cores |")
        print("|---|---|---|---|---|")
        for size, bare, prepared in results:
            per_core = prepared / args.workers
            hours = VGGSOUND_CLIPS / (per_core * VGGSOUND_CORES) / 3600
            print(
                f"| {size} | {bare:.2f} clips/s | {prepared:.2f} clips/s | "
                f"{prepared / bare:.0%} | {hours:.1f} h |"
            )


if __name__ == "__main__":
    main()
