"""Which part of an in-memory waveform the model hears (files: :func:`a2i.audio.io.read_audio_window`).

A model hears a fixed clip (``clip_seconds``); a longer recording is cropped. ``start`` is what
training and evaluation use (the one offset every file has); ``center`` suits recordings with
lead-in silence; ``loudest`` picks the window with the most energy (the event in a long take).
"""

from __future__ import annotations

import torch
from torch import Tensor

from a2i.audio.io import Crop


def loudest_start(waveform: Tensor, num_samples: int) -> int:
    """Start of the ``num_samples`` window of ``(T,)`` with the highest energy (first on ties)."""
    if waveform.shape[-1] <= num_samples:
        return 0
    energy = torch.cat([torch.zeros(1, dtype=torch.float64), waveform.double().square().cumsum(0)])
    sums = energy[num_samples:] - energy[:-num_samples]
    return int(sums.argmax())


def window_start(total: int, num_samples: int, crop: Crop, waveform: Tensor | None = None) -> int:
    """Start sample of the window ``crop`` selects in an input of ``total`` samples."""
    if total <= num_samples or crop == "start":
        return 0
    if crop == "center":
        return (total - num_samples) // 2
    if waveform is None:
        raise ValueError("the loudest window needs the waveform")
    return loudest_start(waveform, num_samples)


def crop_waveform(waveform: Tensor, num_samples: int, crop: Crop = "start") -> tuple[Tensor, int]:
    """The ``crop`` window of a ``(T,)`` waveform (shorter inputs whole) and its start sample."""
    start = window_start(waveform.shape[-1], num_samples, crop, waveform)
    return waveform[start : start + num_samples], start
