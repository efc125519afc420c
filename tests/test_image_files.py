"""Image files from cameras and other tools: read as a viewer shows them, or named and refused."""

import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from a2i.build.sonify.build import load_frame
from a2i.errors import A2IError, ImageDecodeError
from a2i.image import read_image


def test_an_exif_rotated_photo_is_read_upright(tmp_path):
    """Phones store sensor rows and an orientation tag (6: turn 90° clockwise to view)."""
    stored = Image.new("RGB", (40, 20), (0, 0, 0))
    stored.paste((255, 0, 0), (0, 0, 20, 20))  # red on the stored left half: the viewed top
    exif = Image.Exif()
    exif[0x0112] = 6
    path = tmp_path / "phone.jpg"
    stored.save(path, exif=exif.tobytes())
    image = read_image(path)
    assert image.shape == (3, 40, 20)
    assert image[0, :20].mean() > 0.9 > 0.1 > image[0, 20:].mean()
    frame = load_frame(str(path), 64)
    assert frame.shape == (40, 20, 3) and frame[:20, :, 0].mean() > 230


def test_a_16_bit_grey_png_keeps_its_tones(tmp_path):
    path = tmp_path / "depth.png"
    Image.fromarray(np.full((8, 8), 128 * 256, dtype=np.uint16)).save(path)
    assert read_image(path).mean().item() == pytest.approx(128 / 255)
    assert load_frame(str(path), 64).mean() == 128


def test_a_decompression_bomb_header_is_a_named_unreadable_image(tmp_path):
    """A 60000² PNG header over a few bytes: refused like a broken file, not a crash."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    header = struct.pack(">IIBBBBB", 60000, 60000, 8, 2, 0, 0, 0)
    path = tmp_path / "bomb.png"
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\0" * 1000))
        + chunk(b"IEND", b"")
    )
    for read in (read_image, lambda p: load_frame(str(p), 64)):
        with pytest.raises(ImageDecodeError, match=r"bomb\.png.*decompression bomb") as caught:
            read(path)
        assert isinstance(caught.value, A2IError)  # sonify lists it as failed and goes on
