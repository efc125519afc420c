"""Geometry of the audio–visual modality gap (Sound2Vision §4.4, after Zhang et al. 2023).

For paired unit-norm features ``z^V`` (image) and ``z^A`` (audio) and the gap ``g = z^V − z^A``:

- **magnitude** ``‖g‖`` per pair: a narrow distribution means the gap is close to a constant
  vector, the condition under which an image-space generator transfers to audio features.
- **orthogonality** ``cos(z^V − E[z^V], E[g])`` per image: near zero when the gap is orthogonal
  to the span of the features (also reported for audio: ``cos(z^A − E[z^A], E[g])``).
- **centering** ``E[z^V − (z^V·g′) g′]_i`` per dimension ``i``, ``g′ = E[g] / ‖E[g]‖``: near zero
  when the features are centred in the subspace orthogonal to the gap. (The audio features'
  centre there is the same vector: the two centres differ by ``E[g]``, which the projection
  removes.)
- **alignment** (Goel et al. 2022, as cited by Sound2Vision Fig. 7): mean cosine similarity of
  paired features, higher is better. This is a2i's reading of the cited score: the cosine
  similarity of matched pairs that Goel et al. track between modalities.
- **gap_distance** ``‖E[g]‖`` (Liang et al. 2022): the distance between the two modalities'
  centres.

Features are L2-normalised first, so methods whose spaces differ in scale stay comparable.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from a2i.metrics.states import PairedEmbeddings


class ModalityGap(PairedEmbeddings):
    """Collects paired ``(z^V, z^A)`` and reports the gap's geometry (see module docstring)."""

    sides = ("image", "audio")

    def update(self, image_features: Tensor, audio_features: Tensor) -> None:
        """Add paired features ``(B, D)`` of images and of their audio."""
        self.add_pairs(image_features, audio_features)

    def distributions(self) -> dict[str, Tensor]:
        """Per-pair / per-dimension values behind the summary (for histograms)."""
        image, audio = self.pairs()
        gap = image - audio
        mean_gap = gap.mean(dim=0)
        direction = F.normalize(mean_gap, dim=0)
        return {
            "magnitude": gap.norm(dim=-1),
            "orthogonality_image": F.cosine_similarity(
                image - image.mean(dim=0), mean_gap[None], dim=-1
            ),
            "orthogonality_audio": F.cosine_similarity(
                audio - audio.mean(dim=0), mean_gap[None], dim=-1
            ),
            "center": (image - (image @ direction)[:, None] * direction).mean(dim=0),
            "pair_cosine": (image * audio).sum(dim=-1),
            "gap_distance": mean_gap.norm()[None],
        }

    def compute(self) -> dict[str, Tensor]:
        """Summary statistics of :meth:`distributions`."""
        values = self.distributions()
        return {
            "magnitude_mean": values["magnitude"].mean(),
            "magnitude_std": values["magnitude"].std(),
            "gap_distance": values["gap_distance"][0],
            "orthogonality_image_abs_mean": values["orthogonality_image"].abs().mean(),
            "orthogonality_audio_abs_mean": values["orthogonality_audio"].abs().mean(),
            "center_abs_max": values["center"].abs().max(),
            "alignment": values["pair_cosine"].mean(),
        }
