"""``a2i predict`` and ``a2i embed``: a folder of sounds in, images or embeddings out, on ranks.

:func:`predict_to_folder` and :func:`embed_to_folder` run on the processes a Lightning trainer's
``devices/num_nodes/strategy`` ask for (:func:`run_on_ranks`), each rank drawing its share of
the inputs a previous run of the same request left to do; rank 0 merges the manifest, prints
what happened (:func:`report`) and gets every rank's :class:`FolderSummary`, whose
``exit_status`` the command exits with. From Python::

    trainer = L.Trainer(accelerator="cpu", devices=1, logger=False)
    summary = predict_to_folder(trainer, AudioToImagePipeline(model), GenerationRequest(),
                                "images/", audio_dir="sounds/", checkpoint="last.ckpt")
"""

from __future__ import annotations

import itertools
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import lightning as L

from a2i.audio.listing import describe_suffixes, scan_audio_folder
from a2i.data.base import AudioVisualDataModule
from a2i.errors import ConfigError
from a2i.interfaces import AUDIO, KEY, Crop, GenerationRequest
from a2i.io_utils import printable
from a2i.methods.base import A2IMethod
from a2i.pipelines import AudioToImagePipeline
from a2i.pipelines.embedding import (
    EmbeddingFolderWriter,
    check_embedder,
    embed_folder,
    embedding_settings,
)
from a2i.pipelines.folder import FolderSummary, predict_folder, request_settings, write_share
from a2i.pipelines.loading import load_checkpoint_into
from a2i.pipelines.writer import FolderWriter, ImageFolderWriter
from a2i.runtime import ONE_PROCESS, Ranks

NOT_AUDIO_SHOWN = 20
"""Files skipped as not audio that are named one by one; the rest are counted by suffix."""


def batch_size_of(datamodule: L.LightningDataModule | None) -> int:
    """The datamodule's batch size (16 without one that has it)."""
    return datamodule.batch_size if isinstance(datamodule, AudioVisualDataModule) else 16


def predict_to_folder(
    trainer: L.Trainer,
    pipeline: AudioToImagePipeline,
    asked: GenerationRequest,
    output_dir: str | Path,
    *,
    audio_dir: str | Path | None = None,
    datamodule: L.LightningDataModule | None = None,
    checkpoint: str | None = None,
    weights_only: bool | None = None,
    overwrite: bool = False,
    verbose: bool = True,
) -> FolderSummary:
    """Draw an image per input and seed into ``output_dir`` (+ grid and ``manifest.jsonl``).

    The inputs are every audio file under ``audio_dir``, or without it the datamodule's predict
    split. ``asked`` names its files by path (recorded in the manifest before they are read);
    the request is checked against the model before ``checkpoint``'s weights are loaded. Rank 0
    shows progress and says what was written, skipped and failed as ``a2i predict`` does
    (``verbose=False``: the returned summary only).
    """
    request = pipeline.prepare_request(asked)
    load_trained_weights(pipeline.model, checkpoint, weights_only, "predict")
    settings = request_settings(pipeline, asked, checkpoint=checkpoint)
    listing = None if audio_dir is None else scan_audio_folder(audio_dir)  # before any output

    def draw_share(ranks: Ranks) -> FolderSummary:
        with ImageFolderWriter(output_dir, settings, overwrite, ranks=ranks) as writer:
            pipeline.to(trainer.strategy.root_device)
            with trainer.precision_plugin.forward_context():
                if listing is None:
                    summary = predict_batches(pipeline, request, datamodule, writer)
                else:
                    keys = listing.audio
                    summary = predict_folder(
                        pipeline, request, Path(audio_dir), keys, writer, verbose
                    )
        if ranks.is_main and verbose:
            not_audio = [] if listing is None else listing.not_audio
            report("predict", "images", summary, writer, pipeline.model.clip_seconds, not_audio)
        return summary

    return run_on_ranks(trainer, draw_share)


def embed_to_folder(
    trainer: L.Trainer,
    pipeline: AudioToImagePipeline,
    audio_dir: str | Path,
    output_dir: str | Path,
    *,
    checkpoint: str | None = None,
    weights_only: bool | None = None,
    overwrite: bool = False,
    crop: Crop = "start",
    verbose: bool = True,
) -> FolderSummary:
    """Write the audio tower's embedding of every audio file under ``audio_dir`` (one .npy each).

    The output layout (``<key>.npy`` + ``manifest.jsonl``) and why it is resumable are described
    in :mod:`a2i.pipelines.embedding`. ``verbose`` as for :func:`predict_to_folder`.
    """
    model = pipeline.model
    check_embedder(model)
    load_trained_weights(model, checkpoint, weights_only, "embed")
    settings = embedding_settings(pipeline, checkpoint=checkpoint, crop=crop)
    listing = scan_audio_folder(audio_dir)  # (no output folder for a folder with no audio)

    def embed_share(ranks: Ranks) -> FolderSummary:
        with EmbeddingFolderWriter(output_dir, settings, overwrite, ranks) as writer:
            pipeline.to(trainer.strategy.root_device)
            with trainer.precision_plugin.forward_context():
                summary = embed_folder(
                    pipeline, Path(audio_dir), listing.audio, writer, crop, verbose
                )
        if ranks.is_main and verbose:
            report("embed", "embeddings", summary, writer, model.clip_seconds, listing.not_audio)
        return summary

    return run_on_ranks(trainer, embed_share)


def run_on_ranks(trainer: L.Trainer, work: Callable[[Ranks], FolderSummary]) -> FolderSummary:
    """Run ``work`` in every process the trainer's flags ask for, as Lightning launches them.

    ``--trainer.devices 2`` (or ``--trainer.num_nodes``) has Lightning's launcher start the other
    processes by rerunning the command; under torchrun or SLURM they exist already and Lightning
    reads their ranks from the environment. The strategy then sets up the process group and the
    rank's device (``strategy.root_device``), as it does for ``fit``.

    Raises:
        ConfigError: A strategy that launches by spawning (``ddp_spawn``…): the work is a
            closure over the built model, which is not sent to spawned processes.
    """
    strategy = trainer.strategy
    launcher = strategy.launcher
    if launcher is None:  # one device
        return work(ONE_PROCESS)
    if launcher.is_interactive_compatible:
        raise ConfigError(
            "a2i predict and embed start their processes as scripts: use --trainer.strategy ddp"
        )

    def on_this_rank() -> FolderSummary:
        import torch.distributed as dist

        strategy.setup_environment()
        try:
            return work(Ranks.current())
        finally:
            if dist.is_initialized():
                dist.destroy_process_group()

    return launcher.launch(on_this_rank, trainer=trainer)


def load_trained_weights(
    model: Any, ckpt_path: str | None, weights_only: bool | None, command: str
) -> None:
    """Load ``ckpt_path`` into ``model``; without one, refuse a method left with random parts."""
    if ckpt_path is not None:
        load_checkpoint_into(model, ckpt_path, weights_only=weights_only is not False)
    elif isinstance(model, A2IMethod) and (missing := model.untrained_parts()):
        raise ConfigError(
            f"a2i {command} needs --ckpt_path (the trained weights, e.g. "
            f"RUN/checkpoints/last.ckpt): {', '.join(missing)} would be untrained; or give "
            "their published weights in the config (e.g. audio_encoder.init_args.pretrained)"
        )


def predict_batches(
    pipeline: AudioToImagePipeline,
    request: GenerationRequest,
    datamodule: L.LightningDataModule | None,
    writer: ImageFolderWriter,
) -> FolderSummary:
    """Draw the images of a datamodule's predict split (``a2i predict`` without ``--audio_dir``).

    With several ranks each draws every ``world_size``-th batch.
    """
    if datamodule is None:
        raise ConfigError("predict needs --audio_dir or a datamodule with a predict split")
    datamodule.setup("predict")
    ranks = writer.ranks

    def draw(batch: dict[str, Any], summary: FolderSummary) -> None:
        keys = list(batch[KEY])
        errors = list(batch.get("error", [""] * len(keys)))
        images = pipeline.generate(batch[AUDIO], request).cpu()
        writer.write(
            keys, [None if e else img for img, e in zip(images, errors, strict=True)], errors
        )

    batches = itertools.islice(datamodule.predict_dataloader(), ranks.rank, None, ranks.world_size)
    return write_share(writer, batches, draw, FolderSummary())


def report(
    command: str,
    noun: str,
    summary: FolderSummary,
    writer: FolderWriter,
    clip: float,
    not_audio: Sequence[str] = (),
) -> None:
    """Say what was written, skipped, cropped and failed (stdout; the failures on stderr).

    Counts are of inputs (an input failing for every seed is one failure, named once), and
    every name goes through :func:`~a2i.io_utils.printable`: names are the user's, not a2i's.
    With several ranks rank 0 reports for all.
    """
    failed = summary.failed_inputs()
    files = f"{len(not_audio)} file{'s' if len(not_audio) > 1 else ''}"
    skipped = f", {files} skipped as not audio" if not_audio else ""
    ranks = len(summary.stopped)
    stopped = f", stopped early on {ranks} rank{'s' if ranks > 1 else ''} (below)" if ranks else ""
    print(
        f"a2i {command}: {summary.written} {noun} written, {summary.skipped} inputs already done "
        f"by an earlier run of the same request (skipped), {len(failed)} failed{skipped}{stopped} → "
        f"{printable(writer.output_dir)} (manifest: {printable(writer.manifest_path)})"
    )
    for name in not_audio[:NOT_AUDIO_SHOWN]:
        print(f"  not audio (skipped): {printable(name)}")
    if len(not_audio) > NOT_AUDIO_SHOWN:
        rest = describe_suffixes(list(not_audio[NOT_AUDIO_SHOWN:]), "more")
        print(f"  not audio (skipped): {printable(rest)}")
    if summary.cropped or summary.padded:
        how = f" (--crop {writer.settings['crop']})" if command == "predict" else ""
        print(
            f"  the model hears {clip:g} s: {summary.cropped} longer inputs were cropped{how}, "
            f"{summary.padded} shorter ones zero-padded; each input's duration is in the manifest"
        )
    for name, errors in failed.items():
        for error in errors:
            print(f"  failed: {printable(name)}: {printable(error)}", file=sys.stderr)
    for reason in summary.stopped:
        print(f"  failed: {printable(reason)}", file=sys.stderr)
