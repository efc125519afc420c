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

libsndfile (``soundfile``) decodes its formats (wav/flac/ogg/aiff/…, and mp3 when built with
mpg123: :data:`~a2i.audio.formats.SOUNDFILE_EXTENSIONS`), exposes the header and seeks
sample-exactly; FFmpeg (``av``) decodes everything else (aac/m4a, the audio
track of mp4/mkv/webm) and is the fallback for mislabelled files. Both are read in blocks and
downmixed as they arrive. torchaudio's own ``load`` is not used: in torchaudio 2.11 it requires
torchcodec.
"""

from __future__ import annotations

import errno
import itertools
import math
import os
import re
import stat
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Literal, get_args

import av
import numpy as np
import soundfile as sf
import torch
import torch.nn.functional as F
import torchaudio.functional as AF
from torch import Tensor

from a2i.audio.formats import SOUNDFILE_EXTENSIONS, iso_media_cut_short
from a2i.audio.native_stderr import libsndfile_quiet
from a2i.errors import AudioDecodeError, ConfigError
from a2i.interfaces import Crop
from a2i.io_utils import atomic_write

MIN_DECODED_FRACTION = 0.9
"""A stream whose declared length is only an estimate must decode at least this fraction of it.

Elementary streams without an index (mp3, ADTS AAC) declare a length estimated from the bitrate,
and codecs not in :data:`DECODER_TOLERANCE` have no documented allowance; a half-downloaded file
misses far more than this.
"""

DECODER_TOLERANCE: dict[str, tuple[int, int | None]] = {
    "mp3": (2 * 1152 + 529, None),
    "aac": (2112 + 1024, None),
    "opus": (312 + 960, 48000),
    "vorbis": (8192, None),
}
"""Samples a lossy stream may decode short of its declared length without being truncated.

``codec: (samples, the rate they count at; None: the stream's own rate)``. A header counts what
the encoder wrote (priming and padding included) or whole frames, while the decoder drops the
priming and the padding, so an exact comparison refuses valid files. Sources:

- mp3: two frames of 1152 samples (ISO/IEC 11172-3 Layer III; 576 at <= 24 kHz, ISO/IEC
  13818-3): a header without a LAME/Xing tag counts or estimates whole frames; plus the
  529-sample decoder delay gapless decoders remove (LAME's ``DECDELAY`` 528 + 1, mpg123's
  ``GAPLESS_DELAY``).
- aac: Apple's 2112 priming samples (Technical Note TN2258, the largest common encoder delay)
  plus one 1024-sample frame (ISO/IEC 14496-3 AAC-LC).
- opus: libopus's pre-skip of 312 samples (the OpusHead field of RFC 7845 §4.2), at 48 kHz, the
  rate Opus always decodes at, plus one default 20 ms frame of 960 samples (RFC 6716 §2.1.4).
- vorbis: one block of the largest size, 8192 samples (Vorbis I specification §4.2.2).

Lossless codecs get no allowance (their headers count samples exactly); codecs not listed get
:data:`MIN_DECODED_FRACTION` instead.
"""

SEEK_PREROLL_SECONDS = 1.0
"""Seeks in lossy streams land this much before a window and decode forward to it.

Lossy decoders need earlier frames to reproduce what a continuous decode gives: MDCT overlap,
MP3's bit reservoir (up to 511 bytes back, half a second at 8 kbit/s; mpg123's own seek is off
at 8-22 kHz without it), Opus's 80 ms pre-roll (RFC 7845 §4.6).
"""

MAX_SAMPLE_RATE = 1_000_000
"""Highest native rate a2i reads, in Hz: ultrasound recorders (bat detectors) reach 1 MHz, so a
header declaring more is damaged or crafted, and a window of it would take gigabytes."""

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

_BLOCK_VALUES = 1 << 18
"""libsndfile reads about this many values (frames x channels) per block: 1 MiB of float32."""

_RESAMPLE_PIECE = 1 << 20
"""Native samples resampled per call: one call over a 2-hour file allocates over 10 GB."""

_WINDOW_HOPS = 16
"""The loudest window is searched at offsets of 1/16 of its length."""

_MAX_KERNEL = 1 << 24
"""Entries (output x input phases) of a resampling kernel: about 600 MB with its temporaries."""

_LOWPASS_WIDTH, _ROLLOFF = 6, 0.99
"""torchaudio ``resample``'s defaults: its sinc kernel reaches this far (see _context)."""

_ELEMENTARY_FORMATS = frozenset({"mp3", "aac"})
"""FFmpeg demuxers of streams without an index: their duration is a bitrate estimate."""

_SUFFIX_DEMUXERS = {".aac": "aac"}
"""Demuxers named by the suffix when probing fails: FFmpeg cannot recognise a few ADTS frames."""

_WAV_DATA_SIZE = re.compile(r"^data\s*:\s*(\d+)\s*\(should be (\d+)\)", re.MULTILINE)
_STREAMING_PLACEHOLDER_SIZE = 0x7FFFFFFF
"""WAV writers that stream set the data size to 0x7FFFFFFF/0xFFFFFFFF: not a truncation."""
_OGG_UNFINISHED = ("ended unexpectedly", "lacks an end-of-stream bit")
"""What libsndfile's header log says (by version) of an Ogg stream cut before its last page."""


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
    with _decoding(path), _open_stream(path) as stream:
        samples = _read_range(stream, 0, None)
        _check_length(stream, len(samples))
        _check_samples(stream, samples, 0)
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
    path = Path(path)
    with _decoding(path), _open_stream(path) as stream:
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
            else:
                total = _stream_end(stream)
                offset = max(0, (total - length) // 2 // period * period)
            origin = offset - min(context, offset)  # both multiples of period: grids line up
            samples = _read_range(stream, origin, offset + length + context)
        _check_length(stream, total)
        _check_samples(stream, samples, origin)
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


@contextmanager
def _decoding(path: Path) -> Iterator[None]:
    """Turn any failure while decoding ``path`` into :class:`AudioDecodeError`.

    Known failures are caught where they happen and named; this boundary catches what damaged
    bytes make decoders and their bindings raise besides (ValueError, IndexError, MemoryError
    for a header declaring absurd sizes, ...).
    """
    try:
        yield
    except AudioDecodeError:
        raise
    except Exception as error:
        detail = (str(error).strip().splitlines() or [""])[0][:200]
        raise AudioDecodeError(
            path, f"corrupt or unsupported audio ({type(error).__name__}: {detail})"
        ) from error


_FILE_KINDS = {
    stat.S_IFDIR: "a directory",
    stat.S_IFIFO: "a named pipe (FIFO)",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
    stat.S_IFSOCK: "a socket",
}
"""What a path that is not a regular file is, as its reason says (reading a pipe or a device
would block or never end)."""


def _check_file(path: Path) -> None:
    try:
        mode = os.stat(path).st_mode
    except OSError as error:
        if error.errno == errno.ELOOP:
            raise AudioDecodeError(
                path, "symbolic link loop (the links point at each other)"
            ) from None
        if path.is_symlink():
            raise AudioDecodeError(
                path, f"broken link (to {os.readlink(path)}, which does not exist)"
            ) from None
        if error.errno == errno.ENOENT:
            raise AudioDecodeError(path, "file does not exist") from None
        raise AudioDecodeError(path, f"cannot open it ({error.strerror})") from None
    if not stat.S_ISREG(mode):
        kind = _FILE_KINDS.get(stat.S_IFMT(mode), "not a regular file")
        raise AudioDecodeError(path, f"not a regular file: {kind}")
    if path.stat().st_size == 0:
        raise AudioDecodeError(path, "empty file (0 bytes)")
    if not os.access(path, os.R_OK):
        raise AudioDecodeError(path, "permission denied")


class _Stream:
    """An opened audio stream: its header, and mono float32 blocks at its native rate.

    Attributes:
        path: The file.
        rate: Native sample rate in Hz.
        channels: Channels before downmixing.
        declared: Samples the header declares; None when it declares none.
        allowance: Samples the stream may decode short of ``declared`` (see DECODER_TOLERANCE).
        limit: Samples :meth:`blocks` may decode in all before refusing the file; None: no limit.
        decoded: Samples :meth:`blocks` decoded so far.
    """

    path: Path
    rate: int
    channels: int
    declared: int | None
    allowance: int
    limit: int | None = None
    decoded: int = 0

    def blocks(self, start: int) -> Iterator[tuple[int, np.ndarray]]:
        """``(position, samples)`` in order, the first block starting at or before ``start``.

        Raises:
            AudioDecodeError: Decoding would pass :attr:`limit`.
        """
        for position, block in self._decode(start):
            self.decoded += len(block)
            if self.limit is not None and self.decoded > self.limit:
                raise AudioDecodeError(
                    self.path,
                    f"too costly to read: finding the window would decode more than {self.limit} "
                    f"samples ({self.limit / self.rate / 60:.0f} minutes at {self.rate} Hz), the "
                    "most a2i decodes for one file (its header declares no length or a wrong one, "
                    "or it cannot seek)",
                )
            yield position, block

    def _decode(self, start: int) -> Iterator[tuple[int, np.ndarray]]:
        """:meth:`blocks` without the limit."""
        raise NotImplementedError

    def close(self) -> None:
        """Release the file."""

    def __enter__(self) -> _Stream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _open_stream(path: Path) -> _Stream:
    """Open with libsndfile for its formats (exact lengths and seeks), else with FFmpeg.

    Raises:
        AudioDecodeError: As :func:`read_audio`, or the header declares more than
            :data:`MAX_SAMPLE_RATE`.
    """
    _check_file(path)
    soundfile_error = None
    stream: _Stream | None = None
    if path.suffix.lower() in SOUNDFILE_EXTENSIONS:
        try:
            with libsndfile_quiet():
                handle = sf.SoundFile(str(path))
        except (sf.SoundFileError, RuntimeError) as error:
            soundfile_error = getattr(error, "error_string", None) or str(error)
        else:
            stream = _SoundFileStream(path, handle)
    stream = stream or _FFmpegStream(path, soundfile_error)
    if stream.rate > MAX_SAMPLE_RATE:
        stream.close()
        raise AudioDecodeError(
            path,
            f"its header declares {stream.rate} Hz, above the {MAX_SAMPLE_RATE} Hz a2i reads "
            "(a damaged or crafted header?)",
        )
    return stream


class _SoundFileStream(_Stream):
    """A libsndfile stream: lengths from the header, sample-exact seeks."""

    def __init__(self, path: Path, handle: sf.SoundFile) -> None:
        self.path, self.file = path, handle
        self.rate, self.channels, self.declared = handle.samplerate, handle.channels, handle.frames
        mpeg = handle.subtype.startswith("MPEG_LAYER")
        # mpg123 counts or estimates whole frames; every other libsndfile format is exact.
        self.allowance = _allowance("mp3", False, self.rate, self.declared, True) if mpeg else 0
        self.preroll = round(SEEK_PREROLL_SECONDS * self.rate) if mpeg else 0
        self.quiet = libsndfile_quiet if mpeg else nullcontext  # only mpg123 writes to stderr
        header_log = handle.extra_info
        try:
            for match in _WAV_DATA_SIZE.finditer(header_log):
                declared_bytes, present_bytes = int(match[1]), int(match[2])
                if present_bytes < declared_bytes < _STREAMING_PLACEHOLDER_SIZE:
                    raise AudioDecodeError(
                        path,
                        f"truncated: the data chunk declares {declared_bytes} bytes but the file "
                        f"holds only {present_bytes}",
                    )
            if any(message in header_log for message in _OGG_UNFINISHED):
                raise AudioDecodeError(
                    path, "truncated: the Ogg stream ends without its end-of-stream page"
                )
        except AudioDecodeError:
            handle.close()
            raise

    def _decode(self, start: int) -> Iterator[tuple[int, np.ndarray]]:
        frames = max(1, _BLOCK_VALUES // max(1, self.channels))
        start = max(0, start - self.preroll)
        try:
            with self.quiet():
                self.file.seek(start)
            while True:
                with self.quiet():
                    block = self.file.read(frames, dtype="float32", always_2d=True)
                if not len(block):
                    break
                yield start, block.mean(axis=1, dtype=np.float32)
                start += len(block)
        except (sf.SoundFileError, RuntimeError) as error:
            reason = getattr(error, "error_string", None) or str(error)
            raise AudioDecodeError(
                self.path, f"corrupt or truncated (at sample {start}: {reason})"
            ) from None

    def close(self) -> None:
        self.file.close()


class _FFmpegStream(_Stream):
    """The best audio stream of any container FFmpeg opens; reopened for each pass over it."""

    def __init__(self, path: Path, soundfile_error: str | None) -> None:
        self.path, self.soundfile_error = path, soundfile_error
        with self._open() as container:
            stream = self._audio_stream(container)
            context = stream.codec_context
            self.rate, self.channels = context.sample_rate, context.channels
            if not self.rate or self.rate <= 0:
                raise AudioDecodeError(path, "the audio stream declares no sample rate")
            self.origin = stream.start_time or 0
            self.time_base: Fraction | None = stream.time_base
            declared = _declared_seconds(container, stream)
            self.declared = round(declared * self.rate) if declared and declared > 0 else None
            estimated = container.format.name in _ELEMENTARY_FORMATS
            codec = context.codec
            self.allowance = _allowance(
                codec.canonical_name, codec.lossless, self.rate, self.declared or 0, estimated
            )
            if self.time_base:  # durations count whole ticks of the time base (1 ms in Matroska)
                self.allowance += math.ceil(self.time_base * self.rate)

    def _open(self) -> av.container.InputContainer:
        errors = (av.error.FFmpegError, OSError, UnicodeDecodeError)
        try:
            return av.open(str(self.path), metadata_errors="replace")
        except errors as error:
            if demuxer := _SUFFIX_DEMUXERS.get(self.path.suffix.lower()):
                try:
                    return av.open(str(self.path), format=demuxer, metadata_errors="replace")
                except errors:
                    pass
            raise self._not_audio(str(error)) from None

    def _not_audio(self, ffmpeg_error: str) -> AudioDecodeError:
        if cut := iso_media_cut_short(self.path):
            return AudioDecodeError(self.path, f"truncated: {cut}")
        detail = f"FFmpeg: {ffmpeg_error}"
        if self.soundfile_error:
            detail = f"libsndfile: {self.soundfile_error}; {detail}"
        return AudioDecodeError(
            self.path, f"not an audio file, or an unsupported or damaged one ({detail})"
        )

    def _audio_stream(self, container: av.container.InputContainer) -> av.audio.AudioStream:
        if not container.streams.audio:
            if cut := iso_media_cut_short(self.path):  # the audio track may be described past it
                raise AudioDecodeError(self.path, f"truncated: {cut}")
            kinds = ", ".join(stream.type for stream in container.streams) or "none"
            raise AudioDecodeError(
                self.path,
                f"no audio stream in this {container.format.name} container (streams: {kinds})",
            )
        stream = container.streams.best("audio")
        if stream is None or stream.codec_context is None:  # e.g. random bytes named .flac
            raise self._not_audio(f"no decodable audio stream as {container.format.name}")
        return stream

    def _decode(self, start: int) -> Iterator[tuple[int, np.ndarray]]:
        preroll = round(SEEK_PREROLL_SECONDS * self.rate)
        with self._open() as container:
            stream = self._audio_stream(container)
            if start > preroll and self._seek(container, stream, start - preroll):
                frames = self._frames(container, stream)
                first = next(frames, None)
                position = None if first is None else self._position(first)
                if position is not None and preroll <= position <= start:
                    yield from self._samples(itertools.chain([first], frames), position)
                    return
                frames.close()
        # Decode from the start, where positions are counted, not read from timestamps: the seek
        # failed, overshot, hit a frame without a timestamp, or landed in the first second, where
        # it saves nothing and the first packets' timestamps can be off (Opus in WebM).
        with self._open() as container:
            yield from self._samples(self._frames(container, self._audio_stream(container)), 0)

    def _seek(
        self, container: av.container.InputContainer, stream: av.stream.Stream, sample: int
    ) -> bool:
        """Seek to the frame holding ``sample`` or an earlier one; False where it cannot."""
        if not self.time_base:
            return False
        target = self.origin + int(Fraction(sample, self.rate) / self.time_base)
        try:
            container.seek(target, stream=stream)
        except av.error.FFmpegError:
            return False
        return True

    def _position(self, frame: av.AudioFrame) -> int | None:
        """The frame's first sample counted from the stream's start, from its timestamp."""
        time_base = frame.time_base or self.time_base
        if frame.pts is None or not time_base:
            return None
        return round((frame.pts - self.origin) * time_base * self.rate)

    def _frames(
        self, container: av.container.InputContainer, stream: av.stream.Stream
    ) -> Iterator[av.AudioFrame]:
        try:
            yield from container.decode(stream)
        except av.error.FFmpegError as error:
            raise AudioDecodeError(
                self.path, f"corrupt or truncated audio stream ({error})"
            ) from None

    def _samples(
        self, frames: Iterator[av.AudioFrame], position: int
    ) -> Iterator[tuple[int, np.ndarray]]:
        to_float = _FloatFrames(self.rate)
        for frame in itertools.chain(frames, [None]):
            for planes in to_float(frame):
                yield position, planes.mean(axis=0, dtype=np.float32)
                position += planes.shape[1]


class _FloatFrames:
    """Decoded frames to planar float32 at one rate, whatever format, layout or rate each has.

    PyAV's resampler refuses a frame unlike the first, and streams may change their channel
    layout or rate mid-way (concatenated files, broadcast recordings): one resampler per kind.
    """

    def __init__(self, rate: int) -> None:
        self.rate = rate
        self.kind: tuple[str, str, int] | None = None
        self.resampler: av.AudioResampler | None = None

    def __call__(self, frame: av.AudioFrame | None) -> list[np.ndarray]:
        """Converted arrays ``(channels, samples)`` for ``frame``; None flushes."""
        out = []
        kind = None if frame is None else (frame.format.name, frame.layout.name, frame.sample_rate)
        if self.resampler is not None and kind != self.kind:
            out += [f.to_ndarray() for f in self.resampler.resample(None)]
            self.resampler = None
        if frame is not None:
            if self.resampler is None:
                self.kind, self.resampler = kind, av.AudioResampler(format="fltp", rate=self.rate)
            out += [f.to_ndarray() for f in self.resampler.resample(frame)]
        return [planes for planes in out if planes.size]


def _declared_seconds(
    container: av.container.InputContainer, stream: av.audio.AudioStream
) -> float | None:
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return container.duration / av.time_base
    return None


def _allowance(codec: str, lossless: bool, rate: int, declared: int, estimated: bool) -> int:
    """Samples a stream may decode short of ``declared`` (see :data:`DECODER_TOLERANCE`)."""
    samples, counted_at = DECODER_TOLERANCE.get(codec, (0, None))
    allowance = math.ceil(samples * rate / (counted_at or rate))
    if estimated or (codec not in DECODER_TOLERANCE and not lossless):
        allowance = max(allowance, math.ceil((1 - MIN_DECODED_FRACTION) * declared))
    return allowance


def _read_range(stream: _Stream, start: int, stop: int | None) -> np.ndarray:
    """Mono samples ``[start, stop)`` (None: to the end); fewer where the stream ends first."""
    parts = []
    for position, block in stream.blocks(start):
        end = len(block) if stop is None else min(len(block), stop - position)
        if end > start - position:
            parts.append(block[max(0, start - position) : end])
        if stop is not None and position + len(block) >= stop:
            break
    return np.concatenate(parts) if parts else np.zeros(0, np.float32)


def _stream_end(stream: _Stream) -> int:
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


def _loudest_start(stream: _Stream, length: int, period: int) -> tuple[int, int]:
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
    stream: _Stream, start: int, stop: int | None, hop: int, hops: int
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
        _check_samples(stream, block, position)
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


def _check_length(stream: _Stream, decoded: int) -> None:
    if stream.declared is not None and decoded < stream.declared - stream.allowance:
        rate = stream.rate
        raise AudioDecodeError(
            stream.path,
            f"truncated: the header declares {stream.declared} samples "
            f"({stream.declared / rate:.2f} s) but only {decoded} ({decoded / rate:.2f} s) decode",
        )


def _check_samples(stream: _Stream, samples: np.ndarray, position: int) -> None:
    """Refuse an empty stream and NaN/inf samples; ``position`` is where ``samples`` start."""
    if position == 0 and len(samples) == 0:
        raise AudioDecodeError(stream.path, "the file holds zero audio samples")
    finite = np.isfinite(samples)
    if not finite.all():
        at = (position + int(np.argmin(finite))) / stream.rate
        raise AudioDecodeError(
            stream.path,
            f"{np.count_nonzero(~finite)} samples are NaN or infinite (the first at {at:.2f} s)",
        )


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
