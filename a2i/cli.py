"""The ``a2i`` command: LightningCLI for ``fit | validate | test | predict`` plus ``a2i world``.

Models and datamodules are chosen in YAML with ``class_path``/``init_args`` (subclass mode), so a new
method or dataset needs no change here. ``predict`` gains flags for writing images and for the
inference controls (see :class:`A2ITrainer.predict`).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import lightning as L
from jsonargparse import Namespace
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI
from torch import Tensor

from a2i.callbacks import ImageLogger
from a2i.data.base import AudioVisualDataModule
from a2i.data.folder import list_audio_files
from a2i.errors import A2IError, ConfigError
from a2i.interfaces import AUDIO, KEY
from a2i.methods.base import A2IMethod
from a2i.pipelines import AudioToImagePipeline
from a2i.pipelines.loading import load_checkpoint_into
from a2i.pipelines.writer import ImageFolderWriter

WORLD_HELP = "materialise the embedded synthetic audio-visual world to disk"
PREPARE_HELP = "decode a video dataset into training shards"


class A2ITrainer(L.Trainer):
    """A Lightning ``Trainer`` whose ``predict`` runs :class:`~a2i.pipelines.AudioToImagePipeline`.

    Prediction is inference only: no training loop, logger or checkpoint callback is involved,
    the controls are pipeline arguments, and the images are written by
    :class:`~a2i.pipelines.writer.ImageFolderWriter`.
    """

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
        mix_with: list[str] | None = None,
        mix_gains_db: list[float] | None = None,
        image: str | None = None,
        image_weight: float = 0.5,
        prompt: str | None = None,
        guidance_scale: float | None = None,
        num_inference_steps: int | None = None,
        num_seeds: int = 1,
        seed: int = 0,
    ) -> Any:
        """Generate images; with ``output_dir`` they are written as PNGs + grid + manifest.

        Args:
            model: The method (an :class:`~a2i.interfaces.AudioToImageModel`).
            dataloaders: Explicit dataloaders of audio batches (instead of a datamodule).
            datamodule: Where inputs come from; replaced by ``audio_dir`` when that is given.
            return_predictions: Return the images (default: only without ``output_dir``).
            ckpt_path: Checkpoint whose trainable weights are loaded (its method must be the
                config's; the config's other settings, e.g. sampling steps, apply).
            weights_only: Unused (checkpoints are always read tensors-only).
            audio_dir: Predict on every audio file under this folder (recursively).
            output_dir: Write one PNG per input (and seed), ``grid.png`` and ``manifest.jsonl``.
            overwrite: Replace files that already exist in ``output_dir``.
            gain_db: Volume change of every input in dB (Sound2Vision §5.1).
            mix_with: Audio files mixed into every input.
            mix_gains_db: Gain of each ``mix_with`` file in dB.
            image: Image to blend with the audio features (``λ·z_V + (1−λ)·z_A``, §5.2).
            image_weight: λ of that blend.
            prompt: Prompt around the audio token (AudioToken).
            guidance_scale: Classifier-free guidance scale (diffusion methods; default: config's).
            num_inference_steps: Sampling steps (diffusion methods; default: config's).
            num_seeds: Images per input.
            seed: First noise seed.
        """
        pipeline = AudioToImagePipeline(model, batch_size=_batch_size(datamodule))
        request = pipeline.prepare_request(
            num_images_per_input=num_seeds,
            seed=seed,
            gain_db=gain_db,
            mix_with=list(mix_with or []),
            mix_gains_db=list(mix_gains_db or []),
            image=image,
            image_weight=image_weight,
            prompt=prompt,
            guidance_scale=guidance_scale,
            num_inference_steps=num_inference_steps,
        )
        if ckpt_path is not None:
            load_checkpoint_into(model, ckpt_path)
        pipeline.to(self.strategy.root_device)
        writer = ImageFolderWriter(output_dir, overwrite=overwrite) if output_dir else None
        self.prediction_writer = writer
        predictions = []
        with self.precision_plugin.forward_context():
            for keys, images, errors in _generate(
                pipeline, request, audio_dir, dataloaders, datamodule
            ):
                if writer is not None:
                    writer.write(keys, images, request.seeds, errors)
                if return_predictions or (return_predictions is None and writer is None):
                    predictions.append({"key": keys, "images": images, "error": errors})
        if writer is not None:
            writer.close()
        return predictions or None


def _batch_size(datamodule: L.LightningDataModule | None) -> int:
    return datamodule.batch_size if isinstance(datamodule, AudioVisualDataModule) else 16


def _generate(
    pipeline: AudioToImagePipeline,
    request: Any,
    audio_dir: str | None,
    dataloaders: Any,
    datamodule: L.LightningDataModule | None,
) -> Iterator[tuple[list[str], list[Tensor | None], list[str]]]:
    """``(keys, images, errors)`` per batch of a folder of files or of audio batches."""
    if audio_dir is not None:
        root = Path(audio_dir)
        keys = list_audio_files(root)
        for start in range(0, len(keys), pipeline.batch_size):
            chunk = keys[start : start + pipeline.batch_size]
            output = pipeline.run([root / key for key in chunk], request)
            yield chunk, output.images, output.errors
        return
    if dataloaders is None:
        if datamodule is None:
            raise ConfigError("predict needs --audio_dir or a datamodule with a predict split")
        datamodule.setup("predict")
        dataloaders = datamodule.predict_dataloader()
    for batch in dataloaders:
        keys = list(batch[KEY])
        errors = list(batch.get("error", [""] * len(keys)))
        images = pipeline.generate(batch[AUDIO], request).cpu()
        yield keys, [None if e else img for img, e in zip(images, errors, strict=True)], errors


class A2ICLI(LightningCLI):
    """LightningCLI with a2i's defaults: TensorBoard logs under ``runs/``, image grids, seed 0."""

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        """Always log image grids (``--image_logger.*``) and keep the final weights (``--checkpoint.*``)."""
        parser.add_lightning_class_args(ImageLogger, "image_logger")
        parser.add_lightning_class_args(ModelCheckpoint, "checkpoint")
        parser.set_defaults({"checkpoint.save_last": True})

    def instantiate_classes(self) -> None:
        """Build model and datamodule, then refuse data the method would hear differently.

        A data overlay (``--config configs/data/vegas.yaml``) states its own sample rate and clip
        length; a method built for others would otherwise train on silently misfit clips.
        ``predict`` is exempt: the pipeline reads every file at the method's own rate and length.
        """
        super().instantiate_classes()
        if self.subcommand != "predict" and isinstance(self.model, A2IMethod):
            self.model.check_datamodule(self.datamodule)

    def _parse_ckpt_path(self) -> None:
        """Under ``predict`` the config builds the model and the checkpoint gives weights only.

        Lightning would replace the config's model settings (sampling steps, prompt, even the
        method) by the checkpoint's; :func:`~a2i.pipelines.loading.load_checkpoint_into` instead
        checks that the checkpoint belongs to the configured method and loads its weights.
        """
        if self.config.get("subcommand") != "predict":
            super()._parse_ckpt_path()

    def before_instantiate_classes(self) -> None:
        """``predict --audio_dir`` reads that folder instead of building the run's dataset.

        A run config names its training data (a VGGSound folder, say), which a machine that only
        predicts need not have; building that datamodule would stop on the missing folder.
        """
        if self.subcommand != "predict":
            return
        config = self.config["predict"]
        if config.get("audio_dir") is None or config.get("data") is None:
            return
        batch_size = (config.data.get("init_args") or Namespace()).get("batch_size") or 16
        config["data"] = Namespace(
            class_path="a2i.data.folder.AudioFolderDataModule",
            init_args=Namespace(audio_dir=config.audio_dir, batch_size=batch_size),
        )

    def after_predict(self) -> None:
        """Report failed inputs and exit non-zero when any input failed."""
        writer = self.trainer.prediction_writer
        if writer is None:
            return
        ok = sum(r["status"] == "ok" for r in writer.rows)
        kept = sum(r["status"] == "exists" for r in writer.rows)
        print(
            f"a2i predict: {ok} images written, {kept} kept (already existed), "
            f"{len(writer.failures)} failed → {writer.output_dir} (manifest: {writer.manifest_path})"
        )
        for failure in writer.failures:
            print(f"  failed: {failure['input']}: {failure['error']}", file=sys.stderr)
        if writer.failures:
            sys.exit(1)


def world_main(argv: list[str]) -> None:
    """``a2i world``: write the synthetic world as wav + png + manifest.jsonl."""
    from a2i.synth.materialize import materialize_world

    parser = argparse.ArgumentParser(prog="a2i world", description=WORLD_HELP)
    parser.add_argument("--out", required=True, help="destination folder (must be empty or new)")
    parser.add_argument("--train", type=int, default=1000, help="training clips")
    parser.add_argument("--val", type=int, default=100, help="validation clips")
    parser.add_argument("--test", type=int, default=200, help="test clips")
    parser.add_argument(
        "--image_size", type=int, default=64, help="image side in pixels (64 or 32)"
    )
    parser.add_argument("--seed", type=int, default=0, help="world seed")
    parser.add_argument("--mp4", action="store_true", help="also export each clip as an mp4 video")
    parser.add_argument(
        "--audio_only", action="store_true", help="write wavs only (prediction inputs)"
    )
    parser.add_argument(
        "--overwrite", action="store_true", help="allow writing into a non-empty folder"
    )
    args = parser.parse_args(argv)
    sizes = {"train": args.train, "val": args.val, "test": args.test}
    try:
        materialize_world(
            args.out,
            sizes={k: v for k, v in sizes.items() if v > 0},
            image_size=args.image_size,
            seed=args.seed,
            overwrite=args.overwrite,
            mp4=args.mp4,
            audio_only=args.audio_only,
        )
    except FileExistsError as error:
        parser.error(str(error))
    print(f"a2i world: wrote {sum(sizes.values())} clips to {args.out}")


def prepare_main(argv: list[str]) -> None:
    """``a2i prepare``: decode the videos of a config's ``data`` section into shards.

    ``--config`` takes any run config (only its ``data`` section is read), so the file that
    trains a model also prepares its data; ``--data.init_args.*`` overrides single values.
    """
    import yaml
    from jsonargparse import ArgumentParser

    from a2i.data.video_datamodule import VideoDataModule

    parser = ArgumentParser(prog="a2i prepare", description=PREPARE_HELP)
    parser.add_argument("--config", help="a run config whose data section names a video dataset")
    parser.add_subclass_arguments(VideoDataModule, "data", required=True)
    parser.add_argument("--workers", type=int, help="decoding processes (overrides the config)")
    index = argv.index("--config") if "--config" in argv else -1
    if index >= 0 and index + 1 < len(argv):
        with open(argv[index + 1], encoding="utf-8") as handle:
            section = (yaml.safe_load(handle) or {}).get("data")
        if section is None:
            parser.error(f"{argv[index + 1]} has no data section")
        argv = ["--data", yaml.safe_dump(section), *argv[:index], *argv[index + 2 :]]
    config = parser.parse_args(argv)
    datamodule = parser.instantiate_classes(config).data
    if config.workers is not None:
        datamodule.prepare_workers = config.workers
    report = datamodule.prepare_data()
    if report is None:
        print(f"a2i prepare: {datamodule.prepared} is already complete ({datamodule.clip_counts})")
        return
    counts = ", ".join(f"{split} {count}" for split, count in sorted(report.kept.items()))
    print(
        f"a2i prepare: {counts} clips in {datamodule.prepared}; {len(report.dropped)} dropped "
        f"(see {datamodule.prepared / 'problems.log'}); {report.shards_written} shards written, "
        f"{report.shards_reused} reused; {report.processed} clips in {report.seconds:.1f} s = "
        f"{report.clips_per_second:.2f} clips/s"
    )


def main(args: list[str] | None = None) -> None:
    """Entry point of the ``a2i`` command."""
    argv = sys.argv[1:] if args is None else list(args)
    try:
        if argv and argv[0] == "world":
            world_main(argv[1:])
            return
        if argv and argv[0] == "prepare":
            prepare_main(argv[1:])
            return
        A2ICLI(
            A2IMethod,
            AudioVisualDataModule,
            trainer_class=A2ITrainer,
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
                "epilog": f"other commands: `a2i world --help` ({WORLD_HELP}); "
                f"`a2i prepare --help` ({PREPARE_HELP})"
            },
            args=args,  # None: LightningCLI reads sys.argv itself
        )
    except (A2IError, ValueError) as error:
        cause = a2i_cause(error)
        if cause is None:
            raise
        print(f"a2i: error: {cause}", file=sys.stderr)
        sys.exit(2)


def a2i_cause(error: BaseException) -> A2IError | None:
    """The a2i error behind ``error`` (jsonargparse wraps errors raised while instantiating)."""
    seen = 0
    while error is not None and seen < 16:
        if isinstance(error, A2IError):
            return error
        error, seen = error.__cause__ or error.__context__, seen + 1
    return None


if __name__ == "__main__":
    main()
