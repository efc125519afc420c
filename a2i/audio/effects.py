"""Waveform manipulations used by the papers' control experiments and by the synthetic world.

Sound2Vision §5.1 changes the volume of an input, mixes waveforms and mixes with per-source
volumes; Seeing Sound §3 loudness-normalises retrieved sounds before mixing. All functions take
and return mono float32 tensors ``(T,)`` or batches ``(B, T)``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyloudnorm
import torch
import torchaudio.functional as AF
from torch import Tensor

from a2i.errors import ConfigError

MIN_LOUDNESS_SECONDS = 0.4
"""pyloudnorm's gating block: shorter clips are measured after zero-padding to this length."""


def db_to_amplitude(gain_db: float | Tensor) -> float | Tensor:
    """Amplitude factor for a gain in decibels (20·log10 convention)."""
    return 10.0 ** (gain_db / 20.0)


def apply_gain(waveform: Tensor, gain_db: float) -> Tensor:
    """Scale a waveform by ``gain_db`` decibels (no clipping: the caller decides)."""
    return waveform * db_to_amplitude(gain_db)


def mix(waveforms: Sequence[Tensor], gains_db: Sequence[float] | None = None) -> Tensor:
    """Sum mono waveforms with per-source gains in dB; shorter sources are zero-padded at the end.

    Args:
        waveforms: One ``(T_i,)`` tensor per source.
        gains_db: One gain per source (default 0 dB each).
    """
    if not waveforms:
        raise ConfigError("mix() needs at least one waveform")
    gains = [0.0] * len(waveforms) if gains_db is None else list(gains_db)
    if len(gains) != len(waveforms):
        raise ConfigError(f"mix() got {len(waveforms)} waveforms but {len(gains)} gains")
    length = max(w.shape[-1] for w in waveforms)
    out = torch.zeros(length, dtype=waveforms[0].dtype, device=waveforms[0].device)
    for wave, gain in zip(waveforms, gains, strict=True):
        out[: wave.shape[-1]] += apply_gain(wave, gain)
    return out


def loudness(waveform: Tensor, sample_rate: int) -> float:
    """Integrated loudness in LUFS (ITU-R BS.1770 via pyloudnorm) of one ``(T,)`` clip.

    Returns ``-inf`` for silence. A batch is rejected: pyloudnorm would read ``(B, T)`` as
    ``T`` channels.
    """
    if waveform.ndim != 1:
        raise ValueError(
            f"loudness() measures one (T,) clip, got shape {tuple(waveform.shape)}; loop over rows"
        )
    samples = waveform.detach().cpu().double().numpy()
    minimum = int(MIN_LOUDNESS_SECONDS * sample_rate)
    if samples.shape[-1] < minimum:
        samples = np.pad(samples, (0, minimum - samples.shape[-1]))
    if not np.any(samples):
        return float("-inf")
    return float(pyloudnorm.Meter(sample_rate).integrated_loudness(samples))


def normalize_loudness(waveform: Tensor, sample_rate: int, target_lufs: float = -23.0) -> Tensor:
    """Scale a ``(T,)`` waveform, or each row of a ``(B, T)`` batch, to ``target_lufs``.

    Silence (or audio quieter than the BS.1770 absolute gate) has no measurable loudness; it is
    returned unchanged instead of being multiplied by an infinite gain.
    """
    if waveform.ndim == 2:
        return torch.stack([normalize_loudness(row, sample_rate, target_lufs) for row in waveform])
    measured = loudness(waveform, sample_rate)
    if not np.isfinite(measured):
        return waveform.clone()
    return apply_gain(waveform, target_lufs - measured)


def reverberate(
    waveform: Tensor,
    sample_rate: int,
    rt60: float = 0.6,
    wet: float = 0.5,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Convolve with a synthetic room impulse response (exponentially decaying noise).

    The decay reaches -60 dB after ``rt60`` seconds. ``wet`` blends the reverberant signal
    with the dry one; the output keeps the input's RMS so reverb does not change loudness.
    A batch is reverberated in one room (the same impulse response), each row keeping its RMS.

    Args:
        waveform: ``(T,)`` mono signal or ``(B, T)`` batch.
        sample_rate: Sample rate in Hz.
        rt60: Reverberation time in seconds.
        wet: Fraction of reverberant signal in ``[0, 1]``.
        generator: Seeds the impulse response noise.
    """
    if rt60 <= 0 or not 0.0 <= wet <= 1.0:
        raise ConfigError(f"reverberate() needs rt60 > 0 and 0 <= wet <= 1 (got {rt60}, {wet})")
    length = max(1, int(rt60 * sample_rate))  # at least one tap: an empty response has no norm
    t = torch.arange(length, dtype=torch.float32) / sample_rate
    decay = torch.exp(-6.907755 * t / rt60)  # ln(1000): -60 dB at rt60
    impulse = torch.randn(length, generator=generator) * decay
    impulse = (impulse / impulse.norm()).to(device=waveform.device, dtype=waveform.dtype)
    impulse = impulse.expand(*waveform.shape[:-1], length)
    wet_signal = AF.fftconvolve(waveform, impulse)[..., : waveform.shape[-1]]
    out = (1.0 - wet) * waveform + wet * wet_signal
    rms_in = waveform.pow(2).mean(dim=-1, keepdim=True).sqrt()
    rms_out = out.pow(2).mean(dim=-1, keepdim=True).sqrt()
    return torch.where(rms_out > 0, out * (rms_in / rms_out.clamp_min(1e-12)), out)
