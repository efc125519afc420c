"""Labelled audio sets with official cross-validation folds, for the downstream tasks.

WavBriVL §4.1 (Table 1) scores its frozen audio tower on ESC-50 (5 folds) and UrbanSound8K (10
folds) by training a classifier on its embeddings; both datasets come with predefined folds, and
their authors ask that results be cross-validated over exactly those folds (clips cut from one
recording share a fold, so a random split would leak). Each set here reads the dataset's own
layout and metadata file, unchanged from the download:

- :class:`ESC50` (Piczak 2015, https://github.com/karolpiczak/ESC-50)::

      <root>/audio/<filename>.wav
      <root>/meta/esc50.csv          # filename, fold (1-5), target (0-49), category, ...

- :class:`UrbanSound8K` (Salamon et al. 2014, https://urbansounddataset.weebly.com)::

      <root>/audio/fold<fold>/<slice_file_name>.wav
      <root>/metadata/UrbanSound8K.csv   # slice_file_name, ..., fold (1-10), classID, class

:class:`a2i.callbacks.downstream.Downstream` embeds every clip once and holds out each evaluated
fold in turn (:class:`a2i.metrics.downstream.ProbeAccuracy`).
"""

from __future__ import annotations

import csv
import logging
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset

from a2i.audio.io import Crop, fit_length, read_audio_window
from a2i.errors import AudioDecodeError, ConfigError, DatasetNotFoundError
from a2i.interfaces import AUDIO, KEY, LABEL

FOLD = "fold"
"""Batch field: the clip's fold ``(B,)`` int64."""
ERROR = "error"
"""Batch field: why a clip could not be read (empty string when it was)."""

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class LabelledClip:
    """One clip of a downstream set.

    Attributes:
        key: Path of the audio file relative to the set's root.
        label: Class index.
        fold: The official fold the clip belongs to.
    """

    key: str
    label: int
    fold: int


class FoldedAudioSet(ABC):
    """A labelled audio classification set with its official cross-validation folds.

    Args:
        root: The dataset's folder, as downloaded.
        folds: Folds to hold out, each once (default: every fold); the probe always trains on
            all the other folds.

    Raises:
        DatasetNotFoundError: ``root`` or its metadata file is missing.
        ConfigError: ``folds`` names a fold the metadata does not have.
    """

    name: str
    """Short name used in metric names and the report."""
    official_folds: tuple[int, ...]
    """Folds of the official protocol."""
    metadata: str
    """Metadata file, relative to the root."""
    download: str
    """Where the dataset comes from (shown when it is missing)."""

    def __init__(self, root: str, folds: list[int] | None = None) -> None:
        self.root = Path(root)
        path = self.root / self.metadata
        if not path.is_file():
            raise DatasetNotFoundError(
                self.root,
                f"{self.metadata} is missing; download {self.download} and pass its folder",
            )
        with open(path, newline="", encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle))
        self.clips, self.classes = self.read_rows(rows)
        present = sorted({clip.fold for clip in self.clips})
        strange = [fold for fold in present if fold not in self.official_folds]
        if strange or len(present) < 2:
            raise ConfigError(
                f"{path} lists folds {present}; {type(self).__name__} has folds "
                f"{list(self.official_folds)} and cross-validation needs at least two"
            )
        self.folds = list(folds) if folds else present
        missing = [fold for fold in self.folds if fold not in present]
        if missing:
            raise ConfigError(f"{type(self).__name__}.folds {missing} are not in {path}")

    def read_rows(self, rows: list[dict[str, str]]) -> tuple[list[LabelledClip], list[str]]:
        """The clips and class names (indexed by label) of the metadata file's rows.

        Every set names each row's class beside its label; the names are gathered here so that
        one rule (:func:`_class_names`) checks labels and names for all of them.
        """
        names: dict[int, set[str]] = {}
        clips = []
        for row in rows:
            clip, class_name = self.read_row(row)
            names.setdefault(clip.label, set()).add(class_name)
            clips.append(clip)
        return clips, _class_names(self.root / self.metadata, names)

    @abstractmethod
    def read_row(self, row: dict[str, str]) -> tuple[LabelledClip, str]:
        """One metadata row's clip and the name of its class."""

    def dataset(self, sample_rate: int, clip_seconds: float, crop: Crop = "start") -> FoldedDataset:
        """Every clip, decoded at ``sample_rate`` and fitted to ``clip_seconds``."""
        return FoldedDataset(self, sample_rate, clip_seconds, crop)


def _class_names(path: Path, names: dict[int, set[str]]) -> list[str]:
    """Names indexed by label from ``{label: names seen}``; labels must be 0..C-1, one name each."""
    if sorted(names) != list(range(len(names))) or any(len(v) != 1 for v in names.values()):
        raise ConfigError(f"{path}: class ids must run 0..C-1 with one class name each")
    return [next(iter(names[label])) for label in range(len(names))]


class ESC50(FoldedAudioSet):
    """ESC-50: 2,000 five-second clips of 50 environmental sound classes in 5 folds."""

    name = "esc50"
    official_folds = (1, 2, 3, 4, 5)
    metadata = "meta/esc50.csv"
    download = "ESC-50 (https://github.com/karolpiczak/ESC-50)"

    def read_row(self, row: dict[str, str]) -> tuple[LabelledClip, str]:
        """``filename``, ``fold``, ``target`` and ``category`` columns."""
        clip = LabelledClip(f"audio/{row['filename']}", int(row["target"]), int(row["fold"]))
        return clip, row["category"]


class UrbanSound8K(FoldedAudioSet):
    """UrbanSound8K: 8,732 urban sound excerpts (up to 4 s) of 10 classes in 10 folds."""

    name = "urbansound8k"
    official_folds = tuple(range(1, 11))
    metadata = "metadata/UrbanSound8K.csv"
    download = "UrbanSound8K (https://urbansounddataset.weebly.com/urbansound8k.html)"

    def read_row(self, row: dict[str, str]) -> tuple[LabelledClip, str]:
        """``slice_file_name``, ``fold``, ``classID`` and ``class`` columns."""
        fold = int(row["fold"])
        clip = LabelledClip(f"audio/fold{fold}/{row['slice_file_name']}", int(row["classID"]), fold)
        return clip, row["class"]


class AudioClipDataset(Dataset):
    """Audio files under ``root`` read as a batch-contract dict each, fitted to ``clip_seconds``.

    A clip that cannot be read yields zeros and its error, so one bad file does not stop the
    evaluation (the caller leaves it out and names it).
    """

    def __init__(self, root: Path, sample_rate: int, clip_seconds: float, crop: Crop) -> None:
        self.root = root
        self.sample_rate = sample_rate
        self.clip_seconds = clip_seconds
        self.crop = crop
        self.num_samples = round(sample_rate * clip_seconds)

    def with_audio(self, name: str, item: dict[str, Any]) -> dict[str, Any]:
        """``item`` with the audio of ``root / name``, or zeros and the reason it was unreadable."""
        try:
            window = read_audio_window(
                self.root / name, self.sample_rate, self.clip_seconds, self.crop
            )
        except AudioDecodeError as error:
            logger.warning("%s", error)
            return {**item, AUDIO: torch.zeros(self.num_samples), ERROR: str(error)}
        return {**item, AUDIO: fit_length(window.waveform, self.num_samples, random_crop=False)}


class FoldedDataset(AudioClipDataset):
    """The clips of a :class:`FoldedAudioSet` with ``label``, ``fold`` and ``error``."""

    def __init__(
        self, audio_set: FoldedAudioSet, sample_rate: int, clip_seconds: float, crop: Crop
    ) -> None:
        super().__init__(audio_set.root, sample_rate, clip_seconds, crop)
        self.audio_set = audio_set

    def __len__(self) -> int:
        return len(self.audio_set.clips)

    def __getitem__(self, index: int) -> dict[str, Any]:
        clip = self.audio_set.clips[index]
        return self.with_audio(
            clip.key, {KEY: clip.key, LABEL: clip.label, FOLD: clip.fold, ERROR: ""}
        )
