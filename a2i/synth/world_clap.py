"""A tiny CLAP for the synthetic world: the stand-in for LAION's CLAP in Seeing Sound's retrieval.

The world has no pretrained CLAP, so a2i trains one (transformers ``ClapModel``, the ``tiny``
preset of :class:`a2i.encoders.audio.clap.ClapEncoder`, 112 k parameters) on the world's
single-source sounds and their texts: the class caption ("a red circle"), followed by "in a
room" for reverberant renders, so that a concept naming a room retrieves reverberant sounds as
LAION's CLAP retrieves a church's acoustics (Seeing Sound §4.5 "Learning Acoustics"). Gains
are drawn from the world's whole range, so retrieval learns to ignore loudness.

With ten classes a batch repeats each text many times, so CLAP's pairwise InfoNCE would push
apart equal texts; the loss here scores each clip against the distinct texts of the world
(2 × 10), which is the same contrastive objective without those false negatives.

Regenerate the shipped weights (``a2i/assets/tiny/clap/world.safetensors``, float16, ~0.2 MB)::

    OMP_NUM_THREADS=2 python -m a2i.synth.world_clap --out a2i/assets/tiny/clap/world.safetensors

The shipped file (600 steps of 64 clips, seed 0): on 400 held-out world sounds the nearest of the
20 texts is right for 88.0% of the clips, its class for 100% and its room (dry or "in a room")
for 88.0%; it took 47 min of wall time on a shared 2-core machine (about 25 CPU-minutes).
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from a2i.encoders.audio.clap import ClapEncoder
from a2i.pretrained import save_module
from a2i.synth.world import WORLD_CLASSES, SceneSpec, SyntheticWorld

CLIP_SECONDS = 5.0
"""Seeing Sound's pool chunk (A.7)."""


def world_texts() -> list[str]:
    """Every text the tiny CLAP learns: each class caption, dry and "in a room"."""
    return [c.caption for c in WORLD_CLASSES] + [f"{c.caption} in a room" for c in WORLD_CLASSES]


def text_of(spec: SceneSpec) -> str:
    """The text of a single-source render."""
    caption = WORLD_CLASSES[spec.sources[0]].caption
    return f"{caption} in a room" if spec.reverb else caption


def render_sounds(world: SyntheticWorld, split: str, count: int) -> tuple[torch.Tensor, list[int]]:
    """``count`` single-source sounds of ``split`` and the index of each one's text."""
    texts = world_texts()
    waves, labels = [], []
    for index in range(count):
        spec = world.sample_spec(split, index)
        spec = SceneSpec(spec.sources[:1], spec.gains_db[:1], spec.reverb, spec.seed)
        waves.append(world.render_audio(spec))
        labels.append(texts.index(text_of(spec)))
    return torch.stack(waves), labels


@dataclass
class ClapReport:
    """Held-out accuracy of text retrieval: which text is nearest each clip."""

    text_accuracy: float
    class_accuracy: float
    room_accuracy: float
    seconds: float


@torch.no_grad()
def evaluate(clap: ClapEncoder, waves: torch.Tensor, labels: list[int]) -> ClapReport:
    """Nearest text of each clip: exact text, its class, and its room (dry / in a room)."""
    clap.eval()
    texts = clap.embed_text(world_texts())
    audio = torch.cat([clap(waves[i : i + 64]).pooled for i in range(0, len(waves), 64)])
    guess = (audio @ texts.T).argmax(dim=1)
    truth = torch.tensor(labels)
    classes = len(WORLD_CLASSES)
    return ClapReport(
        text_accuracy=(guess == truth).float().mean().item(),
        class_accuracy=(guess % classes == truth % classes).float().mean().item(),
        room_accuracy=(guess // classes == truth // classes).float().mean().item(),
        seconds=0.0,
    )


def train_world_clap(
    steps: int = 600,
    batch_size: int = 64,
    train_clips: int = 4096,
    test_clips: int = 400,
    lr: float = 2e-3,
    seed: int = 0,
) -> tuple[ClapEncoder, ClapReport]:
    """Train the tiny CLAP on world sounds; return it and its held-out report."""
    began = time.perf_counter()
    torch.manual_seed(seed)
    world = SyntheticWorld(clip_seconds=CLIP_SECONDS, seed=seed, mixture_prob=0.0)
    waves, labels = render_sounds(world, "train", train_clips)
    test_waves, test_labels = render_sounds(world, "test", test_clips)
    clap = ClapEncoder(preset="tiny", freeze=False)
    clap.train()
    optimizer = torch.optim.AdamW(clap.parameters(), lr=lr, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, lr, total_steps=steps)
    texts, targets = world_texts(), torch.tensor(labels)
    # the log-mel front end has no weights: computed once, not at every step
    parts = [clap.features(waves[i : i + 256]) for i in range(0, train_clips, 256)]
    features = {name: torch.cat([part[name] for part in parts]) for name in parts[0]}
    rng = np.random.default_rng(seed)
    for _ in range(steps):
        batch = torch.from_numpy(rng.choice(train_clips, batch_size, replace=False))
        audio = clap.embed_features({name: value[batch] for name, value in features.items()})
        text = clap.embed_text(texts)
        logits = clap.model.logit_scale_a.exp() * audio @ text.T
        loss = F.cross_entropy(logits, targets[batch])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
    clap.freeze()
    report = evaluate(clap, test_waves, test_labels)
    report.seconds = time.perf_counter() - began
    return clap, report


def main() -> None:
    """Train and write the weights (float16 safetensors of the encoder's state dict)."""
    parser = argparse.ArgumentParser(description="train the synthetic world's tiny CLAP")
    parser.add_argument("--out", required=True, help="weights file (.safetensors)")
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--batch_size", type=int, default=64)
    parser.add_argument("--train_clips", type=int, default=4096)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    clap, report = train_world_clap(
        steps=args.steps, batch_size=args.batch_size, train_clips=args.train_clips, seed=args.seed
    )
    save_module(clap, Path(args.out), dtype=torch.float16)
    print(
        f"world CLAP: held-out nearest text {report.text_accuracy:.3f} (class "
        f"{report.class_accuracy:.3f}, room {report.room_accuracy:.3f}) after {args.steps} steps "
        f"in {report.seconds:.0f} s → {args.out} ({Path(args.out).stat().st_size / 1e6:.2f} MB)"
    )


if __name__ == "__main__":
    main()
