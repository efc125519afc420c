"""The images to sonify: SAM's layout (``sa_<id>.jpg`` + ``sa_<id>.json``) or any folder.

Seeing Sound sonifies 1M images of SAM (SA-1B, §4.1), distributed as tar files that extract to
``sa_<id>.jpg`` with a ``sa_<id>.json`` of masks beside each; the masks are not used, so a jpg
without its json is kept (and counted). Any other collection is a folder of images, searched
recursively. Image keys never contain dots or slashes (they name shard members): SAM keys are the
file stems, folder keys the relative path with ``/`` and ``.`` replaced by ``_``.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

from a2i.errors import DatasetNotFoundError, ManifestError
from a2i.image import IMAGE_EXTENSIONS
from a2i.io_utils import file_problem

logger = logging.getLogger(__name__)

ImageLayout = Literal["sam", "folder"]
SAM_NAME = re.compile(r"^sa_\d+$")


@dataclass(frozen=True)
class ImageItem:
    """One image to sonify.

    Attributes:
        key: Unique identifier without dots or slashes.
        path: The image file.
        relative: Its path relative to the image root (stored in the shards).
        split: ``train``, ``val`` or ``test``.
    """

    key: str
    path: str
    relative: str
    split: str = "train"


@dataclass
class ImageScan:
    """Images found and listed ones that cannot be used (missing, empty, unreadable)."""

    images: list[ImageItem] = field(default_factory=list)
    unusable: list[tuple[str, str, str]] = field(default_factory=list)
    without_annotation: int = 0


def folder_key(relative: str) -> str:
    """Key of an image in a folder: its relative path without suffix, ``/`` and ``.`` → ``_``."""
    stem = str(Path(relative).with_suffix(""))
    return re.sub(r"[./\\\s]", "_", stem)


def scan_images(root: str | Path, layout: ImageLayout) -> ImageScan:
    """List the images under ``root`` in ``layout``, sorted by key (all in split ``train``)."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetNotFoundError(root, "the image folder does not exist")
    result = ImageScan()
    keys: dict[str, str] = {}
    suffixes = (".jpg",) if layout == "sam" else IMAGE_EXTENSIONS
    for path in sorted(root.rglob("*")):
        if path.suffix.lower() not in suffixes or not path.is_file():
            continue
        relative = path.relative_to(root).as_posix()
        if layout == "sam":
            if not SAM_NAME.match(path.stem):
                continue
            key = path.stem
            result.without_annotation += not path.with_suffix(".json").is_file()
        else:
            key = folder_key(relative)
        if key in keys:
            raise ManifestError(f"{root}: images '{keys[key]}' and '{relative}' share key '{key}'")
        keys[key] = relative
        problem = file_problem(path)
        if problem is None:
            result.images.append(ImageItem(key, str(path), relative))
        else:
            result.unusable.append((key, relative, problem))
    if not result.images:
        what = "sa_<id>.jpg files" if layout == "sam" else f"images ({', '.join(IMAGE_EXTENSIONS)})"
        raise DatasetNotFoundError(root, f"no {what} found (layout: {layout})")
    result.images.sort(key=lambda item: item.key)
    return result


def assign_splits(images: list[ImageItem], splits: dict[str, str]) -> list[ImageItem]:
    """Images with their split from ``splits`` (key → split); unlisted images are left out."""
    return [replace(item, split=splits[item.key]) for item in images if item.key in splits]
