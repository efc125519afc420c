"""The clips a raw video dataset lists: what a dataset's scanner hands to the preparation."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class VideoClip:
    """One clip of a raw video dataset, as a dataset's scanner lists it.

    Attributes:
        key: Unique identifier without dots (becomes the shard member name).
        video: Path of the video file.
        split: ``train``, ``val`` or ``test``.
        label: Class index, -1 when the dataset has no classes (speech → face).
        caption: Text for the clip (the class name); CLIP-best frame selection scores it.
        start: Clip start inside the video in seconds.
        duration: Clip length in seconds (None: to the end of the video).
        crop: ``(top, bottom, left, right)`` pixel box to cut from every frame (face boxes).
        meta: Facts carried into the shards (annotation attributes, source ids).
    """

    key: str
    video: str
    split: str
    label: int = -1
    caption: str = ""
    start: float = 0.0
    duration: float | None = None
    crop: tuple[int, int, int, int] | None = None
    meta: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)
