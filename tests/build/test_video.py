"""Video decoding on fixture mp4s whose frame colours encode the frame index."""

from __future__ import annotations

import math
from pathlib import Path

import av
import numpy as np
import pytest
import soundfile as sf
import torch

from a2i.build.video import (
    VideoDecodeError,
    VideoNotFoundError,
    decode_video,
    probe_video,
)
from a2i.errors import A2IError, ConfigError
from a2i.synth.video import encode_video

RATE = 16000
STEP = 4  # grey levels between consecutive frames


def indexed_frames(count: int, height: int = 32, width: int = 32) -> torch.Tensor:
    """Flat grey frames, frame ``i`` at level ``16 + STEP * i``."""
    levels = 16 + STEP * torch.arange(count, dtype=torch.int64)
    return levels.view(-1, 1, 1, 1).expand(count, height, width, 3).to(torch.uint8).clone()


def frame_indices(frames: torch.Tensor) -> list[int]:
    return [round((float(f.float().mean()) - 16) / STEP) for f in frames]


def sine(seconds: float, frequency: float = 440.0) -> torch.Tensor:
    t = torch.arange(round(seconds * RATE), dtype=torch.float64) / RATE
    return (0.3 * torch.sin(2 * math.pi * frequency * t)).float()


@pytest.fixture(scope="module")
def clip25(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """2 s at 25 fps (frames 0..49) with a 440 Hz sine."""
    path = tmp_path_factory.mktemp("video") / "clip25.mp4"
    return encode_video(path, indexed_frames(50), fps=25, audio=sine(2.0))


def test_audio_round_trip_keeps_length_and_pitch(clip25: Path) -> None:
    for rate in (RATE, 8000):
        audio = decode_video(clip25, sample_rate=rate).audio
        assert audio is not None and audio.dtype == torch.float32 and audio.ndim == 1
        assert abs(audio.shape[0] - 2 * rate) <= rate // 100
        spectrum = np.abs(np.fft.rfft(audio.numpy()))
        peak = np.fft.rfftfreq(audio.shape[0], 1 / rate)[spectrum.argmax()]
        assert peak == pytest.approx(440, abs=2)


def test_one_fps_from_25_fps_picks_the_frames_on_screen(clip25: Path) -> None:
    video = decode_video(clip25, frame_rate=1.0)
    assert frame_indices(video.frames) == [0, 25]
    assert video.times.dtype == torch.float64 and video.times.tolist() == pytest.approx([0, 1])
    assert video.frames.dtype == torch.uint8 and video.frames.shape == (2, 32, 32, 3)
    quarter = decode_video(clip25, frame_rate=4.0)
    assert frame_indices(quarter.frames) == [0, 6, 12, 18, 25, 31, 37, 43]
    info = video.info
    assert info.frame_rate == pytest.approx(25) and not info.variable_frame_rate
    assert info.duration == pytest.approx(2.0, abs=0.05) and info.has_audio
    assert (info.width, info.height, info.rotation) == (32, 32, 0)
    assert probe_video(clip25) == info


def test_frame_rate_below_the_request_keeps_distinct_frames(tmp_path: Path) -> None:
    path = encode_video(tmp_path / "slow.mp4", indexed_frames(10), fps=5)
    video = decode_video(path, frame_rate=10.0)
    assert frame_indices(video.frames) == list(range(10))
    assert video.times.tolist() == pytest.approx([i / 5 for i in range(10)])
    assert bool((video.times.diff() > 0).all())


def test_variable_frame_rate_picks_by_presentation_time(tmp_path: Path) -> None:
    times = [0.0, 0.5, 0.7, 2.0, 3.1]
    path = encode_video(tmp_path / "vfr.mp4", indexed_frames(5), fps=1, times=times)
    video = decode_video(path, frame_rate=1.0)
    # Grid 0, 1, 2, 3, 4 s shows frames 0, 2 (from 0.7 s), 3 (from 2.0 s), 3 again, 4.
    assert frame_indices(video.frames) == [0, 2, 3, 4]
    assert video.times.tolist() == pytest.approx([0.0, 0.7, 2.0, 3.1], abs=1e-4)
    assert video.info.variable_frame_rate
    assert video.info.duration == pytest.approx(4.1, abs=0.01)


@pytest.mark.parametrize("rotation", [90, 180, 270])
def test_rotated_video_comes_out_upright(tmp_path: Path, rotation: int) -> None:
    upright = torch.full((32, 48, 3), 128, dtype=torch.uint8)
    upright[:8, :8] = torch.tensor([255, 0, 0], dtype=torch.uint8)  # red marker top left
    # Stored turned counter-clockwise by `rotation`; a player turns it back clockwise.
    stored = torch.rot90(upright, k=rotation // 90, dims=(0, 1))
    path = tmp_path / f"rot{rotation}.mp4"
    encode_video(path, stored[None].repeat(4, 1, 1, 1), fps=4, rotation=rotation)
    info = probe_video(path)
    assert (info.rotation, info.width, info.height) == (rotation, 48, 32)
    frame = decode_video(path).frames[0]
    assert frame.shape == (32, 48, 3)
    corner = frame[:8, :8].float().mean(dim=(0, 1))
    assert corner[0] > 180 and corner[1] < 80
    for far in (frame[:8, -8:], frame[-8:, :8], frame[-8:, -8:]):
        assert (far.float().mean(dim=(0, 1)) - 128).abs().max() < 20


def test_no_audio_track_gives_none(tmp_path: Path) -> None:
    path = encode_video(tmp_path / "silent.mp4", indexed_frames(4), fps=4)
    video = decode_video(path)
    assert video.audio is None and not video.info.has_audio
    assert frame_indices(video.frames) == [0]  # 1 fps over a 1 s clip


def test_corrupt_truncated_and_missing_files_raise(clip25: Path, tmp_path: Path) -> None:
    half = tmp_path / "half.mp4"
    half.write_bytes(clip25.read_bytes()[: clip25.stat().st_size // 2])
    text = tmp_path / "notes.mp4"
    text.write_text("this is not a video\n")
    sound = tmp_path / "sound.wav"
    sf.write(sound, sine(0.5).numpy(), RATE)
    for path, reason in (
        (half, "truncated or damaged"),
        (text, "not a video"),
        (sound, "no video stream"),
    ):
        for read in (probe_video, decode_video):
            with pytest.raises(VideoDecodeError, match=reason) as caught:
                read(path)
            assert path.name in str(caught.value) and isinstance(caught.value, A2IError)
    with pytest.raises(VideoNotFoundError, match=r"gone\.mp4") as missing:
        decode_video(tmp_path / "gone.mp4")
    assert isinstance(missing.value, FileNotFoundError)


def test_truncation_found_while_decoding(clip25: Path, tmp_path: Path) -> None:
    """A moov-first (faststart) file cut short opens, then fails while decoding."""
    faststart = tmp_path / "faststart.mp4"
    with av.open(str(clip25)) as source:
        with av.open(str(faststart), "w", format="mp4", options={"movflags": "+faststart"}) as out:
            streams = {s.index: out.add_stream_from_template(s) for s in source.streams}
            for packet in source.demux():
                if packet.dts is not None:
                    packet.stream = streams[packet.stream.index]
                    out.mux(packet)
    assert len(decode_video(faststart).frames) == 2
    data = faststart.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) // 2])  # inside a packet: FFmpeg fails mid-decode
    with pytest.raises(VideoDecodeError, match=r"cut\.mp4.*corrupt or truncated stream"):
        decode_video(cut)
    with av.open(str(faststart)) as source:
        second = next(
            p.pos for p in source.demux(video=0) if p.pts is not None and p.pts * p.time_base >= 1
        )
    clean = tmp_path / "clean_cut.mp4"
    clean.write_bytes(data[:second])  # on a packet boundary: decoding just stops early
    with pytest.raises(VideoDecodeError, match=r"clean_cut\.mp4.*frames stop at 1\.00 s"):
        decode_video(clean)


def remux_video(source: Path, target: Path, container_format: str) -> Path:
    """``source``'s video packets in another container, unchanged."""
    with av.open(str(source)) as inp, av.open(str(target), "w", format=container_format) as out:
        streams = {s.index: out.add_stream_from_template(s) for s in inp.streams.video}
        for packet in inp.demux(video=0):
            if packet.dts is not None:
                packet.stream = streams[packet.stream.index]
                out.mux(packet)
    return target


def test_matroska_declares_only_the_file_length(clip25: Path, tmp_path: Path) -> None:
    """mkv and webm streams carry no duration: the file's stands in for the truncation check."""
    mkv = remux_video(clip25, tmp_path / "clip25.mkv", "matroska")
    assert av.open(str(mkv)).streams.video[0].duration is None
    for window in ({}, {"duration": 5.0}):
        assert frame_indices(decode_video(mkv, **window).frames) == [0, 25]
    data = mkv.read_bytes()
    with av.open(str(mkv)) as source:
        second = next(
            p.pos for p in source.demux(video=0) if p.pts is not None and p.pts * p.time_base >= 1
        )
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(data[:second])
    with pytest.raises(VideoDecodeError, match=r"cut\.mkv.*frames stop at 1\.00 s of 2\.\d+ s"):
        decode_video(cut)


def test_tags_that_are_not_utf8_do_not_make_a_video_unreadable(
    clip25: Path, tmp_path: Path
) -> None:
    """Old tools write Latin-1 titles; FFmpeg passes the bytes on and strict UTF-8 refused them."""
    tagged = tmp_path / "tagged.mkv"
    with av.open(str(clip25)) as inp, av.open(str(tagged), "w", format="matroska") as out:
        out.metadata["title"] = "caf\u00e9 TITLE"
        stream = out.add_stream_from_template(inp.streams.video[0])
        for packet in inp.demux(video=0):
            if packet.dts is not None:
                packet.stream = stream
                out.mux(packet)
    data = tagged.read_bytes()
    tagged.write_bytes(data.replace("caf\u00e9".encode(), b"caf\xe9\xff"))  # same length
    assert frame_indices(decode_video(tagged).frames) == [0, 25]
    assert probe_video(tagged).duration == pytest.approx(2.0, abs=0.1)


def test_window_start_and_duration(clip25: Path) -> None:
    video = decode_video(clip25, start=0.4, duration=1.0, frame_rate=2.0)
    assert frame_indices(video.frames) == [10, 22]  # on screen at 0.4 s and 0.9 s
    assert video.times.tolist() == pytest.approx([0.0, 0.48])
    assert video.audio is not None and video.audio.shape[0] == RATE
    expected = sine(2.0)[round(0.4 * RATE) : round(1.4 * RATE)]
    assert np.corrcoef(video.audio.numpy(), expected.numpy())[0, 1] > 0.95
    threaded = decode_video(clip25, start=0.4, duration=1.0, frame_rate=2.0, threads=4)
    assert torch.equal(threaded.frames, video.frames) and threaded.audio is not None
    assert torch.equal(threaded.audio, video.audio)
    longer = decode_video(clip25, start=1.0, duration=5.0, frame_rate=1.0)
    assert frame_indices(longer.frames) == [25]  # what exists: the clip ends at 2 s
    assert longer.audio is not None and abs(longer.audio.shape[0] - RATE) <= 160


def test_max_side_downscales_keeping_the_aspect(tmp_path: Path) -> None:
    path = encode_video(tmp_path / "wide.mp4", indexed_frames(4, 48, 64), fps=4)
    video = decode_video(path, max_side=32)
    assert video.frames.shape == (1, 24, 32, 3) and frame_indices(video.frames) == [0]
    assert decode_video(path, max_side=100).frames.shape == (1, 48, 64, 3)
    for bad in ({"max_side": 0}, {"frame_rate": 0.0}, {"start": -1.0}, {"duration": 0.0}):
        with pytest.raises(ConfigError, match=r"wide\.mp4"):
            decode_video(path, **bad)


def test_encode_video_refuses_to_overwrite(tmp_path: Path) -> None:
    path = encode_video(tmp_path / "a.mp4", indexed_frames(2), fps=2)
    with pytest.raises(FileExistsError, match="overwrite"):
        encode_video(path, indexed_frames(2), fps=2)
    encode_video(path, torch.rand(3, 3, 16, 16), fps=2, overwrite=True)
    assert decode_video(path, frame_rate=2).frames.shape == (3, 16, 16, 3)  # 1.5 s
    assert not list(tmp_path.glob(".*tmp"))


@pytest.mark.parametrize("frame_rate", [1.0, 3.0, 10.0])
def test_skipping_unneeded_frames_changes_nothing(
    clip25: Path, monkeypatch: pytest.MonkeyPatch, frame_rate: float
) -> None:
    from a2i.build import video

    skips = []
    before = video._UnneededFrameSkipper.before

    def spy(self: video._UnneededFrameSkipper, packet: av.Packet) -> None:
        before(self, packet)
        skips.append(self.skipping)

    monkeypatch.setattr(video._UnneededFrameSkipper, "before", spy)
    skipped = decode_video(clip25, frame_rate=frame_rate, start=0.3)
    monkeypatch.setattr(video._UnneededFrameSkipper, "create", classmethod(lambda *_: None))
    full = decode_video(clip25, frame_rate=frame_rate, start=0.3)
    assert torch.equal(skipped.frames, full.frames) and torch.equal(skipped.times, full.times)
    assert any(skips)  # B-frames far from every grid time were not decoded
