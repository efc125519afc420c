r"""Downstream tasks of a method's audio tower: ``a2i test`` with the :class:`Downstream` callback.

WavBriVL §4 (Tables 1-2) judges an audio tower trained into a vision-language space by what its
frozen embeddings do: classify sounds with a small classifier on top (MC), classify them with
no training against the text embeddings of class prompts (ZS), and retrieve a clip's own frame
among all frames and back (CMR). Any method with ``audio_features``/``image_features``
(:attr:`~a2i.interfaces.AudioToImageModel.aligns_spaces`) is scored; zero-shot also needs
``text_features(texts) -> (N, D)`` (a vision-language method such as WavBriVL), else it is
skipped and the report says why. No image is generated. Added to a method's config::

    a2i test --config RUN/config.yaml --config configs/eval/downstream.yaml \
        --ckpt_path RUN/checkpoints/last.ckpt

======================  ===================================================  =================
report entry            data                                                  Table 2
======================  ===================================================  =================
``cmr/mrr_a2i|i2a``     the run's test batches (each clip and its own frame)  VGGSound CMR
``run/probe_*``         probe trained on the run's train split, scored on     VGGSound MC
                        its test split (in the world: the world's classes)
``<set>/probe_*``       each of ``datasets`` (ESC-50, UrbanSound8K),          ESC-50, US8K
                        cross-validated over its official folds
``*/zero_shot_*``       test split / held-out folds vs. the class prompts     ZS row (accuracy;
                                                                              VGGSound: mAP)
``clotho/t2a_*|a2t_*``  ``caption_sets``: captions vs. clips (retrieval)      Table 1's Clotho
``desed/segment_f1``    ``event_sets``: each segment vs. the class prompts    DESED (AR)
======================  ===================================================  =================

The report (``metrics.json``/``.md``/``.csv``, as the evaluation harness writes them) goes to
``<test log dir>/downstream`` and is recorded in the tested run (:mod:`a2i.callbacks.reporting`). Every number is a torchmetrics ``Metric`` over embeddings: under
DDP each rank embeds its share (the test loop's, and every ``world_size``-th clip of the other
sets) and the states are gathered before computing, so the report equals that of one process.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import Any

import lightning as L
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, Subset

from a2i.audio.io import Crop
from a2i.callbacks.reporting import ReportingCallback
from a2i.data.base import AudioVisualDataModule, collate_batch
from a2i.data.downstream import ERROR, FOLD, FoldedAudioSet
from a2i.data.retrieval_sets import DESED, INDEX, ClothoCaptions
from a2i.errors import ConfigError
from a2i.interfaces import AUDIO, IMAGE, KEY, LABEL
from a2i.metrics.downstream import (
    CaptionRetrieval,
    CrossModalMRR,
    ProbeAccuracy,
    ProbeKind,
    SegmentF1,
    ZeroShotClassification,
)
from a2i.metrics.report import flatten

log = logging.getLogger(__name__)

RUN = "run"
"""Task name of the run's own data (train split → test split)."""
TRAIN_FOLD, TEST_FOLD = 0, 1
"""Folds given to the run's train and test clips (the test one is held out)."""


@dataclass
class Task:
    """One classification task: its probe, its zero-shot metric and the clips it could not read."""

    classes: list[str]
    probe: ProbeAccuracy
    zero_shot: ZeroShotClassification | None
    held_out: list[int]
    failed: list[str] = field(default_factory=list)


class Downstream(ReportingCallback):
    """Score a method's frozen embeddings on WavBriVL's downstream tasks (see module docstring).

    Args:
        output_dir: Report folder; default ``<test log dir>/downstream`` (also recorded in the
            tested run, :mod:`a2i.callbacks.reporting`).
        overwrite: Replace an existing report in ``output_dir`` (and its record in the run).
        datasets: Labelled sets with official folds (:class:`a2i.data.downstream.ESC50`,
            :class:`~a2i.data.downstream.UrbanSound8K`).
        caption_sets: Captioned sets scored by caption↔clip retrieval through the text tower
            (:class:`a2i.data.retrieval_sets.ClothoCaptions`).
        event_sets: Strongly labelled sets scored by segment-level event retrieval through the
            class prompts (:class:`a2i.data.retrieval_sets.DESED`).
        run_data: Also classify the run's own data (probe on its train split, scored on its
            test split; zero-shot on the test split): the world's classes in the world.
        retrieval: Cross-modal retrieval MRR on the run's test batches (they need frames).
        zero_shot: Zero-shot classification when the method has ``text_features``.
        prompt_template: Text of each class name for zero-shot (the audio embedding lives in
            the image space, so the prompt describes a picture; underscores become spaces).
        probe: ``mlp`` (WavBriVL §4.1) or ``linear``; see :class:`ProbeAccuracy`.
        hidden_size: Hidden width of the MLP probe.
        probe_steps: Most L-BFGS iterations of each probe (full batch).
        weight_decay: L2 penalty on the probes' weights.
        crop: Window of a longer clip of ``datasets`` the method hears (start, center, loudest).
        batch_size: Clips embedded at once outside the test loop (default: the datamodule's).
        num_workers: DataLoader workers decoding those clips.
        seed: Seed of the probes' initialisation.
    """

    kind = "downstream"

    def __init__(
        self,
        output_dir: str | None = None,
        overwrite: bool = False,
        datasets: list[FoldedAudioSet] | None = None,
        caption_sets: list[ClothoCaptions] | None = None,
        event_sets: list[DESED] | None = None,
        run_data: bool = True,
        retrieval: bool = True,
        zero_shot: bool = True,
        prompt_template: str = "a photo of {}",
        probe: ProbeKind = "mlp",
        hidden_size: int = 512,
        probe_steps: int = 500,
        weight_decay: float = 1e-4,
        crop: Crop = "start",
        batch_size: int | None = None,
        num_workers: int = 0,
        seed: int = 0,
    ) -> None:
        super().__init__(output_dir, overwrite)
        self.datasets = list(datasets or [])
        self.caption_sets = list(caption_sets or [])
        self.event_sets = list(event_sets or [])
        names = [s.name for s in [*self.datasets, *self.caption_sets, *self.event_sets]]
        if len(set(names)) != len(names) or RUN in names:
            raise ConfigError(f"Downstream.datasets need distinct names other than '{RUN}'")
        if min(hidden_size, probe_steps) < 1:
            raise ConfigError("Downstream.hidden_size and probe_steps must be >= 1")
        self.run_data = run_data
        self.retrieval = retrieval
        self.zero_shot = zero_shot
        self.prompt_template = prompt_template
        self.probe_settings = {
            "probe": probe,
            "hidden_size": hidden_size,
            "steps": probe_steps,
            "weight_decay": weight_decay,
            "seed": seed,
        }
        self.crop = crop
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.results: dict[str, Any] = {}

    # -- setup ---------------------------------------------------------------------------------

    def on_test_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Check the method and report folder, embed the class prompts, build the metrics."""
        if not getattr(pl_module, "aligns_spaces", False):
            raise ConfigError(
                f"{type(pl_module).__name__} has no audio embedding (audio_features): the "
                "downstream tasks need a method that maps audio into a shared space, e.g. "
                "Sound2Vision or WavBriVL"
            )
        self.open_report(trainer, pl_module)
        self.notes: list[str] = []
        self.tasks: dict[str, Task] = {}
        if self.run_data:
            self._add_run_task(trainer, pl_module)
        for audio_set in self.datasets:
            self.tasks[audio_set.name] = self._task(pl_module, audio_set.classes, audio_set.folds)
        self.mrr = CrossModalMRR().to(pl_module.device) if self.retrieval else None
        self.frames_seen = False
        self.caption_metrics = {
            s.name: self._caption_metric(pl_module, s) for s in self.caption_sets
        }
        self.event_metrics = {s.name: self._event_metric(pl_module, s) for s in self.event_sets}
        self.retrieval_failed: dict[str, list[str]] = {}

    def _caption_metric(
        self, pl_module: L.LightningModule, caption_set: ClothoCaptions
    ) -> CaptionRetrieval | None:
        """Caption retrieval of ``caption_set`` (None, with a note, without a text tower)."""
        embeddings = self._texts(pl_module, caption_set.captions, caption_set.name)
        if embeddings is None:
            return None
        owners = torch.tensor(caption_set.caption_clip, device=embeddings.device)
        return CaptionRetrieval(embeddings, owners).to(pl_module.device)

    def _event_metric(self, pl_module: L.LightningModule, event_set: DESED) -> SegmentF1 | None:
        """Segment F1 of ``event_set`` against its class prompts (None without a text tower)."""
        prompts = [self.prompt_template.format(c.replace("_", " ")) for c in event_set.classes]
        embeddings = self._texts(pl_module, prompts, event_set.name)
        return None if embeddings is None else SegmentF1(embeddings).to(pl_module.device)

    @torch.no_grad()
    def _texts(self, pl_module: L.LightningModule, texts: list[str], task: str) -> Tensor | None:
        """Text embeddings in chunks of 256, or None (and a note) without a text tower."""
        text_features = getattr(pl_module, "text_features", None)
        if callable(text_features):
            try:
                return torch.cat(
                    [text_features(texts[i : i + 256]) for i in range(0, len(texts), 256)]
                )
            except NotImplementedError as error:
                reason = str(error)
        else:
            reason = f"{type(pl_module).__name__} has no text tower (text_features)"
        note = f"{task} skipped: {reason}"
        self.notes.append(note)
        log.warning(note)
        return None

    def _add_run_task(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """The run's data as a task (train split → test split), or a note saying why not."""
        datamodule = trainer.datamodule
        classes = list(getattr(datamodule, "classes", None) or [])
        if not isinstance(datamodule, AudioVisualDataModule) or len(classes) < 2:
            self.notes.append("run data skipped: the datamodule names no classes")
            return
        try:
            self.run_train = datamodule.dataset("train")
        except (NotImplementedError, ConfigError) as error:
            self.notes.append(f"run data skipped: no train split to fit the probe on ({error})")
            return
        self.tasks[RUN] = self._task(pl_module, classes, [TEST_FOLD])

    def _task(self, pl_module: L.LightningModule, classes: list[str], held_out: list[int]) -> Task:
        device = pl_module.device
        probe = ProbeAccuracy(len(classes), held_out, **self.probe_settings).to(device)
        texts = self._class_texts(pl_module, classes)
        zero_shot = None if texts is None else ZeroShotClassification(texts).to(device)
        return Task(classes, probe, zero_shot, held_out)

    @torch.no_grad()
    def _class_texts(self, pl_module: L.LightningModule, classes: list[str]) -> Tensor | None:
        """Text embeddings of the class prompts, or None (and a note) without a text tower."""
        if not self.zero_shot:
            return None
        method = type(pl_module).__name__
        text_features = getattr(pl_module, "text_features", None)
        reason = f"{method} has no text tower (text_features); it needs a vision-language method"
        if callable(text_features):
            prompts = [self.prompt_template.format(c.replace("_", " ")) for c in classes]
            try:
                return text_features(prompts)
            except NotImplementedError as error:
                reason = str(error)
        note = f"zero-shot skipped: {reason}"
        if note not in self.notes:
            self.notes.append(note)
            log.warning(note)
        return None

    # -- the test loop: the run's test split -----------------------------------------------------

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
        """Embed the batch's clips: test fold of the run task, queries of retrieval."""
        features = self._embed(trainer, pl_module, batch[AUDIO])
        run = self.tasks.get(RUN)
        if run is not None and LABEL in batch:
            labels = batch[LABEL].to(features.device)
            run.probe.update(features, labels, torch.full_like(labels, TEST_FOLD))
            if run.zero_shot is not None:
                run.zero_shot.update(features, labels)
        if self.mrr is not None and IMAGE in batch:
            self.mrr.update(features, pl_module.image_features(batch[IMAGE]))
            self.frames_seen = True

    def _embed(self, trainer: L.Trainer, pl_module: L.LightningModule, audio: Tensor) -> Tensor:
        with torch.no_grad(), trainer.precision_plugin.forward_context():
            return pl_module.audio_features(audio.to(pl_module.device)).float()

    # -- end of test: the other clips, then the report -------------------------------------------

    def on_test_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Embed the run's train split and every set, compute (synced over ranks), write."""
        if RUN in self.tasks:
            for batch in self._loader(trainer, self.run_train):
                features = self._embed(trainer, pl_module, batch[AUDIO])
                labels = batch[LABEL].to(features.device)
                self.tasks[RUN].probe.update(features, labels, torch.full_like(labels, TRAIN_FOLD))
        for audio_set in self.datasets:
            self._embed_set(trainer, pl_module, audio_set, self.tasks[audio_set.name])
        for caption_set in self.caption_sets:
            self._embed_captioned(trainer, pl_module, caption_set)
        for event_set in self.event_sets:
            self._embed_segments(trainer, pl_module, event_set)
        self.results = self._compute(trainer, pl_module)
        for name, value in flatten(self.results["metrics"]).items():
            pl_module.log(f"downstream/{name}", value, rank_zero_only=True)
        self.close_report(trainer, self.results, {})

    def _embed_set(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        audio_set: FoldedAudioSet,
        task: Task,
    ) -> None:
        """Embed every readable clip of ``audio_set``; held-out folds also go to zero-shot."""
        dataset = audio_set.dataset(pl_module.sample_rate, pl_module.clip_seconds, self.crop)
        held_out = torch.tensor(task.held_out)
        for batch in self._loader(trainer, dataset):
            readable = torch.tensor([not error for error in batch[ERROR]])
            task.failed += [
                f"{key}: {error}"
                for key, error in zip(batch[KEY], batch[ERROR], strict=True)
                if error
            ]
            if not readable.any():
                continue
            features = self._embed(trainer, pl_module, batch[AUDIO][readable])
            labels, folds = batch[LABEL][readable], batch[FOLD][readable]
            task.probe.update(features, labels.to(features.device), folds.to(features.device))
            scored = torch.isin(folds, held_out)
            if task.zero_shot is not None and scored.any():
                task.zero_shot.update(features[scored.to(features.device)], labels[scored])

    def _readable(self, name: str, batch: dict[str, Any]) -> Tensor:
        """Mask of the batch's readable clips; the others are named under ``name``."""
        failed = self.retrieval_failed.setdefault(name, [])
        failed += [
            f"{key}: {error}" for key, error in zip(batch[KEY], batch[ERROR], strict=True) if error
        ]
        return torch.tensor([not error for error in batch[ERROR]])

    def _embed_captioned(
        self, trainer: L.Trainer, pl_module: L.LightningModule, caption_set: ClothoCaptions
    ) -> None:
        """Embed the clips of ``caption_set`` into its caption retrieval metric."""
        metric = self.caption_metrics[caption_set.name]
        if metric is None:
            return
        dataset = caption_set.dataset(pl_module.sample_rate, pl_module.clip_seconds, self.crop)
        for batch in self._loader(trainer, dataset):
            readable = self._readable(caption_set.name, batch)
            if readable.any():
                features = self._embed(trainer, pl_module, batch[AUDIO][readable])
                metric.update(features, batch[INDEX][readable].to(features.device))

    def _embed_segments(
        self, trainer: L.Trainer, pl_module: L.LightningModule, event_set: DESED
    ) -> None:
        """Cut each recording into ``segment_seconds`` and score every segment."""
        metric = self.event_metrics[event_set.name]
        if metric is None:
            return
        length = round(event_set.segment_seconds * pl_module.sample_rate)
        for batch in self._loader(trainer, event_set.dataset(pl_module.sample_rate, self.crop)):
            readable = self._readable(event_set.name, batch)
            if not readable.any():
                continue
            audio = batch[AUDIO][readable]
            audio = F.pad(audio, (0, event_set.segments * length - audio.shape[1]))
            segments = audio.reshape(len(audio) * event_set.segments, length)
            activity = event_set.activity[batch[INDEX][readable]].flatten(0, 1)
            metric.update(self._embed(trainer, pl_module, segments), activity)

    def _loader(self, trainer: L.Trainer, dataset: Dataset) -> DataLoader:
        """This rank's share of ``dataset`` (every ``world_size``-th item), in order."""
        rank, world_size = trainer.global_rank, trainer.world_size
        batch_size = self.batch_size or getattr(trainer.datamodule, "batch_size", 64)
        return DataLoader(
            Subset(dataset, range(rank, len(dataset), world_size)),
            batch_size=batch_size,
            num_workers=self.num_workers,
            collate_fn=collate_batch,
        )

    def _compute(self, trainer: L.Trainer, pl_module: L.LightningModule) -> dict[str, Any]:
        metrics: dict[str, Any] = {}
        rows: list[dict[str, Any]] = []
        folds: dict[str, list[float]] = {}
        failed: dict[str, list[str]] = {}
        for name, task in self.tasks.items():
            probe = task.probe.compute()
            scores = {"probe_accuracy": float(probe["accuracy"]), "probe_map": float(probe["map"])}
            if task.zero_shot is not None:
                zero_shot = task.zero_shot.compute()
                scores["zero_shot_accuracy"] = float(zero_shot["accuracy"])
                scores["zero_shot_map"] = float(zero_shot["map"])
            metrics[name] = scores
            rows.append(
                {
                    "task": name,
                    "clips": int(probe["count"]),
                    "classes": len(task.classes),
                    "held_out_folds": len(task.held_out),
                    **scores,
                    "zero_shot_accuracy": scores.get("zero_shot_accuracy", math.nan),  # n/a
                    "zero_shot_map": scores.get("zero_shot_map", math.nan),
                }
            )
            folds[name] = probe["fold_accuracy"].reshape(-1).tolist()
            failed[name] = _gather_lists(task.failed)
            if failed[name]:
                self.notes.append(f"{name}: {len(failed[name])} clips could not be read (left out)")
        for name, metric in self.caption_metrics.items():
            if metric is not None:
                metrics[name] = {k: float(v) for k, v in metric.compute().items() if k != "count"}
        for name, metric in self.event_metrics.items():
            if metric is not None:
                scores = metric.compute()
                metrics[name] = {f"segment_{k}": float(v) for k, v in scores.items()}
        for name, names in self.retrieval_failed.items():
            failed[name] = _gather_lists(names)
            if failed[name]:
                self.notes.append(f"{name}: {len(failed[name])} clips could not be read (left out)")
        if self.mrr is not None and self.frames_seen:
            mrr = self.mrr.compute()
            metrics["cmr"] = {"mrr_a2i": float(mrr["a2i"]), "mrr_i2a": float(mrr["i2a"])}
            self.notes.append(f"cross-modal retrieval over {int(mrr['count'])} test clips")
        elif self.mrr is not None:
            self.notes.append("cross-modal retrieval skipped: the test batches hold no frames")
        return {
            "run": {
                "method": type(pl_module).__name__,
                "checkpoint": str(trainer.ckpt_path) if trainer.ckpt_path else None,
                "world_size": trainer.world_size,
                "probe": self.probe_settings["probe"],
            },
            "metrics": metrics,
            "downstream": rows,
            "fold_accuracy": folds,
            "failed_clips": {name: names for name, names in failed.items() if names},
            "notes": self.notes,
        }


def _gather_lists(items: list[str]) -> list[str]:
    """Every rank's ``items``, concatenated in rank order (the list itself on one process)."""
    if not (dist.is_available() and dist.is_initialized()):
        return items
    gathered: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, items)
    return [item for rank_items in gathered for item in rank_items]
