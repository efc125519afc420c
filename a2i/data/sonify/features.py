"""AST token sequences of the mixtures, cached in the shards (Seeing Sound §4.3).

Seeing Sound pre-computes the AST embeddings of every mixture (a vector time series, §3.4) and the
VAE latents of every image before training; the latents are
:class:`a2i.data.prepare.LatentFeature`, the token sequences this feature.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from a2i.data.prepare import CachedFeature
from a2i.errors import ConfigError
from a2i.interfaces import AudioEncoder


class AudioTokensFeature(CachedFeature):
    """The frozen audio encoder's token sequence ``(N, D)`` of each mixture.

    Args:
        encoder: A frozen audio encoder with a sequence output (Seeing Sound: AST).
        name: Batch name suffix (``features/<name>``).
    """

    def __init__(self, encoder: AudioEncoder, name: str = "audio_tokens") -> None:
        super().__init__(name)
        if encoder.output == "pooled":
            raise ConfigError(f"{type(encoder).__name__} has no token sequence to cache")
        self.encoder = encoder

    def model(self) -> torch.nn.Module:
        """The audio encoder."""
        return self.encoder

    def compute(self, images: Tensor, audio: Tensor) -> Tensor:
        """Tokens ``(B, N, D)`` of the mixtures, zero-padded or cut to the encoder's clip."""
        length = round(self.encoder.sample_rate * self.encoder.clip_seconds)
        audio = F.pad(audio, (0, max(0, length - audio.shape[-1])))[:, :length]
        return self.encoder(audio.to(self.device)).tokens.float().cpu()
