"""The two decoders behind one block interface: libsndfile for its formats, FFmpeg for the rest.

libsndfile (``soundfile``) decodes its formats (wav/flac/ogg/aiff/…, and mp3 when built with
mpg123: :data:`~a2i.audio.formats.SOUNDFILE_EXTENSIONS`), exposes the header and seeks
sample-exactly; FFmpeg (``av``) decodes everything else (aac/m4a, the audio track of
mp4/mkv/webm) and is the fallback for mislabelled files. :func:`open_stream` picks one and returns
a :class:`Stream`: the header's rate and declared length, how far short of it a valid file may
decode, and mono float32 blocks from any position, downmixed as they arrive. The readers in
:mod:`a2i.audio.io` build whole files and windows on that interface alone, so they need not
know which decoder, container or codec lies below; what each decoder's failures mean (missing,
not audio, truncated, NaN/inf, no audio stream) is named here as
:class:`~a2i.errors.AudioDecodeError`. torchaudio's own ``load`` is not used: in torchaudio 2.11
it requires torchcodec.
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
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import soundfile as sf

from a2i.audio.formats import SOUNDFILE_EXTENSIONS, iso_media_cut_short
from a2i.audio.native_stderr import libsndfile_quiet
from a2i.errors import AudioDecodeError

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

BLOCK_VALUES = 1 << 18
"""libsndfile reads about this many values (frames x channels) per block: 1 MiB of float32."""

_ELEMENTARY_FORMATS = frozenset({"mp3", "aac"})
"""FFmpeg demuxers of streams without an index: their duration is a bitrate estimate."""

_SUFFIX_DEMUXERS = {".aac": "aac"}
"""Demuxers named by the suffix when probing fails: FFmpeg cannot recognise a few ADTS frames."""

_WAV_DATA_SIZE = re.compile(r"^data\s*:\s*(\d+)\s*\(should be (\d+)\)", re.MULTILINE)
_STREAMING_PLACEHOLDER_SIZE = 0x7FFFFFFF
"""WAV writers that stream set the data size to 0x7FFFFFFF/0xFFFFFFFF: not a truncation."""
_OGG_UNFINISHED = ("ended unexpectedly", "lacks an end-of-stream bit")
"""What libsndfile's header log says (by version) of an Ogg stream cut before its last page."""


@contextmanager
def decoding(path: Path) -> Iterator[None]:
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


class Stream:
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

    def __enter__(self) -> Stream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_stream(path: Path) -> Stream:
    """Open with libsndfile for its formats (exact lengths and seeks), else with FFmpeg.

    Raises:
        AudioDecodeError: As :func:`~a2i.audio.io.read_audio`, or the header declares more than
            :data:`MAX_SAMPLE_RATE`.
    """
    _check_file(path)
    soundfile_error = None
    stream: Stream | None = None
    if path.suffix.lower() in SOUNDFILE_EXTENSIONS:
        try:
            with libsndfile_quiet():
                handle = sf.SoundFile(str(path))
        except (sf.SoundFileError, RuntimeError) as error:
            soundfile_error = getattr(error, "error_string", None) or str(error)
        else:
            stream = _SoundFileStream(path, handle)
    stream = stream or FFmpegStream(path, soundfile_error)
    if stream.rate > MAX_SAMPLE_RATE:
        stream.close()
        raise AudioDecodeError(
            path,
            f"its header declares {stream.rate} Hz, above the {MAX_SAMPLE_RATE} Hz a2i reads "
            "(a damaged or crafted header?)",
        )
    return stream


class _SoundFileStream(Stream):
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
        frames = max(1, BLOCK_VALUES // max(1, self.channels))
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


class FFmpegStream(Stream):
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


def check_length(stream: Stream, decoded: int) -> None:
    """Refuse a stream that decoded ``decoded`` samples, short of its header beyond its allowance."""
    if stream.declared is not None and decoded < stream.declared - stream.allowance:
        rate = stream.rate
        raise AudioDecodeError(
            stream.path,
            f"truncated: the header declares {stream.declared} samples "
            f"({stream.declared / rate:.2f} s) but only {decoded} ({decoded / rate:.2f} s) decode",
        )


def check_samples(stream: Stream, samples: np.ndarray, position: int) -> None:
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
