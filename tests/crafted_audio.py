"""Audio files as an attacker crafts them: hours of silence in a few MB, lengths left out.

:func:`write_silent_flac` writes FLAC byte by byte: every frame is one CONSTANT subframe (a block
of equal samples costs 3 bytes), so a 6-hour 192 kHz file is under 1 MB and is written in well
under a second, where libsndfile's encoder takes half a minute. :func:`write_live_matroska`
writes FLAC in Matroska as a live stream does, without a duration or an index.
"""

from __future__ import annotations

import io
from pathlib import Path

import av
import numpy as np

BLOCK = 64000
"""Samples per frame (FLAC allows up to 65535): 6 h at 192 kHz is 64,800 whole frames."""


def _crc_table(polynomial: int, bits: int) -> list[int]:
    top, mask, table = 1 << (bits - 1), (1 << bits) - 1, []
    for byte in range(256):
        crc = byte << (bits - 8)
        for _ in range(8):
            crc = ((crc << 1) ^ polynomial if crc & top else crc << 1) & mask
        table.append(crc)
    return table


CRC8, CRC16 = _crc_table(0x07, 8), _crc_table(0x8005, 16)


def _crc8(data: bytes) -> int:
    crc = 0
    for byte in data:
        crc = CRC8[crc ^ byte]
    return crc


def _crc16(data: bytes) -> int:
    crc = 0
    for byte in data:
        crc = ((crc << 8) & 0xFFFF) ^ CRC16[(crc >> 8) ^ byte]
    return crc


def _coded_number(value: int) -> bytes:
    """FLAC's UTF-8-like coding of a frame number (UTF-8 extended to 36 bits)."""
    if value < 0x80:
        return bytes([value])
    count = 2  # bytes: the lead holds 7 - count bits, each other byte 6
    while value >= 1 << (5 * count + 1):
        count += 1
    tail = [0x80 | (value >> 6 * i) & 0x3F for i in reversed(range(count - 1))]
    return bytes([(0xFF << (8 - count)) & 0xFF | value >> 6 * (count - 1), *tail])


def write_silent_flac(
    path: Path, seconds: float, rate: int, declared_samples: int | None = None
) -> Path:
    """Mono 16-bit FLAC of ``seconds`` of silence (whole frames) at ``rate``.

    ``declared_samples`` is what STREAMINFO says (default: what the frames hold; 0: unknown).
    """
    frames = round(seconds * rate) // BLOCK
    total = frames * BLOCK if declared_samples is None else declared_samples
    # STREAMINFO without its MD5: block sizes, frame sizes (0: unknown), rate, mono, 16 bit, length
    info = BLOCK << 128 | BLOCK << 112 | rate << 44 | 0 << 41 | 15 << 36 | total
    header = b"fLaC" + bytes([0x80, 0, 0, 34]) + info.to_bytes(18, "big") + bytes(16)
    body = bytearray()
    # sync + fixed blocking; block size: 16 bits after the number; rate: STREAMINFO's; mono, 16 bit
    start = bytes([0xFF, 0xF8, 0x70, 0x08])
    for number in range(frames):
        frame = start + _coded_number(number) + (BLOCK - 1).to_bytes(2, "big")
        frame += bytes([_crc8(frame)]) + bytes([0x00, 0x00, 0x00])  # CONSTANT subframe of 0
        body += frame + _crc16(frame).to_bytes(2, "big")
    path.write_bytes(header + bytes(body))
    return path


class _Unseekable(io.RawIOBase):
    """What a live muxer writes to: it cannot go back to write the duration and the index."""

    def __init__(self) -> None:
        self.data = bytearray()

    def writable(self) -> bool:
        return True

    def write(self, chunk: bytes) -> int:
        self.data += chunk
        return len(chunk)


def write_live_matroska(path: Path, seconds: int, rate: int) -> Path:
    """Mono FLAC silence in Matroska without a duration (FFmpeg reports None for it)."""
    sink = _Unseekable()
    with av.open(sink, "w", format="matroska") as output:
        stream = output.add_stream("flac", rate=rate)
        stream.layout = "mono"
        for second in range(seconds):
            frame = av.AudioFrame.from_ndarray(np.zeros((1, rate), np.int16), "s16", "mono")
            frame.sample_rate, frame.pts = rate, second * rate
            for packet in stream.encode(frame):
                output.mux(packet)
        for packet in stream.encode(None):
            output.mux(packet)
    path.write_bytes(bytes(sink.data))
    return path
