r"""One evaluation harness for every method: ``a2i test`` with the :class:`Evaluation` callback.

Each seed paper scores with its own scripts, so their numbers do not compare. Here every method
is scored the same way from the same test batches: the callback draws one image per test clip
through :class:`~a2i.pipelines.AudioToImagePipeline` (the path ``a2i predict`` takes), feeds the
images to every configured metric, and at the end writes one report (``metrics.json``/``.md``/``.csv`` + image grids) and logs it to
TensorBoard. Which metrics run depends on which backbones the evaluation config gives:

========================  ==========================================================  =========
metric                    needs                                                        paper
========================  ==========================================================  =========
``fid``, ``kid``, ``is``  ``quality_backbone`` (Inception, or the world classifier)   S2V §4.1
``clip_r@k``              ``clip`` + class names (from the datamodule)                 S2V §4.1
``iis``                   ``clip`` + ground-truth frames: win rate                     AT §2.2
``ais``                   ``clip`` + ``audio_tower`` in CLIP's space: win rate         AT §2.2
``iis_cosine``            as ``iis``: raw mean cosine                                  SS §4.2
``ais_cosine``            as ``ais``: raw mean cosine                                  SS §4.2
``aic``                   ``classifier`` (+ ``clip`` for the 0.75 name fallback)       AT §2.2
``judge_*``, sweeps       a plugin: :class:`a2i.synth.evaluation.WorldEvaluation`      S2V §5
``modality_gap``          a method that ``aligns_spaces``                              S2V §4.4
``diversity_*``           ``diversity_seeds >= 2``                                     —
========================  ==========================================================  =========

A backbone that shares weights with the method it scores (WavBriVL steers with its image tower:
scored by the same CLIP, R@k and IIS measure the steering) is named in the report's
``steering_model_overlap`` section with the metrics it computes, and a warning says so.

Dataset-specific measures plug in as :class:`EvaluationPlugin`\ s (the synthetic world's judge
and control sweeps live in :mod:`a2i.synth`), so this core knows no dataset.
All metrics are torchmetrics ``Metric``s: under DDP every rank scores its share of the test set
and the states are synced before computing, so the report is the same as on one process.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any

import lightning as L
import torch
import torch.distributed as dist
import torchaudio.functional as AF
from lightning.pytorch.loggers import TensorBoardLogger
from torch import Tensor, nn
from torchmetrics import SumMetric
from torchmetrics.utilities.distributed import gather_all_tensors

from a2i.audio.io import fit_length
from a2i.callbacks.reporting import ReportingCallback
from a2i.encoders.image.scorers import CLIPScorer, ImageClassifier
from a2i.errors import ConfigError
from a2i.interfaces import AUDIO, IMAGE, LABEL, AudioEncoder, GenerationRequest
from a2i.metrics.diversity import SeedDiversity
from a2i.metrics.image_quality import ImageQuality
from a2i.metrics.modality_gap import ModalityGap
from a2i.metrics.report import flatten
from a2i.metrics.retrieval import (
    ClassAgreement,
    ClassRetrieval,
    MeanCosine,
    RelativeSimilarity,
    class_agreement,
)
from a2i.metrics.steering import BACKBONE_METRICS, shared_weight_fraction
from a2i.pipelines import AudioToImagePipeline

log = logging.getLogger(__name__)

Gather = Callable[[Tensor], Tensor]
"""Concatenates a per-rank tensor over all ranks (identity on one process)."""


class EvaluationPlugin(ABC):
    """Measures that need more than the generic harness knows (a dataset's ground truth).

    The harness calls :meth:`setup` once, :meth:`update` per test batch with the images it drew,
    and :meth:`compute` at the end; what :meth:`compute` returns is merged into the report.
    """

    @abstractmethod
    def setup(self, trainer: L.Trainer, pipeline: AudioToImagePipeline) -> None:
        """Check that the run fits (e.g. its datamodule) and build the plugin's metrics."""

    @abstractmethod
    def update(self, batch: dict[str, Any], images: Tensor) -> Tensor | None:
        """Score one batch's images ``(B, 3, H, W)``.

        Optionally returns per-image scores of the input's own class (they rank the grids).
        """

    def layout_codes(self, images: Tensor) -> Tensor | None:
        """Optional ``(N,)`` discrete scene codes of images, for the seed-diversity measure."""
        return None

    @abstractmethod
    def compute(
        self, pipeline: AudioToImagePipeline, rank: int, world_size: int, gather: Gather
    ) -> dict[str, Any]:
        """Report sections: ``{"metrics": {name: value}, <section>: …}`` (same on every rank)."""


class Evaluation(ReportingCallback):
    """Score a method's generations on the test split and write a report (see module docstring).

    Args:
        output_dir: Report folder; default ``<test log dir>/evaluation`` (also recorded in the
            tested run, :mod:`a2i.callbacks.reporting`).
        overwrite: Replace an existing report in ``output_dir`` (and its record in the run).
        clip: CLIP image and text towers (R@k, IIS, AIS, AIC fallback, grid ranking, diversity).
        prompt_template: Text for each class name in R@k (Sound2Vision §4.1 ranks class names).
        top_k: The ``k`` of CLIP R@k (Sound2Vision reports 1 and 5).
        classifier: Image classifier for AIC (AudioToken §2.2).
        agreement_threshold: CLIP text similarity above which a classifier class and an audio
            label agree in AIC (AudioToken §2.2: 0.75).
        audio_tower: Audio encoder whose pooled output lives in ``clip``'s image space, for AIS
            (AudioToken §2.2 uses Wav2CLIP).
        quality_backbone: Feature network of FID/KID/IS (:class:`InceptionFeatures` for
            FID comparable with AudioToken's, which uses the standard one; Sound2Scene's FID/IS
            use an Inception its authors trained on VGGSound, so no a2i number compares with
            Sound2Vision's; the world classifier in the synthetic world).
        kid_subset_size: KID subset size (clamped to the number of images).
        plugins: Dataset-specific measures (e.g. :class:`a2i.synth.evaluation.WorldEvaluation`).
        diversity_seeds: Seeds per input for the diversity measures (< 2: skipped).
        diversity_inputs: Inputs per rank that get ``diversity_seeds`` images.
        grid_images: Images per class in the best/worst/random grids.
        class_names: Class names when the datamodule has no ``classes``.
        seed: Noise seed of the generated images.
    """

    kind = "evaluation"

    def __init__(
        self,
        output_dir: str | None = None,
        overwrite: bool = False,
        clip: CLIPScorer | None = None,
        prompt_template: str = "a photo of {}",
        top_k: tuple[int, ...] = (1, 5),
        classifier: ImageClassifier | None = None,
        agreement_threshold: float = 0.75,
        audio_tower: AudioEncoder | None = None,
        quality_backbone: nn.Module | None = None,
        kid_subset_size: int = 1000,
        plugins: list[EvaluationPlugin] | None = None,
        diversity_seeds: int = 4,
        diversity_inputs: int = 32,
        grid_images: int = 4,
        class_names: list[str] | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__(output_dir, overwrite)
        if audio_tower is not None and clip is None:
            raise ConfigError(
                "Evaluation.audio_tower (AIS) needs Evaluation.clip (its image space)"
            )
        self.clip = clip
        self.prompt_template = prompt_template
        self.top_k = top_k
        self.classifier = classifier
        self.agreement_threshold = agreement_threshold
        self.audio_tower = audio_tower.freeze() if audio_tower is not None else None
        self.quality_backbone = quality_backbone
        self.kid_subset_size = kid_subset_size
        self.plugins = list(plugins or [])
        self.diversity_seeds = diversity_seeds
        self.diversity_inputs = diversity_inputs
        self.grid_images = grid_images
        self.class_names = class_names
        self.seed = seed
        self.metrics: dict[str, nn.Module] = {}
        self.results: dict[str, Any] = {}

    # -- setup ---------------------------------------------------------------------------------

    def on_test_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Check the report folder, move backbones to the device, build the metrics."""
        self.open_report(trainer, pl_module)
        self.pipeline = AudioToImagePipeline(pl_module)
        self.request = self.pipeline.prepare_request(GenerationRequest(seeds=(self.seed,)))
        device = pl_module.device
        self.classes = self.class_names or list(getattr(trainer.datamodule, "classes", []) or [])
        for backbone in (self.clip, self.classifier, self.audio_tower, self.quality_backbone):
            if backbone is not None:
                backbone.to(device).eval()
        self.steering_overlap = self._steering_overlap(pl_module)
        metrics: dict[str, nn.Module] = {"count": SumMetric()}
        if self.quality_backbone is not None:
            metrics["quality"] = ImageQuality(self.quality_backbone, self.kid_subset_size)
        if self.clip is not None:
            if self.classes:
                prompts = [self.prompt_template.format(c) for c in self.classes]
                metrics["clip_retrieval"] = ClassRetrieval(
                    self.clip.embed_texts(prompts), self.top_k
                )
            metrics["iis"], metrics["iis_cosine"] = RelativeSimilarity(), MeanCosine()
            if self.audio_tower is not None:
                metrics["ais"], metrics["ais_cosine"] = RelativeSimilarity(), MeanCosine()
        if self.classifier is not None and self.classes:
            agreement = class_agreement(
                self.classifier.class_names,
                self.classes,
                self.clip.embed_texts if self.clip is not None else None,
                self.agreement_threshold,
            )
            self.agreement_summary = agreement.summary()
            metrics["aic"] = ClassAgreement(agreement.matrix)
        for plugin in self.plugins:
            plugin.setup(trainer, self.pipeline)
        if pl_module.aligns_spaces:
            metrics["modality_gap"] = ModalityGap()
        if self.diversity_seeds >= 2 and (self.clip is not None or self.plugins):
            metrics["diversity"] = SeedDiversity()
        self.metrics = {name: metric.to(device) for name, metric in metrics.items()}
        self.diversity_seen = 0
        self.grid_pool = GridPool(self.grid_images, self.seed)

    def _steering_overlap(self, pl_module: L.LightningModule) -> dict[str, dict[str, Any]]:
        """The backbones that share weights with ``pl_module``, with the metrics they compute."""
        overlap = {}
        for name, metrics in BACKBONE_METRICS.items():
            backbone = getattr(self, name)
            if backbone is None:
                continue
            fraction = shared_weight_fraction(backbone, pl_module)
            if fraction > 0:
                overlap[name] = {"shared_weights": round(fraction, 4), "metrics": metrics}
                log.warning(
                    "Evaluation.%s shares %.0f%% of its weights with the %s it scores: %s measure "
                    "what the method steers with, not only its images; evaluate with an "
                    "independent model",
                    name,
                    100 * fraction,
                    type(pl_module).__name__,
                    ", ".join(metrics),
                )
        return overlap

    # -- per batch -----------------------------------------------------------------------------

    @torch.no_grad()
    def on_test_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        outputs: Any,
        batch: dict[str, Any],
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        """Generate one image per clip and update every metric with it."""
        audio = batch[AUDIO]
        labels = batch.get(LABEL, torch.full((len(audio),), -1, device=audio.device))
        frames = batch.get(IMAGE)
        images = self.pipeline.generate(audio, self.request)[:, 0]
        metrics = self.metrics
        metrics["count"].update(torch.tensor(float(len(images)), device=images.device))
        if "quality" in metrics:
            metrics["quality"].update_fake(images)
            if frames is not None:
                metrics["quality"].update_real(frames)
        scores = None
        if self.clip is not None:
            embedded = self.clip.embed_images(images)
            if "clip_retrieval" in metrics:
                metrics["clip_retrieval"].update(embedded, labels)
                scores = (embedded @ metrics["clip_retrieval"].class_embeddings.T).gather(
                    1, labels.clamp(min=0)[:, None]
                )[:, 0]
            if frames is not None:
                true_frames = self.clip.embed_images(frames)
                metrics["iis"].update(embedded, true_frames)
                metrics["iis_cosine"].update(embedded, true_frames)
            if "ais" in metrics:
                sounds = self.audio_tower(self._tower_input(audio, pl_module)).pooled
                metrics["ais"].update(embedded, sounds)
                metrics["ais_cosine"].update(embedded, sounds)
        if "aic" in metrics:
            metrics["aic"].update(self.classifier.logits(images).argmax(dim=-1), labels)
        for plugin in self.plugins:
            plugin_scores = plugin.update(batch, images)
            if scores is None:
                scores = plugin_scores
        if "modality_gap" in metrics and frames is not None:
            metrics["modality_gap"].update(
                pl_module.image_features(frames), pl_module.audio_features(audio)
            )
        if "diversity" in metrics and self.diversity_seen < self.diversity_inputs:
            self._update_diversity(pl_module, audio[: self.diversity_inputs - self.diversity_seen])
        if scores is not None:
            self.grid_pool.add(images, labels, scores)

    def _update_diversity(self, pl_module: L.LightningModule, audio: Tensor) -> None:
        request = self.pipeline.prepare_request(
            GenerationRequest.from_seed(self.seed, self.diversity_seeds)
        )
        images = self.pipeline.generate(audio, request)  # (B, S, 3, H, W)
        flat = images.flatten(0, 1)
        seeds = request.seeds
        codes = None
        for plugin in self.plugins:
            found = plugin.layout_codes(flat)
            if found is not None:
                codes = found.view(len(audio), len(seeds))
        if self.clip is not None:
            features = self.clip.embed_images(flat)
        else:
            features = flat.flatten(1)
        self.metrics["diversity"].update(features.view(len(audio), len(seeds), -1), codes)
        self.diversity_seen += len(audio)

    def _tower_input(self, audio: Tensor, pl_module: L.LightningModule) -> Tensor:
        """The method's clips at the audio tower's sample rate and clip length."""
        tower = self.audio_tower
        method_rate = pl_module.sample_rate
        if method_rate != tower.sample_rate:
            audio = AF.resample(audio, method_rate, tower.sample_rate)
        samples = round(tower.clip_seconds * tower.sample_rate)
        return torch.stack([fit_length(clip, samples, random_crop=False) for clip in audio])

    # -- end of test ---------------------------------------------------------------------------

    def on_test_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Compute every metric (synced over ranks), run the sweeps, write and log the report."""
        results = self._compute(trainer, pl_module)
        device = pl_module.device
        for plugin in self.plugins:
            sections = plugin.compute(
                self.pipeline,
                trainer.global_rank,
                trainer.world_size,
                lambda tensor: _gather_cat(tensor.to(device)).cpu(),
            )
            results["metrics"].update(sections.pop("metrics", {}))
            results.update(sections)
        grids = self.grid_pool.grids(self.classes)
        self.results = results
        scalars = flatten({k: v for k, v in results.items() if k not in ("run", "classes")})
        for name, value in flatten(results["metrics"]).items():
            pl_module.log(f"eval/{name}", value, rank_zero_only=True)
        self.close_report(trainer, results, grids)
        if trainer.is_global_zero:
            self._log_tensorboard(trainer, scalars, grids)

    def _compute(self, trainer: L.Trainer, pl_module: L.LightningModule) -> dict[str, Any]:
        metrics: dict[str, Any] = {}
        results: dict[str, Any] = {
            "run": {
                "method": type(pl_module).__name__,
                "checkpoint": str(trainer.ckpt_path) if trainer.ckpt_path else None,
                "test_images": None,
                "world_size": trainer.world_size,
            },
            "metrics": metrics,
        }
        for name, metric in self.metrics.items():
            value = metric.compute()
            if name == "count":
                results["run"]["test_images"] = int(value)
            elif name == "quality":
                metrics.update(value)
            elif name == "clip_retrieval":
                metrics.update({f"clip_{k}": float(v) for k, v in value.items()})
            elif name in ("iis", "ais", "iis_cosine", "ais_cosine", "aic"):
                metrics[name] = float(value)
            elif name == "modality_gap":
                results["modality_gap"] = {k: float(v) for k, v in value.items()}
                self.gap_distributions = metric.distributions()
            elif name == "diversity":
                metrics.update({f"diversity_{k}": float(v) for k, v in value.items()})
            metric.reset()
        if "aic" in self.metrics:
            results["aic_agreement"] = self.agreement_summary
        if self.steering_overlap:
            results["steering_model_overlap"] = self.steering_overlap
        return results

    def _log_tensorboard(
        self, trainer: L.Trainer, scalars: dict[str, float], grids: dict[str, list[Tensor]]
    ) -> None:
        logger = next((lg for lg in trainer.loggers if isinstance(lg, TensorBoardLogger)), None)
        if logger is None:
            return
        writer = logger.experiment
        step = trainer.global_step
        for name, value in scalars.items():
            writer.add_scalar(f"eval/{name}", value, step)
        for name, values in getattr(self, "gap_distributions", {}).items():
            writer.add_histogram(f"eval/modality_gap/{name}", values.cpu(), step)
        for name, rows in grids.items():
            if rows:
                stacked = torch.stack([img for row in rows for img in row])
                writer.add_images(f"eval/grid_{name}", stacked, step, dataformats="NCHW")


class GridPool:
    """Keeps, per class, the best- and worst-scoring images and a seeded random sample."""

    def __init__(self, per_class: int, seed: int = 0) -> None:
        self.per_class = per_class
        self.generator = torch.Generator().manual_seed(seed)
        self.pools: dict[str, dict[int, list[tuple[float, Tensor]]]] = {
            "best": {},
            "worst": {},
            "random": {},
        }
        self.seen: dict[int, int] = {}

    def add(self, images: Tensor, labels: Tensor, scores: Tensor) -> None:
        """Offer images with their class and score (higher = more like the class)."""
        for image, label, score in zip(images.cpu(), labels.tolist(), scores.tolist(), strict=True):
            if label < 0:
                continue
            entry = (float(score), image.float())
            best = self.pools["best"].setdefault(label, [])
            worst = self.pools["worst"].setdefault(label, [])
            best[:] = sorted([*best, entry], key=lambda e: -e[0])[: self.per_class]
            worst[:] = sorted([*worst, entry], key=lambda e: e[0])[: self.per_class]
            count = self.seen.get(label, 0)
            self.seen[label] = count + 1
            sample = self.pools["random"].setdefault(label, [])
            if len(sample) < self.per_class:  # reservoir sampling keeps a uniform sample
                sample.append(entry)
            else:
                slot = int(torch.randint(count + 1, (1,), generator=self.generator))
                if slot < self.per_class:
                    sample[slot] = entry

    def grids(self, classes: list[str]) -> dict[str, list[list[Tensor]]]:
        """Per grid name, one row of images per class (merged over ranks on rank 0)."""
        pools = self.pools
        if dist.is_available() and dist.is_initialized():
            gathered: list[Any] = [None] * dist.get_world_size()
            dist.all_gather_object(gathered, pools)
            pools = {name: {} for name in pools}
            for rank_pools in gathered:
                for name, per_class in rank_pools.items():
                    for label, entries in per_class.items():
                        pools[name].setdefault(label, []).extend(entries)
            pools["best"] = {k: sorted(v, key=lambda e: -e[0]) for k, v in pools["best"].items()}
            pools["worst"] = {k: sorted(v, key=lambda e: e[0]) for k, v in pools["worst"].items()}
        return {
            name: [
                [image for _, image in per_class[label][: self.per_class]]
                for label in sorted(per_class)
            ]
            for name, per_class in pools.items()
        }


def _gather_cat(tensor: Tensor) -> Tensor:
    """Concatenate a per-rank tensor over all ranks (unequal lengths allowed)."""
    if not (dist.is_available() and dist.is_initialized()):
        return tensor
    return torch.cat(gather_all_tensors(tensor))
