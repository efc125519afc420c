"""Downstream scores of a frozen audio tower (WavBriVL §4, Tables 1-2), as torchmetrics.

- :class:`ProbeAccuracy`: Table 2's classification columns (MC). A classifier is trained on the
  frozen embeddings of the training folds and scored on the held-out fold (§4.1: "an MLP-based
  classifier"; a linear probe is the other common protocol), accuracy and macro mAP (the
  VGGSound column reports mAP).
- :class:`CrossModalMRR`: Table 2's VGGSound CMR columns, the mean reciprocal rank of each
  clip's own frame among all test frames (A→I) and of its own clip among all clips (I→A).
- :class:`ZeroShotClassification`: Table 2's ZS row, each clip's audio embedding against the
  text embeddings of the class prompts: accuracy, and macro mAP as the VGGSound column reports.
- :class:`CaptionRetrieval`: Clotho's captions against its clips (text→audio R@k and MRR,
  audio→text R@1).
- :class:`SegmentF1`: DESED's segment-level event retrieval, micro F1 as sed_eval counts it.

States are the embeddings themselves (``dist_reduce_fx="cat"``), so under DDP every rank
computes on the whole set and the result equals that of one process. Neither the probe nor the
MRR is in a library that fits: torchmetrics' ``RetrievalMRR`` wants the N×N score matrix as
state (15k VGGSound test clips: 225 M scores), and scikit-learn is no a2i dependency, so both
are written here in a few lines of torch.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchmetrics import Metric
from torchmetrics.functional.classification import multiclass_average_precision

from a2i.errors import ConfigError
from a2i.metrics.states import PairedEmbeddings, cat_state

PAIRWISE_CHUNK = 1024
"""Query rows of the similarity matrix computed at once (bounds memory at N²)."""

ProbeKind = Literal["mlp", "linear"]


def harmonic(n: Tensor) -> Tensor:
    """Harmonic numbers ``H_n = 1 + 1/2 + … + 1/n`` (``H_0 = 0``), elementwise, float64."""
    return torch.digamma(n.double() + 1) + 0.5772156649015329  # ψ(n + 1) + Euler's γ


def reciprocal_ranks(queries: Tensor, candidates: Tensor) -> Tensor:
    """``(N,)`` reciprocal rank of candidate ``i`` for query ``i`` among all N, by cosine.

    Candidates that tie with the true one are ordered at random in expectation: with ``g``
    scoring higher and ``t`` others tying, the value is the mean of ``1/r`` for ``r`` from
    ``g + 1`` to ``g + t + 1``, i.e. ``(H_{g+t+1} − H_g) / (t + 1)``. A collapsed model (all
    embeddings equal) thus scores the chance level ``H_N / N``, not a perfect 1.
    """
    queries = F.normalize(queries.float(), dim=-1)
    candidates = F.normalize(candidates.float(), dim=-1)
    values = []
    for start in range(0, len(queries), PAIRWISE_CHUNK):
        block = queries[start : start + PAIRWISE_CHUNK] @ candidates.T
        rows = torch.arange(len(block), device=block.device)
        own = block[rows, rows + start][:, None]
        greater = (block > own).sum(dim=1)
        ties = (block == own).sum(dim=1) - 1
        tied = (harmonic(greater + ties + 1) - harmonic(greater)) / (ties + 1)
        values.append(torch.where(ties == 0, 1.0 / (greater.double() + 1), tied))  # exact if untied
    return torch.cat(values) if values else queries.new_zeros(0, dtype=torch.float64)


class CrossModalMRR(PairedEmbeddings):
    """MRR of audio→image and image→audio retrieval over paired embeddings (WavBriVL Table 2).

    Each clip's query ranks every image of the set (its own frame is the one relevant item) and
    vice versa; embeddings are compared by cosine similarity.
    """

    higher_is_better = True
    sides = ("audio", "image")

    def update(self, audio_embeddings: Tensor, image_embeddings: Tensor) -> None:
        """Add paired ``(B, D)`` embeddings of clips and of their own frames."""
        self.add_pairs(audio_embeddings, image_embeddings)

    def compute(self) -> dict[str, Tensor]:
        """``{"a2i": MRR audio→image, "i2a": MRR image→audio, "count": N}``."""
        audio, image = self.pairs()
        return {
            "a2i": reciprocal_ranks(audio, image).mean(),
            "i2a": reciprocal_ranks(image, audio).mean(),
            "count": torch.tensor(len(audio)),
        }


class ProbeAccuracy(Metric):
    """Accuracy of a classifier trained on frozen embeddings, cross-validated over folds.

    For each fold of ``held_out_folds`` a fresh probe is trained on the labelled embeddings of
    every other fold and scored on that fold; accuracy and macro mAP are averaged over the held
    out folds (ESC-50 and UrbanSound8K's official protocol; a train/test split is the case of
    one held-out fold). Embeddings are standardised with the training folds' statistics. The
    probe trains full-batch with L-BFGS (the solver of CLIP's linear probes, through
    scikit-learn, which also advises it for MLPs on small data) from a seeded initialisation,
    on rows put in a canonical order: its result does not depend on how DDP ranks split the
    data, and every rank trains the same probes. Labels ``-1`` are ignored.

    Args:
        num_classes: Number of classes.
        held_out_folds: Folds scored, each once.
        probe: ``mlp`` (WavBriVL §4.1's "MLP-based classifier": one hidden ReLU layer) or
            ``linear`` (multinomial logistic regression).
        hidden_size: Width of the MLP's hidden layer (a2i's choice: the paper gives none).
        steps: Most L-BFGS iterations per probe.
        weight_decay: L2 penalty on the probe's weights (its regularisation).
        seed: Seed of the probe's initialisation.
    """

    full_state_update = False
    higher_is_better = True
    is_differentiable = False

    def __init__(
        self,
        num_classes: int,
        held_out_folds: Sequence[int],
        probe: ProbeKind = "mlp",
        hidden_size: int = 512,
        steps: int = 500,
        weight_decay: float = 1e-4,
        seed: int = 0,
    ) -> None:
        super().__init__()
        if num_classes < 2 or not held_out_folds:
            raise ConfigError("ProbeAccuracy needs at least 2 classes and one held-out fold")
        if probe not in ("mlp", "linear") or min(hidden_size, steps) < 1:
            raise ConfigError(
                f"probe must be 'mlp' or 'linear' with hidden_size and steps >= 1 (got {probe!r}, "
                f"{hidden_size}, {steps})"
            )
        self.num_classes = num_classes
        self.held_out_folds = [int(fold) for fold in held_out_folds]
        self.probe = probe
        self.hidden_size = hidden_size
        self.steps = steps
        self.weight_decay = weight_decay
        self.seed = seed
        self.add_state("features", [], dist_reduce_fx="cat")
        self.add_state("labels", [], dist_reduce_fx="cat")
        self.add_state("folds", [], dist_reduce_fx="cat")

    def update(self, features: Tensor, labels: Tensor, folds: Tensor) -> None:
        """Add embeddings ``(B, D)`` with their labels ``(B,)`` and folds ``(B,)``."""
        self.features.append(features.detach().float())
        self.labels.append(labels.long())
        self.folds.append(folds.long())

    def compute(self) -> dict[str, Tensor]:
        """Scores of the probes, one per held-out fold.

        ``accuracy`` and ``map`` are means over the held-out folds, ``fold_accuracy`` has one
        value per fold, ``count`` is the number of labelled clips in every fold together.
        """
        features, labels, folds = (
            cat_state(self.features),
            cat_state(self.labels),
            cat_state(self.folds),
        )
        # States may be inference tensors (Lightning's test loop): train on plain copies.
        with torch.inference_mode(False), torch.enable_grad():
            order = canonical_order(features, labels, folds)
            features = features[order].clone()
            labels, folds = labels[order].clone(), folds[order].clone()
            accuracies, precisions = [], []
            for fold in self.held_out_folds:
                train = (folds != fold) & (labels >= 0)
                test = (folds == fold) & (labels >= 0)
                if not train.any() or not test.any():
                    accuracies.append(math.nan)
                    precisions.append(math.nan)
                    continue
                scores = self.fit_and_score(features[train], labels[train], features[test])
                accuracies.append(float((scores.argmax(dim=1) == labels[test]).float().mean()))
                precisions.append(macro_average_precision(scores, labels[test], self.num_classes))
        per_fold = torch.tensor(accuracies, dtype=torch.float64)
        return {
            "accuracy": per_fold.nanmean(),
            "map": torch.tensor(precisions, dtype=torch.float64).nanmean(),
            "fold_accuracy": per_fold,
            "count": (labels >= 0).sum(),
        }

    def fit_and_score(self, train: Tensor, labels: Tensor, test: Tensor) -> Tensor:
        """Train a fresh probe on ``(train, labels)``; class probabilities ``(N, C)`` of ``test``."""
        mean, std = train.mean(dim=0), train.std(dim=0, correction=0).clamp(min=1e-6)
        train, test = (train - mean) / std, (test - mean) / std
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            dim = train.shape[1]
            if self.probe == "linear":
                model = nn.Linear(dim, self.num_classes)
            else:
                model = nn.Sequential(
                    nn.Linear(dim, self.hidden_size),
                    nn.ReLU(),
                    nn.Linear(self.hidden_size, self.num_classes),
                )
        model = model.to(train.device)
        weights = [p for name, p in model.named_parameters() if name.endswith("weight")]
        optimizer = torch.optim.LBFGS(
            model.parameters(), max_iter=self.steps, line_search_fn="strong_wolfe"
        )

        def closure() -> Tensor:
            optimizer.zero_grad()
            penalty = sum(w.pow(2).sum() for w in weights)
            loss = F.cross_entropy(model(train), labels) + self.weight_decay * penalty
            loss.backward()
            return loss

        optimizer.step(closure)
        with torch.no_grad():
            return model(test).softmax(dim=1)


class ZeroShotClassification(Metric):
    """Zero-shot classification by cosine similarity to class prompts: accuracy and macro mAP.

    Table 2 reports VGGSound as mAP, ESC-50 and UrbanSound8K as accuracy; both are computed for
    every set. Accuracy counts a clip right when no class scores strictly above its own (as
    :class:`a2i.metrics.retrieval.ClassRetrieval`'s R@1); mAP is torchmetrics' one-vs-rest
    average precision of the similarities, averaged over the classes present. The states are the
    ``(N, C)`` similarities (``cat``), so under DDP the result equals that of one process.
    Labels ``-1`` are ignored.

    Args:
        class_embeddings: ``(C, D)`` text embeddings of the class prompts (normalised here).
    """

    full_state_update = False
    higher_is_better = True
    is_differentiable = False

    def __init__(self, class_embeddings: Tensor) -> None:
        super().__init__()
        if class_embeddings.ndim != 2 or len(class_embeddings) < 2:
            raise ConfigError("ZeroShotClassification needs a (classes >= 2, dim) matrix")
        self.register_buffer("class_embeddings", F.normalize(class_embeddings.float(), dim=-1))
        self.add_state("scores", [], dist_reduce_fx="cat")
        self.add_state("labels", [], dist_reduce_fx="cat")

    def update(self, audio_embeddings: Tensor, labels: Tensor) -> None:
        """Add clips ``(B, D)`` with their class labels ``(B,)``."""
        known = labels >= 0
        audio = F.normalize(audio_embeddings[known].detach().float(), dim=-1)
        self.scores.append(audio @ self.class_embeddings.T)
        self.labels.append(labels[known].long())

    def compute(self) -> dict[str, Tensor]:
        """``{"accuracy": …, "map": …, "count": N}``."""
        scores, labels = cat_state(self.scores), cat_state(self.labels)
        if len(labels) == 0:
            nan = torch.tensor(math.nan, dtype=torch.float64)
            return {"accuracy": nan, "map": nan, "count": torch.tensor(0)}
        own = scores.gather(1, labels[:, None])
        right = ((scores > own).sum(dim=1) == 0).double().mean()
        mean_ap = macro_average_precision(scores, labels, len(self.class_embeddings))
        return {
            "accuracy": right,
            "map": torch.tensor(mean_ap, dtype=torch.float64),
            "count": torch.tensor(len(labels)),
        }


class CaptionRetrieval(Metric):
    """Language-based audio retrieval over a captioned set (Clotho): each caption finds its clip.

    WavBriVL Table 1 lists Clotho for audio captioning with COCO caption metrics; a2i has no
    caption decoder, so it scores the same split by retrieval through the shared space, the
    task the embeddings can do (DCASE's language-based audio retrieval). Text→audio: every
    caption ranks every clip, R@k and MRR of its own clip; audio→text: a clip is right at 1 when
    one of its own captions scores highest. Clips not added (unreadable) are left out with their
    captions. States are the clip embeddings and indices (``cat``): DDP equals one process.

    Args:
        caption_embeddings: ``(M, D)`` text embeddings of every caption.
        caption_clip: ``(M,)`` index of the clip each caption describes.
        top_k: The ``k`` of text→audio R@k.
    """

    full_state_update = False
    higher_is_better = True
    is_differentiable = False

    def __init__(
        self, caption_embeddings: Tensor, caption_clip: Tensor, top_k: Sequence[int] = (1, 5, 10)
    ) -> None:
        super().__init__()
        self.top_k = tuple(int(k) for k in top_k)
        self.register_buffer("captions", F.normalize(caption_embeddings.float(), dim=-1))
        self.register_buffer("caption_clip", caption_clip.long())
        self.add_state("audio", [], dist_reduce_fx="cat")
        self.add_state("clips", [], dist_reduce_fx="cat")

    def update(self, audio_embeddings: Tensor, clip_indices: Tensor) -> None:
        """Add clip embeddings ``(B, D)`` with their indices in the set ``(B,)``."""
        self.audio.append(F.normalize(audio_embeddings.detach().float(), dim=-1))
        self.clips.append(clip_indices.long())

    def compute(self) -> dict[str, Tensor]:
        """``{"t2a_r@k": …, "t2a_mrr": …, "a2t_r@1": …, "count": clips}``."""
        audio, clips = cat_state(self.audio), cat_state(self.clips).to(self.caption_clip.device)
        order = clips.argsort()
        audio, clips = audio[order], clips[order]
        position = torch.full((int(self.caption_clip.max()) + 1,), -1, device=clips.device)
        position[clips] = torch.arange(len(clips), device=clips.device)
        owner = position[self.caption_clip]
        known = owner >= 0
        captions, owner = self.captions[known], owner[known]
        scores = captions @ audio.T  # (captions, clips)
        own = scores.gather(1, owner[:, None])
        text_rank = (scores > own).sum(dim=1).double()
        best_own = torch.full((len(audio),), -math.inf, device=scores.device)
        best_own = best_own.scatter_reduce(0, owner, own.squeeze(1), reduce="amax")
        audio_rank = (scores.T > best_own[:, None]).sum(dim=1)
        result = {f"t2a_r@{k}": (text_rank < k).double().mean() for k in self.top_k}
        return {
            **result,
            "t2a_mrr": (1.0 / (text_rank + 1)).mean(),
            "a2t_r@1": (audio_rank == 0).double().mean(),
            "count": torch.tensor(len(audio)),
        }


class SegmentF1(Metric):
    """Segment-based micro F1 of event retrieval (DESED, WavBriVL Table 2's "AR" column).

    Each segment's audio embedding is compared with the class prompts and the best-scoring
    class is retrieved for it (a2i's zero-shot rule; the paper names sed_eval but no decision
    rule). As sed_eval's segment-based metrics count them, every (segment, class) pair is a true
    positive, false positive or false negative against the classes that sound in the segment;
    F1 = 2TP / (2TP + FP + FN). The states are those three counts (``sum``).

    Args:
        class_embeddings: ``(C, D)`` text embeddings of the class prompts.
    """

    full_state_update = False
    higher_is_better = True
    is_differentiable = False

    def __init__(self, class_embeddings: Tensor) -> None:
        super().__init__()
        self.register_buffer("class_embeddings", F.normalize(class_embeddings.float(), dim=-1))
        for name in ("true_positives", "false_positives", "false_negatives"):
            self.add_state(name, torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, segment_embeddings: Tensor, activity: Tensor) -> None:
        """Add segments ``(N, D)`` with the classes active in each ``(N, C)`` bool."""
        scores = F.normalize(segment_embeddings.detach().float(), dim=-1) @ self.class_embeddings.T
        predicted = F.one_hot(scores.argmax(dim=1), scores.shape[1]).bool()
        activity = activity.to(predicted.device).bool()
        self.true_positives += (predicted & activity).sum()
        self.false_positives += (predicted & ~activity).sum()
        self.false_negatives += (~predicted & activity).sum()

    def compute(self) -> dict[str, Tensor]:
        """``{"f1": …, "precision": …, "recall": …}``."""
        tp, fp, fn = self.true_positives, self.false_positives, self.false_negatives
        return {
            "f1": 2 * tp / (2 * tp + fp + fn),
            "precision": tp / (tp + fp),
            "recall": tp / (tp + fn),
        }


def canonical_order(features: Tensor, labels: Tensor, folds: Tensor) -> Tensor:
    """Row order sorted by (fold, label, features…): the same whatever order rows arrived in."""
    columns = torch.cat([folds[:, None].double(), labels[:, None].double(), features.double()], 1)
    keys = columns.cpu().numpy().T[::-1]  # np.lexsort sorts by its last key first
    return torch.from_numpy(np.lexsort(keys)).to(features.device)


def macro_average_precision(scores: Tensor, labels: Tensor, num_classes: int) -> float:
    """Mean over the classes present in ``labels`` of the one-vs-rest average precision."""
    with warnings.catch_warnings():  # classes absent from a fold have no AP: left out below
        warnings.simplefilter("ignore")
        per_class = multiclass_average_precision(scores, labels, num_classes, average=None)
    present = torch.bincount(labels, minlength=num_classes) > 0
    return float(per_class[present].mean())
