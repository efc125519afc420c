"""The base of every dataset that starts as raw video (VGGSound, VEGAS, CelebV-HQ).

A subclass only says how the dataset's official files list its clips (:meth:`scan`). The base
does the rest: at construction it reports what it found (clips per split; listed videos that
are missing, empty or unreadable in ``<prepared>/scan_problems.log``); ``prepare_data`` (Lightning calls it before ``setup``, once per
node, and ``a2i prepare`` calls it with a progress bar) decodes the videos into shards with
:func:`a2i.build.prepare.prepare_clips`; the splits are then served from the shards, so
training never opens a video.
"""

from __future__ import annotations

import hashlib
import json
import logging
from abc import abstractmethod
from collections import Counter
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import webdataset as wds
from torch.utils.data import DataLoader

from a2i.build.annotations import ClipList
from a2i.build.frames import FrameSelector, MidFrame
from a2i.build.prepare import (
    DONE_FILE,
    SETTINGS_FILE,
    CachedFeature,
    PrepareReport,
    PrepareSettings,
    VideoClip,
    plan_shards,
    prepare_clips,
)
from a2i.data.base import collate_batch
from a2i.data.manifest import ManifestDataModule
from a2i.data.shards import ShardDataset
from a2i.errors import ConfigError, DatasetNotFoundError, ManifestError
from a2i.io_utils import atomic_write_text, file_problem

logger = logging.getLogger(__name__)

SCAN_LOG = "scan_problems.log"
SPLITS_FILE = "splits.csv"


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

    def add(self, clip: VideoClip) -> None:
        """Keep ``clip``, or list it as unusable when its video is missing, empty or unreadable."""
        problem = file_problem(Path(clip.video))
        if problem is None:
            self.clips.append(clip)
        else:
            self.unusable.append((clip.key, clip.video, problem))


def holdout(key: str, fraction: float, seed: int) -> bool:
    """Whether ``key`` falls in a stable pseudo-random ``fraction`` (hash of seed and key).

    Used for splits a dataset does not define (a validation set carved from VGGSound's train
    split): a clip's side never changes when other clips are added or removed.
    """
    digest = hashlib.sha1(f"{seed}:{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < fraction


class VideoDataModule(ManifestDataModule):
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
        batch_size: Clips per batch on each device.
        num_workers: DataLoader worker processes.
        pin_memory: Pin host memory for faster host→GPU copies.
        sample_rate: Audio rate in Hz (shards store it; loading checks it).
        clip_seconds: Audio length delivered.
        image_size: Square resolution delivered.
        strict: Raise when listed videos are missing or unreadable instead of logging and
            skipping them.
    """

    prepare_hint = "check the folder layout in the README ('Real datasets')"

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
        prepare_workers: int = 0,
        prepare_device: str = "cpu",
        stream_train: bool = False,
        shuffle_buffer: int = 1000,
        split_file: str | None = None,
        clip_lists: list[ClipList] | None = None,
        batch_size: int = 64,
        num_workers: int = 0,
        pin_memory: bool = False,
        sample_rate: int = 16000,
        clip_seconds: float = 10.0,
        image_size: int = 224,
        strict: bool = False,
    ) -> None:
        self.prepared = Path(prepared) if prepared else Path(root) / "prepared"
        super().__init__(
            root=str(self.prepared),
            batch_size=batch_size,
            num_workers=num_workers,
            pin_memory=pin_memory,
            sample_rate=sample_rate,
            clip_seconds=clip_seconds,
            image_size=image_size,
            strict=strict,
        )
        self.raw_root = Path(root)
        self.frame_selector = frame_selector or MidFrame()
        self.features = list(features or [])
        self.settings = PrepareSettings(
            sample_rate=sample_rate,
            frame_rate=frame_rate,
            frame_size=frame_size,
            shard_size=shard_size,
            min_seconds=min_seconds,
        )
        self.prepare_workers = prepare_workers
        self.prepare_device = prepare_device
        self.stream_train = stream_train
        self.split_file = split_file
        self.clip_lists = list(clip_lists or [])
        self.shuffle_buffer = shuffle_buffer
        self.scan_result = self._scan_and_report()
        self.settings.clips_sha1 = _fingerprint(self.scan_result.clips)
        self.settings.record(self.frame_selector, self.features)

    def check_root(self) -> None:
        """The raw folder must exist (the prepared one is created by ``prepare_data``)."""

    @abstractmethod
    def scan(self) -> ScanResult:
        """List the dataset's clips from its annotation files and the videos on disk."""

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
        if result.unusable and self.strict:
            shown = ", ".join(f"{path} ({problem})" for _, path, problem in result.unusable[:5])
            raise ManifestError(
                f"{self.raw_root}: {len(result.unusable)} listed video(s) cannot be used (e.g. "
                f"{shown}); fix them, or set strict: false to skip those clips"
            )
        counts = Counter(clip.split for clip in result.clips)
        logger.warning(
            "%s: %s; %d listed video(s) missing or unreadable%s",
            self.raw_root,
            ", ".join(f"{split} {counts[split]}" for split in ("train", "val", "test")),
            len(result.unusable),
            f" (listed in {self.prepared / SCAN_LOG})" if result.unusable else "",
        )
        lines = "".join(f"{key}\t{path}\t{problem}\n" for key, path, problem in result.unusable)
        rows = "".join(f"{c.key},{c.split}\n" for c in sorted(result.clips, key=lambda c: c.key))
        try:
            self.prepared.mkdir(parents=True, exist_ok=True)
            atomic_write_text(self.prepared / SCAN_LOG, "key\tvideo\tproblem\n" + lines)
            atomic_write_text(self.prepared / SPLITS_FILE, "key,split\n" + rows)
        except OSError as error:
            raise ConfigError(
                f"data.prepared '{self.prepared}' is not writable ({error.strerror}); a read-only "
                "dataset folder needs `prepared:` set to a writable folder for the shards"
            ) from None
        if not result.clips:
            raise DatasetNotFoundError(
                self.raw_root, f"no videos of the annotation files were found; {self.prepare_hint}"
            )
        return result

    def _apply_split_file(self, clips: list[VideoClip]) -> list[VideoClip]:
        """Assign splits from ``split_file`` (``key,split`` rows); unlisted clips are left out."""
        path = Path(self.split_file)
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except OSError as error:
            raise ManifestError(f"data.split_file '{path}': cannot read it ({error})") from None
        assigned: dict[str, str] = {}
        for number, line in enumerate(lines, start=1):
            key, _, split = line.strip().partition(",")
            if not line.strip() or (number == 1 and (key, split) == ("key", "split")):
                continue
            if split not in ("train", "val", "test"):
                raise ManifestError(
                    f"{path}:{number}: split must be train, val or test, got '{split}'"
                )
            assigned[key] = split
        kept = [replace(clip, split=assigned[clip.key]) for clip in clips if clip.key in assigned]
        logger.warning(
            "%s: %d of %d clips are listed in %s (the others are left out)",
            self.raw_root,
            len(kept),
            len(clips),
            path,
        )
        return kept

    @property
    def clip_counts(self) -> dict[str, int]:
        """Clips per split found on disk (before decoding)."""
        return dict(Counter(clip.split for clip in self.scan_result.clips))

    def is_prepared(self) -> bool:
        """Whether the shards of exactly this scan and recipe are complete.

        A folder prepared with another recipe is not: ``prepare_data`` then stops with an error
        naming the settings that differ instead of training on the old shards.
        """
        marker, recipe = self.prepared / DONE_FILE, self.prepared / SETTINGS_FILE
        if not marker.is_file() or not recipe.is_file():
            return False
        if json.loads(recipe.read_text()) != asdict(self.settings):
            return False
        shards = json.loads(marker.read_text()).get("shards", [])
        return shards == sorted(plan_shards(self.scan_result.clips, self.settings.shard_size))

    def prepare_data(self, progress: bool = True) -> PrepareReport | None:
        """Decode the videos into shards unless that is done (resumes a killed run)."""
        if self.is_prepared():
            return None
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
        )

    def build_dataset(self, split: str) -> ShardDataset:
        """Serve a split from the shards (``predict`` = test); prepare first if needed."""
        if not self.is_prepared():
            raise DatasetNotFoundError(
                self.prepared,
                f"the shards of {self.raw_root} are not (completely) prepared; run "
                "`a2i prepare --config <this config>` (it resumes an interrupted run)",
            )
        return ShardDataset(
            self.prepared,
            "test" if split == "predict" else split,
            sample_rate=self.sample_rate,
            clip_seconds=self.clip_seconds,
            image_size=self.image_size,
            random_crop=split == "train",
            features=[feature.name for feature in self.features],
        )

    def train_dataloader(self) -> DataLoader:
        """Offset-indexed batches, or (``stream_train``) a fixed-length WebDataset stream.

        Streaming epochs are ``clips // (batch_size · world_size)`` batches on every rank.
        """
        if not self.stream_train:
            return super().train_dataloader()
        dataset = self.dataset("train")
        world_size = self.trainer.world_size if self.trainer is not None else 1
        batches = max(1, len(dataset) // (self.batch_size * world_size))
        pipeline = dataset.stream(self.shuffle_buffer).batched(
            self.batch_size, collation_fn=collate_batch, partial=False
        )
        loader = wds.WebLoader(
            pipeline,
            batch_size=None,
            num_workers=self.num_workers,
            pin_memory=self.pin_memory,
            persistent_workers=self.num_workers > 0,
        )
        return loader.with_epoch(batches).with_length(batches)


def _fingerprint(clips: list[VideoClip]) -> str:
    """Hash of the clip list: a prepared folder belongs to one exact scan."""
    text = "\n".join(
        f"{c.key}\t{c.split}\t{c.label}\t{c.start}\t{c.duration}\t{c.crop}"
        for c in sorted(clips, key=lambda c: c.key)
    )
    return hashlib.sha1(text.encode()).hexdigest()


def check_fraction(name: str, value: float) -> None:
    """Fractions in config are in [0, 1)."""
    if not 0.0 <= value < 1.0:
        raise ConfigError(f"{name} must be in [0, 1) (got {value})")
