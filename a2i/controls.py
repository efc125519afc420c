"""Inference-time controls shared by every method (Sound2Vision §5, AudioToken §4).

The papers steer generation without retraining: change the input's volume, mix several sounds
with per-source gains, blend audio features with an image's features, draw several seeds per input.
``a2i predict`` exposes them as flags (``--gain_db``, ``--mix_with``, ``--num_seeds``, ...); in Python
set ``method.controls``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

import torch
from torch import Tensor

from a2i.audio.effects import apply_gain, db_to_amplitude
from a2i.audio.io import fit_length, read_audio
from a2i.errors import ConfigError


@dataclass
class Controls:
    """What to change at inference.

    Attributes:
        gain_db: Volume change applied to every input (Sound2Vision §5.1 "changing the volume").
        mix_with: Audio files mixed into every input (§5.1 "mixing waveforms").
        mix_gains_db: Gain of each ``mix_with`` file in dB (default 0 dB each).
        image: Image whose features are blended with the audio's (§5.2), or None.
        image_weight: λ in ``λ·z_V + (1−λ)·z_A`` (0 = audio only, 1 = image only).
        num_seeds: Images drawn per input, seeds ``seed, seed+1, ...``.
        seed: First noise seed.
    """

    gain_db: float = 0.0
    mix_with: list[str] = field(default_factory=list)
    mix_gains_db: list[float] = field(default_factory=list)
    image: str | None = None
    image_weight: float = 0.5
    num_seeds: int = 1
    seed: int = 0

    def __post_init__(self) -> None:
        if self.mix_gains_db and len(self.mix_gains_db) != len(self.mix_with):
            raise ConfigError(
                f"--mix_gains_db has {len(self.mix_gains_db)} values for "
                f"{len(self.mix_with)} --mix_with files"
            )
        if self.num_seeds < 1:
            raise ConfigError(f"--num_seeds must be >= 1 (got {self.num_seeds})")
        if not 0.0 <= self.image_weight <= 1.0:
            raise ConfigError(f"--image_weight must be in [0, 1] (got {self.image_weight})")

    @property
    def seeds(self) -> list[int]:
        """The noise seeds drawn for every input."""
        return list(range(self.seed, self.seed + self.num_seeds))

    def apply_to_waveforms(self, waveform: Tensor, sample_rate: int) -> Tensor:
        """Gain every ``(B, T)`` waveform and add the ``mix_with`` sources at their gains."""
        out = apply_gain(waveform, self.gain_db) if self.gain_db else waveform
        gains = self.mix_gains_db or [0.0] * len(self.mix_with)
        for path, gain in zip(self.mix_with, gains, strict=True):
            source = _cached_audio(path, sample_rate, waveform.shape[-1]).to(waveform)
            out = out + db_to_amplitude(gain) * source
        return out


@lru_cache(maxsize=16)
def _cached_audio(path: str, sample_rate: int, num_samples: int) -> Tensor:
    return fit_length(read_audio(path, sample_rate), num_samples, random_crop=False)


def seeded(seed: int, device: torch.device) -> torch.Generator:
    """A torch.Generator on ``device`` seeded with ``seed``."""
    return torch.Generator(device=device).manual_seed(seed)
