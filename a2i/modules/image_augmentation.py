"""WavBriVL's training-frame augmentation: random colour jitter, then random grayscale.

WavBriVL §2.3 ("Image Encoder") follows BriVL in augmenting each input image with "random
grayscale" and "random color jitter" but gives no strengths, and BriVL's published code is
inference only. BriVL's loss is MoCo's, so a2i's defaults are MoCo v2's values for the same two
transforms (jitter 0.4/0.4/0.4/0.1 applied with probability 0.8, grayscale with probability
0.2): a2i's choice, each a typed option.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import torch
from torch import Tensor
from torchvision.transforms import v2

from a2i.errors import ConfigError


@dataclass(frozen=True)
class ImageAugmentation:
    """Random colour jitter and grayscale, drawn independently for every image of a batch.

    Attributes:
        jitter_probability: Chance that an image is colour-jittered.
        brightness: Brightness factor range ``[1 - b, 1 + b]``.
        contrast: Contrast factor range ``[1 - c, 1 + c]``.
        saturation: Saturation factor range ``[1 - s, 1 + s]``.
        hue: Hue shift range ``[-h, h]`` (at most 0.5).
        grayscale_probability: Chance that an image becomes grayscale (three equal channels).
    """

    jitter_probability: float = 0.8
    brightness: float = 0.4
    contrast: float = 0.4
    saturation: float = 0.4
    hue: float = 0.1
    grayscale_probability: float = 0.2

    def __post_init__(self) -> None:
        probabilities = (self.jitter_probability, self.grayscale_probability)
        strengths = (self.brightness, self.contrast, self.saturation)
        if not all(0.0 <= p <= 1.0 for p in probabilities) or min(strengths) < 0:
            raise ConfigError(
                "ImageAugmentation probabilities must be in [0, 1] and brightness, contrast, "
                f"saturation >= 0 (got {self})"
            )
        if not 0.0 <= self.hue <= 0.5:
            raise ConfigError(f"ImageAugmentation.hue must be in [0, 0.5] (got {self.hue})")

    @cached_property
    def transform(self) -> v2.Transform:
        """The per-image transform (torch's global generator draws its randomness)."""
        jitter = v2.ColorJitter(self.brightness, self.contrast, self.saturation, self.hue)
        return v2.Compose(
            [
                v2.RandomApply([jitter], p=self.jitter_probability),
                v2.RandomGrayscale(p=self.grayscale_probability),
            ]
        )

    def __call__(self, images: Tensor) -> Tensor:
        """Augment ``(B, 3, H, W)`` images in ``[0, 1]``, each with its own draw."""
        return torch.stack([self.transform(image) for image in images]).clamp(0.0, 1.0)
