"""Losses that align audio features with a frozen image-feature space.

Sound2Vision §3.1 (eqs. 1–2) and its Table 2 ablation compare three objectives on unit-norm
features: plain L2 regression (``l2``), InfoNCE with cosine similarity (``nce_cosine``, the paper's
L_nce) and InfoNCE whose similarity is the negative L2 distance (``nce_l2``, the paper's L_total).
The InfoNCE variants are symmetric: audio→image and image→audio terms averaged over the batch.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from a2i.errors import ConfigError

AlignmentLossName = Literal["l2", "nce_cosine", "nce_l2"]


def l2_regression(audio: Tensor, image: Tensor) -> Tensor:
    """Mean L2 distance ``‖ẑ^V − ẑ^A‖₂`` between paired unit-norm features (Table 2, row A)."""
    return (F.normalize(image, dim=-1) - F.normalize(audio, dim=-1)).norm(dim=-1).mean()


def similarity_logits(
    audio: Tensor, image: Tensor, similarity: Literal["cosine", "neg_l2"], temperature: float
) -> Tensor:
    """``(B, B)`` logits: entry ``[j, k]`` scores audio ``j`` against image ``k``."""
    audio, image = F.normalize(audio, dim=-1), F.normalize(image, dim=-1)
    if similarity == "cosine":
        scores = audio @ image.T
    else:
        scores = -torch.cdist(audio, image, p=2)
    return scores / temperature


def symmetric_infonce(logits: Tensor) -> Tensor:
    """Eq. 2: ``(1/2B) Σ_j (L_j^A + L_j^V)`` with each term an eq.-1 cross-entropy over the batch."""
    targets = torch.arange(logits.shape[0], device=logits.device)
    audio_centric = F.cross_entropy(logits, targets)  # L^A: audio j against all images
    image_centric = F.cross_entropy(logits.T, targets)  # L^V: image j against all audios
    return 0.5 * (audio_centric + image_centric)


class AlignmentLoss(nn.Module):
    """One of the Sound2Vision alignment objectives, chosen by name.

    Args:
        name: ``nce_l2`` (the paper's L_total, eq. 2, default), ``nce_cosine`` (L_nce) or ``l2``.
        temperature: Divides the similarities before the softmax. Eq. 1 has none, i.e. 1.0.
    """

    def __init__(self, name: AlignmentLossName = "nce_l2", temperature: float = 1.0) -> None:
        super().__init__()
        if temperature <= 0:
            raise ConfigError(f"loss temperature must be > 0 (got {temperature})")
        self.name = name
        self.temperature = temperature

    def forward(self, audio: Tensor, image: Tensor) -> Tensor:
        """Loss between paired ``(B, D)`` audio and image features (row ``j`` pairs with row ``j``)."""
        if self.name == "l2":
            return l2_regression(audio, image)
        similarity = "cosine" if self.name == "nce_cosine" else "neg_l2"
        return symmetric_infonce(similarity_logits(audio, image, similarity, self.temperature))
