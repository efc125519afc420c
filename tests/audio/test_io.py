from __future__ import annotations

import os
from pathlib import Path

import av
import numpy as np
import pytest
import soundfile as sf
import torch

from a2i.audio.formats import AUDIO_EXTENSIONS
from a2i.audio.io import (
    fit_length,
    read_audio,
    read_audio_window,
    write_audio,
)
from a2i.errors import AudioDecodeError, ConfigError
from tests.audio.conftest import mux_audio

RATE = 16000
SECONDS = 0.5
AAC_SLACK = 2 * 1024  # AAC returns its priming frame and pads the last frame to 1024 samples


def tone(
    seconds: float = SECONDS, rate: int = RATE, frequency: float = 440.0, amplitude: float = 0.3
) -> np.ndarray:
    t = np.arange(round(seconds * rate)) / rate
    return (amplitude * np.sin(2 * np.pi * frequency * t)).astype(np.float32)


def encode_with_pyav(
    path: Path,
    container_format: str,
    audio_codec: str | None,
    *,
    video_codec: str | None = None,
    rate: int = RATE,
) -> np.ndarray:
    """Encode the test tone (and a few tiny video frames) with FFmpeg; return the tone."""
    signal = tone(SECONDS, rate)
    with av.open(str(path), "w", format=container_format) as container:
        video = None
        if video_codec:
            video = container.add_stream(video_codec, rate=10)
            video.width, video.height, video.pix_fmt = 32, 32, "yuv420p"
        audio = None
        if audio_codec:
            audio = container.add_stream(audio_codec, rate=rate)
            audio.layout = "mono"
        if video is not None:
            for shade in range(3):
                pixels = np.full((32, 32, 3), shade * 60, np.uint8)
                frame = av.VideoFrame.from_ndarray(pixels, format="rgb24")
                for packet in video.encode(frame):
                    container.mux(packet)
            for packet in video.encode(None):
                container.mux(packet)
        if audio is not None:
            mux_audio(container, audio, signal[None], rate)
    return signal


def dominant_frequency(waveform: torch.Tensor, rate: int) -> float:
    spectrum = torch.fft.rfft(waveform).abs()
    return float(torch.fft.rfftfreq(waveform.shape[-1], 1 / rate)[spectrum.argmax()])


def rms(waveform: torch.Tensor | np.ndarray) -> float:
    return float(torch.as_tensor(waveform).pow(2).mean().sqrt())


def test_extensions_are_what_the_decoders_read_and_nothing_else() -> None:
    assert all(ext.startswith(".") and ext == ext.lower() for ext in AUDIO_EXTENSIONS)
    common = {".wav", ".flac", ".ogg", ".mp3", ".m4a", ".mp4", ".mkv", ".webm", ".aac"}
    foreign = {".opus", ".oga", ".aiff", ".aif", ".mov", ".mka", ".wma", ".caf", ".avi", ".wv"}
    assert common | foreign <= set(AUDIO_EXTENSIONS)
    images_text_subtitles = {".txt", ".json", ".csv", ".jpg", ".png", ".gif", ".heic", ".srt"}
    headerless_or_playlists = {".raw", ".sw", ".al", ".g722", ".m3u8", ".mpd", ".npy", ".pdf"}
    assert not (images_text_subtitles | headerless_or_playlists) & set(AUDIO_EXTENSIONS)


@pytest.mark.parametrize("suffix", [".wav", ".flac"])
def test_lossless_soundfile_formats_round_trip(tmp_path: Path, suffix: str) -> None:
    signal = tone(SECONDS)
    sf.write(tmp_path / f"a{suffix}", signal, RATE)
    waveform = read_audio(tmp_path / f"a{suffix}", RATE)
    assert waveform.dtype == torch.float32 and waveform.shape == (len(signal),)
    torch.testing.assert_close(waveform, torch.from_numpy(signal), atol=1e-4, rtol=0)


@pytest.mark.parametrize(
    ("suffix", "file_format", "subtype"), [(".aiff", "AIFF", "PCM_16"), (".oga", "OGG", "VORBIS")]
)
def test_libsndfile_formats_under_their_other_suffixes(
    tmp_path: Path, suffix: str, file_format: str, subtype: str
) -> None:
    signal = tone(SECONDS)
    sf.write(tmp_path / f"a{suffix}", signal, RATE, format=file_format, subtype=subtype)
    waveform = read_audio(tmp_path / f"a{suffix}", RATE)
    assert waveform.shape == (len(signal),)
    assert dominant_frequency(waveform, RATE) == pytest.approx(440, abs=4)


def test_ogg_vorbis(tmp_path: Path) -> None:
    signal = tone(SECONDS)
    sf.write(tmp_path / "a.ogg", signal, RATE)
    waveform = read_audio(tmp_path / "a.ogg", RATE)
    assert waveform.shape == (len(signal),)
    assert dominant_frequency(waveform, RATE) == pytest.approx(440, abs=4)
    assert rms(waveform) == pytest.approx(rms(signal), rel=0.1)


# (suffix, container, audio codec, video codec, lossless, length tolerance in samples)
PYAV_CASES = [
    (".mp3", "mp3", "libmp3lame", None, False, 0),
    (".m4a", "mp4", "aac", None, False, AAC_SLACK),
    (".aac", "adts", "aac", None, False, AAC_SLACK),
    (".mp4", "mp4", "aac", "h264", False, AAC_SLACK),
    (".mkv", "matroska", "pcm_s16le", "mpeg4", True, 0),
    (".mov", "mov", "pcm_s16le", "mpeg4", True, 0),
    (".aif", "aiff", "pcm_s16be", None, True, 0),
    (".opus", "opus", "libopus", None, False, 960),
]


@pytest.mark.parametrize(("suffix", "fmt", "acodec", "vcodec", "lossless", "slack"), PYAV_CASES)
def test_pyav_formats(
    tmp_path: Path,
    suffix: str,
    fmt: str,
    acodec: str,
    vcodec: str | None,
    lossless: bool,
    slack: int,
) -> None:
    path = tmp_path / f"clip{suffix}"
    signal = encode_with_pyav(path, fmt, acodec, video_codec=vcodec)
    waveform = read_audio(path, RATE)
    assert waveform.dtype == torch.float32 and waveform.ndim == 1
    assert len(signal) <= waveform.shape[0] <= len(signal) + slack
    if lossless:
        torch.testing.assert_close(waveform, torch.from_numpy(signal), atol=1e-4, rtol=0)
    else:
        assert dominant_frequency(waveform, RATE) == pytest.approx(440, abs=4)
        assert rms(waveform) == pytest.approx(rms(signal), rel=0.15)


def test_webm_opus_track_is_resampled(tmp_path: Path) -> None:
    path = tmp_path / "clip.webm"
    encode_with_pyav(path, "webm", "libopus", video_codec="libvpx", rate=48000)
    waveform = read_audio(path, RATE)
    assert abs(waveform.shape[0] - SECONDS * RATE) <= 0.02 * RATE  # opus pre-skip granularity
    assert dominant_frequency(waveform, RATE) == pytest.approx(440, abs=4)


def test_stereo_is_averaged_and_resampled(tmp_path: Path) -> None:
    left, right = tone(1.0, 22050), tone(1.0, 22050, frequency=1000.0, amplitude=0.1)
    sf.write(tmp_path / "stereo.wav", np.stack([left, right], axis=1), 22050, subtype="FLOAT")
    native = read_audio(tmp_path / "stereo.wav", 22050)
    torch.testing.assert_close(native, torch.from_numpy((left + right) / 2))
    resampled = read_audio(tmp_path / "stereo.wav", RATE)
    assert resampled.shape == (RATE,)
    assert dominant_frequency(resampled, RATE) == pytest.approx(440, abs=2)


def test_mislabelled_file_falls_back_to_ffmpeg(tmp_path: Path) -> None:
    path = tmp_path / "actually_aac.wav"
    encode_with_pyav(path, "adts", "aac")
    assert dominant_frequency(read_audio(path, RATE), RATE) == pytest.approx(440, abs=4)


def _truncated_wav(path: Path) -> None:
    sf.write(path, tone(SECONDS), RATE)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _nan_wav(path: Path) -> None:
    signal = tone(SECONDS)
    signal[10] = np.nan
    sf.write(path, signal, RATE, subtype="FLOAT")


def _inf_wav(path: Path) -> None:
    signal = tone(SECONDS)
    signal[-1] = np.inf
    sf.write(path, signal, RATE, subtype="FLOAT")


def _truncated_flac(path: Path) -> None:
    sf.write(path, tone(SECONDS), RATE)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _truncated_ogg(path: Path) -> None:
    sf.write(path, tone(SECONDS), RATE)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _random_bytes(path: Path) -> None:
    path.write_bytes(np.random.default_rng(0).bytes(1000))


def _truncated_mkv(path: Path) -> None:
    encode_with_pyav(path, "matroska", "pcm_s16le", video_codec="mpeg4")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


BAD_FILES = [
    ("missing.wav", lambda path: None, "does not exist"),
    ("empty.wav", lambda path: path.touch(), "empty file (0 bytes)"),
    ("truncated.wav", _truncated_wav, "truncated"),
    ("truncated.flac", _truncated_flac, "truncated"),
    ("truncated.mkv", _truncated_mkv, "truncated"),
    ("truncated.ogg", _truncated_ogg, "truncated"),
    ("random.flac", _random_bytes, "not an audio file"),  # FFmpeg finds a stream it cannot decode
    ("notes.wav", lambda path: path.write_text("not audio at all\n" * 20), "not an audio file"),
    ("zero.wav", lambda path: sf.write(path, np.zeros(0, np.float32), RATE), "zero audio samples"),
    ("nan.wav", _nan_wav, "NaN or infinite"),
    ("inf.wav", _inf_wav, "NaN or infinite"),
    (
        "video_only.mp4",
        lambda path: encode_with_pyav(path, "mp4", None, video_codec="h264"),
        "no audio stream",
    ),
]


READERS = {
    "read_audio": read_audio,
    # a window longer than the files: what read_audio checks, the window reader checks too
    **{
        f"window-{crop}": lambda path, rate, crop=crop: read_audio_window(path, rate, 1.0, crop)
        for crop in ("start", "center", "loudest")
    },
}


@pytest.mark.parametrize("reader", READERS.values(), ids=READERS.keys())
@pytest.mark.parametrize(("name", "make", "reason"), BAD_FILES, ids=[b[0] for b in BAD_FILES])
def test_bad_files_raise_with_path_and_reason(
    tmp_path: Path, name: str, make, reason: str, reader
) -> None:
    path = tmp_path / name
    make(path)
    with pytest.raises(AudioDecodeError) as caught:
        reader(path, RATE)
    assert caught.value.path == str(path)
    assert reason in caught.value.reason
    assert str(path) in str(caught.value)


def test_directory_is_not_audio(tmp_path: Path) -> None:
    with pytest.raises(AudioDecodeError, match="not a regular file"):
        read_audio(tmp_path, RATE)


def test_fit_length_pads_crops_and_keeps() -> None:
    waveform = torch.arange(10, dtype=torch.float32)
    torch.testing.assert_close(
        fit_length(waveform, 13, random_crop=True), torch.cat([waveform, torch.zeros(3)])
    )
    assert fit_length(waveform, 10, random_crop=True) is waveform
    torch.testing.assert_close(fit_length(waveform, 4, random_crop=False), waveform[:4])
    starts = {
        int(
            fit_length(waveform, 4, random_crop=True, generator=torch.Generator().manual_seed(s))[0]
        )
        for s in range(30)
    }
    assert starts <= set(range(7)) and len(starts) > 1
    seeded = [
        fit_length(waveform, 4, random_crop=True, generator=torch.Generator().manual_seed(3))
        for _ in range(2)
    ]
    torch.testing.assert_close(seeded[0], seeded[1])
    with pytest.raises(ConfigError):
        fit_length(waveform, 0, random_crop=False)


def test_write_audio_round_trip_atomic_and_no_overwrite(tmp_path: Path) -> None:
    waveform = torch.from_numpy(tone(SECONDS))
    path = write_audio(tmp_path / "out" / "a.wav", waveform, RATE, subtype="FLOAT")
    torch.testing.assert_close(read_audio(path, RATE), waveform)
    assert [p.name for p in path.parent.iterdir()] == ["a.wav"]  # no temp file left behind
    with pytest.raises(FileExistsError, match="overwrite=True"):
        write_audio(path, waveform, RATE)
    write_audio(path, waveform * 0.5, RATE, overwrite=True)
    assert rms(read_audio(path, RATE)) == pytest.approx(rms(waveform) * 0.5, rel=1e-3)
    flac = write_audio(tmp_path / "a.flac", waveform, RATE)
    torch.testing.assert_close(read_audio(flac, RATE), waveform, atol=1e-4, rtol=0)


def test_write_audio_refuses_clipping_nan_and_unknown_formats(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="clip"):
        write_audio(tmp_path / "loud.wav", torch.tensor([0.5, 1.5]), RATE)
    with pytest.raises(ValueError, match="NaN"):
        write_audio(tmp_path / "nan.wav", torch.tensor([0.5, float("nan")]), RATE)
    with pytest.raises(ConfigError, match=r"\.wav and \.flac"):
        write_audio(tmp_path / "a.mp3", torch.zeros(4), RATE)
    assert list(tmp_path.iterdir()) == []


def _link_loop(path: Path) -> None:
    other = path.with_name("other.wav")
    path.symlink_to(other.name)
    other.symlink_to(path.name)


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (os.mkfifo, "not a regular file: a named pipe (FIFO)"),
        (lambda path: path.symlink_to("/dev/zero"), "not a regular file: a character device"),
        (lambda path: path.mkdir(), "not a regular file: a directory"),
        (_link_loop, "symbolic link loop"),
    ],
    ids=["fifo", "device", "directory", "link-loop"],
)
def test_what_is_not_a_file_is_named_for_what_it_is(tmp_path: Path, make, reason: str) -> None:
    """A FIFO or a device was "not a regular file (is it a directory?)", and a link loop a
    "broken link to" a file that exists."""
    path = tmp_path / "input.wav"
    make(path)
    for reader in READERS.values():
        with pytest.raises(AudioDecodeError) as caught:
            reader(path, RATE)
        assert caught.value.reason.startswith(reason)


@pytest.mark.parametrize("cut", ["moov", "mdat"])
def test_a_video_cut_short_is_truncated_not_silent_or_foreign(tmp_path: Path, cut: str) -> None:
    """Cut inside its trailing moov box after the video track, an MP4 read as one "without an
    audio stream"; cut inside mdat, as "not an audio file"."""
    path = tmp_path / "clip.mp4"
    encode_with_pyav(path, "mp4", "aac", video_codec="mpeg4")
    data = path.read_bytes()
    moov = data.rindex(b"moov") - 4
    audio_track = data.index(b"soun", moov)  # the audio track's handler, after the video's
    path.write_bytes(data[: audio_track - 8] if cut == "moov" else data[: moov // 2])
    for reader in READERS.values():
        with pytest.raises(AudioDecodeError) as caught:
            reader(path, RATE)
        assert caught.value.reason.startswith(f"truncated: its '{cut}' box declares")
