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


def class_accuracy(judge: WorldJudge, images: Tensor, labels: Tensor) -> float:
    """Fraction of images whose main judged class equals the label."""
    report = judge.judge(images)
    return float((report.main_class.cpu() == labels.cpu()).float().mean())


def score_prediction_folder(
    output_dir: str, labels: dict[str, int], judge: WorldJudge
) -> dict[str, float]:
    """Judge the PNGs an ``a2i predict`` run wrote; ``labels`` maps its input keys to classes."""
    _, rows = read_manifest(output_dir)
    rows = [r for r in rows if r["status"] == "ok" and r["input"] in labels]
    images = torch.stack([read_image(Path(output_dir) / r["output"]) for r in rows])
    target = torch.tensor([labels[r["input"]] for r in rows])
    return {"images": len(rows), "class_accuracy": class_accuracy(judge, images, target)}
