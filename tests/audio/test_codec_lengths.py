"""Files from real encoders decode to their true length within the codec's documented tolerance.

Headers of lossy streams count the encoder's priming and padding, or whole frames, or estimate
the length from the bitrate: an exact comparison refused valid files as truncated. A file cut
in half must still be refused wherever its header declares its length.
"""

from __future__ import annotations

import math
import shutil
import subprocess
from pathlib import Path

import pytest

from a2i.audio.decoders import DECODER_TOLERANCE
from a2i.audio.io import read_audio, read_audio_window
from a2i.errors import AudioDecodeError

# (id, muxer, encoder, suffix, muxer options, declares its length exactly)
ENCODERS = [
    ("lame", "mp3", "libmp3lame", ".mp3", {}, True),
    # What `ffmpeg ... -f mp3 pipe:` and other streaming writers make: no LAME/Xing tag, so the
    # length is estimated from the file size (the case refused as "truncated" before).
    ("lame-streamed", "mp3", "libmp3lame", ".mp3", {"write_xing": "0"}, False),
    ("aac-m4a", "mp4", "aac", ".m4a", {}, True),
    ("aac-m4a-faststart", "mp4", "aac", ".m4a", {"movflags": "faststart"}, True),
    ("aac-adts", "adts", "aac", ".aac", {}, False),
    ("opus-ogg", "ogg", "libopus", ".ogg", {}, True),
    ("opus-webm", "webm", "libopus", ".webm", {}, True),
]
RATES = (8000, 22050, 44100, 48000)
OPUS_RATES = {22050: 24000, 44100: 16000}  # libopus takes 8/12/16/24/48 kHz only
LENGTHS = (0.05, 1.0, 5.2)
CASES = [
    pytest.param(*encoder[1:], rate, seconds, id=f"{encoder[0]}-{rate}-{seconds}s")
    for encoder in ENCODERS
    for rate in RATES
    for seconds in LENGTHS
]


def tolerance(codec: str, rate: int) -> int:
    samples, counted_at = DECODER_TOLERANCE[codec]
    return math.ceil(samples * rate / (counted_at or rate))


@pytest.mark.parametrize(
    ("muxer", "encoder", "suffix", "options", "exact", "rate", "seconds"), CASES
)
def test_real_encoder_files_decode_to_their_length(
    tmp_path: Path,
    encode,
    tonal,
    muxer: str,
    encoder: str,
    suffix: str,
    options: dict[str, str],
    exact: bool,
    rate: int,
    seconds: float,
) -> None:
    if encoder == "libopus":
        rate = OPUS_RATES.get(rate, rate)
    channels = 1 + round(seconds * rate) % 2  # mono and stereo across the cases
    signal = tonal(seconds, rate, channels)
    path = encode(tmp_path / f"clip{suffix}", muxer, encoder, signal, rate, options=options)
    codec = {"libmp3lame": "mp3", "aac": "aac", "libopus": "opus"}[encoder]

    waveform = read_audio(path, rate)
    assert abs(waveform.shape[0] - signal.shape[1]) <= tolerance(codec, rate)
    window = read_audio_window(path, rate, 0.5)
    # found by a seek near the end: as exact as the container's timestamps (1 ms in WebM)
    assert window.duration * rate == pytest.approx(waveform.shape[0], abs=rate // 1000 + 1)

    if exact and seconds >= 1.0:  # shorter files lose less than the tolerance when cut
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
        with pytest.raises(AudioDecodeError):
            read_audio(path, rate)
        with pytest.raises(AudioDecodeError):
            read_audio_window(path, rate, 0.1)


FFMPEG_OUTPUTS = [
    ("lame.mp3", ["-c:a", "libmp3lame"], "mp3"),
    ("lame-piped.mp3", ["-c:a", "libmp3lame", "-f", "mp3", "pipe:1"], "mp3"),
    ("aac.m4a", ["-c:a", "aac"], "aac"),
    ("opus.ogg", ["-c:a", "libopus", "-ar", "48000"], "opus"),
]


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="no ffmpeg binary on PATH")
@pytest.mark.parametrize(("name", "arguments", "codec"), FFMPEG_OUTPUTS)
@pytest.mark.parametrize("rate", [22050, 48000])
def test_ffmpeg_binary_files_decode_to_their_length(
    tmp_path: Path, name: str, arguments: list[str], codec: str, rate: int
) -> None:
    path, seconds = tmp_path / name, 3.7
    source = f"sine=frequency=440:sample_rate={rate}:duration={seconds}"
    command = ["ffmpeg", "-nostdin", "-v", "error", "-f", "lavfi", "-i", source, "-ac", "2"]
    if arguments[-1] == "pipe:1":
        with path.open("wb") as out:
            subprocess.run([*command, *arguments], stdout=out, check=True)
    else:
        subprocess.run([*command, *arguments, str(path)], check=True)
    if codec == "opus":
        rate = 48000
    waveform = read_audio(path, rate)
    assert abs(waveform.shape[0] - round(seconds * rate)) <= tolerance(codec, rate)
