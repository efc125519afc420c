"""Fixtures for the method tests: a tiny synthetic world and a 2-step CPU training on it."""

from collections.abc import Callable
from pathlib import Path
from typing import Any

import lightning as L
import pytest
import torch

from a2i.encoders.audio.resnet_spectrogram import SpectrogramResNet
from a2i.encoders.image.tiny import TinyImageEncoder
from a2i.generators.biggan import BigGANGenerator
from a2i.generators.latent_diffusion import LatentDiffusionGenerator
from a2i.methods.sound2vision import Sound2Vision
from a2i.synth.datamodule import SyntheticWorldDataModule


def tiny_world() -> SyntheticWorldDataModule:
    """8 train, 4 val and 4 test scenes of the synthetic world: 32 px, 1 s clips, batches of 4."""
    return SyntheticWorldDataModule(
        image_size=32, clip_seconds=1.0, batch_size=4, train_size=8, val_size=4, test_size=4
    )


def tiny_sound2vision(generator: str = "gan", **kwargs) -> Sound2Vision:
    """A seeded 64-d Sound2Vision for the tiny world with a tiny GAN (or ``"ldm"``)."""
    torch.manual_seed(0)
    gen = (
        BigGANGenerator(preset="tiny", condition_dim=64, image_size=32)
        if generator == "gan"
        else LatentDiffusionGenerator(
            preset="tiny", condition_dim=64, image_size=32, num_inference_steps=2
        )
    )
    return Sound2Vision(
        audio_encoder=SpectrogramResNet(preset="tiny", embed_dim=64, clip_seconds=1.0),
        image_encoder=TinyImageEncoder(embed_dim=64, image_size=32),
        generator=gen,
        **kwargs,
    )


def quiet_cpu_trainer(root: Path, **options: Any) -> L.Trainer:
    """A CPU trainer under ``root`` with no logger, bar or model summary.

    The method tests read what they need from the model and the trainer; Lightning's own
    output would only bury pytest's. ``options`` are the run's length, limits and callbacks.
    """
    return L.Trainer(
        accelerator="cpu",
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=root,
        **options,
    )


@pytest.fixture
def world() -> SyntheticWorldDataModule:
    """The tiny world (see :func:`tiny_world`)."""
    return tiny_world()


@pytest.fixture
def fit_tiny(tmp_path) -> Callable[[L.LightningModule], L.Trainer]:
    """Train a method 2 steps on the tiny world (CPU, no logger or bar); return the trainer."""

    def fit(model: L.LightningModule) -> L.Trainer:
        trainer = quiet_cpu_trainer(
            tmp_path, max_steps=2, num_sanity_val_steps=0, limit_val_batches=1
        )
        trainer.fit(model, datamodule=tiny_world())
        return trainer

    return fit
