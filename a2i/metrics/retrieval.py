"""Similarity-based scores of generated images: CLIP R@k, AIS/IIS (two ways) and AIC.

All three compare embeddings that a backbone (:mod:`a2i.encoders.image.scorers`) computed; the metrics
themselves only see tensors, which keeps them exact to test and independent of the backbone.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor
from torchmetrics import Metric

from a2i.errors import ConfigError
from a2i.metrics.states import PairedEmbeddings

PAIRWISE_CHUNK = 1024
"""Rows of the query×reference similarity matrix computed at once (bounds memory at N²)."""


class ClassRetrieval(Metric):
    """CLIP R@k (Sound2Vision §4.1, after CLIP R-precision): is the true class among the top k?

    Each generated image's embedding ranks the text embeddings of every class prompt ("a photo
    of {class}"); R@k is the fraction of images whose true class ranks in the top ``k``. A class
    tied with the true one does not push it down. Images with label ``-1`` are skipped.

    Args:
        class_embeddings: ``(C, D)`` text embeddings of the class prompts (normalised here).
        top_k: The ``k`` values reported (Sound2Vision reports R@1 and R@5).
    """

    full_state_update = False
    higher_is_better = True
    is_differentiable = False

    def __init__(self, class_embeddings: Tensor, top_k: Sequence[int] = (1, 5)) -> None:
        super().__init__()
        if class_embeddings.ndim != 2 or len(class_embeddings) == 0:
            raise ConfigError("ClassRetrieval needs a (classes, dim) matrix of class embeddings")
        self.top_k = tuple(int(k) for k in top_k)
        self.register_buffer("class_embeddings", F.normalize(class_embeddings.float(), dim=-1))
        self.add_state("hits", torch.zeros(len(self.top_k)), dist_reduce_fx="sum")
        self.add_state("total", torch.zeros(()), dist_reduce_fx="sum")

    def update(self, image_embeddings: Tensor, labels: Tensor) -> None:
        """Add images ``(B, D)`` with their class labels ``(B,)``."""
        known = labels >= 0
        scores = F.normalize(image_embeddings[known].float(), dim=-1) @ self.class_embeddings.T
        true_score = scores.gather(1, labels[known, None])
        rank = (scores > true_score).sum(dim=1)
        self.hits += torch.stack([(rank < k).sum() for k in self.top_k]).float()
        self.total += known.sum()

    def compute(self) -> dict[str, Tensor]:
        """``{"r@1": …, "r@5": …}`` as fractions."""
        return {f"r@{k}": self.hits[i] / self.total for i, k in enumerate(self.top_k)}


class RelativeSimilarity(PairedEmbeddings):
    """AudioToken §2.2's relative scores: AIS (image vs. its audio) and IIS (vs. its true frame).

    A raw similarity has no meaningful scale, so the paper asks instead how often a generated
    image is more similar to its own reference (its input audio for AIS, its ground-truth frame
    for IIS) than to an arbitrary other reference of the set. a2i averages that comparison over
    *every* other reference instead of one random draw: the expected value of the paper's score,
    without sampling noise, and independent of the order in which DDP ranks gathered the set.
    Ties count one half. Chance is 0.5, perfect is 1.

    States are the embeddings themselves (gathered across ranks), so the score compares against
    the whole evaluation set.
    """

    higher_is_better = True
    sides = ("queries", "references")

    def update(self, queries: Tensor, references: Tensor) -> None:
        """Add generated-image embeddings ``(B, D)`` and their own references ``(B, D')``.

        Query and reference must live in one space (same ``D``): e.g. CLIP image embeddings of
        generated and true frames, or an image and an audio embedding of a Wav2CLIP-style model.
        """
        self.add_pairs(queries, references)

    def compute(self) -> Tensor:
        """Mean over images of the fraction of other references their own one beats."""
        queries, references = self.pairs()
        count = len(queries)
        if count < 2:
            return torch.tensor(float("nan"), device=queries.device)
        total = queries.new_zeros(())
        for start in range(0, count, PAIRWISE_CHUNK):
            block = queries[start : start + PAIRWISE_CHUNK] @ references.T
            rows = torch.arange(start, start + len(block), device=block.device)
            own = block[torch.arange(len(block)), rows][:, None]
            wins = (own > block).float() + 0.5 * (own == block).float()
            wins[torch.arange(len(block)), rows] = 0.0  # an image is not compared with itself
            total += wins.sum()
        return total / (count * (count - 1))


class MeanCosine(PairedEmbeddings):
    """Seeing Sound §4.2's AIS and IIS: the mean raw cosine of each image and its own reference.

    Seeing Sound reports these (AIS ≈ 0.05 with Wav2CLIP), where AudioToken reports the relative
    win rate of :class:`RelativeSimilarity`; a2i reports both, named apart (``ais_cosine``,
    ``ais``), so each paper's rows compare with a2i's. NaN before any pair.
    """

    higher_is_better = True
    sides = ("queries", "references")

    def update(self, queries: Tensor, references: Tensor) -> None:
        """Add generated-image embeddings ``(B, D)`` and their own references ``(B, D)``."""
        self.add_pairs(queries, references)

    def compute(self) -> Tensor:
        """Mean cosine over the pairs (the states are unit-normalised)."""
        queries, references = self.pairs()
        if len(queries) == 0:
            return torch.tensor(float("nan"), device=queries.device)
        return (queries * references).sum(dim=-1).mean()


@dataclass
class AgreementTable:
    """AIC's (classifier class, audio label) pairs: which agree by name, which by CLIP text.

    Attributes:
        classifier_names: The image classifier's classes (rows).
        label_names: The dataset's audio labels (columns).
        same: Identical names (case and spaces ignored).
        similarity: CLIP text cosine of every pair (None without a text tower).
        threshold: Similarity above which a pair agrees.
    """

    classifier_names: list[str]
    label_names: list[str]
    same: Tensor
    similarity: Tensor | None
    threshold: float

    @property
    def matrix(self) -> Tensor:
        """``(classes, labels)`` bool: the pairs AIC counts as agreeing."""
        if self.similarity is None:
            return self.same
        return self.same | (self.similarity > self.threshold)

    def summary(self, examples: int = 10) -> dict[str, Any]:
        """How many pairs the threshold admits beyond identical names, and the loosest of them.

        A loose threshold lets many classifier classes agree with each label, which inflates AIC;
        the loosest admitted pairs (lowest similarity) show what it accepts.
        """
        matrix, same = self.matrix, self.same
        by_text = matrix & ~same
        summary: dict[str, Any] = {
            "threshold": self.threshold if self.similarity is not None else None,
            "classifier_classes": len(self.classifier_names),
            "labels": len(self.label_names),
            "pairs_same_name": int(same.sum()),
            "pairs_admitted_by_threshold": int(by_text.sum()),
            "labels_with_an_agreeing_class": int(matrix.any(dim=0).sum()),
            "mean_agreeing_classes_per_label": float(matrix.sum(dim=0).float().mean()),
        }
        if self.similarity is not None:
            rows, cols = by_text.nonzero(as_tuple=True)
            scores = self.similarity[rows, cols]
            order = scores.argsort()[:examples].tolist()
            summary["loosest_admitted"] = [
                f"{self.label_names[cols[i]]} ~ {self.classifier_names[rows[i]]} "
                f"({float(scores[i]):.3f})"
                for i in order
            ]
        return summary


def class_agreement(
    classifier_names: Sequence[str],
    label_names: Sequence[str],
    embed_texts: Callable[[Sequence[str]], Tensor] | None = None,
    threshold: float = 0.75,
) -> AgreementTable:
    """Which classifier classes count as agreeing with which audio labels (AudioToken §2.2, AIC).

    An image classifier's classes rarely equal a dataset's audio labels (ImageNet's "tabby cat"
    against VGGSound's "cat meowing"), so AIC also accepts a pair whose CLIP text embeddings have
    cosine similarity above ``threshold`` (the paper's 0.75). Identical names (case and spaces
    ignored) always agree.
    """
    same = torch.tensor(
        [[_name_key(c) == _name_key(label) for label in label_names] for c in classifier_names]
    )
    similarity = None
    if embed_texts is not None:
        with torch.no_grad():
            classifier_text = F.normalize(embed_texts(list(classifier_names)).float(), dim=-1)
            label_text = F.normalize(embed_texts(list(label_names)).float(), dim=-1)
        similarity = (classifier_text @ label_text.T).cpu()
    return AgreementTable(list(classifier_names), list(label_names), same, similarity, threshold)


class ClassAgreement(Metric):
    """AIC (AudioToken §2.2): the classifier's class for the generated image agrees with the label.

    Args:
        agreement: ``(classifier classes, labels)`` bool matrix (:attr:`AgreementTable.matrix`).
    """

    full_state_update = False
    higher_is_better = True
    is_differentiable = False

    def __init__(self, agreement: Tensor) -> None:
        super().__init__()
        self.register_buffer("agreement", agreement.bool())
        self.add_state("agreeing", torch.zeros(()), dist_reduce_fx="sum")
        self.add_state("total", torch.zeros(()), dist_reduce_fx="sum")

    def update(self, predicted: Tensor, labels: Tensor) -> None:
        """Add classifier predictions ``(B,)`` (class indices) and audio labels ``(B,)``."""
        known = labels >= 0
        self.agreeing += self.agreement[predicted[known], labels[known]].sum()
        self.total += known.sum()

    def compute(self) -> Tensor:
        """Fraction of images whose predicted class agrees with their audio's label."""
        return self.agreeing / self.total


def _name_key(name: str) -> str:
    return " ".join(name.lower().replace("_", " ").split())
