"""The ``a2i`` command's Lightning half: ``fit | validate | test | predict | embed`` (LightningCLI).

Help, ``--version`` and the tools (``a2i world``, ``prepare``, ``sonify``, ``serve``) are
:mod:`a2i.commands`'; :func:`main` runs either.

Models and datamodules are chosen in YAML with ``class_path``/``init_args`` (subclass mode), so a new
method or dataset needs no change here. ``predict`` gains flags for writing images and for the
inference controls (see :class:`A2ITrainer.predict`); ``embed`` writes the audio tower's
embeddings of a folder (:meth:`A2ITrainer.embed`).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import lightning as L
from jsonargparse import Namespace
from lightning.pytorch.accelerators import CPUAccelerator
from lightning.pytorch.callbacks import ModelCheckpoint, RichProgressBar
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI

from a2i.audio.io import Crop
from a2i.callbacks import ImageLogger
from a2i.callbacks.progress import StepProgressBar, UnfrozenEvalModeCheck
from a2i.commands import HELP_FLAGS, a2i_cause, completion, print_error, run_without_lightning
from a2i.commands.catalog import ParagraphHelpFormatter, fit_epilog
from a2i.commands.config_paths import resolve_config_arguments
from a2i.commands.console import quiet_expected_messages
from a2i.config_errors import A2IArgumentParser
from a2i.data.base import AudioVisualDataModule
from a2i.data.folder import list_audio_files
from a2i.errors import A2IError, ConfigError
from a2i.interfaces import AUDIO, KEY, GenerationRequest
from a2i.methods.base import A2IMethod
from a2i.pipelines import AudioToImagePipeline
from a2i.pipelines.folder import FolderSummary, predict_folder, request_settings
from a2i.pipelines.loading import check_checkpoint_method, load_checkpoint_into, read_checkpoint
from a2i.pipelines.writer import ImageFolderWriter
from a2i.runtime import fit_cpu_threads, tune_allocator

INFERENCE_ONLY = ("predict", "embed")
"""Subcommands that only infer: the config builds the model, a checkpoint gives weights only."""
CONFIG_BUILDS_MODEL = ("validate", "test", *INFERENCE_ONLY)
"""Subcommands whose model is the config's, never replaced by a ``--ckpt_path``'s hyper-parameters."""


class A2ITrainer(L.Trainer):
    """A Lightning ``Trainer`` whose ``predict`` runs :class:`~a2i.pipelines.AudioToImagePipeline`.

    Prediction is inference only: no training loop, logger or checkpoint callback is involved,
    the controls are pipeline arguments, and the images are written by
    :class:`~a2i.pipelines.writer.ImageFolderWriter` (resumable, one manifest per request).
    """

    prediction_summary: FolderSummary | None = None
    prediction_writer: ImageFolderWriter | None = None

    def predict(  # type: ignore[override]
        self,
        model: L.LightningModule | None = None,
        dataloaders: Any = None,
        datamodule: L.LightningDataModule | None = None,
        return_predictions: bool | None = None,
        ckpt_path: str | None = None,
        weights_only: bool | None = None,
        audio_dir: str | None = None,
        output_dir: str | None = None,
        overwrite: bool = False,
        gain_db: float = 0.0,
        mix_with: list[str] | str | None = None,
        mix_gains_db: list[float] | float | None = None,
        image: str | None = None,
        image_weight: float = 0.5,
        prompt: str | None = None,
        guidance_scale: float | None = None,
        num_inference_steps: int | None = None,
        crop: Crop = "start",
        num_seeds: int = 1,
        seed: int = 0,
    ) -> Any:
        """Generate images; with ``output_dir`` they are written as PNGs + grid + manifest.

        Args:
            model: The method (an :class:`~a2i.interfaces.AudioToImageModel`).
            dataloaders: Explicit dataloaders of audio batches (instead of a datamodule).
            datamodule: Where inputs come from; replaced by ``audio_dir`` when that is given.
            return_predictions: Return the images (default: only without ``output_dir``).
            ckpt_path: Checkpoint whose trainable weights are loaded (its method and components
                must be the config's; the config's settings, e.g. sampling steps, apply).
            weights_only: Unused (checkpoints are always read tensors-only).
            audio_dir: Predict on every audio file under this folder (recursively).
            output_dir: Write one PNG per input (and seed), ``grid.png`` and ``manifest.jsonl``;
                a rerun of the same request resumes, another request is refused.
            overwrite: Replace images made with other settings, and files in the way.
            gain_db: Volume change of every input in dB (Sound2Vision §5.1).
            mix_with: Audio file(s) mixed into every input (a path or a list).
            mix_gains_db: Gain of each ``mix_with`` file in dB.
            image: Image to blend with the audio features (``λ·z_V + (1−λ)·z_A``, §5.2).
            image_weight: λ of that blend.
            prompt: Prompt around the audio token (AudioToken).
            guidance_scale: Classifier-free guidance scale (diffusion methods; default: config's).
            num_inference_steps: Sampling steps (diffusion methods; default: config's).
            crop: Which window of a longer input the model hears: start, center or loudest.
            num_seeds: Images per input.
            seed: First noise seed.
        """
        pipeline = AudioToImagePipeline(model, batch_size=_batch_size(datamodule))
        asked = GenerationRequest.from_seed(
            seed,
            num_seeds,
            gain_db=gain_db,
            mix_with=mix_with or (),
            mix_gains_db=mix_gains_db or (),
            image=image,
            image_weight=image_weight,
            prompt=prompt,
            guidance_scale=guidance_scale,
            num_inference_steps=num_inference_steps,
            crop=crop,
        )
        request = pipeline.prepare_request(asked)
        load_trained_weights(model, ckpt_path, "predict")
        writer = None
        if output_dir is not None:
            settings = request_settings(pipeline, asked, checkpoint=ckpt_path)
            writer = ImageFolderWriter(output_dir, settings, overwrite=overwrite)
        self.prediction_writer = writer
        pipeline.to(self.strategy.root_device)
        with self.precision_plugin.forward_context():
            if audio_dir is not None and writer is not None:
                root = Path(audio_dir)
                keys = list_audio_files(root)
                self.prediction_summary = predict_folder(pipeline, request, root, keys, writer)
                return None
            return self._predict_batches(pipeline, request, dataloaders, datamodule, writer)

    def _predict_batches(
        self,
        pipeline: AudioToImagePipeline,
        request: GenerationRequest,
        dataloaders: Any,
        datamodule: L.LightningDataModule | None,
        writer: ImageFolderWriter | None,
    ) -> list[dict[str, Any]] | None:
        """Predict on a datamodule's (or explicit) batches of audio clips."""
        if dataloaders is None:
            if datamodule is None:
                raise ConfigError("predict needs --audio_dir or a datamodule with a predict split")
            datamodule.setup("predict")
            dataloaders = datamodule.predict_dataloader()
        predictions = []
        for batch in dataloaders:
            keys = list(batch[KEY])
            errors = list(batch.get("error", [""] * len(keys)))
            images = pipeline.generate(batch[AUDIO], request).cpu()
            drawn = [None if e else img for img, e in zip(images, errors, strict=True)]
            if writer is not None:
                writer.write(keys, drawn, errors)
            else:
                predictions.append({"key": keys, "images": drawn, "error": errors})
        if writer is not None:
            writer.close()
            self.prediction_summary = FolderSummary(
                written=writer.written, failures=writer.failures
            )
        return predictions or None

    embedding_summary: FolderSummary | None = None
    embedding_manifest: Path | None = None

    def embed(
        self,
        model: L.LightningModule,
        datamodule: L.LightningDataModule | None = None,
        ckpt_path: str | None = None,
        weights_only: bool | None = None,
        audio_dir: str | None = None,
        output_dir: str | None = None,
        overwrite: bool = False,
        crop: Crop = "start",
    ) -> None:
        """Embed every audio file under a folder with the method's audio tower (one .npy each).

        The output layout (``<key>.npy`` + ``manifest.jsonl``) and why it is resumable are
        described in :mod:`a2i.pipelines.embedding`.

        Args:
            model: A method with ``audio_features`` (one that aligns audio and image spaces).
            datamodule: Only its batch size is used (the files are read from ``audio_dir``).
            ckpt_path: Checkpoint whose trainable weights are loaded (as for ``predict``).
            weights_only: Unused (checkpoints are always read tensors-only); accepted so a run's
                ``config.yaml`` (which records ``fit``'s value) parses.
            audio_dir: Embed every audio file under this folder (recursively).
            output_dir: Where the ``.npy`` files and ``manifest.jsonl`` go; a rerun of the same
                request resumes, another request is refused.
            overwrite: Replace embeddings made with other settings, and files in the way.
            crop: Which window of a longer input the model hears: start, center or loudest.
        """
        from a2i.pipelines.embedding import (
            EmbeddingFolderWriter,
            check_embedder,
            embed_folder,
            embedding_settings,
        )

        check_embedder(model)
        if audio_dir is None or output_dir is None:
            raise ConfigError("a2i embed needs --audio_dir and --output_dir")
        pipeline = AudioToImagePipeline(model, batch_size=_batch_size(datamodule))
        load_trained_weights(model, ckpt_path, "embed")
        settings = embedding_settings(pipeline, checkpoint=ckpt_path, crop=crop)
        writer = EmbeddingFolderWriter(output_dir, settings, overwrite=overwrite)
        self.embedding_manifest = writer.manifest_path
        pipeline.to(self.strategy.root_device)
        keys = list_audio_files(audio_dir)
        with self.precision_plugin.forward_context():
            self.embedding_summary = embed_folder(pipeline, Path(audio_dir), keys, writer, crop)


def load_trained_weights(model: Any, ckpt_path: str | None, command: str) -> None:
    """Load ``ckpt_path`` into ``model``; without one, refuse a method left with random parts."""
    if ckpt_path is not None:
        load_checkpoint_into(model, ckpt_path)
    elif isinstance(model, A2IMethod) and (missing := model.untrained_parts()):
        raise ConfigError(
            f"a2i {command} needs --ckpt_path (the trained weights, e.g. "
            f"RUN/checkpoints/last.ckpt): {', '.join(missing)} would be untrained; or give "
            "their published weights in the config (e.g. audio_encoder.init_args.pretrained)"
        )


def check_predict_arguments(config: Namespace, command: str = "predict") -> None:
    """Refuse, before anything is built, a run that cannot give what the user expects.

    ``command`` is ``predict`` or ``embed`` (which reads a folder only).
    """
    output_dir = config.get("output_dir")
    outputs = "embeddings" if command == "embed" else "images"
    if output_dir is None:
        raise ConfigError(f"a2i {command} needs --output_dir (where the {outputs} and manifest go)")
    if Path(output_dir).exists() and not Path(output_dir).is_dir():
        raise ConfigError(f"--output_dir '{output_dir}' is a file, not a folder")
    if command == "embed" and config.get("audio_dir") is None:
        raise ConfigError("a2i embed needs --audio_dir (the folder of audio files to embed)")
    if config.get("audio_dir") is not None and not Path(config.audio_dir).is_dir():
        raise ConfigError(f"--audio_dir '{config.audio_dir}' is not a folder")


def _batch_size(datamodule: L.LightningDataModule | None) -> int:
    return datamodule.batch_size if isinstance(datamodule, AudioVisualDataModule) else 16


class A2ICLI(LightningCLI):
    """LightningCLI with a2i's defaults: TensorBoard logs under ``runs/``, image grids, seed 0."""

    @staticmethod
    def subcommands() -> dict[str, set[str]]:
        """Lightning's subcommands plus ``embed`` (:meth:`A2ITrainer.embed`)."""
        return {**LightningCLI.subcommands(), "embed": {"model", "datamodule"}}

    def parse_arguments(self, parser: LightningArgumentParser, args: Any) -> None:
        """Parse ``args``; under tab completion, complete the subcommand's options and exit."""
        if completion.requested():
            completion.complete_lightning_command(self._subcommand_parsers)
        super().parse_arguments(parser, args)

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        """Always log image grids (``--image_logger.*``) and keep the final weights (``--checkpoint.*``)."""
        parser.add_lightning_class_args(ImageLogger, "image_logger")
        parser.add_lightning_class_args(ModelCheckpoint, "checkpoint")
        parser.set_defaults({"checkpoint.save_last": True})

    def instantiate_trainer(self, **kwargs: Any) -> L.Trainer:
        """Lightning's trainer with a step-counting bar and a check of unfrozen eval-mode parts.

        The bar replaces Lightning's default one only (a configured bar, or
        ``--trainer.enable_progress_bar false``, is kept as it is).
        """
        trainer = super().instantiate_trainer(**kwargs)
        config = self.config_init[self.subcommand] if self.subcommand else self.config_init
        configured = config.trainer.get("callbacks") or []
        configured = configured if isinstance(configured, list) else [configured]
        default_bar = trainer.progress_bar_callback
        if type(default_bar) is RichProgressBar and default_bar not in configured:
            trainer.callbacks[trainer.callbacks.index(default_bar)] = StepProgressBar()
        trainer.callbacks.append(UnfrozenEvalModeCheck())
        return trainer

    def instantiate_classes(self) -> None:
        """Build model and datamodule, refuse data the method would hear differently, fit threads.

        A data overlay (``--config configs/data/vegas.yaml``) states its own sample rate and clip
        length; a method built for others would otherwise train on silently misfit clips.
        ``predict`` and ``embed`` are exempt: the pipeline reads every file at the method's own
        rate and length. On a CPU, torch gets the cores the data loader's workers leave
        (:func:`~a2i.runtime.fit_cpu_threads`).
        """
        super().instantiate_classes()
        if self.subcommand not in INFERENCE_ONLY and isinstance(self.model, A2IMethod):
            self.model.check_datamodule(self.datamodule)
        ckpt_path = self.config_init[self.subcommand].get("ckpt_path")
        if self.subcommand in ("validate", "test") and ckpt_path not in (None, "last", "best"):
            check_checkpoint_method(
                read_checkpoint(ckpt_path), self.model, f"--ckpt_path '{ckpt_path}'"
            )
        if isinstance(self.trainer.accelerator, CPUAccelerator):
            workers = getattr(self.datamodule, "num_workers", 0) or 0
            fit_cpu_threads(processes=self.trainer.num_devices, loader_workers=workers)

    def _parse_ckpt_path(self) -> None:
        """Under ``validate``/``test``/``predict``/``embed`` the config builds the model.

        Lightning would parse the checkpoint's hyper-parameters over the config, silently
        replacing what the user asked for (``--model.init_args.generation guidance`` evaluated as
        the run's ``rerank``; sampling steps, prompt, even the method). The checkpoint gives
        weights only: :meth:`instantiate_classes` refuses one written by another method or with
        other components (:func:`~a2i.pipelines.loading.check_checkpoint_method`), and
        ``predict``/``embed`` load it with
        :func:`~a2i.pipelines.loading.load_checkpoint_into`. ``fit --ckpt_path`` resumes as
        Lightning does.
        """
        if self.config.get("subcommand") not in CONFIG_BUILDS_MODEL:
            super()._parse_ckpt_path()

    def before_instantiate_classes(self) -> None:
        """Check the paths the user gave before anything is built; predict reads ``--audio_dir``.

        A missing ``--ckpt_path`` is one line, not a traceback after the model was built. A run
        config names its training data (a VGGSound folder, say), which a machine that only
        predicts need not have; ``predict --audio_dir`` (and ``embed``) reads that folder instead.
        """
        ckpt_path = self.config[self.subcommand].get("ckpt_path")
        if (
            ckpt_path is not None
            and ckpt_path not in ("last", "best")
            and not Path(ckpt_path).is_file()
        ):
            raise ConfigError(f"--ckpt_path '{ckpt_path}' does not exist (or is not a file)")
        if self.subcommand not in INFERENCE_ONLY:
            return
        config = self.config[self.subcommand]
        check_predict_arguments(config, self.subcommand)
        if config.get("audio_dir") is None or config.get("data") is None:
            return
        batch_size = (config.data.get("init_args") or Namespace()).get("batch_size") or 16
        config["data"] = Namespace(
            class_path="a2i.data.folder.AudioFolderDataModule",
            init_args=Namespace(audio_dir=config.audio_dir, batch_size=batch_size),
        )

    def after_test(self) -> None:
        """Say where the evaluation and downstream reports went (the result of ``a2i test``)."""
        from a2i.callbacks.downstream import Downstream
        from a2i.callbacks.evaluation import Evaluation  # its scorers import open_clip

        for callback in self.trainer.callbacks:
            if isinstance(callback, Evaluation) and self.trainer.is_global_zero:
                print(f"a2i test: evaluation report in {callback.report_dir}")
            if isinstance(callback, Downstream) and self.trainer.is_global_zero:
                print(f"a2i test: downstream report in {callback.report_dir}")

    def after_predict(self) -> None:
        """Say what was written, skipped, cropped and failed; exit 1 when any input failed."""
        summary, writer = self.trainer.prediction_summary, self.trainer.prediction_writer
        if summary is None or writer is None:
            return
        clip = self.model.clip_seconds
        print(
            f"a2i predict: {summary.written} images written, {summary.skipped} inputs already done "
            f"by an earlier run of the same request (skipped), {len(summary.failures)} failed → "
            f"{writer.output_dir} (manifest: {writer.manifest_path})"
        )
        if summary.cropped or summary.padded:
            print(
                f"  the model hears {clip:g} s: {summary.cropped} longer inputs were cropped "
                f"(--crop {writer.settings['crop']}), {summary.padded} shorter ones zero-padded; "
                "each input's duration is in the manifest"
            )
        for failure in summary.failures:
            print(f"  failed: {failure['input']}: {failure['error']}", file=sys.stderr)
        if summary.failures:
            sys.exit(1)

    def after_embed(self) -> None:
        """Say what was embedded, skipped and failed; exit 1 when any input failed."""
        summary, manifest = self.trainer.embedding_summary, self.trainer.embedding_manifest
        if summary is None or manifest is None:
            return
        print(
            f"a2i embed: {summary.written} embeddings written, {summary.skipped} inputs already "
            f"done by an earlier run of the same request (skipped), {len(summary.failures)} "
            f"failed → {manifest.parent} (manifest: {manifest})"
        )
        if summary.cropped or summary.padded:
            print(
                f"  the model hears {self.model.clip_seconds:g} s: {summary.cropped} longer "
                f"inputs were cropped, {summary.padded} shorter ones zero-padded; each input's "
                "duration is in the manifest"
            )
        for failure in summary.failures:
            print(f"  failed: {failure['input']}: {failure['error']}", file=sys.stderr)
        if summary.failures:
            sys.exit(1)


def main(args: list[str] | None = None) -> None:
    """Run ``a2i ARGS`` (default: the command line) in this process.

    Help, ``--version`` and the tools (``a2i world`` …) go to :mod:`a2i.commands`; the Lightning
    commands to :class:`A2ICLI`. A mistake the user can fix is one line and exit status 2.
    """
    argv = sys.argv[1:] if args is None else list(args)
    if run_without_lightning(argv):
        return
    tune_allocator()
    quiet_expected_messages()
    helping = any(flag in argv for flag in HELP_FLAGS)
    epilog = {"epilog": fit_epilog()} if helping else {}  # (it reads a2i's source: help only)
    try:
        resolved = resolve_config_arguments(argv)
        if args is None:  # LightningCLI reads the command line itself
            sys.argv[1:] = resolved
        A2ICLI(
            A2IMethod,
            AudioVisualDataModule,
            trainer_class=A2ITrainer,
            parser_class=A2IArgumentParser,
            subclass_mode_model=True,
            subclass_mode_data=True,
            seed_everything_default=0,
            trainer_defaults={
                "default_root_dir": "runs",
                "logger": {
                    "class_path": "lightning.pytorch.loggers.TensorBoardLogger",
                    "init_args": {"save_dir": "runs"},
                },
            },
            parser_kwargs={
                "formatter_class": ParagraphHelpFormatter,  # subcommands inherit it
                **dict.fromkeys(A2ICLI.subcommands(), epilog),
            },
            args=None if args is None else resolved,
        )
    except (A2IError, ValueError) as error:
        cause = a2i_cause(error)
        if cause is None:
            raise
        print_error(cause)
        sys.exit(2)


if __name__ == "__main__":
    main()
