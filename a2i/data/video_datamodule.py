"""The base of every dataset that starts as raw video (VGGSound, VEGAS, CelebV-HQ).

A subclass only says how the dataset's official files list its clips (:meth:`scan`). The base
does the rest, nothing at construction: the first ``prepare_data`` (or a split's first use) scans the raw
folder and reports what it found (clips per split; listed videos that are missing, empty or
unreadable in ``<prepared>/scan_problems.log``); ``prepare_data`` (Lightning calls it before
``setup``, once per node, and ``a2i prepare`` calls it with a progress bar) decodes the videos
into shards with :func:`a2i.build.prepare.prepare_clips`; the splits are then served from the
shards (:class:`~a2i.data.shard_datamodule.ShardDataModule`), so training never opens a video.
"""

from __future__ import annotations

import logging
from abc import abstractmethod
from collections import Counter
from dataclasses import asdict, replace
from functools import cached_property
from pathlib import Path
from typing import Any

from a2i.build.annotations import ClipList
from a2i.build.clips import ScanResult, VideoClip, fingerprint
from a2i.build.frames import FrameSelector, MidFrame
from a2i.build.prepare import (
    CachedFeature,
    PrepareReport,
    PrepareSettings,
    plan_clip_shards,
    prepare_clips,
)
from a2i.data.shard_datamodule import SCAN_LOG, ShardDataModule
from a2i.errors import ConfigError, DatasetNotFoundError
from a2i.runtime import ONE_PROCESS, Ranks

logger = logging.getLogger(__name__)


class VideoDataModule(ShardDataModule):
    """Raw videos → shards → batches; subclasses implement :meth:`scan`.

    Args:
        root: The dataset's raw folder (videos plus its official annotation files).
        prepared: Where shards go (default ``<root>/prepared``); one folder per recipe.
        frame_selector: Which frame of each clip becomes its image (mid-frame by default;
            :class:`a2i.build.frames.CLIPBestFrame` for AudioToken §3,
            :class:`a2i.build.frames.AVCorrelationFrame` for Sound2Vision §3.3).
        features: Frozen models whose outputs are cached in the shards and delivered as
            ``features/<name>`` (e.g. Sound2Vision's image-encoder targets).
        frame_rate: Frames per second decoded for frame selection.
        frame_size: Short side of the stored frame in pixels.
        shard_size: Clips per shard.
        min_seconds: Clips with less audio than this are dropped (shorter ones are kept and
            zero-padded at load time).
        max_seconds: A clip without a window of its own (a whole video, as VEGAS lists them)
            keeps its first ``max_seconds``: an hours-long file costs what ten minutes do, in
            memory while decoding and in the shards. Cut clips say so in their ``meta``; None
            keeps whole videos (memory and shards then grow with their length).
        prepare_workers: Decoding processes (0: in the calling process).
        prepare_device: Device of the selector's and features' models.
        stream_train: Stream training shards with WebDataset (sequential reads, for network
            storage) instead of reading clips by offset; epochs are then fixed-length draws.
        shuffle_buffer: Samples in WebDataset's shuffle buffer when streaming.
        split_file: CSV of ``key,split`` rows that replaces the dataset's split rule (e.g. a
            published split, or ``<prepared>/splits.csv`` of another machine); clips it does not
            list are left out. a2i writes the split it used to ``<prepared>/splits.csv``.
        clip_lists: Published lists of clips to drop or to keep exclusively, applied in order
            before decoding (AudioToken's ``unmatch_videos`` and ``low_quality_videos``;
            :class:`a2i.build.annotations.ClipList`).
        **kwargs: Loader settings (:class:`~a2i.data.manifest.ManifestDataModule`); the shards
            store ``sample_rate`` and loading checks it, ``strict`` raises when listed videos
            are missing or unreadable instead of logging and skipping them.
    """

    prepare_hint = "check the folder layout in docs/datasets.md"

    def __init__(
        self,
        root: str,
        prepared: str | None = None,
        frame_selector: FrameSelector | None = None,
        features: list[CachedFeature] | None = None,
        frame_rate: float = 1.0,
        frame_size: int = 256,
        shard_size: int = 256,
        min_seconds: float = 1.0,
        max_seconds: float | None = 600.0,
        prepare_workers: int = 0,
        prepare_device: str = "cpu",
        stream_train: bool = False,
        shuffle_buffer: int = 1000,
        split_file: str | None = None,
        clip_lists: list[ClipList] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            prepared=Path(prepared) if prepared else Path(root) / "prepared",
            features=[feature.name for feature in features or []],
            split_file=split_file,
            stream_train=stream_train,
            shuffle_buffer=shuffle_buffer,
            **kwargs,
        )
        if max_seconds is not None and not max_seconds > 0:
            raise ConfigError(
                f"max_seconds must be > 0, or null for whole videos (got {max_seconds})"
            )
        self.raw_root = Path(root)
        self.frame_selector = frame_selector or MidFrame()
        self.features = list(features or [])
        self.settings = PrepareSettings(
            sample_rate=self.sample_rate,
            frame_rate=frame_rate,
            frame_size=frame_size,
            shard_size=shard_size,
            min_seconds=min_seconds,
            max_seconds=max_seconds,
        )
        self.settings.record(self.frame_selector, self.features)
        self.prepare_workers = prepare_workers
        self.prepare_device = prepare_device
        self.clip_lists = list(clip_lists or [])

    @property
    def source(self) -> Path:
        """The raw folder."""
        return self.raw_root

    @abstractmethod
    def scan(self) -> ScanResult:
        """List the dataset's clips from its annotation files and the videos on disk."""

    @cached_property
    def scan_result(self) -> ScanResult:
        """The scan (run once, on first use), reported and recorded in the recipe."""
        result = self._scan_and_report()
        self.settings.clips_sha1 = fingerprint(result.clips)
        return result

    def _scan_and_report(self) -> ScanResult:
        """Scan, log counts per split and write unusable videos to ``scan_problems.log``."""
        if not self.raw_root.is_dir():
            raise DatasetNotFoundError(
                self.raw_root, f"directory does not exist; {self.prepare_hint}"
            )
        result = self.scan()
        if self.split_file is not None:
            result.clips = self._apply_split_file(result.clips)
        for clip_list in self.clip_lists:
            before = len(result.clips)
            result.clips = clip_list.apply(result.clips)
            logger.warning(
                "%s: %s list %s leaves %d of %d clips",
                self.raw_root,
                clip_list.action,
                clip_list.path,
                len(result.clips),
                before,
            )
        self.refuse_unusable(result.unusable)
        counts = Counter(clip.split for clip in result.clips)
        logger.warning(
            "%s: %s; %d listed video(s) missing or unreadable%s",
            self.raw_root,
            ", ".join(f"{split} {counts[split]}" for split in ("train", "val", "test")),
            len(result.unusable),
            f" (listed in {self.prepared / SCAN_LOG})" if result.unusable else "",
        )
        self.write_scan({c.key: c.split for c in result.clips}, result.unusable, "video")
        if not result.clips:
            raise DatasetNotFoundError(
                self.raw_root, f"no videos of the annotation files were found; {self.prepare_hint}"
            )
        return result

    def _apply_split_file(self, clips: list[VideoClip]) -> list[VideoClip]:
        """Assign splits from ``split_file`` (``key,split`` rows); unlisted clips are left out."""
        assigned = self.read_split_file()
        kept = [replace(clip, split=assigned[clip.key]) for clip in clips if clip.key in assigned]
        logger.warning(
            "%s: %d of %d clips are listed in %s (the others are left out)",
            self.raw_root,
            len(kept),
            len(clips),
            self.split_file,
        )
        return kept

    @property
    def clip_counts(self) -> dict[str, int]:
        """Clips per split found on disk (before decoding)."""
        return dict(Counter(clip.split for clip in self.scan_result.clips))

    def is_recipe(self, settings: dict[str, Any], done: dict[str, Any]) -> bool:
        """Same settings (scan included) and every planned shard written."""
        clips = self.scan_result.clips
        if PrepareSettings.stored(settings) != asdict(self.settings):
            return False
        return done.get("shards", []) == sorted(plan_clip_shards(clips, self.settings.shard_size))

    def build(self, progress: bool, ranks: Ranks = ONE_PROCESS) -> PrepareReport:
        """Decode the videos into shards, this rank's share (resumes a killed run)."""
        return prepare_clips(
            self.scan_result.clips,
            self.prepared,
            self.scan_result.classes,
            self.frame_selector,
            self.features,
            self.settings,
            workers=self.prepare_workers,
            device=self.prepare_device,
            progress=progress,
            ranks=ranks,
        )


def check_fraction(name: str, value: float) -> None:
    """Fractions in config are in [0, 1)."""
    if not 0.0 <= value < 1.0:
        raise ConfigError(f"{name} must be in [0, 1) (got {value})")
