"""The synthetic world's part of the evaluation: the judge and the control sweeps as a plugin.

Added to the generic harness (:class:`a2i.callbacks.evaluation.Evaluation`) by the world
evaluation config (``configs/eval/world.yaml``): every generated test image is judged against the
scene's ground truth (:class:`~a2i.synth.metrics.JudgeMetrics`), and the papers' controls are
swept (:class:`~a2i.synth.controllability.ControlSweeps`). The harness itself knows no dataset.
"""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
from torch import Tensor

from a2i.callbacks.evaluation import EvaluationPlugin, Gather
from a2i.errors import ConfigError
from a2i.interfaces import LABEL
from a2i.pipelines import AudioToImagePipeline
from a2i.synth.controllability import ControlSweeps
from a2i.synth.datamodule import GAIN_DB, REVERB, SECOND_SOURCE
from a2i.synth.judge import WorldJudge
from a2i.synth.metrics import JudgeMetrics, layout_codes


class WorldEvaluation(EvaluationPlugin):
    """Judge generated images against the world's ground truth and sweep the controls.

    Args:
        control_scenes: Test scenes per point of each control sweep (0: no sweeps).
        seed: Noise seed of the sweeps' images.
    """

    def __init__(self, control_scenes: int = 40, seed: int = 0) -> None:
        if control_scenes < 0:
            raise ConfigError(f"WorldEvaluation.control_scenes must be >= 0 (got {control_scenes})")
        self.control_scenes = control_scenes
        self.seed = seed

    def setup(self, trainer: L.Trainer, pipeline: AudioToImagePipeline) -> None:
        """Find the world of the run's datamodule and load the judge on the model's device."""
        self.world = getattr(trainer.datamodule, "world", None)
        if self.world is None:
            raise ConfigError(
                "WorldEvaluation needs the synthetic world's test set "
                "(data: a2i.synth.datamodule.SyntheticWorldDataModule)"
            )
        self.judge = WorldJudge.load().to(pipeline.device)
        self.metric = JudgeMetrics(len(self.world.classes)).to(pipeline.device)

    def update(self, batch: dict[str, Any], images: Tensor) -> Tensor:
        """Judge the images; return the judge's confidence in each input's own class."""
        labels = batch[LABEL]
        report = self.judge.judge(images)
        self.metric.update(report, labels, batch[SECOND_SOURCE], batch[GAIN_DB], batch[REVERB])
        return report.confidence.gather(1, labels.clamp(min=0)[:, None])[:, 0]

    def layout_codes(self, images: Tensor) -> Tensor:
        """Judged scene layouts, so the diversity measure counts distinct scenes per input."""
        return layout_codes(self.judge.judge(images))

    @torch.no_grad()
    def compute(
        self, pipeline: AudioToImagePipeline, rank: int, world_size: int, gather: Gather
    ) -> dict[str, Any]:
        """``judge_*`` metrics, the confusion matrix and the control sweeps."""
        value = self.metric.compute()
        self.metric.reset()
        confusion = value.pop("confusion")
        sections: dict[str, Any] = {
            "metrics": {f"judge_{k}": float(v) for k, v in value.items()},
            "confusion": confusion.long().tolist(),
            "classes": list(self.world.classes),
        }
        if self.control_scenes > 0:
            sweeps = ControlSweeps(
                self.world, self.judge, scenes=self.control_scenes, seed=self.seed
            )
            sections["controllability"] = sweeps.run(pipeline, rank, world_size, gather)
        return sections
