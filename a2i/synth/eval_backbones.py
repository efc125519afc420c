"""Train the tiny evaluation backbones on the synthetic world and ship them as safetensors.

The metrics of :mod:`a2i.metrics` score with published models on real data (CLIP, an ImageNet
classifier, Wav2CLIP, Inception). In the world, a2i trains tiny counterparts with the same
classes, so every metric runs offline on a CPU:

1. ``clip.safetensors``: a tiny :class:`~a2i.encoders.image.scorers.CLIPScorer` trained with CLIP's
   symmetric contrastive loss on world images and captions ("a photo of a red circle on grass").
2. ``classifier.safetensors``: a tiny :class:`~a2i.encoders.image.scorers.ImageClassifier` on the
   scenes' main class (AIC, and the feature network of FID/KID/IS).
3. ``audio_tower.safetensors``: a tiny :class:`~a2i.encoders.audio.resnet_spectrogram.SpectrogramResNet`
   aligned to the frozen tiny CLIP image tower (Wav2CLIP-style, for AIS).

Images are degraded the way generated images are (:func:`a2i.synth.judge.degrade`: blur, noise,
colour shift) so that the scorers read generated images, not only clean renders. Only
train-split scenes are rendered; the held-out numbers printed at the end use test scenes.

Usage (about 6 minutes on one CPU core)::

    python -m a2i.synth.eval_backbones --out a2i/assets/tiny/eval [--overwrite]

``a2i/assets/tiny/eval/clip.safetensors`` is also the frozen image space tiny WavBriVL steers
with, so it cannot judge WavBriVL fairly. A second CLIP and its audio tower, trained with another
seed on another world (``--seed 1``: world seed 1, whose scenes share none with the seed-0 world
the first CLIP, the methods and the test split use), score generations in ``configs/eval/world.yaml``::

    python -m a2i.synth.eval_backbones --out a2i/assets/tiny/eval_independent --seed 1 \
        --parts clip audio_tower
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import DataLoader

from a2i.encoders.audio.resnet_spectrogram import SpectrogramResNet
from a2i.encoders.image.scorers import CLIPScorer, ImageClassifier
from a2i.errors import ConfigError
from a2i.interfaces import AUDIO, IMAGE, LABEL
from a2i.losses.alignment import AlignmentLoss
from a2i.pretrained import save_module
from a2i.synth.datamodule import REVERB, SyntheticWorldDataset
from a2i.synth.judge import degrade
from a2i.synth.world import WORLD_CLASSES, SyntheticWorld, describe

PARTS = ("clip", "classifier", "audio_tower")
"""The backbones, each saved as ``<part>.safetensors`` (the audio tower needs the CLIP)."""
AUDIO_TOWER = {
    "preset": "tiny",
    "embed_dim": 64,
    "clip_seconds": 4.0,
    "n_fft": 256,
    "hop_length": 320,
}
"""The audio tower's arguments (the evaluation configs repeat them)."""


def batches(world: SyntheticWorld, split: str, size: int, batch_size: int) -> DataLoader:
    """Scenes of ``split`` in index order, as batches."""
    return DataLoader(SyntheticWorldDataset(world, split, size), batch_size=batch_size)


def image_batches(
    world: SyntheticWorld, steps: int, batch_size: int
) -> Iterator[tuple[Tensor, Tensor, list[str]]]:
    """Images, main labels and captions of consecutive training scenes (no audio rendered)."""
    for step in range(steps):
        specs = [world.sample_spec("train", step * batch_size + i) for i in range(batch_size)]
        images = torch.stack([world.render_image(s) for s in specs])
        labels = torch.tensor([s.sources[0] for s in specs])
        captions = [describe(s) for s in specs]
        yield images, labels, captions


def _optimise(
    optimizer: torch.optim.Optimizer,
    loss: Tensor,
    schedule: torch.optim.lr_scheduler.LRScheduler | None = None,
) -> None:
    """One optimiser step on ``loss``, then one of the learning-rate ``schedule``."""
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    if schedule is not None:
        schedule.step()


def train_clip(
    world: SyntheticWorld, steps: int, batch_size: int, generator: torch.Generator
) -> CLIPScorer:
    """CLIP's symmetric InfoNCE over image–caption pairs of training scenes."""
    scorer = CLIPScorer(preset="tiny")
    model = scorer.model.requires_grad_(True).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=0.05)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, 2e-3, total_steps=steps)
    started = time.perf_counter()
    for step, (images, _, captions) in enumerate(image_batches(world, steps, batch_size)):
        images = scorer.preprocess(degrade(images, generator))
        tokens = scorer.tokenizer(captions)
        image_z = model.encode_image(images, normalize=True)
        text_z = model.encode_text(tokens, normalize=True)
        logits = model.logit_scale.exp() * image_z @ text_z.T
        # Identical captions in one batch are true pairs too: soft targets over equal captions.
        same = (tokens[:, None] == tokens[None]).all(dim=-1).float()
        target = same / same.sum(dim=1, keepdim=True)
        loss = (
            -(target * logits.log_softmax(dim=1)).sum(1).mean()
            - (target * logits.T.log_softmax(dim=1)).sum(1).mean()
        ) / 2
        _optimise(optimizer, loss, schedule)
        _progress("clip", step, steps, loss, started)
    return scorer.freeze()


def train_classifier(
    world: SyntheticWorld, steps: int, batch_size: int, generator: torch.Generator
) -> ImageClassifier:
    """Cross-entropy on the main class of training scenes."""
    classifier = ImageClassifier(preset="tiny", class_names=world.classes)
    model = classifier.model.requires_grad_(True).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, 3e-3, total_steps=steps)
    started = time.perf_counter()
    for step, (images, labels, _) in enumerate(image_batches(world, steps, batch_size)):
        logits = model(classifier.preprocess(degrade(images, generator)))
        loss = F.cross_entropy(logits, labels)
        _optimise(optimizer, loss, schedule)
        _progress("classifier", step, steps, loss, started)
    return classifier.freeze()


def train_audio_tower(
    world: SyntheticWorld, clip: CLIPScorer, steps: int, batch_size: int
) -> SpectrogramResNet:
    """Cosine InfoNCE between the audio tower and the frozen CLIP image embedding of the frame."""
    tower = SpectrogramResNet(**AUDIO_TOWER).train()
    loss_fn = AlignmentLoss("nce_cosine", temperature=0.1)
    optimizer = torch.optim.AdamW(tower.parameters(), lr=1e-3, weight_decay=1e-5)
    loader = iter(batches(world, "train", steps * batch_size, batch_size))
    started = time.perf_counter()
    for step in range(steps):
        batch = next(loader)
        loss = loss_fn(tower(batch[AUDIO]).pooled, clip.embed_images(batch[IMAGE]))
        _optimise(optimizer, loss)
        _progress("audio tower", step, steps, loss, started)
    return tower.eval()


@torch.no_grad()
def held_out(
    world: SyntheticWorld,
    clip: CLIPScorer | None,
    classifier: ImageClassifier | None,
    tower: SpectrogramResNet | None,
    count: int = 500,
) -> dict[str, float]:
    """Accuracies of the trained backbones (``None``: not trained) on test scenes none saw."""
    totals: dict[str, float] = {}

    def add(name: str, hits: Tensor) -> None:
        totals[name] = totals.get(name, 0.0) + hits.sum().item()

    if clip is not None:
        prompts = clip.embed_texts([f"a photo of {c.caption}" for c in WORLD_CLASSES])
        rooms = clip.embed_texts(["a photo of a scene in a room", "a photo of a scene on grass"])
    for batch in batches(world, "test", count, 50):
        label = batch[LABEL]
        if clip is not None:
            image_z = clip.embed_images(batch[IMAGE])
            add("clip_zero_shot", (image_z @ prompts.T).argmax(1) == label)
            add("clip_background", ((image_z @ rooms.T).argmax(1) == 0) == batch[REVERB])
        if classifier is not None:
            add("classifier", classifier.logits(batch[IMAGE]).argmax(1) == label)
        if tower is not None and clip is not None:
            audio_z = F.normalize(tower(batch[AUDIO]).pooled, dim=-1)
            add("audio_zero_shot", (audio_z @ prompts.T).argmax(1) == label)
            add("audio_to_image", (audio_z @ image_z.T).argmax(1) == torch.arange(len(label)))
    return {name: value / count for name, value in totals.items()}


def train_eval_backbones(
    out: str | Path,
    *,
    clip_steps: int = 600,
    classifier_steps: int = 300,
    tower_steps: int = 300,
    batch_size: int = 64,
    seed: int = 0,
    parts: Sequence[str] = PARTS,
    overwrite: bool = False,
) -> dict[str, float]:
    """Train ``parts`` on world ``seed``, save them to ``out`` (float16), return held-out accuracies."""
    unknown = sorted(set(parts) - set(PARTS))
    if unknown or ("audio_tower" in parts and "clip" not in parts):
        raise ConfigError(
            f"parts must be among {PARTS} and the audio tower needs the clip (got {list(parts)})"
        )
    out = Path(out)
    existing = [f"{part}.safetensors" for part in parts if (out / f"{part}.safetensors").exists()]
    if existing and not overwrite:
        raise FileExistsError(f"{out} holds {', '.join(existing)}; pass --overwrite to replace")
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    world = SyntheticWorld(image_size=32, clip_seconds=4.0, seed=seed)
    trained: dict[str, nn.Module] = {}
    if "clip" in parts:
        trained["clip"] = train_clip(world, clip_steps, batch_size, generator)
    if "classifier" in parts:
        trained["classifier"] = train_classifier(world, classifier_steps, batch_size, generator)
    if "audio_tower" in parts:
        trained["audio_tower"] = train_audio_tower(
            world, trained["clip"], tower_steps, batch_size // 2
        )
    for part, module in trained.items():
        metadata = module.file_metadata() if isinstance(module, ImageClassifier) else None
        save_module(module, out / f"{part}.safetensors", dtype=torch.float16, metadata=metadata)
    return held_out(world, *(trained.get(part) for part in PARTS))


def _progress(name: str, step: int, steps: int, loss: Tensor, started: float) -> None:
    if step % 50 == 0 or step == steps - 1:
        elapsed = time.perf_counter() - started
        print(
            f"{name:12s} step {step:4d}/{steps}  loss {loss.item():.4f}  {elapsed:6.1f} s",
            flush=True,
        )


def main(argv: Sequence[str] | None = None) -> None:
    """Command line: ``python -m a2i.synth.eval_backbones --out DIR [--overwrite]``."""
    parser = argparse.ArgumentParser(prog="python -m a2i.synth.eval_backbones", description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("a2i/assets/tiny/eval"))
    parser.add_argument("--clip-steps", type=int, default=600)
    parser.add_argument("--classifier-steps", type=int, default=300)
    parser.add_argument("--tower-steps", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0, help="training and world seed")
    parser.add_argument("--parts", nargs="+", choices=PARTS, default=list(PARTS))
    parser.add_argument("--overwrite", action="store_true", help="replace existing files")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    started = time.perf_counter()
    scores = train_eval_backbones(
        args.out,
        clip_steps=args.clip_steps,
        classifier_steps=args.classifier_steps,
        tower_steps=args.tower_steps,
        seed=args.seed,
        parts=args.parts,
        overwrite=args.overwrite,
    )
    files = ", ".join(f"{part}.safetensors" for part in args.parts)
    print(f"wrote {files} to {args.out} in {time.perf_counter() - started:.0f} s")
    for name, value in scores.items():
        print(f"  held-out {name}: {value:.1%}")


if __name__ == "__main__":
    main()
