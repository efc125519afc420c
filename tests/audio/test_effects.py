from __future__ import annotations

import math

import pytest
import torch

from a2i.audio.effects import (
    apply_gain,
    db_to_amplitude,
    loudness,
    mix,
    normalize_loudness,
    reverberate,
)
from a2i.errors import ConfigError

RATE = 16000


def sine(seconds: float = 1.0, frequency: float = 440.0, amplitude: float = 0.3) -> torch.Tensor:
    t = torch.arange(round(seconds * RATE)) / RATE
    return amplitude * torch.sin(2 * math.pi * frequency * t)


def rms(waveform: torch.Tensor) -> torch.Tensor:
    return waveform.pow(2).mean(dim=-1).sqrt()


def test_gain_matches_decibel_definition() -> None:
    assert db_to_amplitude(6.0) == pytest.approx(1.99526, rel=1e-5)
    assert db_to_amplitude(-20.0) == pytest.approx(0.1)
    waveform = sine()
    torch.testing.assert_close(apply_gain(waveform, 6.0), waveform * 1.9952623)


def test_mix_applies_gains_and_pads_shorter_sources() -> None:
    long, short = torch.ones(6), torch.full((3,), 2.0)
    mixed = mix([long, short], gains_db=[0.0, -6.0])
    expected = torch.tensor([1.0, 1.0, 1.0, 1.0, 1.0, 1.0]) + torch.tensor(
        [2 * 0.5011872, 2 * 0.5011872, 2 * 0.5011872, 0.0, 0.0, 0.0]
    )
    torch.testing.assert_close(mixed, expected)
    torch.testing.assert_close(mix([short, long]), torch.tensor([3.0, 3.0, 3.0, 1.0, 1.0, 1.0]))
    with pytest.raises(ConfigError):
        mix([long, short], gains_db=[0.0])
    with pytest.raises(ConfigError):
        mix([])


@pytest.mark.parametrize("target", [-23.0, -14.0])
def test_loudness_normalisation_hits_target(target: float) -> None:
    normalized = normalize_loudness(sine(amplitude=0.05), RATE, target)
    assert loudness(normalized, RATE) == pytest.approx(target, abs=0.1)


def test_loudness_normalisation_of_batch_is_per_row() -> None:
    batch = torch.stack([sine(amplitude=0.05), sine(amplitude=0.5)])
    normalized = normalize_loudness(batch, RATE, -20.0)
    assert [loudness(row, RATE) for row in normalized] == pytest.approx([-20.0, -20.0], abs=0.1)
    with pytest.raises(ValueError, match="loop over rows"):
        loudness(batch, RATE)


def test_silence_and_short_clips_give_no_nan() -> None:
    silence = torch.zeros(RATE)
    assert loudness(silence, RATE) == float("-inf")
    assert torch.isfinite(normalize_loudness(silence, RATE)).all()
    assert torch.isfinite(normalize_loudness(sine(0.1), RATE)).all()  # shorter than 0.4 s
    assert torch.isfinite(reverberate(silence, RATE)).all()


def test_reverb_keeps_rms_and_is_seeded() -> None:
    waveform = sine(0.5)
    first = reverberate(waveform, RATE, rt60=0.3, generator=torch.Generator().manual_seed(0))
    again = reverberate(waveform, RATE, rt60=0.3, generator=torch.Generator().manual_seed(0))
    other = reverberate(waveform, RATE, rt60=0.3, generator=torch.Generator().manual_seed(1))
    assert first.shape == waveform.shape
    assert rms(first).item() == pytest.approx(rms(waveform).item(), rel=1e-4)
    torch.testing.assert_close(first, again)
    assert not torch.allclose(first, other)
    assert not torch.allclose(first, waveform)
    torch.testing.assert_close(reverberate(waveform, RATE, wet=0.0), waveform)


def test_reverb_of_batch_keeps_each_rows_rms() -> None:
    batch = torch.stack([sine(0.5, amplitude=0.1), sine(0.5, frequency=300, amplitude=0.6)])
    out = reverberate(batch, RATE, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(rms(out), rms(batch), rtol=1e-4, atol=0)
    single = reverberate(batch[1], RATE, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(out[1], single)
    with pytest.raises(ConfigError):
        reverberate(batch, RATE, wet=1.5)
