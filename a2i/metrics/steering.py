"""Does an evaluation backbone share weights with the method it scores?

A method that reranks or guides its images with a model (WavBriVL §5 steers with its frozen image
tower) optimises whatever that model measures; scoring the result with the same model (CLIP R@k,
IIS) then measures the steering, not the images. The evaluation compares weights, not paths or
names, so a copy loaded from another file, or the same published checkpoint under another tag, is
found too.
"""

from __future__ import annotations

import hashlib

import torch
from torch import Tensor, nn

MIN_ELEMENTS = 256
"""Smaller tensors (biases, norms) are skipped: two unrelated models can share a ones vector."""

BACKBONE_METRICS = {
    "clip": ["clip_r@k", "iis", "ais", "aic (name fallback)", "diversity_pairwise_distance"],
    "classifier": ["aic"],
    "audio_tower": ["ais"],
    "quality_backbone": ["fid", "kid", "is"],
}
"""The report's metrics each evaluation backbone computes (what a shared weight makes suspect)."""


def shared_weight_fraction(backbone: nn.Module, method: nn.Module) -> float:
    """Fraction of ``backbone``'s weights (by element) found, value for value, in ``method``.

    Only non-constant parameters of at least :data:`MIN_ELEMENTS` elements count; a tensor counts
    when ``method`` holds one of the same shape with the same values (compared in float32, so a
    float16 file loaded by both sides matches).
    """
    wanted: dict[tuple[tuple[int, ...], str], int] = {}
    for tensor in _weights(backbone):
        wanted[(tuple(tensor.shape), _digest(tensor))] = tensor.numel()
    total = sum(wanted.values())
    if not total:
        return 0.0
    shapes = {shape for shape, _ in wanted}
    found = {
        key
        for tensor in _weights(method)
        if tuple(tensor.shape) in shapes
        and (key := (tuple(tensor.shape), _digest(tensor))) in wanted
    }
    return sum(wanted[key] for key in found) / total


def _weights(module: nn.Module) -> list[Tensor]:
    """Learned tensors: buffers hold what every model of an architecture shares (causal masks)."""
    return [
        t
        for t in module.parameters()
        if t.is_floating_point() and t.numel() >= MIN_ELEMENTS and bool((t != t.flatten()[0]).any())
    ]


def _digest(tensor: Tensor) -> str:
    values = tensor.detach().to("cpu", torch.float32).contiguous()
    return hashlib.sha1(values.numpy().tobytes()).hexdigest()
