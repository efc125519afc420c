"""Spectral front ends: waveform batch ``(B, T)`` in, time × frequency features out.

The Sound2Scene preset of :class:`LogSpectrogram` is frequency × time, as its released weights
expect (``SPECTROGRAM_PRESETS``).

Each front end is an ``nn.Module`` (so it follows the encoder to its device) built on torchaudio
transforms, with an ``output_shape`` helper so encoders can size their layers from the clip
length without running a forward pass.
"""

from __future__ import annotations

from typing import Literal

import torch
import torchaudio
from torch import Tensor, nn
from torchaudio.compliance import kaldi

from a2i.errors import ConfigError

PINK_NOISE_LOG_SPEC_MEAN = -0.71
PINK_NOISE_LOG_SPEC_STD = 0.83
"""Statistics of :class:`LogSpectrogram` (default settings) on pink noise at -23 LUFS, 16 kHz.

A fixed, reproducible reference (``tests/audio/test_features.py`` recomputes it) rather than
dataset statistics, which a2i cannot ship for every dataset; pass ``mean``/``std`` measured on
your data to override.
"""


def _check_batch(waveform: Tensor, name: str) -> None:
    if waveform.ndim != 2:
        raise ValueError(
            f"{name} expects a (B, T) waveform batch, got shape {tuple(waveform.shape)}"
        )


def tukey_window(length: int, alpha: float = 0.25) -> Tensor:
    """Periodic Tukey window, scipy's ``get_window(("tukey", alpha), length)``.

    The default window of ``scipy.signal.spectrogram``, hence of the Sound2Scene front end.
    """
    n = torch.arange(length, dtype=torch.float64)
    edge = torch.minimum(n, length - n)  # periodic: the symmetric window of length + 1, cut
    taper = alpha * length / 2
    window = torch.where(edge < taper, 0.5 * (1 - torch.cos(torch.pi * edge / taper)), 1.0)
    return window.float()


def repeat_padding(waveform: Tensor) -> Tensor:
    """Replace each row's trailing run of exact zeros by repeats of the samples before it.

    a2i zero-pads short inputs at the end (:func:`a2i.audio.io.fit_length`); the Sound2Scene
    code instead repeats the clip ten times and keeps the first 10 s (``test.py:122``), which
    this restores inside the encoder. Two differences remain: a recording that itself ends in
    digital silence is tiled too, and a clip under 1 s fills the whole window here.
    """
    steps = torch.arange(1, waveform.shape[-1] + 1, device=waveform.device)
    length = ((waveform != 0) * steps).amax(dim=-1, keepdim=True).clamp(min=1)
    return waveform.gather(-1, (steps - 1) % length)


SpectrogramScaling = Literal["magnitude", "psd"]
Orientation = Literal["time_freq", "freq_time"]

SPECTROGRAM_PRESETS: dict[str, dict] = {
    "a2i": {},
    # Sound2Scene's released front end (postech-ami/Sound2Scene @2cc5fff, test.py:118-132, the
    # same as training's a2s_dataloader.py:74-83): clip tiled to 10 s and clamped to [-1, 1],
    # scipy's spectrogram with 512-sample segments overlapping by 353 and its defaults (periodic
    # Tukey 0.25 window, per-frame mean removed, one-sided power spectral density),
    # log(S + 1e-7), standardised by the clip's own mean and std (+1e-9), fed as a 257 × 1004
    # frequency × time image (test.py:131, 145).
    "sound2scene": {
        "window": "tukey",
        "scaling": "psd",
        "detrend": True,
        "per_clip": True,
        "orientation": "freq_time",
        "repeat_pad": True,
    },
}
"""Keyword sets of :class:`LogSpectrogram` (``SpectrogramResNet(front_end=...)``)."""


class LogSpectrogram(nn.Module):
    """Log STFT image, the Sound2Scene / Sound2Vision audio encoder input.

    Sound2Vision §4.1 feeds a 1004 × 257 log-spectrogram computed from 10 s of 16 kHz audio:
    a 512-point STFT with hop 159 and no centre padding gives ``(160000 - 512) // 159 + 1 =
    1004`` frames of ``512 // 2 + 1 = 257`` bins. The defaults are a2i's (Hann magnitude, time ×
    frequency, fixed statistics); ``SPECTROGRAM_PRESETS["sound2scene"]`` is the released code's.

    By default normalisation subtracts and divides by *fixed* constants, so a gain of ``g`` dB
    shifts every bin above the floor by the same ``g · ln(10) / 20 / std``: Sound2Vision §5.1's
    volume control (a louder input yields a more prominent object) reads loudness as one
    direction of the input. The released code standardises each clip instead (``per_clip``).
    That does not erase loudness either: a gain adds the same constant to every log bin, which
    standardisation would remove, but the ``eps`` floor is fixed, so bins near it do not move
    and the standardised image changes (the more, the closer the clip is to the floor). a2i
    keeps the fixed constants for its own encoders, whose shipped and trained weights assume them.

    Args:
        n_fft: FFT size (and window length).
        hop_length: Samples between frames.
        eps: Floor added before the log, so silence maps to ``log(eps)`` instead of ``-inf``.
        normalize: Standardise (with ``mean`` and ``std``, or per clip).
        mean: Subtracted from the log-spectrogram when ``normalize`` and not ``per_clip``.
        std: Divides the centred log-spectrogram when ``normalize`` and not ``per_clip``.
        sample_rate: Input rate in Hz; sets the power spectral density's scale (``psd``).
        window: ``hann`` or ``tukey`` (periodic, α = 0.25: scipy's spectrogram default).
        scaling: ``magnitude`` ``|X|`` or ``psd``, scipy's one-sided density
            ``2 |X|² / (sample_rate · Σw²)`` (DC and Nyquist not doubled).
        detrend: Remove each frame's mean before the window (scipy's ``detrend="constant"``).
        per_clip: Standardise by each clip's own mean and std (+1e-9) instead of ``mean``/``std``.
        orientation: ``time_freq`` image ``(frames, bins)`` or ``freq_time`` ``(bins, frames)``.
        repeat_pad: Tile clips over their trailing zero padding and clamp them to [-1, 1]
            (:func:`repeat_padding`), as the Sound2Scene code prepares short clips.
    """

    def __init__(
        self,
        n_fft: int = 512,
        hop_length: int = 159,
        eps: float = 1e-7,
        normalize: bool = True,
        mean: float = PINK_NOISE_LOG_SPEC_MEAN,
        std: float = PINK_NOISE_LOG_SPEC_STD,
        sample_rate: int = 16000,
        window: Literal["hann", "tukey"] = "hann",
        scaling: SpectrogramScaling = "magnitude",
        detrend: bool = False,
        per_clip: bool = False,
        orientation: Orientation = "time_freq",
        repeat_pad: bool = False,
    ) -> None:
        super().__init__()
        if n_fft < 2 or hop_length < 1 or eps <= 0 or std <= 0:
            raise ConfigError(
                "LogSpectrogram needs n_fft >= 2, hop_length >= 1, eps > 0 and std > 0 "
                f"(got n_fft={n_fft}, hop_length={hop_length}, eps={eps}, std={std})"
            )
        self.n_fft = n_fft
        self.hop_length = hop_length
        self.eps = eps
        self.normalize = normalize
        self.mean = mean
        self.std = std
        self.sample_rate = sample_rate
        self.scaling = scaling
        self.detrend = detrend
        self.per_clip = per_clip
        self.orientation = orientation
        self.repeat_pad = repeat_pad
        self.stft = torchaudio.transforms.Spectrogram(
            n_fft=n_fft,
            hop_length=hop_length,
            window_fn=torch.hann_window if window == "hann" else tukey_window,
            power=None,
            center=False,
        )

    def output_shape(self, num_samples: int) -> tuple[int, int, int]:
        """``(1, frames, freq_bins)`` (``(1, freq_bins, frames)`` for ``freq_time``)."""
        if num_samples < self.n_fft:
            raise ConfigError(
                f"LogSpectrogram needs at least n_fft={self.n_fft} samples per clip "
                f"(got {num_samples}); lengthen the clip or lower n_fft"
            )
        frames, bins = (num_samples - self.n_fft) // self.hop_length + 1, self.n_fft // 2 + 1
        return (1, bins, frames) if self.orientation == "freq_time" else (1, frames, bins)

    def _spectrum(self, waveform: Tensor) -> Tensor:
        """``(B, freq_bins, frames)`` magnitude or power spectral density."""
        stft = self.stft(waveform)
        window = self.stft.window
        if self.detrend:  # the DFT is linear: removing a frame's mean removes mean × DFT(window)
            means = waveform.unfold(-1, self.n_fft, self.hop_length).mean(dim=-1)
            stft = stft - means[:, None, :] * torch.fft.rfft(window)[:, None]
        if self.scaling == "magnitude":
            return stft.abs()
        density = stft.abs().square() / (self.sample_rate * window.square().sum())
        last = None if self.n_fft % 2 else -1  # one-sided: every bin but DC (and Nyquist) twice
        density[:, 1:last] *= 2.0
        return density

    def forward(self, waveform: Tensor) -> Tensor:
        """``(B, T)`` waveform → ``(B, 1, frames, freq_bins)`` (or ``freq_time``) log image."""
        _check_batch(waveform, type(self).__name__)
        self.output_shape(waveform.shape[-1])
        waveform = waveform.float()
        if self.repeat_pad:
            waveform = repeat_padding(waveform).clamp(-1.0, 1.0)
        features = torch.log(self._spectrum(waveform) + self.eps)
        if self.orientation == "time_freq":
            features = features.transpose(-1, -2)
        if self.normalize and self.per_clip:
            mean = features.mean(dim=(-2, -1), keepdim=True)
            std = features.std(dim=(-2, -1), correction=0, keepdim=True)
            features = (features - mean) / (std + 1e-9)
        elif self.normalize:
            features = (features - self.mean) / self.std
        return features.unsqueeze(1)


class LogMel(nn.Module):
    """Log mel power spectrogram as a one-channel time × mel image.

    Args:
        sample_rate: Input sample rate in Hz (sets the mel filter frequencies).
        n_fft: FFT size.
        hop_length: Samples between frames (160 = 10 ms at 16 kHz).
        n_mels: Number of mel bands.
        eps: Floor added to the power before the log.
    """

    def __init__(
        self,
        sample_rate: int = 16000,
        n_fft: int = 1024,
        hop_length: int = 160,
        n_mels: int = 128,
        eps: float = 1e-6,
    ) -> None:
        super().__init__()
        if eps <= 0 or n_mels < 1 or hop_length < 1:
            raise ConfigError(
                f"LogMel needs eps > 0, n_mels >= 1, hop_length >= 1 "
                f"(got {eps}, {n_mels}, {hop_length})"
            )
        self.hop_length = hop_length
        self.n_mels = n_mels
        self.eps = eps
        self.mel = torchaudio.transforms.MelSpectrogram(
            sample_rate=sample_rate, n_fft=n_fft, hop_length=hop_length, n_mels=n_mels, power=2.0
        )

    def output_shape(self, num_samples: int) -> tuple[int, int, int]:
        """``(1, frames, n_mels)`` for a clip of ``num_samples`` samples (centred frames)."""
        return 1, num_samples // self.hop_length + 1, self.n_mels

    def forward(self, waveform: Tensor) -> Tensor:
        """``(B, T)`` waveform → ``(B, 1, frames, n_mels)``."""
        _check_batch(waveform, type(self).__name__)
        return torch.log(self.mel(waveform.float()) + self.eps).transpose(-1, -2).unsqueeze(1)


class KaldiFbank(nn.Module):
    """AST's front end: Kaldi log-mel filterbank, padded/cropped and standardised.

    Matches ``transformers.ASTFeatureExtractor`` (and the AST reference code): Kaldi fbank with
    a Hanning window, 25 ms frames every 10 ms, zero-padded or cropped to ``target_length``
    frames, then ``(fbank - mean) / (2 · std)`` with the AudioSet statistics (the factor 2 is
    AST's choice, kept so published AST weights see the inputs they were trained on).

    Args:
        sample_rate: Input sample rate in Hz.
        num_mel_bins: Mel bands.
        target_length: Frames after padding/cropping (1024 ≈ 10.24 s).
        mean: Subtracted statistic (AudioSet).
        std: Standard deviation statistic (AudioSet).
        frame_length_ms: Analysis window length.
        frame_shift_ms: Hop between frames.
    """

    def __init__(
        self,
        sample_rate: int = 16000,
        num_mel_bins: int = 128,
        target_length: int = 1024,
        mean: float = -4.2677393,
        std: float = 4.5689974,
        frame_length_ms: float = 25.0,
        frame_shift_ms: float = 10.0,
    ) -> None:
        super().__init__()
        if target_length < 1 or std <= 0:
            raise ConfigError(
                f"KaldiFbank needs target_length >= 1 and std > 0 (got {target_length}, {std})"
            )
        self.sample_rate = sample_rate
        self.num_mel_bins = num_mel_bins
        self.target_length = target_length
        self.mean = mean
        self.std = std
        self.frame_length_ms = frame_length_ms
        self.frame_shift_ms = frame_shift_ms

    def output_shape(self, num_samples: int) -> tuple[int, int]:
        """``(target_length, num_mel_bins)``, whatever the clip length."""
        return self.target_length, self.num_mel_bins

    def frame_count(self, num_samples: int) -> int:
        """Frames of a ``num_samples`` clip before padding or cropping (Kaldi's ``snip_edges``)."""
        window = int(self.sample_rate * self.frame_length_ms / 1000)
        shift = int(self.sample_rate * self.frame_shift_ms / 1000)
        return 1 + (num_samples - window) // shift

    def forward(self, waveform: Tensor) -> Tensor:
        """``(B, T)`` waveform in ``[-1, 1]`` → ``(B, target_length, num_mel_bins)``."""
        _check_batch(waveform, type(self).__name__)
        window = int(self.sample_rate * self.frame_length_ms / 1000)
        if waveform.shape[-1] < window:
            raise ConfigError(
                f"KaldiFbank needs at least one {self.frame_length_ms} ms frame "
                f"({window} samples), got clips of {waveform.shape[-1]} samples"
            )
        banks = [
            kaldi.fbank(
                clip[None].float(),
                sample_frequency=self.sample_rate,
                num_mel_bins=self.num_mel_bins,
                frame_length=self.frame_length_ms,
                frame_shift=self.frame_shift_ms,
                window_type="hanning",
                dither=0.0,
            )
            for clip in waveform
        ]
        fbank = torch.stack([self._fit_frames(bank) for bank in banks])
        return (fbank - self.mean) / (2.0 * self.std)

    def _fit_frames(self, bank: Tensor) -> Tensor:
        missing = self.target_length - bank.shape[0]
        if missing > 0:
            return nn.functional.pad(bank, (0, 0, 0, missing))
        return bank[: self.target_length]
