"""Write the synthetic world to disk in the manifest format every a2i dataset uses.

The result is an ordinary dataset directory (wav + png + ``manifest.jsonl`` + ``classes.json``,
see :mod:`a2i.data.manifest`), so the file-based pipeline (``ManifestDataModule``, ``a2i
predict`` on a folder of wavs, video preparation from mp4) can be exercised end to end offline.
Each record's ``meta`` holds the scene factors (sources, gains, reverb, sizes, positions), so
evaluation code can read the ground truth without re-rendering.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from a2i.audio.io import write_audio
from a2i.data.manifest import ManifestRecord, write_manifest
from a2i.errors import ConfigError
from a2i.image import write_png
from a2i.synth.render_image import render_layers
from a2i.synth.video import encode_video
from a2i.synth.world import SPLITS, SceneLayout, SceneSpec, SyntheticWorld

VIDEO_DRIFT = 0.08
"""In an mp4, each object slides from 0.08 left of its place to 0.08 right over the clip."""


def materialize_world(
    out_dir: str | Path,
    *,
    sizes: dict[str, int],
    world: SyntheticWorld | None = None,
    overwrite: bool = False,
    mp4: bool = False,
    video_fps: int = 8,
    audio_only: bool = False,
) -> Path:
    """Render ``sizes[split]`` scenes per split and write them as a manifest dataset.

    Layout: ``audio/<split>/<index>.wav`` (16-bit PCM), ``images/<split>/<index>.png``,
    optionally ``videos/<split>/<index>.mp4``, plus ``manifest.jsonl`` and ``classes.json``.
    Keys are ``<split>/<index>``, the same keys :class:`~a2i.synth.datamodule.SyntheticWorldDataModule`
    gives the same scenes.

    Args:
        out_dir: Destination directory; it must be new or empty unless ``overwrite``.
        sizes: Number of scenes per split (``train``, ``val``, ``test``).
        world: The world to render (default ``SyntheticWorld()``: 64 px, 4 s clips, seed 0).
        overwrite: Allow writing into a non-empty directory and replacing files.
        mp4: Also write each clip as an mp4 (h264 video of the object moving, AAC sound).
        video_fps: Frame rate of the mp4 files.
        audio_only: Write no images (``image`` is null in the manifest), e.g. prediction inputs.

    Returns:
        The manifest path.
    """
    out = Path(out_dir)
    unknown = sorted(set(sizes) - set(SPLITS))
    if unknown:
        raise ConfigError(f"materialize_world sizes: unknown split(s) {unknown}; use {SPLITS}")
    if any(count < 0 for count in sizes.values()):
        raise ConfigError(f"materialize_world sizes must be >= 0 per split (got {sizes})")
    if video_fps < 1:
        raise ConfigError(f"materialize_world video_fps must be >= 1 (got {video_fps})")
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"'{out}' exists and is not a directory")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise FileExistsError(
            f"'{out}' is not empty; choose a new folder or pass overwrite=True (--overwrite)"
        )
    world = world or SyntheticWorld()
    records = []
    for split, count in sizes.items():
        for index in range(count):
            spec = world.sample_spec(split, index)
            records.append(
                _write_scene(world, spec, out, split, index, overwrite, mp4, video_fps, audio_only)
            )
    return write_manifest(out, records, world.classes, overwrite=overwrite)


def _write_scene(
    world: SyntheticWorld,
    spec: SceneSpec,
    out: Path,
    split: str,
    index: int,
    overwrite: bool,
    mp4: bool,
    video_fps: int,
    audio_only: bool,
) -> ManifestRecord:
    name = f"{index:06d}"
    sample = world.render(spec)
    audio = f"audio/{split}/{name}.wav"
    write_audio(out / audio, sample.audio, world.sample_rate, overwrite=overwrite)
    image = None
    if not audio_only:
        image = f"images/{split}/{name}.png"
        write_png(out / image, sample.image, overwrite=overwrite)
    meta = {
        "sources": list(spec.sources),
        "gains_db": list(spec.gains_db),
        "reverb": spec.reverb,
        "sizes": [round(s, 6) for s in sample.sizes],
        "positions": [[round(x, 6), round(y, 6)] for x, y in sample.positions],
        "seed": spec.seed,
    }
    if mp4:
        video = f"videos/{split}/{name}.mp4"
        write_video(out / video, world, spec, sample.audio, video_fps, overwrite=overwrite)
        meta["video"] = video
    return ManifestRecord(
        key=f"{split}/{name}",
        split=split,
        audio=audio,
        image=image,
        label=sample.label,
        caption=sample.caption,
        meta=meta,
    )


def video_frames(world: SyntheticWorld, spec: SceneSpec, fps: int) -> torch.Tensor:
    """Frames ``(N, 3, H, W)`` of a scene whose objects slide left to right over the clip."""
    layout: SceneLayout = world.layout(spec)
    count = max(1, round(world.clip_seconds * fps))
    frames = []
    for shift in np.linspace(-VIDEO_DRIFT, VIDEO_DRIFT, count):
        moved = tuple(
            replace(o, centre=(o.centre[0] + float(shift), o.centre[1])) for o in layout.objects
        )
        layers = render_layers(
            moved, layout.indoor, layout.horizon, layout.brightness, world.image_size
        )
        frames.append(torch.from_numpy(layers.compose()).float())
    return torch.stack(frames)


def write_video(
    path: Path,
    world: SyntheticWorld,
    spec: SceneSpec,
    audio: torch.Tensor,
    fps: int,
    *,
    overwrite: bool = False,
) -> None:
    """Encode a scene as an mp4 (h264 yuv420p video, mono AAC audio), atomically."""
    encode_video(
        path,
        video_frames(world, spec, fps),
        fps=fps,
        audio=audio,
        sample_rate=world.sample_rate,
        overwrite=overwrite,
    )
