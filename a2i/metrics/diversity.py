"""Seed diversity: how different the images drawn for one input with different seeds are."""

from __future__ import annotations

import torch
from torch import Tensor
from torchmetrics import Metric


class SeedDiversity(Metric):
    """How different the images drawn for one input with different seeds are.

    - ``pairwise_distance``: mean Euclidean distance between the feature vectors (e.g. unit CLIP
      embeddings) of the images of one input, averaged over inputs.
    - ``distinct_layouts`` (synthetic world): distinct judged layouts (:func:`a2i.synth.metrics.layout_codes`) per
      input divided by the number of seeds, averaged over inputs (``1/S`` when every seed draws
      the same scene); NaN when no codes were given.
    """

    full_state_update = False
    higher_is_better = True
    is_differentiable = False

    def __init__(self) -> None:
        super().__init__()
        self.add_state("distance", torch.zeros(()), dist_reduce_fx="sum")
        self.add_state("inputs", torch.zeros(()), dist_reduce_fx="sum")
        self.add_state("distinct", torch.zeros(()), dist_reduce_fx="sum")
        self.add_state("coded_inputs", torch.zeros(()), dist_reduce_fx="sum")

    def update(self, features: Tensor, codes: Tensor | None = None) -> None:
        """Add ``B`` inputs: features ``(B, S, D)`` and optional layout codes ``(B, S)``."""
        seeds = features.shape[1]
        if seeds < 2:
            raise ValueError("seed diversity needs at least two seeds per input")
        pairs = torch.cdist(features.float(), features.float())
        self.distance += pairs.sum() / (seeds * (seeds - 1))
        self.inputs += len(features)
        if codes is not None:
            for row in codes:
                self.distinct += len(torch.unique(row)) / seeds
            self.coded_inputs += len(codes)

    def compute(self) -> dict[str, Tensor]:
        """``pairwise_distance`` and ``distinct_layouts`` averaged over inputs."""
        return {
            "pairwise_distance": self.distance / self.inputs,
            "distinct_layouts": self.distinct / self.coded_inputs,
        }
