"""AST token sequences of the mixtures, cached in the shards (Seeing Sound §4.3).

Seeing Sound pre-computes the AST embeddings of every mixture (a vector time series, §3.4) and the
VAE latents of every image before training; the latents are
:class:`a2i.build.prepare.LatentFeature`, the token sequences this feature.

Cached tokens must equal the ones training computes from its batch and ``a2i predict`` from a file:
the waveform is cut or zero-padded to the *method's* clip (Seeing Sound: 5 s chunks, App. A.7, as
:func:`a2i.audio.io.fit_length` does for batches and files), and the rest of the encoder's window is
left to its front end, which zero-pads the fbank before normalising (AST's recipe and
transformers' ``ASTFeatureExtractor``). Zero-padding the waveform to AST's whole 10.24 s instead
gives different padding frames (log of the mel floor rather than 0), hence different tokens.
"""

from __future__ import annotations

from torch import Tensor

from a2i.audio.io import fit_length
from a2i.build.prepare import CachedFeature
from a2i.build.sonify.pool import CHUNK_SECONDS
from a2i.errors import ConfigError
from a2i.interfaces import AudioEncoder


class AudioTokensFeature(CachedFeature):
    """The frozen audio encoder's token sequence ``(N, D)`` of each mixture.

    Args:
        encoder: A frozen audio encoder with a sequence output (Seeing Sound: AST).
        clip_seconds: Seconds of audio the method hears, its and the data's ``clip_seconds``
            (Seeing Sound: 5 s, the sonified chunk); not the encoder's window.
        name: Batch name suffix (``features/<name>``).
    """

    def __init__(
        self,
        encoder: AudioEncoder,
        clip_seconds: float = CHUNK_SECONDS,
        name: str = "audio_tokens",
    ) -> None:
        super().__init__(name, encoder)
        if encoder.output == "pooled":
            raise ConfigError(f"{type(encoder).__name__} has no token sequence to cache")
        if clip_seconds <= 0:
            raise ConfigError(f"AudioTokensFeature.clip_seconds must be > 0 (got {clip_seconds})")
        self.encoder = encoder
        self.clip_seconds = clip_seconds

    def compute(self, images: Tensor, audio: Tensor) -> Tensor:
        """Tokens ``(B, N, D)`` of the first ``clip_seconds`` of each mixture (zero-padded)."""
        length = round(self.encoder.sample_rate * self.clip_seconds)
        audio = fit_length(audio, length, random_crop=False)
        return self.encoder(audio.to(self.device)).tokens.float().cpu()
