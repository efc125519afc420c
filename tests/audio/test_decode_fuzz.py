"""Whatever the bytes, decoding returns a finite waveform or raises AudioDecodeError.

Random and mutated files (valid ones truncated, byte-flipped, cut to their header, empty) under
every supported extension: one undecodable file among thousands must be reported by name, not
abort the run with an AttributeError from deep inside FFmpeg's bindings.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from a2i.audio.formats import AUDIO_EXTENSIONS
from a2i.audio.io import read_audio, read_audio_window
from a2i.errors import AudioDecodeError

SEED = 1313
RATE = 16000
CROPS = ("start", "center", "loudest")


@pytest.fixture(scope="module")
def byte_strings(tmp_path_factory: pytest.TempPathFactory, encode, tonal) -> list[bytes]:
    """About two hundred byte strings: random, and valid files damaged in several ways."""
    folder = tmp_path_factory.mktemp("valid")
    signal = tonal(0.4, RATE, 2)
    valid = []
    for file_format in ("WAV", "FLAC", "OGG"):
        buffer = io.BytesIO()
        sf.write(buffer, signal.T, RATE, format=file_format)
        valid.append(buffer.getvalue())
    for name, muxer, codec, rate in [
        ("a.mp3", "mp3", "libmp3lame", RATE),
        ("a.m4a", "mp4", "aac", RATE),
        ("a.opus", "ogg", "libopus", 48000),
        ("a.mkv", "matroska", "pcm_s16le", RATE),
    ]:
        valid.append(encode(folder / name, muxer, codec, tonal(0.4, rate, 2), rate).read_bytes())

    rng = np.random.default_rng(SEED)
    strings = [b""] + [rng.bytes(int(n)) for n in (1, 3, 16, 64, 512, 4096, 40000)]
    for data in valid:
        array = np.frombuffer(data, np.uint8)
        strings.append(data[: int(rng.integers(8, 128))])  # the header only
        strings += [data[: int(rng.integers(1, len(data)))] for _ in range(8)]  # truncated
        for _ in range(10):  # bytes flipped anywhere
            flipped = array.copy()
            where = rng.integers(0, len(data), int(rng.integers(1, 16)))
            flipped[where] = rng.integers(0, 256, len(where))
            strings.append(flipped.tobytes())
        for _ in range(6):  # bytes flipped in the header, where lengths and layouts live
            flipped = array.copy()
            where = rng.integers(0, min(len(data), 256), 3)
            flipped[where] = rng.integers(0, 256, len(where))
            strings.append(flipped.tobytes())
        cut = int(rng.integers(1, len(data)))
        strings.append(data[:cut] + rng.bytes(len(data) - cut))  # a valid start, then garbage
    return strings


FUZZED_SUFFIXES = (".wav", ".flac", ".ogg", ".oga", ".aiff", ".mp3", ".m4a", ".mp4", ".mkv")
FUZZED_SUFFIXES += (".webm", ".aac", ".opus", ".mov", ".au")
"""Each way a suffix routes a file (libsndfile first, FFmpeg, FFmpeg's ADTS fallback) and the
common formats; every other suffix gets :func:`test_random_bytes_are_refused_under_every_suffix`."""


@pytest.mark.parametrize("suffix", AUDIO_EXTENSIONS)
def test_random_bytes_are_refused_under_every_suffix(tmp_path: Path, suffix: str) -> None:
    """No suffix makes a decoder take any bytes as sound (headerless formats are not audio)."""
    rng = np.random.default_rng(SEED)
    for size in (64, 4096, 40000):
        path = tmp_path / f"random{suffix}"
        path.write_bytes(rng.bytes(size))
        with pytest.raises(AudioDecodeError):
            read_audio(path, RATE)


@pytest.mark.parametrize("suffix", FUZZED_SUFFIXES)
def test_any_bytes_decode_or_raise_audio_decode_error(
    tmp_path: Path, byte_strings: list[bytes], suffix: str
) -> None:
    problems = []
    for index, data in enumerate(byte_strings):
        path = tmp_path / f"case{index}{suffix}"
        path.write_bytes(data)
        readers = {
            "read_audio": lambda path=path: read_audio(path, RATE),
            "read_audio_window": lambda path=path, index=index: (
                read_audio_window(path, RATE, 0.1, CROPS[index % 3]).waveform
            ),
        }
        for name, read in readers.items():
            try:
                waveform = read()
            except AudioDecodeError as error:
                assert error.path == str(path)
                assert error.reason and "\n" not in error.reason
                continue
            except Exception as error:  # the defect this test exists for
                problems.append(f"{path.name} {name}: {type(error).__name__}: {error}")
                continue
            ok = waveform.dtype == torch.float32 and waveform.ndim == 1
            if not (ok and torch.isfinite(waveform).all()):
                problems.append(f"{path.name} {name}: {waveform.dtype} {tuple(waveform.shape)}")
        path.unlink()
    assert not problems, "\n".join(problems)
