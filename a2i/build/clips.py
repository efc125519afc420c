"""The clips a raw video dataset lists: what a dataset's scanner hands to the preparation."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from a2i.errors import ManifestError
from a2i.io_utils import keep_if_usable


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
        audio: Separate audio file heard instead of the video's own track, cut to the same
            window (Greatest Hits ships each recording's denoised audio beside its video).
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
    audio: str | None = None


@dataclass
class ScanResult:
    """What a dataset's annotation files list and what is on disk.

    Attributes:
        clips: Clips whose video file exists.
        unusable: ``(key, path, problem)`` of listed clips whose video is missing, empty or
            unreadable (checked without decoding; corrupt files surface in ``prepare``).
        classes: Class names (index = label), or None for unlabelled data.
    """

    clips: list[VideoClip] = field(default_factory=list)
    unusable: list[tuple[str, str, str]] = field(default_factory=list)
    classes: list[str] | None = None
    _videos: dict[str, str] = field(default_factory=dict, init=False, repr=False, compare=False)

    def add(self, clip: VideoClip) -> None:
        """Keep ``clip``, or list it as unusable: video missing, empty or unreadable, or key taken.

        Keys come from file names or annotation rows, so two videos (``a b.mp4`` and
        ``a_b.mp4``, ``x.mp4`` and ``x.mkv``) or a repeated row can share one; the first stays
        and the others are named rather than stopping the whole preparation.
        """
        first = self._videos.get(clip.key)
        if first is not None:
            problem = (
                "listed twice (the first listing is kept)"
                if first == clip.video
                else f"its key '{clip.key}' is already that of {first} (rename one of them)"
            )
            self.unusable.append((clip.key, clip.video, problem))
            return
        keep_if_usable(clip, clip.key, clip.video, self.clips, self.unusable)
        if self.clips and self.clips[-1] is clip:
            self._videos[clip.key] = clip.video


def segment_start(start: str, where: str) -> int:
    """Whole seconds of a YouTube segment's ``start`` column (AudioSet and VGGSound CSVs)."""
    try:
        return int(float(start))
    except ValueError:
        raise ManifestError(f"{where}: start '{start}' is not a number") from None


def holdout(key: str, fraction: float, seed: int) -> bool:
    """Whether ``key`` falls in a stable pseudo-random ``fraction`` (hash of seed and key).

    Used for splits a dataset does not define (a validation set carved from VGGSound's train
    split): a clip's side never changes when other clips are added or removed.
    """
    digest = hashlib.sha1(f"{seed}:{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < fraction


def fingerprint(clips: list[VideoClip]) -> str:
    """Hash of the clip list: a prepared folder belongs to one exact scan."""
    text = "\n".join(
        f"{c.key}\t{c.split}\t{c.label}\t{c.start}\t{c.duration}\t{c.crop}"
        for c in sorted(clips, key=lambda c: c.key)
    )
    return hashlib.sha1(text.encode()).hexdigest()
