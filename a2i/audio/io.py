"""Reading and writing audio files: every format a user may hand us, or one clear error.

:func:`read_audio` returns float32 mono at the requested rate or raises
:class:`~a2i.errors.AudioDecodeError` naming the file and what is wrong with it (missing, empty,
not audio, truncated, no samples, NaN/inf, no audio stream). It never returns a shortened or
garbage waveform silently: a model fed half a clip or NaNs fails far from the cause.

libsndfile (``soundfile``) decodes wav/flac/ogg (and mp3 when built with mpg123) exactly and
exposes the header, which is how truncation is detected; FFmpeg (``av``) decodes everything else
(aac/m4a, the audio track of mp4/mkv/webm) and is the fallback for mislabelled files.
torchaudio's own ``load`` is not used: in torchaudio 2.11 it requires torchcodec.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import av
import numpy as np
import soundfile as sf
import torch
import torch.nn.functional as F
import torchaudio.functional as AF
from torch import Tensor

from a2i.errors import AudioDecodeError, ConfigError
from a2i.io_utils import atomic_write

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3", ".m4a", ".mp4", ".mkv", ".webm", ".aac")
"""Lower-case suffixes a2i treats as audio (containers count: their audio track is used)."""

SOUNDFILE_EXTENSIONS = frozenset(
    {".wav", ".flac", ".ogg"} | ({".mp3"} if "MP3" in sf.available_formats() else set())
)
"""Suffixes decoded by libsndfile first (header-exact lengths); all others go through FFmpeg."""

MIN_DECODED_FRACTION = 0.9
"""A stream decoding to less than this fraction of its declared duration is reported truncated.

Declared durations of compressed streams are approximate (mp3 frame granularity, AAC priming),
so an exact comparison would reject valid files; a half-downloaded file misses far more.
"""

_WAV_DATA_SIZE = re.compile(r"^data\s*:\s*(\d+)\s*\(should be (\d+)\)", re.MULTILINE)
_STREAMING_PLACEHOLDER_SIZE = 0x7FFFFFFF
"""WAV writers that stream set the data size to 0x7FFFFFFF/0xFFFFFFFF: not a truncation."""


@dataclass(frozen=True)
class AudioInfo:
    """What a file's header says about its audio.

    Attributes:
        duration: Length in seconds.
        sample_rate: Native sample rate in Hz.
        channels: Number of channels before downmixing.
    """

    duration: float
    sample_rate: int
    channels: int


def read_audio(path: str | Path, sample_rate: int) -> Tensor:
    """Decode an audio file (or a video's audio track) to a float32 mono ``(T,)`` tensor.

    Channels are averaged (a plain mean keeps a mono file's level and a stereo file's
    loudness comparable), then resampled with :func:`torchaudio.functional.resample`.

    Args:
        path: File to read; any suffix in :data:`AUDIO_EXTENSIONS` (others are tried with FFmpeg).
        sample_rate: Rate of the returned waveform in Hz.

    Raises:
        AudioDecodeError: The file is missing, empty, not audio, truncated or corrupt, holds no
            samples, holds NaN/inf, or is a container without an audio stream.
    """
    if sample_rate <= 0:
        raise ConfigError(f"read_audio() needs sample_rate > 0 (got {sample_rate})")
    path = Path(path)
    samples, native_rate = _decode(path)
    mono = torch.from_numpy(samples).mean(dim=0)
    if native_rate != sample_rate:
        mono = AF.resample(mono, native_rate, sample_rate)
    return mono.contiguous()


def audio_info(path: str | Path) -> AudioInfo:
    """Duration, sample rate and channel count, from the header when it is trustworthy.

    libsndfile formats and containers that declare a duration are answered without decoding;
    a stream without a declared duration is decoded once to measure it.

    Raises:
        AudioDecodeError: As :func:`read_audio`, for files that cannot be opened.
    """
    path = Path(path)
    _check_file(path)
    if path.suffix.lower() in SOUNDFILE_EXTENSIONS:
        try:
            header = sf.info(str(path))
        except (sf.SoundFileError, RuntimeError):
            header = None  # mislabelled or broken: FFmpeg below gives the definitive answer
        if header is not None and header.frames > 0:
            return AudioInfo(header.frames / header.samplerate, header.samplerate, header.channels)
    container = _open_container(path, soundfile_error=None)
    with container:
        stream = _audio_stream(path, container)
        declared = _declared_seconds(container, stream)
        rate, channels = stream.codec_context.sample_rate, stream.codec_context.channels
    if declared is None:
        samples, rate = _decode(path)
        declared = samples.shape[-1] / rate
    return AudioInfo(declared, rate, channels)


def fit_length(
    waveform: Tensor,
    num_samples: int,
    *,
    random_crop: bool,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Crop or zero-pad the last dimension to exactly ``num_samples``.

    Training crops start at a uniformly random offset (augmentation over long clips).
    Evaluation and prediction crop from the start: the start is the one offset every file
    has whatever its length, so the same file gives the same clip in validation, test and
    ``a2i predict``, and a user trimming a recording knows which part the model hears.
    Short clips are zero-padded at the end (silence adds no content to the embedding).

    Args:
        waveform: ``(..., T)`` waveform.
        num_samples: Target length.
        random_crop: Random crop offset (training) instead of the start (evaluation).
        generator: Seeds the random offset.
    """
    if num_samples < 1:
        raise ConfigError(f"fit_length() needs num_samples >= 1 (got {num_samples})")
    length = waveform.shape[-1]
    if length > num_samples:
        start = 0
        if random_crop:
            start = int(torch.randint(0, length - num_samples + 1, (1,), generator=generator))
        return waveform[..., start : start + num_samples]
    if length < num_samples:
        return F.pad(waveform, (0, num_samples - length))
    return waveform


def write_audio(
    path: str | Path,
    waveform: Tensor,
    sample_rate: int,
    *,
    subtype: Literal["PCM_16", "PCM_24", "FLOAT"] = "PCM_16",
    overwrite: bool = False,
) -> Path:
    """Write a ``(T,)`` mono or ``(C, T)`` waveform as wav or flac, atomically.

    The file is written to a temporary name in the same directory and renamed, so a killed
    run never leaves a half-written file under the final name.

    Args:
        path: Destination ending in ``.wav`` or ``.flac``.
        waveform: Samples in ``[-1, 1]`` (integer subtypes cannot represent more).
        sample_rate: Sample rate in Hz.
        subtype: Sample encoding; ``FLOAT`` keeps values exactly (wav only).
        overwrite: Replace an existing file instead of refusing.

    Returns:
        The written path.
    """
    path = Path(path)
    formats = {".wav": "WAV", ".flac": "FLAC"}
    file_format = formats.get(path.suffix.lower())
    if file_format is None:
        raise ConfigError(f"write_audio('{path}'): only .wav and .flac can be written")
    if file_format == "FLAC" and subtype == "FLOAT":
        raise ConfigError(f"write_audio('{path}'): flac stores integers; use PCM_16/PCM_24")
    samples = waveform.detach().float().cpu()
    if samples.ndim not in (1, 2):
        raise ValueError(
            f"write_audio('{path}'): expected (T,) or (C, T), got {tuple(samples.shape)}"
        )
    if not torch.isfinite(samples).all():
        raise ValueError(f"write_audio('{path}'): waveform holds NaN or inf samples")
    if subtype != "FLOAT" and samples.numel() and samples.abs().max() > 1.0:
        raise ValueError(
            f"write_audio('{path}'): peak {samples.abs().max():.3f} exceeds 1.0 and {subtype} "
            "would clip it; peak-normalise first or write subtype='FLOAT'"
        )
    data = samples.numpy() if samples.ndim == 1 else samples.T.numpy()
    with atomic_write(path, overwrite=overwrite) as tmp:
        sf.write(tmp, data, sample_rate, subtype=subtype, format=file_format)
    return path


def _decode(path: Path) -> tuple[np.ndarray, int]:
    """``(channels, samples)`` float32 array and native rate, validated; raises on any defect."""
    _check_file(path)
    decoded: tuple[np.ndarray, int] | None = None
    soundfile_error = None
    if path.suffix.lower() in SOUNDFILE_EXTENSIONS:
        decoded, soundfile_error = _decode_soundfile(path)
    if decoded is None:
        decoded = _decode_ffmpeg(path, soundfile_error)
    samples, rate = decoded
    if samples.shape[-1] == 0:
        raise AudioDecodeError(path, "the file holds zero audio samples")
    if not np.isfinite(samples).all():
        bad = int(np.count_nonzero(~np.isfinite(samples)))
        raise AudioDecodeError(path, f"{bad} samples are NaN or infinite")
    return samples, rate


def _check_file(path: Path) -> None:
    if not path.exists():
        raise AudioDecodeError(path, "file does not exist")
    if not path.is_file():
        raise AudioDecodeError(path, "not a regular file (is it a directory?)")
    if path.stat().st_size == 0:
        raise AudioDecodeError(path, "empty file (0 bytes)")
    if not os.access(path, os.R_OK):
        raise AudioDecodeError(path, "permission denied")


def _decode_soundfile(path: Path) -> tuple[tuple[np.ndarray, int] | None, str | None]:
    """Decode with libsndfile; ``(None, reason)`` when libsndfile cannot even open the file."""
    try:
        audio_file = sf.SoundFile(str(path))
    except (sf.SoundFileError, RuntimeError) as error:
        return None, _soundfile_message(error)
    with audio_file:
        declared = audio_file.frames
        header_log = audio_file.extra_info
        try:
            data = audio_file.read(dtype="float32", always_2d=True)
        except (sf.SoundFileError, RuntimeError) as error:
            raise AudioDecodeError(
                path, f"corrupt or truncated ({_soundfile_message(error)})"
            ) from None
        rate = audio_file.samplerate
    if data.shape[0] < declared:
        raise AudioDecodeError(
            path,
            f"truncated: the header declares {declared} samples but only {data.shape[0]} decode",
        )
    for match in _WAV_DATA_SIZE.finditer(header_log):
        declared_bytes, present_bytes = int(match[1]), int(match[2])
        if present_bytes < declared_bytes < _STREAMING_PLACEHOLDER_SIZE:
            raise AudioDecodeError(
                path,
                f"truncated: the data chunk declares {declared_bytes} bytes but the file holds "
                f"only {present_bytes}",
            )
    if "ended unexpectedly" in header_log:
        raise AudioDecodeError(
            path, "truncated: the Ogg stream ends without its end-of-stream page"
        )
    return (np.ascontiguousarray(data.T), rate), None


def _soundfile_message(error: BaseException) -> str:
    return getattr(error, "error_string", None) or str(error)


def _open_container(path: Path, soundfile_error: str | None) -> av.container.InputContainer:
    try:
        return av.open(str(path))
    except (av.error.FFmpegError, OSError, UnicodeDecodeError) as error:
        detail = f"FFmpeg: {error}"
        if soundfile_error:
            detail = f"libsndfile: {soundfile_error}; {detail}"
        raise AudioDecodeError(
            path, f"not an audio file, or an unsupported or damaged one ({detail})"
        ) from None


def _audio_stream(path: Path, container: av.container.InputContainer) -> av.audio.AudioStream:
    if not container.streams.audio:
        kinds = ", ".join(stream.type for stream in container.streams) or "none"
        raise AudioDecodeError(
            path, f"no audio stream in this {container.format.name} container (streams: {kinds})"
        )
    return container.streams.best("audio")


def _declared_seconds(
    container: av.container.InputContainer, stream: av.audio.AudioStream
) -> float | None:
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return container.duration / av.time_base
    return None


def _decode_ffmpeg(path: Path, soundfile_error: str | None) -> tuple[np.ndarray, int]:
    """Decode the best audio stream with FFmpeg to planar float32 at its native rate."""
    container = _open_container(path, soundfile_error)
    with container:
        stream = _audio_stream(path, container)
        rate = stream.codec_context.sample_rate
        to_float = av.AudioResampler(format="fltp")  # sample format only: keeps rate and layout
        chunks: list[np.ndarray] = []
        try:
            for frame in container.decode(stream):
                chunks.extend(out.to_ndarray() for out in to_float.resample(frame))
            chunks.extend(out.to_ndarray() for out in to_float.resample(None))
        except av.error.FFmpegError as error:
            raise AudioDecodeError(path, f"corrupt or truncated audio stream ({error})") from None
        declared = _declared_seconds(container, stream)
    if not chunks:
        raise AudioDecodeError(path, "the audio stream holds zero samples")
    samples = np.concatenate(chunks, axis=1).astype(np.float32, copy=False)
    if declared is not None and samples.shape[1] < MIN_DECODED_FRACTION * declared * rate:
        raise AudioDecodeError(
            path,
            f"truncated: the container declares {declared:.2f} s but only "
            f"{samples.shape[1] / rate:.2f} s decode",
        )
    return samples, rate
