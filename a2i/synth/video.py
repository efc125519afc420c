"""Encode frames (and optionally a sound) as an mp4: the fixture writer for video decoding tests.

Real audio-visual datasets arrive as mp4 files with the properties the decoder must cope with:
variable frame rates, rotated phone videos, files without a sound track. :func:`encode_video`
writes each of them on purpose (h264 yuv420p video, mono AAC audio), so the decoding path
(:mod:`a2i.build.video`) is tested against files with known content, offline.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path

import av
import torch
from torch import Tensor

from a2i.errors import ConfigError
from a2i.io_utils import atomic_write

AUDIO_FRAME = 1024
"""Samples per encoded audio frame (the AAC frame size)."""
VFR_TIMESCALE = 90000
"""Ticks per second of variable-frame-rate timestamps (the usual mp4 video timescale)."""


def encode_video(
    path: str | Path,
    frames: Tensor,
    *,
    fps: float = 25,
    times: Sequence[float] | None = None,
    audio: Tensor | None = None,
    sample_rate: int = 16000,
    rotation: int = 0,
    overwrite: bool = False,
) -> Path:
    """Write frames as an h264 mp4 with an optional mono AAC track, atomically.

    The file is written under a temporary name in the same folder and renamed, so a killed run
    never leaves a half-written mp4 that a later run would take for a corrupt dataset file.

    Args:
        path: Destination ``.mp4``.
        frames: ``(N, 3, H, W)`` floats in ``[0, 1]`` or ``(N, H, W, 3)`` uint8 RGB; ``H`` and
            ``W`` must be even (yuv420p).
        fps: Frame rate; with ``times``, only the display duration of the last frame (1 / fps).
        times: Presentation time of each frame in seconds, strictly increasing: a variable
            frame rate file. None: frame ``i`` at ``i / fps``.
        audio: Mono ``(T,)`` waveform in ``[-1, 1]``; None writes no audio track.
        sample_rate: Rate of ``audio`` in Hz.
        rotation: Degrees (multiple of 90) a player rotates the stored frames clockwise to
            show them: written as the track's display matrix, the frames stay un-rotated.
        overwrite: Replace an existing file instead of refusing.

    Returns:
        The written path.
    """
    path = Path(path)
    pictures = _frames_uint8(path, frames)
    count, height, width = pictures.shape[:3]
    if height % 2 or width % 2:
        raise ConfigError(f"encode_video('{path}'): yuv420p needs even sides, got {height}x{width}")
    if not (math.isfinite(fps) and fps > 0):
        raise ConfigError(f"encode_video('{path}'): fps must be > 0 (got {fps})")
    if rotation % 90:
        raise ConfigError(f"encode_video('{path}'): rotation must be a multiple of 90 ({rotation})")
    pts, time_base = _timestamps(path, count, fps, times)
    samples = None if audio is None else _mono(path, audio)
    remedy = "pass overwrite=True (--overwrite) to replace it"
    with atomic_write(path, overwrite=overwrite, remedy=remedy) as tmp:
        with av.open(str(tmp), mode="w", format="mp4") as container:
            rate = Fraction(fps).limit_denominator(10_000)
            video = container.add_stream("libx264", rate=rate)
            video.width, video.height = width, height
            video.pix_fmt = "yuv420p"
            video.codec_context.time_base = time_base
            video.options = {"crf": "18", "threads": "1"}
            if times is not None:
                # No B-frames: decode order equals display order, so mp4 durations stay right.
                video.codec_context.max_b_frames = 0
            if rotation % 360:
                video.set_display_rotation(-(rotation % 360))  # PyAV takes counter-clockwise
            sound = None
            if samples is not None:
                sound = container.add_stream("aac", rate=sample_rate, layout="mono")
            ends = [*pts[1:], pts[-1] + max(1, round(1 / (fps * time_base)))]
            for picture, start, end in zip(pictures.numpy(), pts, ends, strict=True):
                frame = av.VideoFrame.from_ndarray(picture, format="rgb24")
                frame.pts, frame.duration, frame.time_base = start, end - start, time_base
                container.mux(video.encode(frame))
            container.mux(video.encode(None))
            if sound is not None and samples is not None:
                _encode_audio(container, sound, samples, sample_rate)
    return path


def _frames_uint8(path: Path, frames: Tensor) -> Tensor:
    """``(N, H, W, 3)`` uint8 from either accepted layout."""
    if frames.dtype == torch.uint8 and frames.ndim == 4 and frames.shape[-1] == 3:
        pictures = frames
    elif frames.is_floating_point() and frames.ndim == 4 and frames.shape[1] == 3:
        pictures = frames.detach().float().clamp(0, 1).mul(255).round().byte().permute(0, 2, 3, 1)
    else:
        raise ConfigError(
            f"encode_video('{path}'): frames must be (N, 3, H, W) float or (N, H, W, 3) uint8, "
            f"got {tuple(frames.shape)} {frames.dtype}"
        )
    if pictures.shape[0] == 0:
        raise ConfigError(f"encode_video('{path}'): no frames to write")
    return pictures.detach().cpu().contiguous()


def _timestamps(
    path: Path, count: int, fps: float, times: Sequence[float] | None
) -> tuple[list[int], Fraction]:
    """Frame pts and their time base: frame indices at constant rate, 1/90000 s ticks otherwise."""
    if times is None:
        return list(range(count)), 1 / Fraction(fps).limit_denominator(10_000)
    if len(times) != count:
        raise ConfigError(f"encode_video('{path}'): {len(times)} times for {count} frames")
    pts = [round(float(t) * VFR_TIMESCALE) for t in times]
    if not all(math.isfinite(float(t)) and t >= 0 for t in times) or any(
        b <= a for a, b in itertools.pairwise(pts)
    ):
        raise ConfigError(
            f"encode_video('{path}'): times must be finite, >= 0 and strictly increasing"
        )
    return pts, Fraction(1, VFR_TIMESCALE)


def _mono(path: Path, audio: Tensor) -> Tensor:
    samples = audio.detach().float().cpu()
    if samples.ndim != 1 or samples.numel() == 0:
        raise ConfigError(
            f"encode_video('{path}'): audio must be a non-empty mono (T,) waveform, "
            f"got {tuple(samples.shape)}"
        )
    if not torch.isfinite(samples).all():
        raise ConfigError(f"encode_video('{path}'): audio holds NaN or inf samples")
    return samples


def _encode_audio(
    container: av.container.OutputContainer,
    sound: av.audio.AudioStream,
    samples: Tensor,
    sample_rate: int,
) -> None:
    array = samples.numpy()
    for start in range(0, array.shape[0], AUDIO_FRAME):
        piece = av.AudioFrame.from_ndarray(
            array[None, start : start + AUDIO_FRAME], format="fltp", layout="mono"
        )
        piece.sample_rate = sample_rate
        piece.pts = start
        piece.time_base = Fraction(1, sample_rate)
        container.mux(sound.encode(piece))
    container.mux(sound.encode(None))
