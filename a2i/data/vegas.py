"""VEGAS (Zhou et al., CVPR 2018): 10 sound classes of in-the-wild video.

Expected layout: one folder per class, videos anywhere beneath it::

    <root>/<class name>/**/*.mp4      # e.g. <root>/Dog/video/xyz.mp4

Classes are the folder names, alphabetical (label = index). Sound2Vision §4.1 balances the
classes: 800 training and 50 test videos per class. The paper does not publish which, so a2i
defines them by a rule: per class, file paths sorted, shuffled with ``random.Random(seed)``,
the first ``test_per_class`` become test, the next ``val_per_class`` validation (an a2i
addition so that Lightning has a validation loop), the next ``train_per_class`` train. A class
with too few videos keeps its test and validation share and trains on the rest (logged). The
5-class comparison of Sound2Vision §6.2 (after S2I) is the same rule on a ``classes`` subset.
"""

from __future__ import annotations

import logging
import random
import re
from typing import Any

from a2i.build.clips import ScanResult, VideoClip
from a2i.data.video_datamodule import VideoDataModule
from a2i.errors import ConfigError

VIDEO_SUFFIXES = (".mp4", ".mkv", ".webm", ".avi", ".mov")

logger = logging.getLogger(__name__)


def clip_key(*parts: str) -> str:
    """A dot-free key from path parts (``Dog``, ``video/abc.mp4`` → ``Dog_video_abc``)."""
    return re.sub(r"[^0-9A-Za-z_-]+", "_", "_".join(parts)).strip("_")


class VEGASDataModule(VideoDataModule):
    """VEGAS with the Sound2Vision protocol (800 train / 50 test videos per class).

    Args:
        root: Raw folder with one sub-folder per class.
        classes: Class subset (folder names) in label order; None: every class folder.
        train_per_class: Training videos per class (Sound2Vision §4.1: 800).
        test_per_class: Test videos per class (Sound2Vision §4.1: 50).
        val_per_class: Validation videos per class (a2i's addition; not in the paper).
        seed: Seed of the per-class shuffle that assigns videos to splits.
        **kwargs: Shared preparation and loading settings (:class:`VideoDataModule`).
    """

    prepare_hint = "expected <root>/<class name>/**/*.mp4 (docs/datasets.md)"

    def __init__(
        self,
        root: str,
        classes: list[str] | None = None,
        train_per_class: int = 800,
        test_per_class: int = 50,
        val_per_class: int = 10,
        seed: int = 0,
        **kwargs: Any,
    ) -> None:
        if min(train_per_class, test_per_class, val_per_class) < 0:
            raise ConfigError("data.*_per_class must be >= 0")
        self.subset = classes
        self.train_per_class = train_per_class
        self.test_per_class = test_per_class
        self.val_per_class = val_per_class
        self.seed = seed
        super().__init__(root, **kwargs)

    def scan(self) -> ScanResult:
        """Assign each class's videos to splits by the seeded rule."""
        folders = sorted(
            p.name for p in self.raw_root.iterdir() if p.is_dir() and p.name != self.prepared.name
        )
        classes = self.subset or folders
        absent = [name for name in classes if name not in folders]
        if absent:
            raise ConfigError(f"data.classes names folders not in {self.raw_root}: {absent}")
        result = ScanResult(classes=list(classes))
        for label, name in enumerate(classes):
            folder = self.raw_root / name
            videos = sorted(
                p for p in folder.rglob("*") if p.suffix.lower() in VIDEO_SUFFIXES and p.is_file()
            )
            random.Random(self.seed).shuffle(videos)
            test = self.test_per_class
            val = test + self.val_per_class
            train = val + self.train_per_class
            if len(videos) < train:
                logger.warning(
                    "VEGAS class '%s' has %d videos (< %d); it trains on %d",
                    name,
                    len(videos),
                    train,
                    max(0, len(videos) - val),
                )
            for position, video in enumerate(videos[:train]):
                split = "test" if position < test else "val" if position < val else "train"
                relative = video.relative_to(folder).with_suffix("").as_posix()
                result.add(
                    VideoClip(
                        key=clip_key(name, relative),
                        video=str(video),
                        split=split,
                        label=label,
                        caption=name.replace("_", " ").lower(),
                        meta={"class": name},
                    )
                )
        return result
