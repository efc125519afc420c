"""The ``a2i`` command: LightningCLI for ``fit | validate | test | predict`` plus ``a2i world``.

Models and datamodules are chosen in YAML with ``class_path``/``init_args`` (subclass mode), so a new
method or dataset needs no change here. ``predict`` gains flags for writing images and for the
inference controls (see :class:`A2ITrainer.predict`).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import lightning as L
from jsonargparse import Namespace
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI

from a2i.audio.io import Crop
from a2i.callbacks import ImageLogger
from a2i.callbacks.evaluation import Evaluation
from a2i.config_errors import A2IArgumentParser
from a2i.data.base import AudioVisualDataModule
from a2i.data.folder import list_audio_files
from a2i.errors import A2IError, ConfigError
from a2i.interfaces import AUDIO, KEY
from a2i.methods.base import A2IMethod
from a2i.pipelines import AudioToImagePipeline
from a2i.pipelines.audio_to_image import Request
from a2i.pipelines.folder import FolderSummary, predict_folder, request_settings
from a2i.pipelines.loading import load_checkpoint_into
from a2i.pipelines.writer import ImageFolderWriter

WORLD_HELP = "materialise the embedded synthetic audio-visual world to disk"
PREPARE_HELP = "decode a video dataset into training shards"


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
        mix_with = [mix_with] if isinstance(mix_with, str) else list(mix_with or [])
        gains = [mix_gains_db] if isinstance(mix_gains_db, float | int) else mix_gains_db
        pipeline = AudioToImagePipeline(model, batch_size=_batch_size(datamodule))
        request = pipeline.prepare_request(
            num_images_per_input=num_seeds,
            seed=seed,
            gain_db=gain_db,
            mix_with=mix_with,
            mix_gains_db=list(gains or []),
            image=image,
            image_weight=image_weight,
            prompt=prompt,
            guidance_scale=guidance_scale,
            num_inference_steps=num_inference_steps,
            crop=crop,
        )
        if ckpt_path is not None:
            load_checkpoint_into(model, ckpt_path)
        elif isinstance(model, A2IMethod) and (missing := model.parts_without_weights()):
            raise ConfigError(
                f"a2i predict needs --ckpt_path (the trained weights, e.g. "
                f"RUN/checkpoints/last.ckpt): {', '.join(missing)} would be untrained; or give "
                "their published weights in the config (e.g. audio_encoder.init_args.pretrained)"
            )
        writer = None
        if output_dir is not None:
            settings = request_settings(
                pipeline, request, checkpoint=ckpt_path, mix_with=mix_with, image=image
            )
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
        request: Request,
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


def check_predict_arguments(config: Namespace) -> None:
    """Refuse, before anything is built, a prediction that cannot give what the user expects."""
    output_dir = config.get("output_dir")
    if output_dir is None:
        raise ConfigError("a2i predict needs --output_dir (where the images and manifest go)")
    if Path(output_dir).exists() and not Path(output_dir).is_dir():
        raise ConfigError(f"--output_dir '{output_dir}' is a file, not a folder")
    if config.get("audio_dir") is not None and not Path(config.audio_dir).is_dir():
        raise ConfigError(f"--audio_dir '{config.audio_dir}' is not a folder")


def _batch_size(datamodule: L.LightningDataModule | None) -> int:
    return datamodule.batch_size if isinstance(datamodule, AudioVisualDataModule) else 16


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
        """Check the paths the user gave before anything is built; predict reads ``--audio_dir``.

        A missing ``--ckpt_path`` is one line, not a traceback after the model was built. A run
        config names its training data (a VGGSound folder, say), which a machine that only
        predicts need not have; ``predict --audio_dir`` reads that folder instead.
        """
        ckpt_path = self.config[self.subcommand].get("ckpt_path")
        if (
            ckpt_path is not None
            and ckpt_path not in ("last", "best")
            and not Path(ckpt_path).is_file()
        ):
            raise ConfigError(f"--ckpt_path '{ckpt_path}' does not exist (or is not a file)")
        if self.subcommand != "predict":
            return
        config = self.config["predict"]
        check_predict_arguments(config)
        if config.get("audio_dir") is None or config.get("data") is None:
            return
        batch_size = (config.data.get("init_args") or Namespace()).get("batch_size") or 16
        config["data"] = Namespace(
            class_path="a2i.data.folder.AudioFolderDataModule",
            init_args=Namespace(audio_dir=config.audio_dir, batch_size=batch_size),
        )

    def after_test(self) -> None:
        """Say where the evaluation report went (it is the result of ``a2i test``)."""
        for callback in self.trainer.callbacks:
            if isinstance(callback, Evaluation) and self.trainer.is_global_zero:
                print(f"a2i test: evaluation report in {callback.report_dir}")

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
