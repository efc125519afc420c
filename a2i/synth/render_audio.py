"""Procedural sounds of the synthetic world: one distinctive, always-audible sound per class.

Every sound is defined in continuous time (so any sample rate renders the same sound), keeps
energy in every half second of the clip (a random crop always hears it), and is returned at unit
RMS: the world then places it at a reference level and applies the scene's gain, which is how
loudness becomes a controllable factor (Sound2Vision §5.1 "Changing the volume").

Within-class variation comes from the random generator passed in: pitch within ±10%, rhythm rate
within ±10%, and random phases / time offsets, so two renders of a class are never identical.
All partials stay below 4 kHz, so 8 kHz is the lowest sample rate that renders without aliasing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import numpy as np
import scipy.fft

SoundKind = Literal[
    "harmonic",
    "am_hum",
    "chirps",
    "vibrato",
    "noise_bursts",
    "rumble",
    "knocks",
    "siren",
    "sweeps",
    "hiss",
]

MIN_SAMPLE_RATE = 8000
"""The highest partial of any sound (hiss band edge at +10% pitch) is below 4 kHz."""

PITCH_JITTER = 0.1
RATE_JITTER = 0.1


TWO_PI = np.float32(2.0 * np.pi)


def _cycles(frequency: float | np.ndarray, t: np.ndarray, sample_rate: int) -> np.ndarray:
    """Fractional cycle count in ``[0, 1)`` of a tone; a varying frequency is integrated.

    Kept in float64 until wrapped, then float32: the wrapped phase is exact and the float32
    sine that follows is an order of magnitude faster.
    """
    if isinstance(frequency, np.ndarray):
        cycles = np.cumsum(frequency) / sample_rate
    else:
        cycles = frequency * t
    return (cycles - np.floor(cycles)).astype(np.float32)


def _partials(
    cycles: np.ndarray, amplitudes: dict[int, float], rng: np.random.Generator
) -> np.ndarray:
    """Sum of harmonics ``k`` of a phase, each with its amplitude and a random phase."""
    out = np.zeros_like(cycles)
    for k, amplitude in amplitudes.items():
        offset = np.float32(rng.uniform(0.0, 1.0))
        out += np.float32(amplitude) * np.sin(TWO_PI * (k * cycles + offset))
    return out


def _band_noise(
    rng: np.random.Generator, num_samples: int, sample_rate: int, low_hz: float, high_hz: float
) -> np.ndarray:
    """Noise with a flat spectrum between two frequencies: random phases, inverse FFT."""
    freqs = np.fft.rfftfreq(num_samples, 1.0 / sample_rate)
    first, last = np.searchsorted(freqs, (low_hz, high_hz))
    spectrum = np.zeros(freqs.shape[0], dtype=np.complex64)
    spectrum[first:last] = np.exp(2j * np.pi * rng.random(last - first))
    return scipy.fft.irfft(spectrum, n=num_samples)


def _cycle(t: np.ndarray, rate_hz: float, rng: np.random.Generator) -> np.ndarray:
    """Position in ``[0, 1)`` inside a repeating pattern, with a random time offset."""
    position = t * rate_hz + rng.uniform(0.0, 1.0)
    return (position - np.floor(position)).astype(np.float32)


def _lfo(t: np.ndarray, rate_hz: float, rng: np.random.Generator) -> np.ndarray:
    """A slow sine in ``[0, 1]`` with a random phase (tremolo, swell, vibrato)."""
    return np.float32(0.5) + np.float32(0.5) * np.sin(TWO_PI * _cycle(t, rate_hz, rng))


def _harmonic(
    t: np.ndarray, sr: int, rng: np.random.Generator, pitch: float, rate: float
) -> np.ndarray:
    """A bowed-string-like tone: 220 Hz with six 1/k harmonics and a slow swell."""
    tone = _partials(_cycles(220.0 * pitch, t, sr), {k: 1 / k for k in range(1, 7)}, rng)
    return tone * (np.float32(0.65) + np.float32(0.35) * _lfo(t, 1.25 * rate, rng))


def _am_hum(
    t: np.ndarray, sr: int, rng: np.random.Generator, pitch: float, rate: float
) -> np.ndarray:
    """Mains-like hum: a 110 Hz square-ish wave (odd harmonics) pulsing at 3 Hz."""
    odd = {1: 1.0, 3: 1 / 3, 5: 1 / 5, 7: 1 / 7}
    tone = _partials(_cycles(110.0 * pitch, t, sr), odd, rng)
    return tone * (np.float32(0.15) + np.float32(0.85) * _lfo(t, 3.0 * rate, rng))


def _chirps(
    t: np.ndarray, sr: int, rng: np.random.Generator, pitch: float, rate: float
) -> np.ndarray:
    """Bird-like upward chirps, 500 Hz → 2 kHz, 2.5 per second."""
    position = _cycle(t, 2.5 * rate, rng)
    frequency = 500.0 * pitch * np.exp2(2.0 * position.astype(np.float64))
    envelope = np.sqrt(
        np.maximum(np.sin(np.float32(np.pi) * position), 0.0)
    )  # float32 sin(π·x) dips below 0 near x=1
    return np.sin(TWO_PI * _cycles(frequency, t, sr)) * envelope


def _vibrato(
    t: np.ndarray, sr: int, rng: np.random.Generator, pitch: float, rate: float
) -> np.ndarray:
    """A 660 Hz flute-like tone with ±5% vibrato at 6 Hz."""
    frequency = 660.0 * pitch * (0.95 + 0.1 * _lfo(t, 6.0 * rate, rng).astype(np.float64))
    return _partials(_cycles(frequency, t, sr), {1: 1.0, 2: 0.3}, rng)


def _noise_bursts(
    t: np.ndarray, sr: int, rng: np.random.Generator, pitch: float, rate: float
) -> np.ndarray:
    """Broadband noise bursts (Hann-gated, 40% duty) at 5 per second, like a shaker.

    Uniform rather than Gaussian noise keeps the crest factor low (no rare tall peaks).
    """
    position = _cycle(t, 5.0 * rate, rng)
    gate = np.where(position < 0.4, np.sin(np.float32(np.pi / 0.4) * position) ** 2, 0.0)
    noise = rng.random(t.shape[0], dtype=np.float32) - np.float32(0.5)
    return noise * gate.astype(np.float32)


def _rumble(
    t: np.ndarray, sr: int, rng: np.random.Generator, pitch: float, rate: float
) -> np.ndarray:
    """Low engine-like rumble: 40-250 Hz noise with a 2 Hz throb."""
    noise = _band_noise(rng, t.shape[0], sr, 40.0 * pitch, 250.0 * pitch)
    return noise * (np.float32(0.3) + np.float32(0.7) * _lfo(t, 2.0 * rate, rng))


def _knocks(
    t: np.ndarray, sr: int, rng: np.random.Generator, pitch: float, rate: float
) -> np.ndarray:
    """Wood-block knocks: 2.5 kHz pings decaying in 25 ms, 7 per second."""
    knock_rate = 7.0 * rate
    since_knock = _cycle(t, knock_rate, rng) / np.float32(knock_rate)
    ping = np.sin(TWO_PI * np.float32(2500.0 * pitch) * since_knock)
    return ping * np.exp(since_knock * np.float32(-1.0 / 0.025))


def _siren(
    t: np.ndarray, sr: int, rng: np.random.Generator, pitch: float, rate: float
) -> np.ndarray:
    """Two-tone siren: 600 Hz and 800 Hz alternating every 0.3 s."""
    high = _cycle(t, rate / 0.6, rng) >= 0.5
    frequency = np.where(high, 800.0, 600.0) * pitch
    return _partials(_cycles(frequency, t, sr), {1: 1.0, 3: 0.25}, rng)


def _sweeps(
    t: np.ndarray, sr: int, rng: np.random.Generator, pitch: float, rate: float
) -> np.ndarray:
    """Falling whistles: one exponential sweep 3 kHz → 300 Hz per second."""
    frequency = 3000.0 * pitch * 0.1 ** _cycle(t, 1.0 * rate, rng).astype(np.float64)
    return np.sin(TWO_PI * _cycles(frequency, t, sr))


def _hiss(
    t: np.ndarray, sr: int, rng: np.random.Generator, pitch: float, rate: float
) -> np.ndarray:
    """Steam-like hiss: 2.6-3.4 kHz band noise with a gentle 0.7 Hz sway."""
    noise = _band_noise(rng, t.shape[0], sr, 2600.0 * pitch, 3400.0 * pitch)
    return noise * (np.float32(0.4) + np.float32(0.6) * _lfo(t, 0.7 * rate, rng))


_SYNTHS: dict[str, Callable[..., np.ndarray]] = {
    "harmonic": _harmonic,
    "am_hum": _am_hum,
    "chirps": _chirps,
    "vibrato": _vibrato,
    "noise_bursts": _noise_bursts,
    "rumble": _rumble,
    "knocks": _knocks,
    "siren": _siren,
    "sweeps": _sweeps,
    "hiss": _hiss,
}


def synthesize(
    kind: SoundKind, rng: np.random.Generator, sample_rate: int, num_samples: int
) -> np.ndarray:
    """Render one sound of ``kind`` at unit RMS as a float32 array ``(num_samples,)``.

    Args:
        kind: Which procedural sound.
        rng: Source of the within-class variation (pitch, rate, phases, noise).
        sample_rate: Sample rate in Hz (at least :data:`MIN_SAMPLE_RATE`).
        num_samples: Clip length in samples.
    """
    pitch = 1.0 + rng.uniform(-PITCH_JITTER, PITCH_JITTER)
    rate = 1.0 + rng.uniform(-RATE_JITTER, RATE_JITTER)
    t = np.arange(num_samples) / sample_rate
    wave = _SYNTHS[kind](t, sample_rate, rng, pitch, rate).astype(np.float32)
    return wave / np.sqrt(np.mean(np.square(wave, dtype=np.float64)), dtype=np.float32)
