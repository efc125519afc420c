"""Which file suffixes are audio: those the installed decoders read sound from.

A folder handed to ``a2i predict`` holds whatever its owner put there. Rather than a hand list
(which skipped ``.opus``, ``.aiff`` and ``.mov`` unseen), the suffixes are read from libsndfile
(through soundfile) and from the FFmpeg that PyAV bundles, once, at import (about 20 ms); each
exclusion and addition below says why.
"""

from __future__ import annotations

import io
import struct
from pathlib import Path

import av
import soundfile as sf

_HEADERLESS_FORMATS = frozenset(
    {"alaw", "mulaw", "s8", "u8", "s16le", "u16le", "daud", "dfpwm"}
    | {"g722", "g723_1", "g728", "g729"}
)
"""FFmpeg formats without a header: it picks them by suffix alone and decodes any bytes as noise.

Their suffixes are not counted as audio: a file of them says nothing of its rate or layout, and a
text file named ``.sw`` would become a sound. (Found by decoding random bytes under every suffix
that FFmpeg or libsndfile names: ``tests/audio/test_decode_fuzz.py`` checks none is left.)
"""

_PLAYLIST_FORMATS = frozenset({"hls", "dash"})
"""FFmpeg formats whose files name other files or URLs to read: a folder's files are read, no more."""

_SOUNDFILE_ALIASES = frozenset({".aif", ".aifc", ".oga"})
"""Suffixes of libsndfile's formats besides their names (AIFF's short forms; OGA, libsndfile's own
suffix for Ogg audio)."""

_SUFFIX_FALLS_BACK_TO_RAW = frozenset({".au"})
"""Suffixes libsndfile reads as headerless samples when no header matches (any bytes decode)."""


def _libsndfile_suffixes() -> frozenset[str]:
    """Suffixes of the formats libsndfile reads; soundfile names a format by its file's suffix.

    RAW is left out: a headerless file needs its rate and layout from the caller.
    """
    names = {f".{name.lower()}" for name in sf.available_formats() if name != "RAW"}
    return frozenset(names | _SOUNDFILE_ALIASES)


def _ffmpeg_suffixes() -> frozenset[str]:
    """Suffixes of the FFmpeg formats that hold audio, from the FFmpeg that PyAV bundles.

    A muxer whose default audio codec is not "none" writes audio, and FFmpeg reads what it
    writes; a demuxer named after an audio codec reads that codec's raw stream (ape, tak, …).
    Image, subtitle and video-only formats fall out: their muxers write no audio by default.
    """
    suffixes: set[str] = set()
    for name in av.formats_available - _HEADERLESS_FORMATS - _PLAYLIST_FORMATS:
        try:
            muxer = av.format.ContainerFormat(name, "w")
            with av.open(io.BytesIO(), "w", format=name) as container:
                if container.default_audio_codec != "none":
                    suffixes |= muxer.extensions
        except (ValueError, av.error.FFmpegError):
            pass  # no muxer of that name
        try:
            if av.Codec(name, "r").type == "audio":
                suffixes |= av.format.ContainerFormat(name, "r").extensions
        except (ValueError, av.error.FFmpegError):  # (UnknownCodecError is a ValueError)
            pass  # no decoder or no demuxer of that name
    # FFmpeg registers its audio-only Matroska muxer (.mka) under the video one's name.
    return frozenset({f".{suffix.strip().lower()}" for suffix in suffixes} | {".mka"})


_LIBSNDFILE_SUFFIXES = _libsndfile_suffixes()

AUDIO_EXTENSIONS = tuple(sorted(_LIBSNDFILE_SUFFIXES | _ffmpeg_suffixes()))
"""Lower-case suffixes a2i reads as audio: every one FFmpeg or libsndfile reads sound from.

Derived from the decoders installed (video containers count: their audio track is used), so a
folder's ``.opus``, ``.aiff`` or ``.mov`` is read wherever the decoders read it. Files with
other suffixes are skipped and named as not audio.
"""

SOUNDFILE_EXTENSIONS = _LIBSNDFILE_SUFFIXES - _SUFFIX_FALLS_BACK_TO_RAW
"""Suffixes decoded by libsndfile first (header-exact lengths); all others go through FFmpeg."""


_ISO_MEDIA_FIRST_BOXES = frozenset({b"ftyp", b"moov", b"mdat", b"free", b"skip", b"wide"})
"""Top-level box types an MP4/MOV/M4A/3GP file (ISO/IEC 14496-12, QuickTime) starts with."""
_MAX_TOP_LEVEL_BOXES = 4096


def iso_media_cut_short(path: str | Path) -> str | None:
    """How an MP4/MOV-family file is cut short, or None (complete, or not such a file).

    Every top-level box declares its size (ISO/IEC 14496-12 §4.2). A download cut inside the
    ``mdat`` or ``moov`` box makes FFmpeg report "moov atom not found", or see only the tracks
    described before the cut (a video whose audio track was lost reads as one without audio).
    """
    with open(path, "rb") as handle:
        size = handle.seek(0, io.SEEK_END)
        offset = 0
        for _ in range(_MAX_TOP_LEVEL_BOXES):
            if offset >= size:
                return None
            handle.seek(offset)
            header = handle.read(16)
            if len(header) < 8:
                return f"it ends inside a box header at byte {offset}"
            length, kind = struct.unpack(">I4s", header[:8])
            if offset == 0 and kind not in _ISO_MEDIA_FIRST_BOXES:
                return None
            if length == 1:
                if len(header) < 16:
                    return f"it ends inside a box header at byte {offset}"
                length = struct.unpack(">Q", header[8:16])[0]
            if length == 0:  # the last box, to the end of the file
                return None
            if length < 8:
                return None  # not a box structure FFmpeg would read either
            if offset + length > size:
                name = kind.decode("latin-1")
                return (
                    f"its '{name}' box declares {length} bytes from byte {offset}, but the file "
                    f"ends {offset + length - size} bytes short of that"
                )
            offset += length
    return None
