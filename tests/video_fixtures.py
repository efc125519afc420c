"""Small video datasets in the real releases' layouts, rendered from the synthetic world.

Only the tests use them, so they live here and not in the wheel: every clip is a world scene as
an mp4 (h264 + AAC), and each fixture includes the cases the published pipelines trip over — a
truncated mp4, a clip shorter than 10 s, a video without an audio track, a listed file that is
missing, a rotated phone video, a variable and a low frame rate. Everything is seeded, so the
same call writes the same files.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from a2i.audio.io import write_audio
from a2i.synth.video import encode_video
from a2i.synth.world import SceneSpec, SyntheticWorld

VGGSOUND_LABELS = ("dog barking", "playing piano", "raining")
"""VGGSound labels the fixture uses, drawn by world classes 0, 1 and 2."""


@dataclass(frozen=True)
class ClipSpec:
    """How one fixture clip is rendered.

    Attributes:
        world_class: World class drawn and heard.
        seconds: Clip length.
        fps: Frame rate (ignored when ``times`` is given).
        visible: ``(from, to)`` seconds during which the object is on screen (None: always).
        audio: Whether the file has an audio track.
        rotation: Display rotation written into the file's metadata.
        times: Explicit frame times (variable frame rate).
        corrupt: Cut the encoded file in half.
        image_size: Frame side in pixels.
    """

    world_class: int
    seconds: float = 10.0
    fps: float = 4.0
    visible: tuple[float, float] | None = None
    audio: bool = True
    rotation: int = 0
    times: tuple[float, ...] | None = None
    corrupt: bool = False
    image_size: int = 64


def scene_clip(
    world: SyntheticWorld, spec: SceneSpec, clip: ClipSpec
) -> tuple[Tensor, Tensor, list[float]]:
    """Frames ``(N, 3, H, W)``, audio ``(T,)`` and frame times of one fixture clip."""
    layers = world.render_layers(spec)
    full = torch.from_numpy(layers.compose()).float()
    empty = torch.from_numpy(layers.background.copy()).float()
    times = list(clip.times) if clip.times else list(np.arange(0, clip.seconds, 1 / clip.fps))
    frames = []
    for t in times:
        shown = clip.visible is None or clip.visible[0] <= t < clip.visible[1]
        frames.append(full if shown else empty)
    return torch.stack(frames), world.render_audio(spec), [float(t) for t in times]


def write_clip(path: Path, world_seed: int, index: int, clip: ClipSpec) -> Path:
    """Render and encode one clip (a world of the clip's length, scene ``index`` of it)."""
    world = SyntheticWorld(
        image_size=64, clip_seconds=clip.seconds, seed=world_seed, mixture_prob=0.0
    )
    drawn = world.sample_spec("train", index)
    spec = SceneSpec(
        sources=(clip.world_class,),
        gains_db=(max(drawn.gains_db[0], -6.0),),
        reverb=drawn.reverb,
        seed=drawn.seed,
    )
    frames, audio, times = scene_clip(world, spec, clip)
    encode_video(
        path,
        frames,
        fps=clip.fps,
        times=times if clip.times else None,
        audio=audio if clip.audio else None,
        sample_rate=world.sample_rate,
        rotation=clip.rotation,
        overwrite=True,
    )
    if clip.corrupt:
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    return path


def write_vggsound_fixture(
    root: str | Path,
    per_class: tuple[int, int] = (4, 2),
    seed: int = 0,
    fps: float = 4.0,
    image_size: int = 64,
) -> dict[str, list[str]]:
    """``vggsound.csv`` + ``video/`` with ``per_class`` = (train, test) clips of 3 labels.

    Ordinary clips are 10 s at ``fps`` and ``image_size`` (benchmarks raise both towards real
    video); the special cases keep the small defaults.

    Returns the keys of the special cases: ``corrupt``, ``short``, ``no_audio``, ``missing``,
    ``rotated``, ``vfr``, ``low_fps`` and ``object_at_6s`` (object on screen only in [6, 7) s).
    """
    root = Path(root)
    rows, special = [], {}
    position = 0
    for label_index, label in enumerate(VGGSOUND_LABELS):
        for split, count in (("train", per_class[0]), ("test", per_class[1])):
            for _ in range(count):
                ytid = f"yt{position:03d}-x_{label_index}"
                rows.append((ytid, 30, label, split))
                position += 1
    cases = {
        0: ("corrupt", ClipSpec(0, corrupt=True)),
        1: ("short", ClipSpec(0, seconds=6.0)),
        2: ("no_audio", ClipSpec(0, audio=False)),
        3: ("missing", None),
        6: ("rotated", ClipSpec(1, rotation=90)),
        7: ("vfr", ClipSpec(1, times=(0.0, 0.5, 0.7, 2.0, 3.1, 5.0, 5.2, 8.0, 9.5))),
        8: ("low_fps", ClipSpec(1, fps=0.5)),
        12: ("object_at_6s", ClipSpec(2, visible=(6.0, 7.0))),
    }
    for position, (ytid, start, label, _) in enumerate(rows):
        key = f"{ytid}_{start:06d}"
        name, clip = cases.get(position, (None, ClipSpec(VGGSOUND_LABELS.index(label))))
        if clip is not None and name is None:
            clip = ClipSpec(clip.world_class, fps=fps, image_size=image_size)
        if name:
            special.setdefault(name, []).append(key)
        if clip is not None:
            write_clip(root / "video" / f"{key}.mp4", seed, position, clip)
    with (root / "vggsound.csv").open("w", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerows(rows)
    return special


def write_vegas_fixture(
    root: str | Path, per_class: int = 4, seed: int = 0
) -> dict[str, list[str]]:
    """``<class>/video/*.mp4`` for 3 VEGAS-like classes; the first Dog video is corrupt."""
    root = Path(root)
    special: dict[str, list[str]] = {}
    for world_class, name in enumerate(("Dog", "Rail_transport", "Water_flowing")):
        for index in range(per_class):
            corrupt = name == "Dog" and index == 0
            path = root / name / "video" / f"{name.lower()}{index:02d}.mp4"
            write_clip(
                path,
                seed,
                world_class * 100 + index,
                ClipSpec(world_class, seconds=4.0, corrupt=corrupt),
            )
            if corrupt:
                special.setdefault("corrupt", []).append(path.name)
    return special


def write_celebvhq_fixture(root: str | Path, clips: int = 6, seed: int = 0) -> dict[str, list[str]]:
    """``celebvhq_info.json`` + ``processed/<clip_id>.mp4``; the last clip's file is missing."""
    root = Path(root)
    entries = {}
    special: dict[str, list[str]] = {}
    for index in range(clips):
        clip_id = f"face{index:03d}_0"
        entries[clip_id] = {
            "ytb_id": f"face{index:03d}",
            "duration": {"start_sec": 0.0, "end_sec": 4.0},
            "bbox": {"top": 0, "bottom": 64, "left": 0, "right": 64},
            "attributes": {
                "appearance": [index % 2, 1 - index % 2],
                "action": [1, 0],
                "emotion": {"sep_flag": False, "labels": "neutral"},
            },
            "version": "v0.1",
        }
        if index == clips - 1:
            special.setdefault("missing", []).append(clip_id)
            continue
        write_clip(
            root / "processed" / f"{clip_id}.mp4", seed, index, ClipSpec(index % 3, seconds=4.0)
        )
    info = {
        "meta_info": {"appearance_mapping": ["young", "old"], "action_mapping": ["talk", "smile"]},
        "clips": entries,
    }
    (root / "celebvhq_info.json").write_text(json.dumps(info, indent=1))
    return special


def write_greatest_hits_fixture(root: str | Path, seed: int = 0) -> dict[str, list[str]]:
    """Two 6 s recordings as released: ``*_mic.mp4`` (no sound here), ``*_denoised.wav``, ``*_times.txt``.

    The videos carry no audio track, so a clip that reaches the model heard the wav. The second
    recording's wav is missing (``missing_audio``); ``hits`` lists each recording's hit lines.
    """
    root = Path(root)
    hits = {
        "2015-02-16-16-49-06": [
            "0.40 rock hit static",
            "0.90 rock scratch static",
            "3.10 leaf hit",
        ],
        "2015-03-02-10-11-42": ["1.00 water hit dynamic"],
    }
    world = SyntheticWorld(image_size=64, clip_seconds=6.0, seed=seed, mixture_prob=0.0)
    for index, (recording, lines) in enumerate(hits.items()):
        write_clip(
            root / f"{recording}_mic.mp4", seed, index, ClipSpec(index, seconds=6.0, audio=False)
        )
        (root / f"{recording}_times.txt").write_text("\n".join(lines) + "\n")
        if index == 0:
            spec = world.sample_spec("train", index)
            write_audio(
                root / f"{recording}_denoised.wav", world.render_audio(spec), world.sample_rate
            )
    return {"missing_audio": ["2015-03-02-10-11-42"], "hits": [str(len(v)) for v in hits.values()]}


def write_landscapes_fixture(root: str | Path, seed: int = 0) -> None:
    """``<split>/<class>/*.mp4`` for two Landscape classes (two 4 s clips each, across splits)."""
    root = Path(root)
    for world_class, name in enumerate(("fire_crackling", "waterfall_burbling")):
        for index, split in enumerate(("train", "test")):
            path = root / split / name / f"{name}_{index:03d}.mp4"
            write_clip(path, seed, world_class * 10 + index, ClipSpec(world_class, seconds=4.0))


def write_into_the_wild_fixture(root: str | Path, seed: int = 0) -> None:
    """``youtube_chunk/<video>_clip<N>.mp4``: one video cut in three 3 s clips, as split.py does."""
    root = Path(root)
    for index in range(3):
        path = root / "youtube_chunk" / f"hikeVideo01_clip{index + 1}.mp4"
        write_clip(path, seed, index, ClipSpec(index % 3, seconds=3.0))


def kill_at_second_shard(builder: str, command: str) -> str:
    """A ``python -c`` script: ``command``'s ``main`` on ``sys.argv``, SIGKILLed mid-shard.

    The ``builder`` module's second ``write_shard`` dies with its temp files written, before
    renaming them, the worst instant for a resume.
    """
    return f"""
import os, signal, sys
import {builder} as builder
from {command} import main

write_shard, written = builder.write_shard, []

def write_then_die(*args, **kwargs):
    if written:
        os.replace = lambda *_: os.kill(os.getpid(), signal.SIGKILL)
    written.append(write_shard(*args, **kwargs))

builder.write_shard = write_then_die
main(sys.argv[1:])
"""
