"""Image I/O: read any image as a ``(3, H, W)`` float tensor, write PNGs atomically, make grids."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps, UnidentifiedImageError
from torch import Tensor
from torchvision.utils import make_grid

from a2i.errors import ImageDecodeError
from a2i.io_utils import atomic_write

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp")


def read_image(path: str | Path, size: int | None = None) -> Tensor:
    """RGB image in ``[0, 1]`` as ``(3, H, W)``, optionally resized to ``size``×``size``."""
    return image_tensor(open_rgb(path), size)


def open_rgb(path: str | Path) -> Image.Image:
    """An image file as 8-bit RGB the way a viewer shows it, or :class:`ImageDecodeError`.

    Phone photos store their sensor rows and an EXIF orientation, which is applied; PIL's RGB
    conversion clips 16-bit greys to white, so they keep their top 8 bits instead; a header
    claiming more pixels than PIL's decompression-bomb limit is refused like a broken file.
    """
    try:
        with Image.open(path) as handle:
            picture = ImageOps.exif_transpose(handle)
            if picture.mode == "I" or picture.mode.startswith("I;16"):
                levels = np.asarray(picture).astype(np.int64) >> 8
                picture = Image.fromarray(levels.clip(0, 255).astype(np.uint8))
            return picture.convert("RGB")
    except FileNotFoundError:
        raise ImageDecodeError(path, "file does not exist") from None
    except Image.DecompressionBombError as error:
        raise ImageDecodeError(path, f"refused: {error}") from None
    except (UnidentifiedImageError, OSError) as error:
        raise ImageDecodeError(path, f"not a readable image ({error})") from None


def image_tensor(picture: Image.Image, size: int | None = None) -> Tensor:
    """A PIL image as ``(3, H, W)`` RGB in ``[0, 1]``, optionally resized to ``size``×``size``."""
    array = np.asarray(picture.convert("RGB"), dtype=np.float32) / 255.0
    image = torch.from_numpy(array).permute(2, 0, 1).contiguous()
    if size is not None and image.shape[-2:] != (size, size):
        image = F.interpolate(image[None], size=(size, size), mode="bilinear", antialias=True)[0]
    return image.clamp(0, 1)


def to_uint8(image: Tensor) -> np.ndarray:
    """``(3, H, W)`` in ``[0, 1]`` → ``(H, W, 3)`` uint8."""
    array = image.detach().float().clamp(0, 1).mul(255).round().byte()
    return array.permute(1, 2, 0).cpu().numpy()


def write_png(path: str | Path, image: Tensor, *, overwrite: bool = False) -> None:
    """Write a PNG atomically: a killed run never leaves half an image."""
    remedy = "pass overwrite=True (CLI: --overwrite true) to replace it"
    with atomic_write(path, overwrite=overwrite, remedy=remedy) as tmp:
        Image.fromarray(to_uint8(image)).save(tmp, format="PNG")


def image_grid(images: Tensor, nrow: int = 8, padding: int = 2) -> Tensor:
    """``(N, 3, H, W)`` → one ``(3, H', W')`` contact sheet."""
    return make_grid(
        images.detach().float().clamp(0, 1).cpu(), nrow=nrow, padding=padding, pad_value=1.0
    )
