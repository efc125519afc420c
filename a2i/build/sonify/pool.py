"""The audio pool of Seeing Sound: where the sounds of sonified images come from (§4.1, A.7).

The paper pools AudioSet's balanced segments, FSD50K and BBC Sound Effects, standardised to
16 kHz mono and cut into non-overlapping 5 s chunks, the last one zero-padded (a 34 s file gives
seven chunks, the seventh holding 4 s of sound and 1 s of silence). Each layout below lists the
files of one such dataset as it is distributed; :class:`AudioFolderPool` takes any folder of
audio. Pools are listed, not decoded, here: :mod:`a2i.build.sonify.pool_cache` decodes, chunks
and embeds them once.

A pool file's id is ``<pool name>/<id inside the dataset>`` (the FSD50K ``fname``, the AudioSet
YouTube id, the BBC file name, the relative path of a folder's file), so recipes and released
concept files name sounds without machine-specific paths.
"""

from __future__ import annotations

import csv
import logging
import math
from abc import ABC, abstractmethod
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

import torch.nn.functional as F
import torchaudio.functional as AF
from torch import Tensor

from a2i.audio.io import read_audio
from a2i.audio.listing import list_audio_files
from a2i.build.clips import segment_start
from a2i.errors import ConfigError, DatasetNotFoundError, ManifestError
from a2i.io_utils import keep_if_usable

logger = logging.getLogger(__name__)

POOL_SAMPLE_RATE = 16000
"""A.7: every pool file is resampled to 16 kHz (and summed to mono)."""
CHUNK_SECONDS = 5.0
"""A.7: 5 s non-overlapping chunks."""


@dataclass(frozen=True)
class PoolFile:
    """One audio file of a pool.

    Attributes:
        id: ``<pool name>/<id inside the dataset>``, unique across pools.
        path: Where the file is.
        labels: The dataset's own labels for it (class names or a description).
    """

    id: str
    path: str
    labels: tuple[str, ...] = ()


@dataclass
class PoolScan:
    """The usable files of a pool and the listed ones that are missing, empty or unreadable."""

    files: list[PoolFile] = field(default_factory=list)
    unusable: list[tuple[str, str, str]] = field(default_factory=list)

    def add(self, file: PoolFile) -> None:
        """Keep ``file``, or list it as unusable when it is missing, empty or unreadable."""
        keep_if_usable(file, file.id, file.path, self.files, self.unusable)


def chunk_count(num_samples: int, chunk_samples: int) -> int:
    """Chunks of a file: ``ceil(T / L)`` (A.7: 34 s → 7 chunks of 5 s), at least one."""
    return max(1, math.ceil(num_samples / chunk_samples))


def chunk_waveform(
    waveform: Tensor, sample_rate: int = POOL_SAMPLE_RATE, chunk_seconds: float = CHUNK_SECONDS
) -> Tensor:
    """``(T,)`` → ``(n, L)`` non-overlapping chunks of ``chunk_seconds``, the last zero-padded."""
    length = round(chunk_seconds * sample_rate)
    if length < 1:
        raise ConfigError(f"chunk_seconds must cover at least one sample (got {chunk_seconds})")
    count = chunk_count(waveform.shape[-1], length)
    padded = F.pad(waveform, (0, count * length - waveform.shape[-1]))
    return padded.reshape(count, length)


def chunk_of(waveform: Tensor, index: int, sample_rate: int, chunk_seconds: float) -> Tensor:
    """Chunk ``index`` of a file's waveform (the same samples :func:`chunk_waveform` gives)."""
    length = round(chunk_seconds * sample_rate)
    if index < 0 or index >= chunk_count(waveform.shape[-1], length):
        raise ConfigError(f"chunk {index} is beyond the end of a {len(waveform)}-sample file")
    piece = waveform[index * length : (index + 1) * length]
    return F.pad(piece, (0, length - len(piece)))


class AudioPool(ABC):
    """A dataset of sounds to draw from; subclasses read one distribution's layout.

    Args:
        root: The dataset's folder.
        name: Prefix of its file ids (default: the layout's name).
    """

    default_name = "pool"

    def __init__(self, root: str, name: str | None = None) -> None:
        self.root = Path(root)
        self.name = name or self.default_name
        if not self.name or "/" in self.name or "\n" in self.name:
            raise ConfigError(f"pool name '{self.name}' must be non-empty without '/'")

    @abstractmethod
    def scan(self) -> PoolScan:
        """List the pool's files (cheap checks only; decoding happens when embedding)."""

    def file_id(self, native: str) -> str:
        """``<name>/<native>``."""
        return f"{self.name}/{native}"

    def _require(self, path: Path, what: str) -> Path:
        if not path.exists():
            raise DatasetNotFoundError(self.root, f"no {what} at {path}; {self.layout_hint}")
        return path

    layout_hint = "see docs/datasets.md ('Seeing Sound: sonified images')"


class AudioFolderPool(AudioPool):
    """Every audio file under a folder (recursively); labels from the parent folder's name."""

    default_name = "folder"

    def scan(self) -> PoolScan:
        """All files with an audio suffix, sorted."""
        result = PoolScan()
        for relative in list_audio_files(self.root):
            parent = Path(relative).parent.name
            labels = (parent,) if parent else ()
            result.add(PoolFile(self.file_id(relative), str(self.root / relative), labels))
        return result


class AudioSetPool(AudioPool):
    """AudioSet's balanced training segments (22 k clips of 10 s, §4.1).

    Args:
        root: Folder with the official ``balanced_train_segments.csv`` (``YTID, start_seconds,
            end_seconds, positive_labels``; ``#`` lines are comments) and the audio files.
        name: File-id prefix.
        csv_file: The segments CSV, relative to ``root``.
        audio_dir: Folder of the downloaded segments, relative to ``root``.
        filename: File name pattern (fields ``ytid``, ``start`` in whole seconds); the default
            is the common download layout ``Y<ytid>.wav``.
        labels_file: ``class_labels_indices.csv`` (``index,mid,display_name``) to turn label
            ids into names; None keeps the ids.
    """

    default_name = "audioset"
    layout_hint = "expected <root>/balanced_train_segments.csv and <root>/<audio_dir>/Y<ytid>.wav"

    def __init__(
        self,
        root: str,
        name: str | None = None,
        csv_file: str = "balanced_train_segments.csv",
        audio_dir: str = "balanced_train_segments",
        filename: str = "Y{ytid}.wav",
        labels_file: str | None = "class_labels_indices.csv",
    ) -> None:
        super().__init__(root, name)
        self.csv_file = csv_file
        self.audio_dir = audio_dir
        self.filename = filename
        self.labels_file = labels_file

    def _label_names(self) -> dict[str, str]:
        if self.labels_file is None or not (self.root / self.labels_file).is_file():
            return {}
        with (self.root / self.labels_file).open(newline="", encoding="utf-8") as handle:
            return {row["mid"]: row["display_name"] for row in csv.DictReader(handle)}

    def scan(self) -> PoolScan:
        """One file per CSV row that names a segment."""
        path = self._require(self.root / self.csv_file, self.csv_file)
        names = self._label_names()
        result = PoolScan()
        with path.open(newline="", encoding="utf-8") as handle:
            for number, row in enumerate(csv.reader(handle, skipinitialspace=True), start=1):
                if not row or row[0].startswith("#"):
                    continue
                if len(row) < 4:
                    raise ManifestError(f"{path}:{number}: expected 4 columns, got {len(row)}")
                ytid, start = row[0], row[1]
                seconds = segment_start(start, f"{path}:{number}")
                labels = tuple(names.get(mid, mid) for mid in ",".join(row[3:]).split(",") if mid)
                audio = self.root / self.audio_dir / self.filename.format(ytid=ytid, start=seconds)
                result.add(PoolFile(self.file_id(ytid), str(audio), labels))
        return result


class FSD50KPool(AudioPool):
    """FSD50K (Zenodo 4060432): dev and eval clips with the ground-truth CSVs (§4.1).

    Args:
        root: Folder holding ``FSD50K.dev_audio/``, ``FSD50K.eval_audio/`` and
            ``FSD50K.ground_truth/{dev,eval}.csv`` (``fname,labels,mids[,split]``).
        name: File-id prefix.
        splits: Which parts to pool (the paper does not say; all of FSD50K by default).
    """

    default_name = "fsd50k"
    layout_hint = "expected <root>/FSD50K.ground_truth/dev.csv and <root>/FSD50K.dev_audio/*.wav"

    def __init__(
        self, root: str, name: str | None = None, splits: tuple[str, ...] = ("dev", "eval")
    ) -> None:
        super().__init__(root, name)
        unknown = sorted(set(splits) - {"dev", "eval"})
        if unknown or not splits:
            raise ConfigError(f"FSD50KPool.splits must be dev and/or eval (got {splits})")
        self.splits = tuple(splits)

    def scan(self) -> PoolScan:
        """One file per ground-truth row."""
        result = PoolScan()
        for split in self.splits:
            path = self._require(self.root / "FSD50K.ground_truth" / f"{split}.csv", f"{split}.csv")
            with path.open(newline="", encoding="utf-8") as handle:
                for number, row in enumerate(csv.DictReader(handle), start=2):
                    if "fname" not in row or "labels" not in row:
                        raise ManifestError(f"{path}:{number}: needs fname and labels columns")
                    fname = row["fname"].strip()
                    audio = self.root / f"FSD50K.{split}_audio" / f"{fname}.wav"
                    labels = tuple(label for label in row["labels"].split(",") if label)
                    result.add(PoolFile(self.file_id(fname), str(audio), labels))
        return result


class BBCSoundEffectsPool(AudioPool):
    """BBC Sound Effects (sound-effects.bbcrewind.co.uk): wav files plus the catalogue CSV (§4.1).

    Args:
        root: Folder with the catalogue CSV and the wav files it names.
        name: File-id prefix.
        csv_file: The catalogue (``BBCSoundEffects.csv``), relative to ``root``.
        location_column: Column holding the wav file name (relative to ``audio_dir``).
        description_column: Column holding the description (kept as the file's label).
        audio_dir: Folder of the wav files, relative to ``root``.
    """

    default_name = "bbc_sfx"
    layout_hint = "expected <root>/BBCSoundEffects.csv (location, description, ...) and the wavs"

    def __init__(
        self,
        root: str,
        name: str | None = None,
        csv_file: str = "BBCSoundEffects.csv",
        location_column: str = "location",
        description_column: str = "description",
        audio_dir: str = ".",
    ) -> None:
        super().__init__(root, name)
        self.csv_file = csv_file
        self.location_column = location_column
        self.description_column = description_column
        self.audio_dir = audio_dir

    def scan(self) -> PoolScan:
        """One file per catalogue row."""
        path = self._require(self.root / self.csv_file, self.csv_file)
        result = PoolScan()
        with path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            missing = {self.location_column, self.description_column} - set(reader.fieldnames or ())
            if missing:
                raise ManifestError(f"{path}: missing column(s) {sorted(missing)}")
            for row in reader:
                location = row[self.location_column].strip()
                description = row[self.description_column].strip()
                audio = self.root / self.audio_dir / location
                labels = (description,) if description else ()
                result.add(PoolFile(self.file_id(Path(location).stem), str(audio), labels))
        return result


def scan_pools(pools: list[AudioPool]) -> PoolScan:
    """All pools' files, sorted by id; duplicate ids (two pools with one name) are refused."""
    if not pools:
        raise ConfigError("sonification needs at least one audio pool (data.pools)")
    names = [pool.name for pool in pools]
    if len(set(names)) != len(names):
        raise ConfigError(f"audio pools need distinct names (got {names}); set `name:`")
    merged = PoolScan()
    for pool in pools:
        found = pool.scan()
        merged.files.extend(found.files)
        merged.unusable.extend(found.unusable)
        logger.warning(
            "audio pool %s (%s): %d files, %d listed but missing, empty or unreadable",
            pool.name,
            pool.root,
            len(found.files),
            len(found.unusable),
        )
    ids = [file.id for file in merged.files]
    if len(set(ids)) != len(ids):
        repeated = sorted({i for i in ids if ids.count(i) > 1})[:5]
        raise ManifestError(f"audio pool file ids repeat: {repeated}")
    merged.files.sort(key=lambda file: file.id)
    if not merged.files:
        raise DatasetNotFoundError(
            ", ".join(str(pool.root) for pool in pools), "the audio pools hold no usable file"
        )
    return merged


def resample_chunks(chunks: Tensor, source_rate: int, target_rate: int) -> Tensor:
    """Chunks at the pool's rate → the encoder's rate (torchaudio's band-limited resampler)."""
    if source_rate == target_rate:
        return chunks
    return AF.resample(chunks, source_rate, target_rate)


class PoolReader:
    """Reads chunks of pool files by id: all a recipe needs to be rendered (no CLAP).

    Args:
        files: The pool's files.
        sample_rate: Pool rate (A.7: 16 kHz).
        chunk_seconds: Chunk length (A.7: 5 s).
        keep: Decoded files kept in memory (consecutive images may share sources).
    """

    def __init__(
        self,
        files: list[PoolFile],
        sample_rate: int = POOL_SAMPLE_RATE,
        chunk_seconds: float = CHUNK_SECONDS,
        keep: int = 8,
    ) -> None:
        self.files = {file.id: file for file in files}
        self.sample_rate = sample_rate
        self.chunk_seconds = chunk_seconds
        self.keep = keep
        self._decoded: OrderedDict[str, Tensor] = OrderedDict()

    def resolve(self, audio: str) -> str | None:
        """The pool file id ``audio`` names: itself, or the one file whose id ends in ``/<audio>``."""
        if audio in self.files:
            return audio
        matches = [file_id for file_id in self.files if file_id.endswith(f"/{audio}")]
        return matches[0] if len(matches) == 1 else None

    def read_chunk(self, file_id: str, chunk: int) -> Tensor:
        """Chunk ``chunk`` of a file at the pool's rate: the samples that were embedded."""
        waveform = self._decoded.get(file_id)
        if waveform is None:
            if file_id not in self.files:
                raise ConfigError(f"audio '{file_id}' is not in the pool")
            waveform = read_audio(self.files[file_id].path, self.sample_rate)
            self._decoded[file_id] = waveform
            while len(self._decoded) > self.keep:
                self._decoded.popitem(last=False)
        self._decoded.move_to_end(file_id)
        return chunk_of(waveform, chunk, self.sample_rate, self.chunk_seconds)

    def __getstate__(self) -> dict:
        """Decoded audio stays behind when the reader is sent to a worker process."""
        return {**self.__dict__, "_decoded": OrderedDict()}
