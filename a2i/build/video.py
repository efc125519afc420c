"""Decode raw dataset videos (VGGSound, VEGAS, CelebV-HQ mp4s) into audio and sampled frames.

Frames are picked by presentation time, not index, so variable frame rate files give what a
viewer saw; the display matrix turns phone videos upright; only chosen frames become RGB, and
non-reference frames (most B-frames) that no grid time can choose are not decoded at all. Broken
files raise :class:`VideoDecodeError` naming the file, also when FFmpeg fails mid-decode.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
import torch
from torch import Tensor

from a2i.audio.decoders import MIN_DECODED_FRACTION
from a2i.errors import A2IError, ConfigError

EPSILON = 1e-6
"""Seconds of slack when comparing frame and grid times (float rounding of timestamps)."""


class VideoDecodeError(A2IError, ValueError):
    """A video file cannot be decoded: corrupt, truncated, not a video, or no video stream."""

    def __init__(self, path: str | Path, reason: str) -> None:
        self.path, self.reason = str(path), reason
        super().__init__(f"cannot read video file '{self.path}': {reason}")


class VideoNotFoundError(A2IError, FileNotFoundError):
    """A video file listed by a dataset does not exist."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        super().__init__(f"video file '{self.path}' does not exist")


@dataclass(frozen=True)
class VideoInfo:
    """What the container says about a video.

    Attributes:
        path: The file.
        duration: Length in seconds (longest stream).
        frame_rate: Average frames per second.
        variable_frame_rate: Frame intervals differ (frames are picked by time, not index).
        rotation: Degrees clockwise to turn stored frames upright (0, 90, 180 or 270).
        has_audio: The file has an audio track.
        width: Displayed width (after rotation).
        height: Displayed height (after rotation).
    """

    path: str
    duration: float
    frame_rate: float
    variable_frame_rate: bool
    rotation: int
    has_audio: bool
    width: int
    height: int


@dataclass
class DecodedVideo:
    """One decoded window.

    Attributes:
        audio: Float32 mono ``(T,)`` at ``sample_rate``; None when the file has no audio track.
        frames: Upright RGB ``(N, H, W, 3)`` uint8, each distinct frame once.
        times: Float64 ``(N,)`` presentation times in seconds from the window start (the first
            can be negative: the frame on screen at the start appeared before it).
        info: The container's description.
        sample_rate: Rate of ``audio`` in Hz.
    """

    audio: Tensor | None
    frames: Tensor
    times: Tensor
    info: VideoInfo
    sample_rate: int


def probe_video(path: str | Path) -> VideoInfo:
    """Container metadata and the first frame's rotation; raises as :func:`decode_video`."""
    path = Path(path)
    with _open(path) as container:
        return _probe(path, container)[0]


def decode_video(
    path: str | Path,
    *,
    sample_rate: int = 16000,
    frame_rate: float = 1.0,
    start: float = 0.0,
    duration: float | None = None,
    max_side: int | None = None,
    threads: int | None = None,
) -> DecodedVideo:
    """Decode ``[start, start + duration)`` of a video once: mono audio and sampled frames.

    Frames are sampled at ``start + k / frame_rate``: each grid time takes the frame on screen
    then (the last one whose presentation time is <= it), and a frame hit by several grid times
    (a video slower than ``frame_rate``) is kept once, so ``N`` can be below
    ``duration * frame_rate``. A video shorter than the window returns what exists.

    Args:
        path: Video file.
        sample_rate: Rate of the returned audio in Hz.
        frame_rate: Grid times per second.
        start: Window start in seconds from the file's start.
        duration: Window length in seconds; None reads to the end.
        max_side: Downscale frames (keeping the aspect) so the longer side is at most this.
        threads: Decoder threads; None uses ``torch.get_num_threads()``, so worker processes
            that set one torch thread also decode on one thread.

    Raises:
        VideoNotFoundError: The file does not exist.
        VideoDecodeError: The file is corrupt, truncated, not a video or has no video stream.
    """
    positive = [sample_rate, frame_rate, *(v for v in (duration, max_side) if v is not None)]
    if not (all(v > 0 for v in positive) and start >= 0):
        raise ConfigError(
            f"decode_video('{path}'): sample_rate, frame_rate, duration and max_side must be > 0, "
            f"start >= 0 (got {sample_rate}, {frame_rate}, {duration}, {max_side}, {start})"
        )
    path = Path(path)
    with _open(path) as container:
        count = max(1, torch.get_num_threads() if threads is None else threads)
        info, video = _probe(path, container, ("AUTO" if count > 1 else "SLICE", count))
        origin = (container.start_time or 0) / av.time_base
        end = math.inf if duration is None else start + duration
        picker = _FramePicker(start, frame_rate, end, max_side)
        skipper = _UnneededFrameSkipper.create(video, info, origin, start, frame_rate)
        sound = container.streams.audio[0] if info.has_audio else None
        audio = _AudioWindow(sound, origin + start, origin + end, sample_rate) if sound else None
        video_done, audio_done = False, audio is None
        try:
            container.seek(int((origin + start) / video.time_base), stream=video)
            for packet in container.demux([s for s in (video, sound) if s is not None]):
                if packet.stream is video and not video_done:
                    if skipper is not None:
                        skipper.before(packet)
                    for frame in packet.decode():
                        time = None if frame.time is None else frame.time - origin
                        video_done = video_done or not picker.push(time, frame)
                elif packet.stream is sound and audio is not None and not audio_done:
                    audio_done = not audio.push(packet.decode())
                if video_done and audio_done:
                    break
            if audio is not None and not audio_done:
                audio.push(None)
        except (av.error.FFmpegError, OSError) as error:
            raise VideoDecodeError(path, f"corrupt or truncated stream ({error})") from None
        declared = _declared_end(video, container) - origin
    if not video_done:  # the stream ended: grid times up to the last frame's end show it
        picker.push(picker.covered, None)
        expected = min(end, declared) - start  # infinite: the file declares no length
        if 0 < expected < math.inf and picker.covered - start < MIN_DECODED_FRACTION * expected:
            reason = f"truncated: frames stop at {picker.covered:.2f} s of {declared:.2f} s"
            raise VideoDecodeError(path, reason)
    frames = torch.from_numpy(np.stack(picker.frames) if picker.frames else np.zeros((0, 0, 0, 3)))
    # Turn clockwise to upright: torch.rot90 with k > 0 turns counter-clockwise (rows to columns).
    frames = torch.rot90(frames.to(torch.uint8), k=-(info.rotation // 90), dims=(1, 2))
    times = torch.tensor(picker.times, dtype=torch.float64)
    sound_out = None if audio is None else audio.result()
    return DecodedVideo(sound_out, frames.contiguous(), times, info, sample_rate)


class _FramePicker:
    """Resolves each grid time to the frame on screen, converting each chosen frame once."""

    def __init__(self, start: float, rate: float, end: float, max_side: int | None) -> None:
        self.start, self.rate, self.end, self.max_side = start, rate, end, max_side
        self.index, self.covered, self.size = 0, -math.inf, None
        self.previous: tuple[float, av.VideoFrame] | None = None
        self.frames, self.times = [], []  # chosen RGB arrays, their times from the window start

    def push(self, time: float | None, frame: av.VideoFrame | None) -> bool:
        """Take the next frame in display order (None: end of stream); False when done."""
        last = self.previous[0] if self.previous else None
        if time is None:  # no timestamp: assume it follows at the grid spacing
            time = (self.start if last is None else last) + 1 / self.rate
        if last is not None and time <= last:
            return True  # duplicate or out-of-order timestamp: the earlier frame stays
        while self.start + self.index / self.rate + EPSILON < min(time, self.end):
            self._choose(*(self.previous or (time, frame)))
            self.index += 1
        if frame is not None:
            self.previous = (time, frame)
            shown = float(frame.duration * frame.time_base) if frame.duration else 1 / self.rate
            self.covered = time + shown
        return time < self.end

    def _choose(self, time: float, frame: av.VideoFrame | None) -> None:
        if frame is None or (self.times and self.times[-1] == time - self.start):
            return
        if self.size is None:  # fixed by the first frame: all frames stack, even if it changes
            width, height = frame.width, frame.height
            if self.max_side and max(width, height) > self.max_side:
                scale = self.max_side / max(width, height)
                width, height = max(1, round(width * scale)), max(1, round(height * scale))
            self.size = (width, height)
        width, height = self.size
        self.frames.append(
            frame.to_ndarray(format="rgb24", width=width, height=height, interpolation="AREA")
        )
        self.times.append(time - self.start)


class _UnneededFrameSkipper:
    """Lets the decoder skip non-reference frames that no grid time can choose.

    A grid time ``g`` takes the last frame shown at or before it, so in a constant frame rate
    stream (frame interval ``Δ``) only the frame with ``g - Δ < t <= g`` is ever chosen. A
    non-reference frame (no other frame is predicted from it: most B-frames of H.264) whose
    time ``t`` has no grid time within ``[t - Δ/2, t + 3Δ/2]`` is therefore skipped by the
    decoder (FFmpeg's ``skip_frame = NONREF``) at no cost to the result: at 1 fps from 25 fps
    H.264 with B-frames that is about half the frames and a third of the decoding time
    (``benchmarks/prepare_throughput.py``). Variable frame rate streams, and packets without a
    timestamp, are decoded in full.
    """

    def __init__(self, video: av.video.VideoStream, origin: float, start: float, rate: float):
        self.context, self.time_base = video.codec_context, float(video.time_base)
        self.origin, self.start, self.rate = origin, start, rate
        self.interval = 1.0 / float(video.average_rate)
        self.skipping = False

    @classmethod
    def create(
        cls, video: av.video.VideoStream, info: VideoInfo, origin: float, start: float, rate: float
    ) -> _UnneededFrameSkipper | None:
        """A skipper for a constant frame rate stream; None when every frame must be decoded."""
        if info.variable_frame_rate or not video.average_rate or video.time_base is None:
            return None
        return cls(video, origin, start, rate)

    def before(self, packet: av.Packet) -> None:
        """Set the decoder's skipping for the frame in ``packet`` (before decoding it)."""
        skip = False
        if packet.pts is not None:
            time = packet.pts * self.time_base - self.origin - self.start
            duration = max(self.interval, (packet.duration or 0) * self.time_base)
            first = max(0, math.ceil((time - duration / 2) * self.rate - EPSILON))  # grid index
            skip = first / self.rate > time + 1.5 * duration
        if skip != self.skipping:
            self.context.skip_frame = "NONREF" if skip else "DEFAULT"
            self.skipping = skip


class _AudioWindow:
    """Resamples decoded audio and keeps the samples inside the window, placed by timestamp."""

    def __init__(self, stream: av.audio.AudioStream, start: float, end: float, rate: int) -> None:
        self.resampler = av.AudioResampler(format="fltp", rate=rate)  # keeps the channels
        end = min(end, _declared_end(stream))  # the declared end drops AAC's trailing padding
        self.position = round(start * rate)
        self.stop = round(end * rate) if end < math.inf else math.inf
        self.chunks: list[np.ndarray] = []

    def push(self, frames: list[av.AudioFrame] | None) -> bool:
        """Add decoded frames (None flushes the resampler); False once past the window."""
        for frame in frames if frames is not None else [None]:
            for out in self.resampler.resample(frame):
                at = self.position if out.pts is None else out.pts
                data = out.to_ndarray().mean(axis=0)  # channel mean, as read_audio
                gap_end = min(at, self.stop)
                if gap_end > self.position:  # audio missing inside the window: silence
                    self.chunks.append(np.zeros(gap_end - self.position, np.float32))
                    self.position = gap_end
                stop = min(len(data), self.stop - at)
                if stop > self.position - at:
                    self.chunks.append(data[self.position - at : stop])
                    self.position = at + stop
                if self.position >= self.stop:
                    return False
        return True

    def result(self) -> Tensor:
        return torch.from_numpy(np.concatenate([np.zeros(0, np.float32), *self.chunks]))


def _open(path: Path) -> av.container.InputContainer:
    if not path.exists():
        raise VideoNotFoundError(path)
    if path.is_file() and path.stat().st_size == 0:
        raise VideoDecodeError(path, "empty file (0 bytes)")
    try:
        return av.open(str(path), metadata_errors="replace")  # a Latin-1 tag breaks no video
    except (av.error.FFmpegError, OSError, UnicodeDecodeError) as error:
        raise VideoDecodeError(path, f"not a video, or truncated or damaged ({error})") from None


def _probe(
    path: Path, container: av.container.InputContainer, threading: tuple[str, int] | None = None
) -> tuple[VideoInfo, av.video.VideoStream]:
    """Metadata, plus the first frame's display matrix (PyAV exposes rotation per frame only)."""
    if not container.streams.video:
        kinds = ", ".join(stream.type for stream in container.streams) or "none"
        reason = f"no video stream in this {container.format.name} file (streams: {kinds})"
        raise VideoDecodeError(path, reason)
    video = container.streams.video[0]
    if threading:  # before the first decode, which opens the decoder
        video.thread_type, video.thread_count = threading
    try:
        first = next(container.decode(video), None)
    except av.error.FFmpegError as error:
        raise VideoDecodeError(path, f"corrupt or truncated video stream ({error})") from None
    if first is None:
        raise VideoDecodeError(path, "the video stream holds no decodable frame")
    rotation = round(-first.rotation / 90) * 90 % 360
    tag = video.metadata.get("rotate", "0")  # the tag older demuxers exported
    if not rotation and tag.lstrip("-").isdigit():
        rotation = round(int(tag) / 90) * 90 % 360
    rate = video.average_rate or video.guessed_rate or 0
    width, height = video.codec_context.width, video.codec_context.height
    size = (height, width) if rotation in (90, 270) else (width, height)
    seconds, audio = (container.duration or 0) / av.time_base, bool(container.streams.audio)
    info = VideoInfo(str(path), seconds, float(rate), _variable_rate(video), rotation, audio, *size)
    return info, video


def _variable_rate(video: av.video.VideoStream) -> bool:
    """Frame intervals differ: from the sample index when it lists every frame, else the rates."""
    entries = video.index_entries
    if video.frames > 2 and len(entries) == video.frames:
        stamps = [entries[i].timestamp for i in range(min(len(entries), 1000))]
        steps = np.diff(np.sort(np.asarray(stamps, dtype=np.int64)))
        return bool(steps.max() - steps.min() > max(1, 0.01 * np.median(steps)))
    average, base = video.average_rate, video.base_rate
    return bool(average and base and abs(average - base) > 0.01 * base)


def _declared_end(
    stream: av.stream.Stream, container: av.container.InputContainer | None = None
) -> float:
    """End of a stream in seconds on the file's timeline; infinity when undeclared.

    Matroska and WebM declare no per-stream duration, only the file's: with ``container`` that
    one stands in, so their truncation is judged against the length the file declares.
    """
    if stream.duration is not None and stream.time_base is not None:
        return float((stream.duration + (stream.start_time or 0)) * stream.time_base)
    if container is not None and container.duration is not None:
        return float((container.start_time or 0) + container.duration) / av.time_base
    return math.inf
