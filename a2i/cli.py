"""The ``a2i`` command's Lightning half: ``fit | validate | test | predict | embed`` (LightningCLI).

Help, ``--version`` and the tools (``a2i world``, ``prepare``, ``sonify``, ``serve``) are
:mod:`a2i.commands`'; :func:`main` runs either.

Models and datamodules are chosen in YAML with ``class_path``/``init_args`` (subclass mode), so a new
method or dataset needs no change here. ``predict`` draws through
:class:`~a2i.pipelines.AudioToImagePipeline`: its options are Lightning's (``--ckpt_path``…), the
folders (:class:`FolderOptions`) and the fields of :class:`~a2i.interfaces.GenerationRequest`
(:func:`request_from_flags`); ``embed`` writes the audio tower's embeddings of a folder
(:meth:`A2ITrainer.embed`). Both are :mod:`a2i.jobs.folders`' jobs, run on the processes
``--trainer.devices/num_nodes/strategy`` ask for, each drawing its share of the inputs.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
from jsonargparse import Namespace
from lightning.pytorch.accelerators import CPUAccelerator
from lightning.pytorch.callbacks import ModelCheckpoint, RichProgressBar
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI

from a2i.callbacks import ImageLogger
from a2i.callbacks.progress import PlainProgressBar, StepProgressBar, UnfrozenEvalModeCheck
from a2i.commands import (
    HELP_FLAGS,
    LIGHTNING_COMMANDS,
    completion,
    exit_on_a2i_errors,
    run_without_lightning,
)
from a2i.commands.catalog import ParagraphHelpFormatter, command_help
from a2i.commands.config_paths import resolve_config_arguments
from a2i.commands.console import quiet_expected_messages
from a2i.commands.next_steps import WORLD_EVALUATION, run_commands, shown_path
from a2i.config_errors import A2IArgumentParser
from a2i.data.base import AudioVisualDataModule
from a2i.errors import ConfigError
from a2i.interfaces import Crop, GenerationRequest
from a2i.jobs.folders import batch_size_of, embed_to_folder, predict_to_folder
from a2i.methods.base import A2IMethod
from a2i.pipelines import AudioToImagePipeline
from a2i.pipelines.folder import FolderSummary
from a2i.pipelines.loading import load_checkpoint_into, record_config
from a2i.pipelines.progress import is_terminal
from a2i.runtime import fit_cpu_threads, tune_allocator
from a2i.synth.datamodule import SyntheticWorldDataModule

INFERENCE_ONLY = ("predict", "embed")
"""Subcommands that only infer: a checkpoint gives weights only (no trainer state)."""


@dataclass(frozen=True)
class FolderOptions:
    """Where ``a2i predict`` and ``a2i embed`` read and write.

    Attributes:
        audio_dir: Every audio file under this folder (recursively) is an input (predict without
            it reads the config's predict split).
        output_dir: One output per input (and seed) and ``manifest.jsonl``; a rerun of the same
            request resumes, another request is refused.
        overwrite: Replace outputs made with other settings, and files in the way.
    """

    audio_dir: str | None = None
    output_dir: str | None = None
    overwrite: bool = False


def request_from_flags(
    mix_with: list[str] | str = (),
    mix_gains_db: list[float] | float = (),
    image: str | None = None,
    **controls: Any,
) -> GenerationRequest:
    """The request ``a2i predict``'s flags give: :class:`GenerationRequest`'s fields by name.

    jsonargparse derives the flags from this signature, following ``controls`` into
    :meth:`GenerationRequest.from_seed` (``--seed``, ``--num_seeds``) and the dataclass's other
    fields; the files are paths here.

    Args:
        mix_with: Audio file(s) mixed into every input (a path or a list).
        mix_gains_db: Gain of each ``mix_with`` file in dB (default 0 dB each).
        image: Image file blended with the audio features (``λ·z_V + (1−λ)·z_A``, §5.2).
        controls: The other fields of the request.
    """
    return GenerationRequest.from_seed(
        mix_with=mix_with, mix_gains_db=mix_gains_db, image=image, **controls
    )


class A2ITrainer(L.Trainer):
    """Lightning's ``Trainer`` plus a2i's ``embed`` command (its arguments are the command's options)."""

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
    ) -> FolderSummary:
        """Embed every audio file under a folder with the method's audio tower (one .npy each).

        :func:`~a2i.jobs.folders.embed_to_folder` on this trainer's ranks, from the options.

        Args:
            model: A method with ``audio_features`` (one that aligns audio and image spaces).
            datamodule: Only its batch size is used (the files are read from ``audio_dir``).
            ckpt_path: Checkpoint whose trainable weights are loaded (as for ``predict``).
            weights_only: Read the checkpoint as tensors only (Lightning's flag; default true).
            audio_dir: Embed every audio file under this folder (recursively).
            output_dir: Where the ``.npy`` files and ``manifest.jsonl`` go; a rerun of the same
                request resumes, another request is refused.
            overwrite: Replace embeddings made with other settings, and files in the way.
            crop: Which window of a longer input the model hears: start, center or loudest.
        """
        if audio_dir is None or output_dir is None:
            raise ConfigError("a2i embed needs --audio_dir and --output_dir")
        pipeline = AudioToImagePipeline(model, batch_size=batch_size_of(datamodule))
        summary = embed_to_folder(
            self, pipeline, audio_dir, output_dir,
            checkpoint=ckpt_path, weights_only=weights_only, overwrite=overwrite, crop=crop,
        )  # fmt: skip
        exit_on_failures(self, summary)
        return summary


def exit_on_failures(trainer: L.Trainer, summary: FolderSummary) -> None:
    """End rank 0 with the folder job's exit status when an input failed or a rank stopped.

    (The other ranks end as usual: rank 0 reports for all.)
    """
    if trainer.is_global_zero and summary.exit_status:
        sys.exit(summary.exit_status)


def check_folder_options(config: Namespace, command: str) -> None:
    """Refuse, before anything is built, a run that cannot give what the user expects."""
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


class A2ICLI(LightningCLI):
    """LightningCLI with a2i's defaults: TensorBoard logs under ``runs/``, image grids, seed 0."""

    weights_path: str | None = None
    """``--ckpt_path``, held back from Lightning's config parsing (:meth:`parse_arguments`)."""
    request_flags: tuple[str, ...] = ()
    """``predict``'s flags that :func:`request_from_flags` reads."""
    subcommand_parsers: dict[str, LightningArgumentParser]
    """Each subcommand's parser (tab completion completes one), recorded by :meth:`init_parser`."""

    @staticmethod
    def subcommands() -> dict[str, set[str]]:
        """Lightning's subcommands plus ``embed`` (:meth:`A2ITrainer.embed`)."""
        return {**LightningCLI.subcommands(), "embed": {"model", "datamodule"}}

    def init_parser(self, **kwargs: Any) -> LightningArgumentParser:
        """Lightning's parser; ``predict``'s also takes the folders and the request's fields.

        ``main`` names each subcommand's parser among its parser arguments (``a2i_subcommand``) and
        asks for the request's flags with ``request_flags=True`` among ``predict``'s.
        """
        subcommand = kwargs.pop("a2i_subcommand", None)
        request_flags = kwargs.pop("request_flags", False)
        parser = super().init_parser(**kwargs)
        if subcommand is not None:
            self.subcommand_parsers = {
                **getattr(self, "subcommand_parsers", {}),
                subcommand: parser,
            }
        if request_flags:
            parser.add_class_arguments(FolderOptions, as_group=False)
            added = parser.add_function_arguments(request_from_flags, as_group=False)
            self.request_flags = tuple(added)
        return parser

    def parse_arguments(self, parser: LightningArgumentParser, args: Any) -> None:
        """Parse ``args``; hold ``--ckpt_path`` back from Lightning's config parsing.

        Lightning would parse the checkpoint's hyper-parameters over the config, silently
        replacing what the user asked for (``--model.init_args.generation guidance`` evaluated as
        the run's ``rerank``; sampling steps, prompt, even the method) or writing what the file
        says (an ``export_dir`` edited into it), and importing the module a ``_class_path`` edited
        into it names. So the config builds the model and the checkpoint gives weights (and, under
        ``fit``, the optimizer and trainer state Lightning resumes from):
        :meth:`before_instantiate_classes` hands the path back once the config is final. Under
        tab completion, complete the subcommand's options and exit.
        """
        if completion.requested():
            completion.complete_lightning_command(self.subcommand_parsers)
        super().parse_arguments(parser, args)
        subcommand = self.config.get("subcommand")
        if subcommand is not None:
            self.weights_path = self.config[subcommand].get("ckpt_path")
            self.config[subcommand]["ckpt_path"] = None

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        """Always log image grids (``--image_logger.*``) and keep the final weights (``--checkpoint.*``)."""
        parser.add_lightning_class_args(ImageLogger, "image_logger")
        parser.add_lightning_class_args(ModelCheckpoint, "checkpoint")
        parser.set_defaults({"checkpoint.save_last": True})

    def before_instantiate_classes(self) -> None:
        """Check the paths the user gave before anything is built; predict reads ``--audio_dir``.

        A missing ``--ckpt_path`` is one line, not a traceback after the model was built. A run
        config names its training data (a VGGSound folder, say), which a machine that only
        predicts need not have; ``predict --audio_dir`` (and ``embed``) reads that folder instead.
        """
        config = self.config[self.subcommand]
        config["ckpt_path"] = self.weights_path  # (Lightning's config parsing is past)
        ckpt_path = config.get("ckpt_path")
        if ckpt_path not in (None, "last", "best") and not Path(ckpt_path).is_file():
            raise ConfigError(f"--ckpt_path '{ckpt_path}' does not exist (or is not a file)")
        if self.subcommand not in INFERENCE_ONLY:
            return
        check_folder_options(config, self.subcommand)
        if config.get("audio_dir") is None or config.get("data") is None:
            return
        batch_size = (config.data.get("init_args") or Namespace()).get("batch_size") or 16
        config["data"] = Namespace(
            class_path="a2i.data.folder.AudioFolderDataModule",
            init_args=Namespace(audio_dir=config.audio_dir, batch_size=batch_size),
        )

    def instantiate_trainer(self, **kwargs: Any) -> L.Trainer:
        """Lightning's trainer with a step-counting bar and a check of unfrozen eval-mode parts.

        The bar (plain lines when stdout is not a terminal) replaces Lightning's default one
        only: a configured bar, or ``--trainer.enable_progress_bar false``, is kept as it is.
        """
        trainer = super().instantiate_trainer(**kwargs)
        config = self.config_init[self.subcommand] if self.subcommand else self.config_init
        configured = config.trainer.get("callbacks") or []
        configured = configured if isinstance(configured, list) else [configured]
        default_bar = trainer.progress_bar_callback
        if type(default_bar) is RichProgressBar and default_bar not in configured:
            bar = StepProgressBar() if is_terminal() else PlainProgressBar()
            trainer.callbacks[trainer.callbacks.index(default_bar)] = bar
        trainer.callbacks.append(UnfrozenEvalModeCheck())
        return trainer

    def instantiate_classes(self) -> None:
        """Build model and datamodule, refuse data the method would hear differently, fit threads.

        A data overlay (``--config configs/data/vegas.yaml``) states its own sample rate and clip
        length; a method built for others would otherwise train on silently misfit clips.
        ``predict`` and ``embed`` are exempt: the pipeline reads every file at the method's own
        rate and length. A fit/validate/test checkpoint that is not tensors-only, or was written
        by another method, with other components or sizes, is refused in one line before
        Lightning reads it (:func:`~a2i.pipelines.loading.load_checkpoint_into`; predict and embed
        load theirs in the pipeline). On a CPU, torch gets the cores the data loader's workers
        leave (:func:`~a2i.runtime.fit_cpu_threads`).
        """
        super().instantiate_classes()
        record_config(self.model, self.config_dump["model"])
        if self.subcommand not in INFERENCE_ONLY and isinstance(self.model, A2IMethod):
            self.model.check_datamodule(self.datamodule)
        options = self.config_init[self.subcommand]
        ckpt_path = options.get("ckpt_path")
        if self.subcommand not in INFERENCE_ONLY and ckpt_path not in (None, "last", "best"):
            load_checkpoint_into(self.model, ckpt_path, options.get("weights_only") is not False)
        if isinstance(self.trainer.accelerator, CPUAccelerator):
            workers = getattr(self.datamodule, "num_workers", 0) or 0
            fit_cpu_threads(processes=self.trainer.num_devices, loader_workers=workers)

    def predict(
        self,
        model: L.LightningModule,
        datamodule: L.LightningDataModule | None = None,
        ckpt_path: str | None = None,
        weights_only: bool | None = None,
        return_predictions: bool | None = None,
    ) -> None:
        """``a2i predict``: draw through the pipeline and write images, grid and manifest.

        LightningCLI runs a subcommand's method of the CLI in place of the trainer's; Lightning's
        prediction loop has no place for a request, nor for skipping what a previous run of the
        same request finished before anything is decoded
        (:func:`~a2i.jobs.folders.predict_to_folder`). Lightning's ``return_predictions`` has no
        use here: the images go to ``--output_dir``.
        """
        options = self.config_init.predict
        pipeline = AudioToImagePipeline(model, batch_size=batch_size_of(datamodule))
        summary = predict_to_folder(
            self.trainer,
            pipeline,
            request_from_flags(**{name: options[name] for name in self.request_flags}),
            options.output_dir,
            audio_dir=options.audio_dir,
            datamodule=datamodule,
            checkpoint=ckpt_path,
            weights_only=weights_only,
            overwrite=options.overwrite,
        )
        exit_on_failures(self.trainer, summary)

    def after_fit(self) -> None:
        """Name the run folder and checkpoint, and the commands that use them, runnable as printed."""
        trainer = self.trainer
        checkpoint = trainer.checkpoint_callback
        log_dir = trainer.log_dir  # a broadcast under DDP: every rank must ask
        if not trainer.is_global_zero or log_dir is None:
            return
        run_dir = Path(log_dir)
        state = " (interrupted)" if trainer.interrupted else ""
        print(f"\na2i fit{state}: run folder {shown_path(run_dir)}")
        last = Path(checkpoint.last_model_path) if checkpoint else None
        chosen = last if last is not None and last.is_file() else None
        if checkpoint is not None and checkpoint.monitor and checkpoint.best_model_path:
            chosen = Path(checkpoint.best_model_path)
            print(f"  best checkpoint ({checkpoint.monitor}): {shown_path(chosen)}")
        if chosen is last and last is not None:
            print(f"  checkpoint: {shown_path(last)}")
        if chosen is None:
            return
        print("next (SOUNDS_DIR: a folder of audio files):")
        world = isinstance(trainer.datamodule, SyntheticWorldDataModule)
        for line in run_commands(run_dir, chosen, evaluation=WORLD_EVALUATION if world else None):
            print(f"  {line}")


def main(args: list[str] | None = None) -> None:
    """Run ``a2i ARGS`` (default: the command line) in this process.

    Help, ``--version`` and the tools (``a2i world`` …) go to :mod:`a2i.commands`; the Lightning
    commands to :class:`A2ICLI`. A mistake the user can fix is one line and exit status 2.
    """
    argv = sys.argv[1:] if args is None else list(args)
    if run_without_lightning(argv):
        return
    tune_allocator()
    quiet_expected_messages(argv[0] if argv else None)
    helping = any(flag in argv for flag in HELP_FLAGS)
    subcommand_kwargs = {  # (their help reads a2i's source: only when asked)
        command: {"a2i_subcommand": command, **(command_help(command, summary) if helping else {})}
        for command, summary in LIGHTNING_COMMANDS.items()
    }
    subcommand_kwargs["predict"]["request_flags"] = True
    with exit_on_a2i_errors():
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
                "prog": "a2i",  # (not `__main__.py` under `python -m a2i`)
                "formatter_class": ParagraphHelpFormatter,  # subcommands inherit it
                **subcommand_kwargs,
            },
            args=None if args is None else resolved,
        )


if __name__ == "__main__":
    main()
