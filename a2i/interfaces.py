"""The three component contracts every a2i method is built from, and the batch contract.

Methods (Sound2Vision, AudioToken, WavBriVL, Seeing Sound) are compositions of an
:class:`AudioEncoder`, an :class:`ImageEncoder` and an :class:`ImageGenerator`. Each component
declares what it consumes and produces, so a method can check at construction that its parts fit
(sample rate, clip length, embedding size) instead of failing deep inside a forward pass.

Batch contract (what every datamodule yields and every method reads):

- ``audio``: ``(B, T)`` float32 mono waveform in ``[-1, 1]`` at the datamodule's sample rate.
- ``image``: ``(B, 3, H, W)`` float32 in ``[0, 1]`` (absent for audio-only prediction batches).
- ``label``: ``(B,)`` int64 class index, ``-1`` when unknown.
- ``caption``: ``list[str]`` of length B (class caption, e.g. ``"a red triangle"``; may be empty).
- ``key``: ``list[str]`` of length B, a stable identifier (relative path for files).
- ``features/<name>``: optional ``(B, ...)`` outputs of frozen models cached when a video
  dataset was prepared (:mod:`a2i.data.prepare`), e.g. ``features/image``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor, nn

from a2i.errors import ConfigError

AUDIO = "audio"
IMAGE = "image"
LABEL = "label"
CAPTION = "caption"
KEY = "key"
FEATURES = "features/"


class FreezableMixin(nn.Module):
    """A module that can be frozen: no gradients, eval mode kept through ``.train()`` calls."""

    _frozen: bool = False

    @property
    def frozen(self) -> bool:
        """Whether this component is frozen (never trained, never in an optimizer)."""
        return self._frozen

    def freeze(self) -> FreezableMixin:
        """Stop gradients and keep eval mode (dropout/batch-norm statistics fixed)."""
        self._frozen = True
        self.requires_grad_(False)
        return super().train(False)

    def train(self, mode: bool = True) -> FreezableMixin:
        """Switch mode, except that a frozen component always stays in eval mode."""
        return super().train(False if self._frozen else mode)


@dataclass
class AudioEncoderOutput:
    """What an audio encoder returns.

    Attributes:
        pooled: ``(B, D)`` clip embedding, or None for sequence-only encoders.
        tokens: ``(B, N, D_tokens)`` frame/patch sequence, or None for pooled-only encoders.
    """

    pooled: Tensor | None = None
    tokens: Tensor | None = None


class AudioEncoder(FreezableMixin, ABC):
    """Waveform ``(B, T)`` → pooled embedding and/or token sequence.

    Subclasses set the attributes below in ``__init__``. The encoder owns its front end
    (spectrogram, fbank, resampling is the datamodule's job), so a waveform at
    :attr:`sample_rate` is all it needs.

    Attributes:
        sample_rate: Expected input sample rate in Hz.
        clip_seconds: Clip duration the encoder was designed for.
        embed_dim: Size of ``pooled`` (0 when the encoder yields no pooled output).
        token_dim: Size of each token in ``tokens`` (0 when it yields no sequence).
        output: Which outputs are produced.
    """

    sample_rate: int
    clip_seconds: float
    embed_dim: int = 0
    token_dim: int = 0
    output: Literal["pooled", "sequence", "both"] = "pooled"

    @abstractmethod
    def forward(self, waveform: Tensor) -> AudioEncoderOutput:
        """Encode a batch of mono waveforms ``(B, T)``."""


class ImageEncoder(FreezableMixin, ABC):
    """Image ``(B, 3, H, W)`` in ``[0, 1]`` → embedding ``(B, D)``.

    The encoder resizes and normalises internally (ImageNet or CLIP statistics), so callers
    always pass plain ``[0, 1]`` images.

    Attributes:
        image_size: Resolution the encoder works at (inputs are resized to it).
        embed_dim: Size of the embedding.
        normalized: Whether embeddings are unit-norm.
    """

    image_size: int
    embed_dim: int
    normalized: bool = False

    @abstractmethod
    def forward(self, image: Tensor) -> Tensor:
        """Encode images in ``[0, 1]``."""


class ImageGenerator(FreezableMixin, ABC):
    """Condition ``(B, D)`` (or ``(B, N, D)`` tokens) → image ``(B, 3, H, W)`` in ``[0, 1]``.

    Attributes:
        condition_dim: Size of the conditioning vector (the last dimension of the condition).
        image_size: Output resolution.
    """

    condition_dim: int
    image_size: int

    @abstractmethod
    def generate(self, condition: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Draw one image per condition row; ``generator`` seeds every random draw."""

    def trained_parts(self) -> dict[str, nn.Module]:
        """The submodules stage-1 training changes, by export name (saved as ``<name>.safetensors``).

        The whole generator by default; a latent diffusion model trains only its UNet.
        """
        return {"generator": self}

    @abstractmethod
    def training_losses(self, image: Tensor, condition: Tensor) -> dict[str, Tensor]:
        """Stage-1 training losses for reproducing ``image`` from ``condition``.

        Returns a dict with at least ``"loss"`` (the value to minimise). Adversarial
        generators implement :class:`AdversarialGenerator` instead and raise here.
        """


class AdversarialGenerator(ImageGenerator):
    """An :class:`ImageGenerator` trained against a discriminator (GAN variants).

    The discriminator lives inside the component so a stage-1 trainer can alternate the
    two updates without knowing the architecture; :meth:`generate` never uses it.
    """

    discriminator: nn.Module

    def generator_parameters(self) -> list[nn.Parameter]:
        """Parameters updated by the generator step (everything but the discriminator)."""
        disc = {id(p) for p in self.discriminator.parameters()}
        return [p for p in self.parameters() if id(p) not in disc]

    @abstractmethod
    def discriminator_loss(self, image: Tensor, condition: Tensor) -> dict[str, Tensor]:
        """Discriminator objective on real ``image`` vs. images generated from ``condition``."""

    @abstractmethod
    def generator_loss(self, image: Tensor, condition: Tensor) -> dict[str, Tensor]:
        """Generator objective (adversarial plus any reconstruction terms), key ``"loss"``."""

    def training_losses(self, image: Tensor, condition: Tensor) -> dict[str, Tensor]:
        """Adversarial generators are trained through the two methods above."""
        raise TypeError(
            f"{type(self).__name__} is adversarial: train it with generator_loss and "
            "discriminator_loss (a2i.methods.generator_pretraining does this)"
        )


def check_embedding_match(produced: int, consumed: int, producer: str, consumer: str) -> None:
    """Raise a :class:`ConfigError` when two components' feature sizes disagree."""
    if produced != consumed:
        raise ConfigError(
            f"{producer} produces {produced}-d features but {consumer} expects {consumed}-d; "
            "choose presets of matching size (or set the projection size) in the config"
        )
