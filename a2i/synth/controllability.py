"""The controls the papers show only as figures, swept and judged in the synthetic world.

Sound2Vision §5 shows that a louder input draws a bigger object (Fig. 8), that a mix of two
sounds draws both sources (Fig. 9) and that blending image and audio features mixes their content
(§5.2); in the world, reverberation should move the scene indoors. Each sweep renders its inputs
from :class:`~a2i.synth.world.SceneSpec`s, generates one image per input with the method and lets
the :class:`~a2i.synth.judge.WorldJudge` read the result:

- **volume**: the same sounds at gains from −20 to +10 dB → judged size (ρ, slope, mean per gain).
- **mixture**: two sources at gain ratios (first minus second, in dB) → is each source drawn?
- **reverb**: dry vs. reverberant input → judged background.
- **interpolation**: ``λ·z^V + (1−λ)·z^A`` with the image of another class → is the audio's
  class drawn, the image's, or both?

Images are drawn through :class:`~a2i.pipelines.AudioToImagePipeline`; methods that do not
support ``image_blend`` skip interpolation.
Under DDP every rank sweeps its share of the scenes and the per-scene results are gathered, so
every rank returns the same tables.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

import numpy as np
import torch
from scipy.stats import spearmanr
from torch import Tensor

from a2i.audio.io import fit_length
from a2i.interfaces import GenerationRequest
from a2i.pipelines import AudioToImagePipeline
from a2i.synth.judge import JudgeReport, WorldJudge
from a2i.synth.world import SceneSpec, SyntheticWorld

GAIN_SWEEP_DB = (-20.0, -15.0, -10.0, -5.0, 0.0, 5.0, 10.0)
MIX_RATIOS_DB = (-10.0, -5.0, 0.0, 5.0, 10.0)
INTERPOLATION_WEIGHTS = (0.0, 0.25, 0.5, 0.75, 1.0)

Gather = Callable[[Tensor], Tensor]
"""Concatenates a per-rank tensor over all ranks (identity on one process)."""


def solo_specs(world: SyntheticWorld, count: int, split: str = "test") -> list[SceneSpec]:
    """``count`` single-source scenes of ``split`` (mixtures skipped), in index order."""
    specs, index = [], 0
    while len(specs) < count:
        spec = world.sample_spec(split, index)
        index += 1
        if len(spec.sources) == 1:
            specs.append(spec)
    return specs


def other_class(spec: SceneSpec, num_classes: int) -> int:
    """A class other than the scene's source, fixed by the scene's seed."""
    return (spec.sources[0] + 1 + spec.seed % (num_classes - 1)) % num_classes


def pair_rates(present: Tensor, specs: Sequence[SceneSpec], gather: Gather) -> dict[str, float]:
    """How often the first, the second and both sources of two-source ``specs`` are drawn.

    ``present`` is the judge's ``(N, classes)`` verdict on one image per spec.
    """
    index = torch.arange(len(specs))
    first = gather(present[index, [s.sources[0] for s in specs]].float())
    second = gather(present[index, [s.sources[1] for s in specs]].float())
    return {
        "first_present": float(first.mean()),
        "second_present": float(second.mean()),
        "both_present": float((first * second).mean()),
    }


class ControlSweeps:
    """Runs the four sweeps on one method and returns one table of rows per sweep.

    Args:
        world: The world that renders the inputs (its image size should be the method's).
        judge: Reads the generated images.
        scenes: Test scenes per sweep point.
        gains_db: Gains of the volume sweep (Sound2Vision Fig. 8 spans quiet to loud).
        mix_ratios_db: Gain of the first source minus the second in the mixture sweep.
        interpolation_weights: λ values (weight of the image) of the interpolation sweep.
        batch_size: Inputs generated at once.
        seed: Noise seed of the generator.
    """

    def __init__(
        self,
        world: SyntheticWorld,
        judge: WorldJudge,
        scenes: int = 40,
        gains_db: Sequence[float] = GAIN_SWEEP_DB,
        mix_ratios_db: Sequence[float] = MIX_RATIOS_DB,
        interpolation_weights: Sequence[float] = INTERPOLATION_WEIGHTS,
        batch_size: int = 50,
        seed: int = 0,
    ) -> None:
        self.world = world
        self.judge = judge
        self.scenes = scenes
        self.gains_db = tuple(gains_db)
        self.mix_ratios_db = tuple(mix_ratios_db)
        self.interpolation_weights = tuple(interpolation_weights)
        self.batch_size = batch_size
        self.seed = seed

    def run(
        self,
        pipeline: AudioToImagePipeline,
        rank: int = 0,
        world_size: int = 1,
        gather: Gather = lambda t: t,
    ) -> dict[str, Any]:
        """All sweeps; ``rank``/``world_size`` shard the scenes, ``gather`` joins the results.

        Returns tables (lists of rows, one per sweep point) named ``volume``, ``mixture``,
        ``reverb`` and ``interpolation``, and ``volume_trend``: ρ and slope over all gains.
        """
        bases = solo_specs(self.world, self.scenes)[rank::world_size]
        volume, trend = self.volume(pipeline, bases, gather)
        tables: dict[str, Any] = {
            "volume": volume,
            "volume_trend": trend,
            "mixture": self.mixture(pipeline, bases, gather),
            "reverb": self.reverb(pipeline, bases, gather),
        }
        if "image_blend" in pipeline.model.supports:
            tables["interpolation"] = self.interpolation(pipeline, bases, gather)
        return tables

    def volume(
        self, pipeline: AudioToImagePipeline, bases: list[SceneSpec], gather: Gather
    ) -> tuple[list[dict[str, float]], dict[str, float]]:
        """Rows per gain (mean judged size of the source), and Spearman ρ and slope over all."""
        rows, gains, sizes = [], [], []
        for gain in self.gains_db:
            specs = [replace(s, gains_db=(gain,), reverb=False) for s in bases]
            report = self._judge(pipeline, specs)
            label = torch.tensor([s.sources[0] for s in specs])
            size = gather(report.sizes.cpu()[torch.arange(len(specs)), label])
            rows.append({"gain_db": gain, "mean_size": float(size.mean())})
            gains += [gain] * len(size)
            sizes += size.tolist()
        trend = {
            "spearman_rho": float(spearmanr(gains, sizes).statistic),
            "slope_per_db": float(np.polyfit(gains, sizes, 1)[0]),
        }
        return rows, trend

    def mixture(
        self, pipeline: AudioToImagePipeline, bases: list[SceneSpec], gather: Gather
    ) -> list[dict[str, float]]:
        """Rows per gain ratio: how often the first, the second and both sources are drawn.

        The ratio is split evenly (first at +ratio/2, second at −ratio/2), Sound2Vision Fig. 9's
        mixtures; :meth:`loudness` varies one source only.
        """
        return [
            {
                "ratio_db": ratio,
                **self.pair_presence(pipeline, bases, gather, ratio / 2, -ratio / 2),
            }
            for ratio in self.mix_ratios_db
        ]

    def loudness(
        self,
        pipeline: AudioToImagePipeline,
        bases: list[SceneSpec],
        gather: Gather,
        first_gains_db: Sequence[float],
        second_gain_db: float,
    ) -> list[dict[str, float]]:
        """Rows per gain of the first source, the second held at ``second_gain_db``.

        Seeing Sound §4.5 (Semantic Interpolation, Fig. 5) varies the loudness of one source of a
        two-source mix while the other stays fixed.
        """
        return [
            {
                "first_gain_db": gain,
                **self.pair_presence(pipeline, bases, gather, gain, second_gain_db),
            }
            for gain in first_gains_db
        ]

    def pair_presence(
        self,
        pipeline: AudioToImagePipeline,
        bases: list[SceneSpec],
        gather: Gather,
        first_db: float,
        second_db: float,
    ) -> dict[str, float]:
        """Each base scene's source mixed with another class: how often each and both are drawn."""
        specs = self.pairs(bases, first_db, second_db)
        present = self._judge(pipeline, specs).present.cpu()
        return pair_rates(present, specs, gather)

    def pairs(self, bases: list[SceneSpec], first_db: float, second_db: float) -> list[SceneSpec]:
        """Dry two-source scenes: each base's source at ``first_db``, another class at ``second_db``."""
        num_classes = len(self.world.classes)
        return [
            replace(
                s,
                sources=(s.sources[0], other_class(s, num_classes)),
                gains_db=(first_db, second_db),
                reverb=False,
            )
            for s in bases
        ]

    def reverb(
        self, pipeline: AudioToImagePipeline, bases: list[SceneSpec], gather: Gather
    ) -> list[dict[str, float]]:
        """Rows for dry and reverberant input: fraction judged indoor."""
        rows = []
        for reverberant in (False, True):
            specs = [replace(s, reverb=reverberant) for s in bases]
            indoor = gather(self._judge(pipeline, specs).indoor.cpu().float())
            rows.append({"reverb": float(reverberant), "indoor": float(indoor.mean())})
        return rows

    def interpolation(
        self, pipeline: AudioToImagePipeline, bases: list[SceneSpec], gather: Gather
    ) -> list[dict[str, float]]:
        """Rows per λ: the audio's class drawn, the image's class drawn, the audio's class main."""
        num_classes = len(self.world.classes)
        specs = [replace(s, reverb=False) for s in bases]
        image_specs = [
            replace(s, sources=(other_class(s, num_classes),), gains_db=(0.0,)) for s in specs
        ]
        images = torch.stack([self.world.render_image(s) for s in image_specs])
        audio_class = torch.tensor([s.sources[0] for s in specs])
        image_class = torch.tensor([s.sources[0] for s in image_specs])
        rows = []
        for weight in self.interpolation_weights:
            report = self._judge(pipeline, specs, images=images, image_weight=weight)
            index = torch.arange(len(specs))
            present = report.present.cpu()
            rows.append(
                {
                    "image_weight": weight,
                    "audio_class_present": float(
                        gather(present[index, audio_class].float()).mean()
                    ),
                    "image_class_present": float(
                        gather(present[index, image_class].float()).mean()
                    ),
                    "audio_class_main": float(
                        gather((report.main_class.cpu() == audio_class).float()).mean()
                    ),
                }
            )
        return rows

    @torch.no_grad()
    def _judge(
        self,
        pipeline: AudioToImagePipeline,
        specs: Sequence[SceneSpec],
        images: Tensor | None = None,
        image_weight: float = 0.5,
    ) -> JudgeReport:
        """Render the specs' audio, generate one image each, judge them."""
        num_samples = round(pipeline.model.clip_seconds * self.world.sample_rate)
        device = pipeline.device
        generated = []
        for start in range(0, len(specs), self.batch_size):
            chunk = specs[start : start + self.batch_size]
            audio = torch.stack(
                [
                    fit_length(self.world.render_audio(s), num_samples, random_crop=False)
                    for s in chunk
                ]
            ).to(device)
            blend = None if images is None else images[start : start + self.batch_size]
            request = pipeline.prepare_request(
                GenerationRequest(seeds=(self.seed,), image=blend, image_weight=image_weight)
            )
            generated.append(pipeline.generate(audio, request)[:, 0])
        if not generated:
            return self.judge.judge(torch.zeros(0, 3, self.world.image_size, self.world.image_size))
        return self.judge.judge(torch.cat(generated))
