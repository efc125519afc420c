"""Judge-based metrics of the synthetic world (:mod:`a2i.synth`): the papers' claims as numbers.

The world's ground truth is known for every scene (which sources sound, how loud, how
reverberant), and :class:`~a2i.synth.judge.WorldJudge` reads the same factors back from a
generated image. These metrics compare the two.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torchmetrics import Metric
from torchmetrics.functional import spearman_corrcoef

from a2i.metrics.states import cat_state
from a2i.synth.judge import SIZE_TOLERANCE, JudgeReport


class JudgeMetrics(Metric):
    """Class accuracy, confusion, mixtures, size–loudness and background of judged images.

    - ``class_accuracy``: the largest judged object is the input's (first, loudest) source.
    - ``confusion``: ``(C, C)`` counts, rows = input class, columns = judged main class.
    - ``all_sources_present``: two-source inputs whose image shows both (Sound2Vision §5.1).
    - ``size_gain_spearman``: Spearman ρ between the input gain of single-source scenes and the
      judged size of their object (louder → bigger, Sound2Vision §5.1).
    - ``background_accuracy``: judged indoor/outdoor equals reverberant/dry input.

    Args:
        num_classes: Number of world classes.
    """

    full_state_update = False
    higher_is_better = True
    is_differentiable = False

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.add_state("confusion", torch.zeros(num_classes, num_classes), dist_reduce_fx="sum")
        self.add_state("mixtures", torch.zeros(()), dist_reduce_fx="sum")
        self.add_state("mixtures_complete", torch.zeros(()), dist_reduce_fx="sum")
        self.add_state("background_correct", torch.zeros(()), dist_reduce_fx="sum")
        self.add_state("gains", [], dist_reduce_fx="cat")
        self.add_state("sizes", [], dist_reduce_fx="cat")

    def update(
        self,
        report: JudgeReport,
        labels: Tensor,
        second_sources: Tensor,
        gains_db: Tensor,
        reverb: Tensor,
    ) -> None:
        """Add judged images with their scenes' factors.

        Args:
            report: The judge's reading of ``B`` generated images.
            labels: ``(B,)`` first source of each scene.
            second_sources: ``(B,)`` second source, ``-1`` for single-source scenes.
            gains_db: ``(B,)`` gain of the first source in dB.
            reverb: ``(B,)`` bool, reverberant (indoor) scene.
        """
        labels = labels.to(self.confusion.device)
        main = report.main_class.to(labels.device)
        self.confusion += torch.bincount(
            labels * self.num_classes + main, minlength=self.num_classes**2
        ).view(self.num_classes, self.num_classes)
        present = report.present.to(labels.device)
        rows = torch.arange(len(labels), device=labels.device)
        mixed = second_sources.to(labels.device) >= 0
        both = present[rows, labels] & present[rows, second_sources.clamp(min=0)] & mixed
        self.mixtures += mixed.sum()
        self.mixtures_complete += both.sum()
        self.background_correct += (report.indoor.to(labels.device) == reverb.bool()).sum()
        solo = ~mixed
        self.gains.append(gains_db.to(labels.device).float()[solo])
        self.sizes.append(report.sizes.to(labels.device).float()[rows, labels][solo])

    def compute(self) -> dict[str, Tensor]:
        """The five measures above (NaN where the set had no such scenes)."""
        total = self.confusion.sum()
        gains, sizes = cat_state(self.gains), cat_state(self.sizes)
        varied = len(gains) > 2 and gains.std() > 0 and sizes.std() > 0
        rho = spearman_corrcoef(sizes, gains) if varied else torch.tensor(float("nan"))
        return {
            "class_accuracy": self.confusion.diagonal().sum() / total,
            "confusion": self.confusion,
            "all_sources_present": self.mixtures_complete / self.mixtures,
            "size_gain_spearman": rho.to(total.device),
            "background_accuracy": self.background_correct / total,
        }


def layout_codes(report: JudgeReport) -> Tensor:
    """One integer per image for its judged layout: classes present, main size bin, background.

    Sizes are binned at twice the judge's tolerance (0.1 of the image side), so two images share
    a code when the judge cannot tell their layouts apart.
    """
    present = report.present.long()
    weights = 2 ** torch.arange(present.shape[1], device=present.device)
    mask = (present * weights).sum(dim=1)
    main_size = report.sizes.gather(1, report.main_class[:, None])[:, 0]
    size_bin = (main_size / (2 * SIZE_TOLERANCE)).long().clamp(0, 15)
    return (mask * 16 + size_bin) * 2 + report.indoor.long()
