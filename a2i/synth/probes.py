"""Judge the images an ``a2i predict`` run wrote for the synthetic world's test wavs.

The full evaluation (metrics, control sweeps, modality gap) is :mod:`a2i.callbacks.evaluation`, run by
``a2i test``; this is the light check ``make demo`` applies to the PNG files a user gets from
``a2i predict``.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor

from a2i.image import read_image
from a2i.pipelines.writer import read_manifest
from a2i.synth.judge import WorldJudge
from a2i.synth.world import WORLD_CLASSES


def class_accuracy(judge: WorldJudge, images: Tensor, labels: Tensor) -> float:
    """Fraction of images whose main judged class equals the label."""
    report = judge.judge(images)
    return float((report.main_class.cpu() == labels.cpu()).float().mean())


def score_prediction_folder(
    output_dir: str,
    labels: dict[str, int],
    judge: WorldJudge,
    sources: dict[str, list[int]] | None = None,
) -> dict[str, float]:
    """Judge the PNGs an ``a2i predict`` run wrote; ``labels`` maps its input keys to classes.

    ``class_accuracy``: the judged main object is the label (on a two-source mix, the louder
    source). With ``sources`` (input key -> the scene's source classes) also
    ``source_accuracy``: the main object is one of the scene's own sources, and the split by
    scene kind. On a mix the louder source is a coin flip when the two gains are close: stage 1's
    own tiny GAN draws it for 61% of the test mixes from the *true* image features (99.8% of the
    single-source scenes), which caps ``class_accuracy`` near 92% whatever stage 2 learns and
    makes its last points depend on ~40 ambiguous clips; ``source_accuracy`` asks what the demo
    means ("did the sound's object appear"). ``chance`` is a random class's score on it.
    """
    _, rows = read_manifest(output_dir)
    rows = [r for r in rows if r["status"] == "ok" and r["input"] in labels]
    images = torch.stack([read_image(Path(output_dir) / r["output"]) for r in rows])
    target = torch.tensor([labels[r["input"]] for r in rows])
    drawn = judge.judge(images).main_class.cpu()
    right = drawn == target
    scores = {"images": len(rows), "class_accuracy": float(right.float().mean())}
    if sources is None:
        return scores
    present = [sources[r["input"]] for r in rows]
    mixed = torch.tensor([len(s) > 1 for s in present])
    either = torch.tensor([int(d) in s for d, s in zip(drawn.tolist(), present, strict=True)])
    scores["source_accuracy"] = float(either.float().mean())
    scores["chance"] = sum(len(set(s)) for s in present) / (len(present) * len(WORLD_CLASSES))
    scores["single_source_images"] = int((~mixed).sum())
    scores["single_source_accuracy"] = float(right[~mixed].float().mean())
    scores["mixtures"] = int(mixed.sum())
    if mixed.any():
        scores["mixture_louder_accuracy"] = float(right[mixed].float().mean())
        scores["mixture_either_accuracy"] = float(either[mixed].float().mean())
    return scores
