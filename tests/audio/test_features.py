from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from transformers import ASTFeatureExtractor

from a2i.audio.effects import apply_gain, normalize_loudness
from a2i.audio.features import KaldiFbank, LogMel, LogSpectrogram
from a2i.errors import ConfigError

RATE = 16000
SIX_DB_LOG_RATIO = 6.0 / 20.0 * math.log(10.0)  # ln(10^(6/20)) = 0.6908 per magnitude bin


def noise(batch: int, seconds: float, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return 0.1 * torch.randn(batch, round(seconds * RATE), generator=generator)


def test_log_spectrogram_matches_sound2vision_shape() -> None:
    frontend = LogSpectrogram()
    assert frontend.output_shape(10 * RATE) == (1, 1004, 257)
    assert frontend(torch.zeros(2, 10 * RATE)).shape == (2, 1, 1004, 257)


@pytest.mark.parametrize("normalize", [False, True])
def test_log_spectrogram_preserves_loudness(normalize: bool) -> None:
    frontend = LogSpectrogram(normalize=normalize)
    quiet = noise(2, 1.0)
    shift = frontend(apply_gain(quiet, 6.0)) - frontend(quiet)
    expected = SIX_DB_LOG_RATIO / (frontend.std if normalize else 1.0)
    torch.testing.assert_close(shift, torch.full_like(shift, expected), atol=1e-3, rtol=0)


def test_log_spectrogram_constants_are_pink_noise_at_minus_23_lufs() -> None:
    frontend = LogSpectrogram(normalize=False)
    white = torch.randn(10 * RATE, generator=torch.Generator().manual_seed(0))
    freqs = torch.fft.rfftfreq(10 * RATE, 1 / RATE)
    freqs[0] = freqs[1]
    pink = torch.fft.irfft(torch.fft.rfft(white) / freqs.sqrt(), n=10 * RATE)
    features = frontend(normalize_loudness(pink, RATE, -23.0)[None])
    default = LogSpectrogram()
    assert features.mean().item() == pytest.approx(default.mean, abs=0.03)
    assert features.std().item() == pytest.approx(default.std, abs=0.03)


def test_log_spectrogram_rejects_short_clips_and_bad_shapes() -> None:
    with pytest.raises(ConfigError, match="n_fft"):
        LogSpectrogram()(torch.zeros(1, 100))
    with pytest.raises(ValueError, match=r"\(B, T\)"):
        LogSpectrogram()(torch.zeros(RATE))


def test_log_mel_shape() -> None:
    frontend = LogMel()
    features = frontend(noise(2, 1.0))
    assert features.shape == (2, *frontend.output_shape(RATE)) == (2, 1, 101, 128)
    assert torch.isfinite(features).all()


@pytest.mark.parametrize(("seconds", "target_length"), [(1.5, 100), (1.0, 160)])
def test_kaldi_fbank_matches_ast_feature_extractor(seconds: float, target_length: int) -> None:
    waveform = noise(2, seconds, seed=1)
    ours = KaldiFbank(target_length=target_length)(waveform)
    extractor = ASTFeatureExtractor(max_length=target_length)
    theirs = extractor(
        [row.numpy().astype(np.float32) for row in waveform],
        sampling_rate=RATE,
        return_tensors="pt",
    )["input_values"]
    assert ours.shape == theirs.shape == (2, target_length, 128)
    torch.testing.assert_close(ours, theirs, atol=1e-4, rtol=1e-4)
