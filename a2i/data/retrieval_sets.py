"""WavBriVL's retrieval sets (Table 1): Clotho's captions and DESED's sound events, as released.

- :class:`ClothoCaptions` (Drossos et al., ICASSP 2020; Clotho v2.1 on Zenodo): each clip has five
  captions; the task retrieves a caption's clip among all clips of the split and back::

      <root>/clotho_captions_<split>.csv   # file_name, caption_1, ..., caption_5
      <root>/<split>/<file_name>            # development, validation or evaluation

- :class:`DESED` (Turpault et al., DCASE 2019): 10 s domestic recordings with strong labels;
  the task finds which of the 10 classes sound in each segment (WavBriVL's "AR", scored with
  segment-based F1 as sed_eval does)::

      <root>/metadata/<split>/<split>.tsv   # filename, onset, offset, event_label (tab-separated)
      <root>/audio/<split>/<filename>

:class:`a2i.callbacks.downstream.Downstream` embeds their clips (``caption_sets``,
``event_sets``); the metrics are :class:`a2i.metrics.downstream.CaptionRetrieval` and
:class:`~a2i.metrics.downstream.SegmentF1`.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any

import torch

from a2i.audio.io import Crop
from a2i.data.downstream import ERROR, AudioClipDataset
from a2i.errors import ConfigError, DatasetNotFoundError, ManifestError
from a2i.interfaces import KEY

INDEX = "index"
"""Batch field: the clip's position in its set ``(B,)`` int64."""
CAPTIONS_PER_CLIP = 5
"""Clotho gives every clip five captions."""
DESED_CLASSES = (
    "Alarm_bell_ringing",
    "Blender",
    "Cat",
    "Dishes",
    "Dog",
    "Electric_shaver_toothbrush",
    "Frying",
    "Running_water",
    "Speech",
    "Vacuum_cleaner",
)
"""DESED's 10 event classes (label = index)."""


def _read_rows(path: Path, root: Path, download: str, delimiter: str) -> list[dict[str, str]]:
    if not path.is_file():
        relative = path.relative_to(root).as_posix()
        raise DatasetNotFoundError(root, f"{relative} is missing; download {download}")
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle, delimiter=delimiter))


class ClothoCaptions:
    """One split of Clotho: its clips and their five captions each.

    Args:
        root: The release folder (captions CSVs beside one audio folder per split).
        split: ``evaluation`` (WavBriVL Table 1: "5k (evaluation)", its 5 × 1,045 captions),
            ``validation`` or ``development``.
        audio_dir: Folder of the split's audio, relative to ``root`` (default: the split name).
    """

    name = "clotho"
    download = "Clotho v2.1 (https://zenodo.org/records/4783391)"
    splits = ("development", "validation", "evaluation")

    def __init__(self, root: str, split: str = "evaluation", audio_dir: str | None = None) -> None:
        if split not in self.splits:
            raise ConfigError(f"ClothoCaptions.split must be one of {self.splits} (got {split})")
        self.root = Path(root)
        self.split = split
        path = self.root / f"clotho_captions_{split}.csv"
        rows = _read_rows(path, self.root, self.download, ",")
        columns = [f"caption_{n}" for n in range(1, CAPTIONS_PER_CLIP + 1)]
        if rows and not {"file_name", *columns} <= set(rows[0]):
            raise ManifestError(f"{path}: expected columns file_name, {', '.join(columns)}")
        folder = audio_dir or split
        self.clips = [f"{folder}/{row['file_name']}" for row in rows]
        self.captions = [row[column].strip() for row in rows for column in columns]
        self.caption_clip = [index for index in range(len(rows)) for _ in columns]
        """Index of the clip each caption describes."""

    def dataset(self, sample_rate: int, clip_seconds: float, crop: Crop = "start") -> ClipDataset:
        """Every clip, decoded at ``sample_rate`` and fitted to ``clip_seconds``."""
        return ClipDataset(self.root, self.clips, sample_rate, clip_seconds, crop)


class DESED:
    """One split of DESED with its strong (onset/offset) labels.

    Args:
        root: The release folder (``audio/`` and ``metadata/``).
        split: ``validation`` (WavBriVL Table 1: "2.5k (valid)") or another folder name.
        segment_seconds: Length of the scored segments (sed_eval's default resolution: 1 s).
        clip_seconds: Length of every recording (DESED's are 10 s).
    """

    name = "desed"
    download = "DESED (https://project.inria.fr/desed/), with its metadata/<split>/<split>.tsv"

    def __init__(
        self,
        root: str,
        split: str = "validation",
        segment_seconds: float = 1.0,
        clip_seconds: float = 10.0,
    ) -> None:
        if not 0 < segment_seconds <= clip_seconds:
            raise ConfigError("DESED needs 0 < segment_seconds <= clip_seconds")
        self.root = Path(root)
        self.split = split
        self.classes = list(DESED_CLASSES)
        self.segment_seconds = segment_seconds
        self.clip_seconds = clip_seconds
        self.segments = math.ceil(clip_seconds / segment_seconds - 1e-9)
        path = self.root / "metadata" / split / f"{split}.tsv"
        rows = _read_rows(path, self.root, self.download, "\t")
        if rows and not {"filename", "onset", "offset", "event_label"} <= set(rows[0]):
            raise ManifestError(f"{path}: expected columns filename, onset, offset, event_label")
        names = sorted({row["filename"] for row in rows})
        self.clips = [f"audio/{split}/{name}" for name in names]
        self.activity = torch.zeros(len(names), self.segments, len(DESED_CLASSES), dtype=torch.bool)
        """``(clips, segments, classes)``: which classes sound in each segment."""
        position = {name: index for index, name in enumerate(names)}
        for number, row in enumerate(rows, start=2):
            label = (row["event_label"] or "").strip()
            if not label:
                continue  # a recording without events
            if label not in DESED_CLASSES:
                raise ManifestError(f"{path}:{number}: unknown event label '{label}'")
            try:
                onset, offset = float(row["onset"]), float(row["offset"])
            except ValueError:
                raise ManifestError(f"{path}:{number}: onset/offset are not numbers") from None
            first = int(onset // segment_seconds)
            last = min(self.segments, math.ceil(offset / segment_seconds))
            clip = position[row["filename"]]
            self.activity[clip, first:last, DESED_CLASSES.index(label)] = True

    def dataset(self, sample_rate: int, crop: Crop = "start") -> ClipDataset:
        """Every recording, decoded at ``sample_rate`` and fitted to ``clip_seconds``."""
        return ClipDataset(self.root, self.clips, sample_rate, self.clip_seconds, crop)


class ClipDataset(AudioClipDataset):
    """Audio files of a set with ``index`` and ``error`` (an unreadable one: zeros and its error)."""

    def __init__(
        self, root: Path, clips: list[str], sample_rate: int, clip_seconds: float, crop: Crop
    ) -> None:
        super().__init__(root, sample_rate, clip_seconds, crop)
        self.clips = clips

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return self.with_audio(self.clips[index], {KEY: self.clips[index], INDEX: index, ERROR: ""})
