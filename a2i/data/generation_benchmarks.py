"""The out-of-domain benchmarks of Seeing Sound's Table 1 (§4.4), each read in its release layout.

Seeing Sound scores audio-to-image models on Greatest Hits, Landscapes, Into The Wild, VEGAS and
a class-balanced ~1K sample of VGGSound's test split. The small sets are used whole ("all the
available instances across different splits"), so every clip found here is a ``test`` clip;
``a2i test`` with ``configs/eval/paper.yaml`` then scores them. VEGAS is
:class:`a2i.data.vegas.VEGASDataModule`. The layouts (a2i downloads none of them):

- :class:`GreatestHitsDataModule` (Owens et al., CVPR 2016, "Visually indicated sounds")::

      <root>/<recording>_mic.mp4        # the video
      <root>/<recording>_denoised.wav   # its denoised audio track
      <root>/<recording>_times.txt      # one hit per line: time (s), material, action, ...

- :class:`LandscapesDataModule` (Lee et al., ECCV 2022, "Sound-guided semantic video
  generation"): one folder of mp4 per class, ``<root>/[<split>/]<class>/*.mp4``;
- :class:`IntoTheWildDataModule` (Li et al., ECCV 2022, "Learning visual styles from
  audio-visual associations"): the YouTube videos of its ``metadata.xlsx`` cut into 3 s clips by
  its ``split.py``, ``<root>/youtube_chunk/<video>_clip<N>.mp4`` (no classes);
- :class:`VGGSoundBalancedTest`: VGGSound's own layout, the test split sampled per class as
  Sound2Scene (Sung-Bin et al. 2023) does.
"""

from __future__ import annotations

import hashlib
import logging
from collections import defaultdict
from pathlib import Path
from typing import Any

from a2i.build.clips import ScanResult, VideoClip
from a2i.data.vegas import VIDEO_SUFFIXES, clip_key
from a2i.data.vggsound import VGGSoundDataModule
from a2i.data.video_datamodule import VideoDataModule
from a2i.errors import ConfigError, DatasetNotFoundError, ManifestError

logger = logging.getLogger(__name__)

SPLIT_FOLDERS = ("train", "val", "valid", "validation", "test")
"""Folder names that are a release's splits, not classes (Landscapes ships per-split folders)."""


def _videos(folder: Path) -> list[Path]:
    """Video files beneath ``folder``, sorted."""
    return sorted(
        p for p in folder.rglob("*") if p.suffix.lower() in VIDEO_SUFFIXES and p.is_file()
    )


def read_hits(path: Path) -> list[tuple[float, str]]:
    """``(time, material)`` of each line of a Greatest Hits ``*_times.txt``, in file order."""
    hits = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        fields = line.split()
        if not fields or fields[0].startswith("#"):
            continue
        try:
            time = float(fields[0])
        except ValueError:
            raise ManifestError(
                f"{path}:{number}: hit time '{fields[0]}' is not a number"
            ) from None
        hits.append((time, fields[1] if len(fields) > 1 else "None"))
    return hits


class GreatestHitsDataModule(VideoDataModule):
    """The Greatest Hits: a drumstick hitting and scratching materials, one clip per hit window.

    Each annotated hit opens a ``clip_duration`` window starting ``lead`` seconds before it;
    hits inside an open window belong to it, so windows never overlap. The window's class is
    the material of the hit that opened it (materials in alphabetical order, label = index),
    and its audio is the recording's ``*_denoised.wav``.

    Args:
        root: The release folder (``*_mic.mp4``, ``*_denoised.wav``, ``*_times.txt``).
        clip_duration: Window length in seconds (Seeing Sound §4.1 hears 5 s excerpts).
        lead: Seconds of the window before its hit.
        **kwargs: Shared preparation and loading settings (:class:`VideoDataModule`).
    """

    prepare_hint = (
        "download the Greatest Hits (https://andrewowens.com/vis/) and pass the folder holding "
        "<recording>_mic.mp4, <recording>_denoised.wav and <recording>_times.txt"
    )

    def __init__(
        self, root: str, clip_duration: float = 5.0, lead: float = 0.5, **kwargs: Any
    ) -> None:
        if clip_duration <= 0 or not 0 <= lead < clip_duration:
            raise ConfigError(
                f"data.clip_duration must be > 0 and 0 <= lead < clip_duration "
                f"(got {clip_duration}, {lead})"
            )
        self.clip_duration = clip_duration
        self.lead = lead
        super().__init__(root, **kwargs)

    def scan(self) -> ScanResult:
        """One clip per hit window of every recording with a ``*_times.txt``."""
        annotations = sorted(self.raw_root.rglob("*_times.txt"))
        if not annotations:
            raise DatasetNotFoundError(self.raw_root, f"no *_times.txt; {self.prepare_hint}")
        windows = []
        for path in annotations:
            recording = path.name.removesuffix("_times.txt")
            end = float("-inf")
            for time, material in read_hits(path):
                if time < end:
                    continue
                start = max(0.0, time - self.lead)
                end = start + self.clip_duration
                windows.append((path.with_name(recording), start, material))
        classes = sorted({material for _, _, material in windows})
        result = ScanResult(classes=classes)
        for stem, start, material in windows:
            result.add(
                VideoClip(
                    key=clip_key(stem.name, f"{round(start * 1000):07d}"),
                    video=str(stem.with_name(f"{stem.name}_mic.mp4")),
                    audio=str(stem.with_name(f"{stem.name}_denoised.wav")),
                    split="test",
                    label=classes.index(material),
                    caption=material.replace("-", " "),
                    start=start,
                    duration=self.clip_duration,
                    meta={"recording": stem.name, "hit_window": start},
                )
            )
        return result


class LandscapesDataModule(VideoDataModule):
    """Landscapes: high-resolution nature videos, one folder per sound class.

    Classes are the folders that hold videos (split folders such as ``train``/``test`` are looked
    through), alphabetical; every video is one test clip of its first ``clip_duration`` seconds.

    Args:
        root: The release folder.
        clip_duration: Seconds of each video used (None: all of it).
        **kwargs: Shared preparation and loading settings (:class:`VideoDataModule`).
    """

    prepare_hint = (
        "download the Landscape dataset of 'Sound-guided semantic video generation' (Lee et al., "
        "ECCV 2022) and pass the folder holding [<split>/]<class>/*.mp4"
    )

    def __init__(self, root: str, clip_duration: float | None = 10.0, **kwargs: Any) -> None:
        self.clip_duration = clip_duration
        super().__init__(root, **kwargs)

    def scan(self) -> ScanResult:
        """Each video under a class folder."""
        videos = [
            p
            for p in _videos(self.raw_root)
            if self.prepared not in p.parents and p.parent.name.lower() not in SPLIT_FOLDERS
        ]
        classes = sorted({p.parent.name for p in videos})
        result = ScanResult(classes=classes)
        for video in videos:
            name = video.parent.name
            relative = video.relative_to(self.raw_root).with_suffix("").as_posix()
            result.add(
                VideoClip(
                    key=clip_key(relative),
                    video=str(video),
                    split="test",
                    label=classes.index(name),
                    caption=name.replace("_", " ").lower(),
                    duration=self.clip_duration,
                    meta={"class": name},
                )
            )
        return result


class IntoTheWildDataModule(VideoDataModule):
    """Into The Wild: egocentric hiking videos in 3 s clips, without classes.

    Args:
        root: The release folder.
        video_dir: Folder of the clips, relative to ``root`` (the release's ``split.py`` output).
        **kwargs: Shared preparation and loading settings (:class:`VideoDataModule`).
    """

    prepare_hint = (
        "download the videos of Into-the-Wild/metadata.xlsx (https://github.com/Tinglok/avstyle), "
        "cut them with its split.py and pass the folder holding youtube_chunk/<video>_clip<N>.mp4"
    )

    def __init__(self, root: str, video_dir: str = "youtube_chunk", **kwargs: Any) -> None:
        self.video_dir = video_dir
        super().__init__(root, **kwargs)

    def scan(self) -> ScanResult:
        """Every clip of ``video_dir``."""
        folder = self.raw_root / self.video_dir
        if not folder.is_dir():
            raise DatasetNotFoundError(folder, f"no {self.video_dir}/ folder; {self.prepare_hint}")
        result = ScanResult()
        for video in _videos(folder):
            relative = video.relative_to(folder).with_suffix("").as_posix()
            result.add(VideoClip(key=clip_key(relative), video=str(video), split="test"))
        return result


class VGGSoundBalancedTest(VGGSoundDataModule):
    """VGGSound with its test split cut to ~``test_clips`` clips, the same number per class.

    Seeing Sound §4.4 samples "approximately 1K instances from the original test set in a
    class-balanced fashion following" Sound2Scene. Each class keeps ``round(test_clips /
    classes)`` (at least one) of its clips found on disk, chosen by a hash of ``sample_seed``
    and the clip key, so adding or losing other clips never changes a class's choice.

    Args:
        test_clips: About how many test clips to keep in all.
        sample_seed: Seed of the per-class choice.
        **kwargs: :class:`VGGSoundDataModule`'s arguments.
    """

    def __init__(self, root: str, test_clips: int = 1000, sample_seed: int = 0, **kwargs: Any):
        if test_clips < 1:
            raise ConfigError(f"data.test_clips must be >= 1 (got {test_clips})")
        self.test_clips = test_clips
        self.sample_seed = sample_seed
        super().__init__(root, **kwargs)

    def scan(self) -> ScanResult:
        """The official scan, then the per-class sample of its test clips."""
        result = super().scan()
        per_class = max(1, round(self.test_clips / len(result.classes or [None])))
        tests: dict[int, list[VideoClip]] = defaultdict(list)
        for clip in result.clips:
            if clip.split == "test":
                tests[clip.label].append(clip)
        kept = set()
        for clips in tests.values():
            ranked = sorted(clips, key=lambda c: self._rank(c.key))
            kept.update(c.key for c in ranked[:per_class])
        result.clips = [c for c in result.clips if c.split != "test" or c.key in kept]
        logger.warning("VGGSound test sample: %d clips, up to %d per class", len(kept), per_class)
        return result

    def _rank(self, key: str) -> bytes:
        return hashlib.sha1(f"{self.sample_seed}:{key}".encode()).digest()
