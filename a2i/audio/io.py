"""Reading and writing audio files: every format a user may hand us, or one clear error.

:func:`read_audio` returns a whole file as float32 mono at the requested rate;
:func:`read_audio_window` returns only the seconds a model hears, decoding little more than
them, so time and memory stay bounded whatever the file's length or its header declares
(:data:`LOUDEST_SCAN_SAMPLES`, :data:`WINDOW_DECODE_LIMIT`). Both raise
:class:`~a2i.errors.AudioDecodeError` naming the file and what is wrong with it (missing, empty,
not audio, truncated, no samples, NaN/inf, no audio stream), and nothing else, whatever the
bytes: a damaged file can make any decoder layer fail in its own way, and one bad file must not
abort a run over thousands. Neither returns a shortened or garbage waveform silently: a model
fed half a clip or NaNs fails far from the cause.

Files are decoded by :mod:`a2i.audio.decoders` (libsndfile for its formats, with exact seeks;
FFmpeg for the rest and for mislabelled files) as mono blocks at their native rate; this module
picks the samples a caller asked for from those blocks, checks them and resamples them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, get_args

import numpy as np
import soundfile as sf
import torch
import torch.nn.functional as F
import torchaudio.functional as AF
from torch import Tensor

from a2i.audio.decoders import Stream, check_length, check_samples, decoding, open_stream
from a2i.errors import ConfigError
from a2i.interfaces import Crop
from a2i.io_utils import atomic_write

LOUDEST_SCAN_SAMPLES = 1 << 25
"""Native samples the ``loudest`` crop searches at most: 11.6 minutes at 48 kHz, 2.9 at 192 kHz.

A file up to this long is searched whole. A longer one is searched in :data:`LOUDEST_STRETCHES`
evenly spaced stretches (each at least two windows long) adding up to about this, from its start
to its end: a 6-hour file costs what a 12-minute one does, and an event lying between two
stretches can be missed.
"""

LOUDEST_STRETCHES = 64

WINDOW_DECODE_LIMIT = 1 << 28
"""Native samples :func:`read_audio_window` decodes at most for one file (93 minutes at 48 kHz).

Any crop of a file that declares its length and can seek needs far less (the window and its
context, the last second, the loudest search); only a file whose header declares no length or a
wrong one, or that cannot seek, needs more. It is refused rather than decoded whole: a few MB of
FLAC can hold hours of silence, which took 45 s to scan.
"""

_RESAMPLE_PIECE = 1 << 20
"""Native samples resampled per call: one call over a 2-hour file allocates over 10 GB."""

_WINDOW_HOPS = 16
"""The loudest window is searched at offsets of 1/16 of its length."""

_MAX_KERNEL = 1 << 24
"""Entries (output x input phases) of a resampling kernel: about 600 MB with its temporaries."""

_LOWPASS_WIDTH, _ROLLOFF = 6, 0.99
"""torchaudio ``resample``'s defaults: its sinc kernel reaches this far (see _context)."""


@dataclass(frozen=True)
class AudioWindow:
    """The part of a file a model hears, and where it lies in the whole.

    Attributes:
        waveform: Float32 mono ``(T,)`` at the requested rate: at most
            ``round(seconds * sample_rate)`` samples, fewer (never padded) for a shorter file.
        duration: Length of the whole file in seconds, as decoded (found by a seek near the
            end: as exact as the container's timestamps, 1 ms in Matroska/WebM).
        offset: Start of the window in the file, in seconds.
    """

    waveform: Tensor
    duration: float
    offset: float


def read_audio(path: str | Path, sample_rate: int) -> Tensor:
    """Decode a whole audio file (or a video's audio track) to a float32 mono ``(T,)`` tensor.

    Channels are averaged (a plain mean keeps a mono file's level and a stereo file's
    loudness comparable), then resampled with :func:`torchaudio.functional.resample`. Memory
    grows with the file; :func:`read_audio_window` reads only the part a model hears.

    Args:
        path: File to read; any suffix in :data:`~a2i.audio.formats.AUDIO_EXTENSIONS` (others are
            tried with FFmpeg).
        sample_rate: Rate of the returned waveform in Hz.

    Raises:
        AudioDecodeError: The file is missing, empty, not audio, truncated or corrupt, holds no
            samples, holds NaN/inf, or is a container without an audio stream.
    """
    _check_rate(sample_rate)
    path = Path(path)
    with decoding(path), open_stream(path) as stream:
        samples = _read_range(stream, 0, None)
        check_length(stream, len(samples))
        check_samples(stream, samples, 0)
    rate = _resampling_rate(stream.rate, sample_rate)
    return _resample(torch.from_numpy(samples), rate, sample_rate).contiguous()


def read_audio_window(
    path: str | Path, sample_rate: int, seconds: float, crop: Crop = "start"
) -> AudioWindow:
    """Decode only the ``seconds`` of a file a model hears: bounded time and memory for any file.

    ``start`` decodes the first seconds; ``center`` seeks to the middle window; ``loudest``
    streams the file in blocks to find the window of highest RMS (all of it up to
    :data:`LOUDEST_SCAN_SAMPLES`, evenly spaced stretches of a longer one), then reads it. Only
    the window is resampled, with enough context around it that it equals the same slice of
    :func:`read_audio`'s result (but for noise a codec synthesises, AAC's noise substitution,
    which differs between decodes). The checks of :func:`read_audio` apply: a truncated file is
    found by decoding near its declared end, and NaN/inf are looked for in what was decoded.

    Args:
        path: File to read, as for :func:`read_audio`.
        sample_rate: Rate of the returned waveform in Hz.
        seconds: Window length; a shorter file is returned whole.
        crop: Which window of a longer file to return.

    Raises:
        AudioDecodeError: As :func:`read_audio`; also when finding the window would decode more
            than :data:`WINDOW_DECODE_LIMIT` samples.
    """
    _check_rate(sample_rate)
    wanted = round(seconds * sample_rate) if math.isfinite(seconds) else 0
    if wanted < 1 or crop not in get_args(Crop):
        raise ConfigError(
            f"read_audio_window() needs seconds of at least one sample and crop in start, center, "
            f"loudest (got seconds={seconds}, crop={crop!r})"
        )
    return _read_window(Path(path), sample_rate, wanted, crop)


def read_random_window(
    path: str | Path, sample_rate: int, seconds: float, generator: torch.Generator | None = None
) -> AudioWindow:
    """A training crop: ``seconds`` at a uniformly random offset, decoding only them.

    :func:`read_audio_window`'s bounded cost for the random crops of training (a dataset of
    hour-long recordings costs what one of clips does). Offsets fall on the resampling grid
    (every sample at the file's own rate; every 10 ms from 44.1 kHz to 16 kHz), so the window
    equals that slice of :func:`read_audio`'s result. Raises as :func:`read_audio_window`.
    """
    _check_rate(sample_rate)
    wanted = round(seconds * sample_rate) if math.isfinite(seconds) else 0
    if wanted < 1:
        raise ConfigError(
            f"read_random_window() needs seconds of at least one sample (got {seconds})"
        )
    return _read_window(Path(path), sample_rate, wanted, generator)


def _read_window(
    path: Path, sample_rate: int, wanted: int, crop: Crop | torch.Generator | None
) -> AudioWindow:
    """``wanted`` samples at ``sample_rate`` from where ``crop`` says (a generator: random)."""
    with decoding(path), open_stream(path) as stream:
        stream.limit = WINDOW_DECODE_LIMIT
        rate = _resampling_rate(stream.rate, sample_rate)
        length = math.ceil(wanted * rate / sample_rate)  # native samples the window spans
        context, period = _context(rate, sample_rate), _period(rate, sample_rate)
        if crop == "start":
            offset = origin = 0
            samples = _read_range(stream, 0, length + context)
            total = len(samples) if len(samples) < length + context else _stream_end(stream)
        else:
            if crop == "loudest":
                total, offset = _loudest_start(stream, length, period)
            elif crop == "center":
                total = _stream_end(stream)
                offset = max(0, (total - length) // 2 // period * period)
            else:
                total = _stream_end(stream)
                steps = max(0, total - length) // period
                offset = int(torch.randint(0, steps + 1, (1,), generator=crop)) * period
            origin = offset - min(context, offset)  # both multiples of period: grids line up
            samples = _read_range(stream, origin, offset + length + context)
        check_length(stream, total)
        check_samples(stream, samples, origin)
    skip = (offset - origin) * sample_rate // rate
    waveform = _resample(torch.from_numpy(samples), rate, sample_rate)[skip : skip + wanted]
    return AudioWindow(waveform.contiguous(), total / stream.rate, offset / stream.rate)


def fit_length(
    waveform: Tensor,
    num_samples: int,
    *,
    random_crop: bool,
    generator: torch.Generator | None = None,
    contains: int | None = None,
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
        contains: A sample index a random crop must include (the selected frame's time, so the
            image shown was seen while the crop was heard; clamped into the waveform).
    """
    length = waveform.shape[-1]
    start = crop_start(
        length, num_samples, random_crop=random_crop, generator=generator, contains=contains
    )
    if length > num_samples:
        return waveform[..., start : start + num_samples]
    if length < num_samples:
        return F.pad(waveform, (0, num_samples - length))
    return waveform


def crop_start(
    length: int,
    num_samples: int,
    *,
    random_crop: bool,
    generator: torch.Generator | None = None,
    contains: int | None = None,
) -> int:
    """First sample of :func:`fit_length`'s crop of a ``length``-sample waveform (0: no crop).

    Known before decoding, so a reader can decode only those samples of a long recording; it
    draws the same random numbers as :func:`fit_length` (arguments as there).
    """
    if num_samples < 1:
        raise ConfigError(f"fit_length() needs num_samples >= 1 (got {num_samples})")
    if length <= num_samples or not random_crop:
        return 0
    low, high = 0, length - num_samples
    if contains is not None:
        inside = min(max(contains, 0), length - 1)
        low, high = max(low, inside - num_samples + 1), min(high, inside)
    return int(torch.randint(low, high + 1, (1,), generator=generator))


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


def _check_rate(sample_rate: int) -> None:
    if sample_rate <= 0:
        raise ConfigError(f"reading audio needs sample_rate > 0 (got {sample_rate})")


def _read_range(stream: Stream, start: int, stop: int | None) -> np.ndarray:
    """Mono samples ``[start, stop)`` (None: to the end); fewer where the stream ends first."""
    parts = []
    for position, block in stream.blocks(start):
        end = len(block) if stop is None else min(len(block), stop - position)
        if end > start - position:
            parts.append(block[max(0, start - position) : end])
        if stop is not None and position + len(block) >= stop:
            break
    return np.concatenate(parts) if parts else np.zeros(0, np.float32)


def _stream_end(stream: Stream) -> int:
    """Samples the stream decodes to, found by decoding only its last second when declared."""
    if stream.declared:
        end = None
        near_end = max(0, stream.declared - stream.allowance - stream.rate)
        for position, block in stream.blocks(near_end):
            end = position + len(block)
        if end is not None:
            return end
    # Nothing decodes near the declared end (it is truncated), or no end is declared: count.
    return sum(len(block) for _, block in stream.blocks(0))


def _loudest_start(stream: Stream, length: int, period: int) -> tuple[int, int]:
    """Stream length and the start of its ``length`` samples of most energy.

    Energies are summed per hop (a multiple of ``period``, so the window's resampling grid
    matches the whole file's). A stream of at most :data:`LOUDEST_SCAN_SAMPLES`, or one that
    declares no length, is searched whole in one pass; a longer one in evenly spaced stretches.
    """
    hop = period * max(1, length // (_WINDOW_HOPS * period))
    hops = max(1, length // hop)
    stretch = hop * math.ceil(max(LOUDEST_SCAN_SAMPLES // LOUDEST_STRETCHES, 2 * length) / hop)
    count = max(2, LOUDEST_SCAN_SAMPLES // stretch)
    if not stream.declared or stream.declared <= count * stretch:
        total, _, best = _loudest_in(stream, 0, None, hop, hops)
    else:
        total = _stream_end(stream)
        starts = sorted(
            {max(0, total - stretch) * i // (count - 1) // hop * hop for i in range(count)}
        )
        found = [_loudest_in(stream, start, start + stretch, hop, hops)[1:] for start in starts]
        best = max(found, key=lambda energy_start: energy_start[0])[1]  # the first
    if total <= length:
        return total, 0
    return total, min(best, (total - length) // period * period)


def _loudest_in(
    stream: Stream, start: int, stop: int | None, hop: int, hops: int
) -> tuple[int, float, int]:
    """Where decoding stopped, and the energy and start of the loudest ``hops`` hops in a span.

    The span is ``[start, stop)``: ``start`` a multiple of ``hop``, ``stop`` None for the
    stream's end. Only the last window of hop energies is kept: memory does not grow with it.
    """
    pending = np.zeros(0, np.float32)  # samples short of a whole hop
    recent = np.zeros(0)  # energies of the last hops - 1 hops, the first one at hop ``first``
    first = start // hop
    best, best_hop, end = -1.0, first, start
    for position, block in stream.blocks(start):
        check_samples(stream, block, position)
        end = position + len(block)
        inside = block[max(0, start - position) : None if stop is None else stop - position]
        data = np.concatenate([pending, inside])
        whole = len(data) // hop * hop
        pending = data[whole:]
        energies = np.square(data[:whole], dtype=np.float64).reshape(-1, hop).sum(axis=1)
        series = np.concatenate([recent, energies])
        if len(series) >= hops:
            cumulative = np.concatenate([[0.0], np.cumsum(series)])
            sums = cumulative[hops:] - cumulative[:-hops]
            index = int(np.argmax(sums))
            if sums[index] > best:
                best, best_hop = float(sums[index]), first + index
        drop = max(0, len(series) - (hops - 1))
        first, recent = first + drop, series[drop:]
        if stop is not None and end >= stop:
            break
    return end, best, best_hop * hop


def _resampling_rate(native: int, target: int) -> int:
    """The rate ``native`` samples are resampled as: itself, or a neighbour with a small ratio.

    An irreducible ratio to ``target`` makes torchaudio's kernel take gigabytes (16001 Hz to
    16 kHz: 4.9 GB and 16 s, from a damaged or odd header); the nearest rate with a small ratio
    is off by less than 0.1 %.
    """
    for step in (1, 2, 5, 10, 20, 50, 100):
        candidate = max(step, round(native / step) * step)
        divisor = math.gcd(candidate, target)
        if (candidate // divisor) * (target // divisor) <= _MAX_KERNEL:
            return candidate
    return native


def _period(native: int, target: int) -> int:
    """Native samples per whole number of output samples: where resampling grids line up."""
    return native // math.gcd(native, target)


def _context(native: int, target: int) -> int:
    """Native samples either side that make a resampled slice equal the resampled whole's slice.

    torchaudio's sinc kernel reaches ``lowpass_filter_width * native / (rolloff * min(native,
    target))`` samples; rounded up to whole periods so the slice starts on the grid.
    """
    if native == target:
        return 0
    reach = math.ceil(_LOWPASS_WIDTH * native / (_ROLLOFF * min(native, target))) + 1
    period = _period(native, target)
    return period * math.ceil(reach / period)


def _resample(mono: Tensor, native: int, target: int) -> Tensor:
    """:func:`torchaudio.functional.resample` in pieces, so temporary memory stays bounded."""
    if native == target:
        return mono
    period, context = _period(native, target), _context(native, target)
    piece = period * max(1, _RESAMPLE_PIECE // period)
    outputs = []
    for begin in range(0, len(mono), piece):
        low = max(0, begin - context)
        resampled = AF.resample(mono[low : begin + piece + context], native, target)
        skip = (begin - low) * target // native
        outputs.append(resampled[skip : skip + piece * target // native])
    return torch.cat(outputs) if outputs else mono
