"""Measure in the synthetic world what the papers show only as figures.

Sound2Vision §5.1 shows that a louder input draws a bigger object, that a mix of two sounds draws
both sources, and (in the world's terms) that reverberation moves the scene indoors. Here each claim
is a number the judge computes on images a method generated from rendered audio:

- :func:`class_accuracy`: fraction of generated images whose main judged class is the input's.
- :func:`volume_probe`: Spearman ρ and slope between input gain and the judged size of the source.
- :func:`mixture_probe`: fraction of two-source inputs whose image shows both sources.
- :func:`reverb_probe`: fraction of reverberant inputs judged indoor (and dry ones outdoor).

A method only needs ``generate_from_audio(waveform (B, T), seeds) -> (B, S, 3, H, W)`` and
``clip_seconds``; every method of a2i provides them, so the numbers compare across methods.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from scipy.stats import spearmanr
from torch import Tensor

from a2i.audio.io import fit_length
from a2i.image import read_image
from a2i.synth.judge import WorldJudge
from a2i.synth.world import SceneSpec, SyntheticWorld

GAIN_SWEEP_DB = (-20.0, -15.0, -10.0, -5.0, 0.0, 5.0, 10.0)


class AudioToImage(Protocol):
    """What the probes need from a method."""

    clip_seconds: float

    def generate_from_audio(self, waveform: Tensor, seeds: list[int]) -> Tensor:
        """Images ``(B, S, 3, H, W)`` for waveforms ``(B, T)``."""


@torch.no_grad()
def generate(
    method: AudioToImage,
    world: SyntheticWorld,
    specs: Sequence[SceneSpec],
    seed: int = 0,
    batch_size: int = 50,
) -> Tensor:
    """Render each scene's audio and generate one image per scene ``(N, 3, H, W)``."""
    num_samples = round(method.clip_seconds * world.sample_rate)
    device = next(method.parameters()).device if hasattr(method, "parameters") else "cpu"
    images = []
    for start in range(0, len(specs), batch_size):
        audio = torch.stack(
            [
                fit_length(world.render_audio(s), num_samples, random_crop=False)
                for s in specs[start : start + batch_size]
            ]
        )
        images.append(method.generate_from_audio(audio.to(device), [seed])[:, 0].cpu())
    return torch.cat(images)


def solo_specs(world: SyntheticWorld, count: int, split: str = "test") -> list[SceneSpec]:
    """``count`` single-source scenes of ``split`` (mixtures skipped), in index order."""
    specs, index = [], 0
    while len(specs) < count:
        spec = world.sample_spec(split, index)
        index += 1
        if len(spec.sources) == 1:
            specs.append(spec)
    return specs


def class_accuracy(judge: WorldJudge, images: Tensor, labels: Tensor) -> float:
    """Fraction of images whose main judged class equals the label."""
    report = judge.judge(images)
    return float((report.main_class.cpu() == labels.cpu()).float().mean())


def volume_probe(
    method: AudioToImage,
    world: SyntheticWorld,
    judge: WorldJudge,
    count: int = 30,
    gains_db: Sequence[float] = GAIN_SWEEP_DB,
) -> dict[str, Any]:
    """Same sound at several gains → judged size of its source (Sound2Vision §5.1, Fig. 8)."""
    bases = [replace(s, reverb=False) for s in solo_specs(world, count)]
    gains, sizes = [], []
    per_gain = {}
    for gain in gains_db:
        specs = [replace(s, gains_db=(gain,)) for s in bases]
        report = judge.judge(generate(method, world, specs))
        label = torch.tensor([s.sources[0] for s in specs])
        size = report.sizes.cpu().gather(1, label[:, None])[:, 0]
        per_gain[gain] = float(size.mean())
        gains += [gain] * len(specs)
        sizes += size.tolist()
    rho = spearmanr(gains, sizes).statistic
    slope = float(np.polyfit(gains, sizes, 1)[0])
    return {"spearman_rho": float(rho), "slope_per_db": slope, "mean_size_by_gain": per_gain}


def mixture_probe(
    method: AudioToImage, world: SyntheticWorld, judge: WorldJudge, count: int = 100
) -> dict[str, float]:
    """Two-source mixes at equal gain → are both sources drawn? (Sound2Vision §5.1, Fig. 9)."""
    rng = np.random.default_rng(0)
    specs = []
    for base in solo_specs(world, count):
        other = int(rng.choice([c for c in range(len(world.classes)) if c != base.sources[0]]))
        specs.append(
            replace(base, sources=(base.sources[0], other), gains_db=(0.0, 0.0), reverb=False)
        )
    report = judge.judge(generate(method, world, specs))
    present = report.present.cpu()
    first = torch.tensor([present[i, s.sources[0]] for i, s in enumerate(specs)])
    second = torch.tensor([present[i, s.sources[1]] for i, s in enumerate(specs)])
    return {
        "both_present": float((first & second).float().mean()),
        "any_present": float((first | second).float().mean()),
    }


def reverb_probe(
    method: AudioToImage, world: SyntheticWorld, judge: WorldJudge, count: int = 100
) -> dict[str, float]:
    """Reverberant input → indoor background; dry input → outdoor."""
    bases = solo_specs(world, count)
    wet = judge.judge(generate(method, world, [replace(s, reverb=True) for s in bases]))
    dry = judge.judge(generate(method, world, [replace(s, reverb=False) for s in bases]))
    return {
        "reverb_indoor": float(wet.indoor.float().mean()),
        "dry_outdoor": float((~dry.indoor).float().mean()),
    }


def score_prediction_folder(
    output_dir: str, labels: dict[str, int], judge: WorldJudge
) -> dict[str, float]:
    """Judge the PNGs an ``a2i predict`` run wrote; ``labels`` maps its input keys to classes."""
    rows = [
        json.loads(line) for line in (Path(output_dir) / "manifest.jsonl").read_text().splitlines()
    ]
    rows = [r for r in rows if r["status"] == "ok" and r["input"] in labels]
    images = torch.stack([read_image(r["output"]) for r in rows])
    target = torch.tensor([labels[r["input"]] for r in rows])
    return {"images": len(rows), "class_accuracy": class_accuracy(judge, images, target)}
