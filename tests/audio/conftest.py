"""Audio test helpers: a deterministic tonal signal and FFmpeg encoders through PyAV."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import av
import numpy as np
import pytest

Encoder = Callable[..., Path]


def _tonal(
    seconds: float, rate: int, channels: int = 1, burst_at: float | None = None
) -> np.ndarray:
    """``(channels, samples)`` float32: a tone plus a chirp, different per channel.

    No noise: AAC encoders code noise as noise substitution, which a decoder fills with fresh
    random values, so a seek would not reproduce a continuous decode. The chirp makes every
    offset distinct. ``burst_at`` makes the half-second there four times louder, with smooth
    edges (a click would be coded as noise too).
    """
    t = np.arange(round(seconds * rate)) / rate
    rows = [
        0.1 * np.sin(2 * np.pi * (300 + 50 * c) * t)
        + 0.05 * np.sin(2 * np.pi * (1000 + 100 * c) * t * (1 + t / 40))
        for c in range(channels)
    ]
    signal = np.stack(rows).astype(np.float32)
    if burst_at is not None:
        envelope = np.clip(np.minimum(t - burst_at, burst_at + 0.5 - t) / 0.05, 0, 1)
        signal *= (1 + 3 * np.sin(np.pi / 2 * envelope) ** 2).astype(np.float32)
    return signal


def mux_audio(
    container: av.container.OutputContainer,
    stream: av.audio.stream.AudioStream,
    signal: np.ndarray,
    rate: int,
    layout: str = "mono",
) -> None:
    """Encode ``(channels, samples)`` float32 into ``stream`` a codec frame at a time, then flush."""
    step = stream.codec_context.frame_size or 1024
    for start in range(0, signal.shape[1], step):
        chunk = np.ascontiguousarray(signal[:, start : start + step])
        frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout=layout)
        frame.sample_rate, frame.pts = rate, start
        for packet in stream.encode(frame):
            container.mux(packet)
    for packet in stream.encode(None):
        container.mux(packet)


def _encode_pyav(
    path: Path,
    container: str,
    codec: str,
    signal: np.ndarray,
    rate: int,
    options: dict[str, str] | None = None,
) -> Path:
    """Encode ``(channels, samples)`` float32 as ``ffmpeg -c:a codec -f container`` would."""
    channels = signal.shape[0]
    layout = {1: "mono", 2: "stereo", 6: "5.1"}[channels]
    with av.open(str(path), "w", format=container, options=options or {}) as output:
        stream = output.add_stream(codec, rate=rate)
        stream.layout = layout
        mux_audio(output, stream, signal, rate, layout)
    return path


@pytest.fixture(scope="session")
def encode() -> Encoder:
    """:func:`_encode_pyav`, skipping the test where this PyAV lacks the encoder."""

    def run(path: Path, container: str, codec: str, signal: np.ndarray, rate: int, **kw) -> Path:
        if codec not in av.codecs_available:
            pytest.skip(f"this PyAV has no {codec} encoder")
        return _encode_pyav(path, container, codec, signal, rate, **kw)

    return run


@pytest.fixture(scope="session")
def tonal() -> Callable[..., np.ndarray]:
    """:func:`_tonal`."""
    return _tonal
