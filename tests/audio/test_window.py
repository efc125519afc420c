"""read_audio_window: the part of a file a model hears, at a cost bounded by that part."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from crafted_audio import write_live_matroska, write_silent_flac

from a2i.audio import io as audio_io
from a2i.audio.decoders import BLOCK_VALUES, FFmpegStream
from a2i.audio.io import AudioWindow, read_audio, read_audio_window, read_random_window
from a2i.errors import AudioDecodeError, ConfigError

RATE = 16000
CROPS = ["start", "center", "loudest"]
# (suffix, PyAV muxer and encoder; None: written by libsndfile)
FORMATS = [
    (".wav", None),
    (".flac", None),
    (".mp3", ("mp3", "libmp3lame")),
    (".m4a", ("mp4", "aac")),
]
# (native rate, channels): 8-48 kHz, mono to 5.1 (lossy encoders here take up to stereo)
INPUTS = [(8000, 1), (22050, 2), (44100, 6), (48000, 2)]


def write(
    path: Path, signal: np.ndarray, rate: int, encoder: tuple[str, str] | None, encode
) -> Path:
    if encoder is None:
        sf.write(path, signal.T, rate)
        return path
    return encode(path, *encoder, signal[:2], rate)


def expected_slice(full: torch.Tensor, window: AudioWindow, seconds: float) -> torch.Tensor:
    start = round(window.offset * RATE)
    return full[start : start + round(seconds * RATE)]


@pytest.mark.parametrize("crop", CROPS)
@pytest.mark.parametrize(("rate", "channels"), INPUTS, ids=[f"{r}Hz-{c}ch" for r, c in INPUTS])
@pytest.mark.parametrize(("suffix", "encoder"), FORMATS, ids=[f[0] for f in FORMATS])
def test_window_is_the_same_slice_of_a_full_read(
    tmp_path: Path, encode, tonal, suffix: str, encoder, rate: int, channels: int, crop: str
) -> None:
    seconds = 2.0
    path = write(tmp_path / f"a{suffix}", tonal(7.3, rate, channels, 5.0), rate, encoder, encode)
    full = read_audio(path, RATE)
    window = read_audio_window(path, RATE, seconds, crop)
    assert window.waveform.dtype == torch.float32 and window.waveform.shape == (seconds * RATE,)
    torch.testing.assert_close(
        window.waveform, expected_slice(full, window, seconds), atol=1e-5, rtol=0
    )
    assert window.duration * RATE == pytest.approx(full.shape[0], abs=1)
    if crop == "loudest":  # the half-second burst at 5 s lies inside
        assert window.offset <= 5.0 and 5.5 <= window.offset + seconds
    else:
        center = (window.duration - seconds) / 2
        assert window.offset == pytest.approx(0.0 if crop == "start" else center, abs=0.01)


@pytest.mark.parametrize("crop", CROPS)
@pytest.mark.parametrize(("suffix", "encoder"), FORMATS, ids=[f[0] for f in FORMATS])
def test_file_shorter_than_the_window_is_returned_whole(
    tmp_path: Path, encode, tonal, suffix: str, encoder, crop: str
) -> None:
    path = write(tmp_path / f"short{suffix}", tonal(1.3, 22050, 2), 22050, encoder, encode)
    full = read_audio(path, RATE)
    window = read_audio_window(path, RATE, 10.0, crop)
    assert window.offset == 0.0
    assert window.duration * RATE == pytest.approx(full.shape[0], abs=1)
    torch.testing.assert_close(window.waveform, full, atol=1e-5, rtol=0)


@pytest.mark.parametrize("suffix", [".wav", ".flac", ".mp3"])
def test_loudest_finds_a_late_burst_in_a_long_quiet_file(tmp_path: Path, suffix: str) -> None:
    rate, burst = 8000, 171.3
    quiet = 0.01 * np.random.default_rng(0).standard_normal(180 * rate)
    quiet[round(burst * rate) : round((burst + 0.5) * rate)] *= 50
    sf.write(tmp_path / f"long{suffix}", quiet.astype(np.float32), rate)
    window = read_audio_window(tmp_path / f"long{suffix}", RATE, 2.0, "loudest")
    assert window.offset <= burst and burst + 0.5 <= window.offset + 2.0
    assert window.duration == pytest.approx(180, abs=0.1)


def test_window_reader_checks_what_it_decodes(tmp_path: Path) -> None:
    signal = np.full(4 * RATE, 0.1, np.float32)
    signal[round(2.5 * RATE)] = np.nan
    sf.write(tmp_path / "nan.wav", signal, RATE, subtype="FLOAT")
    with pytest.raises(AudioDecodeError, match=r"NaN or infinite \(the first at 2.50 s\)"):
        read_audio_window(tmp_path / "nan.wav", RATE, 1.0, "loudest")  # reads everything
    with pytest.raises(AudioDecodeError, match="NaN or infinite"):
        read_audio_window(tmp_path / "nan.wav", RATE, 2.0, "center")
    assert read_audio_window(tmp_path / "nan.wav", RATE, 1.0).waveform.isfinite().all()
    with pytest.raises(ConfigError, match="crop"):
        read_audio_window(tmp_path / "nan.wav", RATE, 1.0, "middle")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="seconds"):
        read_audio_window(tmp_path / "nan.wav", RATE, 0.0)


def write_long_wav(path: Path, minutes: float, rate: int = 48000) -> Path:
    """Stereo 16-bit wav written a minute at a time (quiet noise, a burst near the end)."""
    rng = np.random.default_rng(0)
    with sf.SoundFile(path, "w", rate, 2, "PCM_16") as out:
        for minute in range(int(minutes)):
            block = 0.01 * rng.standard_normal((60 * rate, 2))
            if minute == int(minutes) - 1:
                block[30 * rate : 31 * rate] *= 40
            out.write(block.astype(np.float32))
    return path


@pytest.fixture(scope="module")
def ten_minutes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_long_wav(tmp_path_factory.mktemp("long") / "ten_minutes.wav", 10)


@pytest.mark.parametrize("crop", CROPS)
def test_window_cost_does_not_grow_with_the_file(
    ten_minutes: Path, monkeypatch: pytest.MonkeyPatch, crop: str
) -> None:
    """10 minutes of 48 kHz stereo are 230 MB as float32: the window reader holds a few MB."""
    requested = []
    read = sf.SoundFile.read

    def counting_read(self, frames=-1, *args, **kwargs):
        requested.append(frames)
        return read(self, frames, *args, **kwargs)

    monkeypatch.setattr(sf.SoundFile, "read", counting_read)
    tracemalloc.start()
    try:
        window = read_audio_window(ten_minutes, RATE, 10.0, crop)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert window.waveform.shape == (10 * RATE,)
    assert window.duration == pytest.approx(600)
    assert peak < 40e6, f"peak {peak / 1e6:.0f} MB of numpy/Python allocations"
    assert all(0 < frames <= 1 << 18 for frames in requested)  # blocks, never the whole file
    if crop != "loudest":  # the window, its resampling context and the last second
        assert sum(requested) < 13 * 48000 + len(requested) * (1 << 17)
    else:
        assert window.offset == pytest.approx(9 * 60 + 30, abs=10.0)


def test_ffmpeg_formats_stop_decoding_after_the_window(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, encode, tonal
) -> None:
    path = encode(tmp_path / "long.m4a", "mp4", "aac", tonal(60.0, 16000), 16000)
    decoded = []
    frames = FFmpegStream._frames

    def counting_frames(self, container, stream):
        for frame in frames(self, container, stream):
            decoded.append(frame.samples)
            yield frame

    monkeypatch.setattr(FFmpegStream, "_frames", counting_frames)
    for crop in ("start", "center"):
        decoded.clear()
        window = read_audio_window(path, RATE, 1.0, crop)
        assert window.duration == pytest.approx(60.0, abs=0.2)
        assert sum(decoded) < 6 * RATE, crop  # window + context + pre-roll + last second


def test_an_odd_native_rate_is_resampled_in_bounded_memory(tmp_path: Path) -> None:
    """16001 Hz to 16 kHz is an irreducible ratio: torchaudio's kernel alone took 4.9 GB."""
    sf.write(tmp_path / "odd.wav", np.full(3 * 16001, 0.1, np.float32), 16001)
    full = read_audio(tmp_path / "odd.wav", RATE)
    window = read_audio_window(tmp_path / "odd.wav", RATE, 1.0, "center")
    assert full.shape[0] == pytest.approx(3 * RATE, rel=1e-3)  # resampled as 16 kHz
    assert window.duration == pytest.approx(3.0) and window.waveform.shape == (RATE,)


def count_decoded(monkeypatch: pytest.MonkeyPatch, ceiling: int) -> list[int]:
    """Samples libsndfile returns, read by read; failing once past ``ceiling`` (not 30 s later)."""
    returned: list[int] = []
    read = sf.SoundFile.read

    def counting_read(self, *args, **kwargs):
        block = read(self, *args, **kwargs)
        returned.append(len(block))
        if sum(returned) > ceiling:
            raise RuntimeError(f"decoded more than {ceiling} samples")
        return block

    monkeypatch.setattr(sf.SoundFile, "read", counting_read)
    return returned


@pytest.mark.parametrize("crop", CROPS)
def test_six_hours_of_crafted_192khz_silence_cost_a_bounded_decode(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, crop: str
) -> None:
    """0.97 MB of FLAC holding 4.1 billion samples: the loudest search once decoded them all."""
    path = write_silent_flac(tmp_path / "six_hours.flac", 6 * 3600, 192000)
    assert path.stat().st_size < 1 << 20
    bound = 2 * audio_io.LOUDEST_SCAN_SAMPLES if crop == "loudest" else 4 * 192000
    decoded = count_decoded(monkeypatch, bound)
    window = read_audio_window(path, RATE, 1.0, crop)
    assert window.duration == 6 * 3600
    assert window.offset == {"start": 0.0, "center": 3 * 3600 - 0.5, "loudest": 0.0}[crop]
    assert window.waveform.shape == (RATE,) and not window.waveform.any()
    assert 0 < sum(decoded) <= bound


def test_a_long_file_is_searched_for_its_loudest_window_in_evenly_spaced_stretches(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rate, seconds = 8000, 1200
    monkeypatch.setattr(audio_io, "LOUDEST_SCAN_SAMPLES", 32 * rate)  # 4 stretches of 8 s
    monkeypatch.setattr(audio_io, "LOUDEST_STRETCHES", 4)
    quiet = 0.01 * np.random.default_rng(0).standard_normal(seconds * rate)
    burst = seconds - 3.0  # in the last stretch, which ends at the file's end
    quiet[round(burst * rate) : round((burst + 0.5) * rate)] *= 50
    sf.write(tmp_path / "long.wav", quiet.astype(np.float32), rate, subtype="PCM_16")
    bound = 8 * BLOCK_VALUES  # read in blocks of 33 s: the stretches, end and window
    decoded = count_decoded(monkeypatch, bound)
    window = read_audio_window(tmp_path / "long.wav", RATE, 2.0, "loudest")
    assert window.offset <= burst and burst + 0.5 <= window.offset + 2.0
    assert window.duration == seconds
    assert sum(decoded) <= bound < seconds * rate


@pytest.mark.parametrize("crop", CROPS)
def test_a_stream_without_a_length_is_refused_past_the_decode_limit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, crop: str
) -> None:
    """A live Matroska declares no duration: finding its length or middle decodes all of it."""
    path = write_live_matroska(tmp_path / "live.mka", 120, 8000)
    assert read_audio_window(path, RATE, 1.0, crop).duration == 120
    monkeypatch.setattr(audio_io, "WINDOW_DECODE_LIMIT", 60 * 8000)
    with pytest.raises(AudioDecodeError, match=r"too costly to read: .* more than 480000 samples"):
        read_audio_window(path, RATE, 1.0, crop)


def test_a_header_declaring_an_absurd_sample_rate_is_refused(tmp_path: Path) -> None:
    sf.write(tmp_path / "fast.wav", np.zeros(4000, np.float32), 4_000_000)
    for read in (lambda p: read_audio(p, RATE), lambda p: read_audio_window(p, RATE, 1.0)):
        with pytest.raises(AudioDecodeError, match="declares 4000000 Hz, above the 1000000 Hz"):
            read(tmp_path / "fast.wav")


@pytest.mark.parametrize(("rate", "channels"), INPUTS, ids=[f"{r}Hz-{c}ch" for r, c in INPUTS])
def test_a_random_training_window_is_a_slice_of_the_full_read(
    tmp_path: Path, tonal, rate: int, channels: int
) -> None:
    path = write(tmp_path / "a.flac", tonal(7.3, rate, channels, 5.0), rate, None, None)
    full = read_audio(path, RATE)
    offsets = set()
    for seed in range(4):
        window = read_random_window(path, RATE, 2.0, torch.Generator().manual_seed(seed))
        torch.testing.assert_close(
            window.waveform, expected_slice(full, window, 2.0), atol=1e-5, rtol=0
        )
        offsets.add(window.offset)
        assert 0 <= window.offset <= window.duration - 2.0
    assert len(offsets) > 1  # random, and seeded: the same seed gives the same window
    again = read_random_window(path, RATE, 2.0, torch.Generator().manual_seed(3))
    assert again.offset == window.offset


def test_a_random_window_of_a_long_file_decodes_only_itself(
    ten_minutes: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    decoded = count_decoded(monkeypatch, ceiling=6 * BLOCK_VALUES)  # of 28.8 M samples
    window = read_random_window(ten_minutes, RATE, 10.0, torch.Generator().manual_seed(0))
    assert window.waveform.shape == (10 * RATE,) and window.duration == pytest.approx(600)
    assert 0 < sum(decoded) and window.offset > 0
