"""The on-disk dataset format every a2i dataset uses (synthetic world, VGGSound, VEGAS, ...).

A dataset is a directory holding ``manifest.jsonl`` (one JSON object per clip) and, optionally,
``classes.json`` (the list of class names; index = label). Paths inside the manifest are
relative to that directory, so a dataset can be moved or mounted anywhere. One line::

    {"key": "train/000001", "split": "train", "audio": "audio/000001.wav",
     "image": "images/000001.png", "label": 3, "caption": "a red triangle",
     "features": {"clip": "features/000001.safetensors"}, "meta": {"gain_db": -6.0}}

``features`` (precomputed embeddings, one safetensors file per name) and ``meta`` (free-form
facts, e.g. the synthetic world's factors) are optional. Preparing a dataset means writing this
format once (:func:`write_manifest`); every datamodule then reads it the same way.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from torch.utils.data import Dataset

from a2i.audio.io import fit_length, read_audio_window, read_random_window
from a2i.data.base import AudioVisualDataModule
from a2i.errors import AudioDecodeError, DatasetNotFoundError, ImageDecodeError, ManifestError
from a2i.image import read_image
from a2i.interfaces import AUDIO, CAPTION, IMAGE, KEY, LABEL
from a2i.io_utils import atomic_write_text, file_problem

MANIFEST_FILE = "manifest.jsonl"
CLASSES_FILE = "classes.json"
SPLITS = ("train", "val", "test")
Split = Literal["train", "val", "test"]

logger = logging.getLogger(__name__)


@dataclass
class ManifestRecord:
    """One clip of a dataset, as stored on one line of ``manifest.jsonl``.

    Attributes:
        key: Unique, stable identifier (used to name outputs).
        split: ``train``, ``val`` or ``test``.
        audio: Audio path relative to the manifest directory.
        image: Image path relative to the manifest directory, or None (audio-only clip).
        label: Class index into ``classes.json``; -1 when unknown.
        caption: Text description (may be empty).
        features: Name → relative path of a ``.safetensors`` file with precomputed features.
        meta: Free-form facts about the clip (JSON values).
    """

    key: str
    split: str
    audio: str
    image: str | None = None
    label: int = -1
    caption: str = ""
    features: dict[str, str] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ManifestRecord:
        """Build a record from a parsed JSON object, checking every field's type.

        Raises:
            ManifestError: A required field is missing, a field has the wrong type, the split
                is unknown, or an unknown field is present (most likely a typo).
        """
        if not isinstance(data, dict):
            raise ManifestError(f"expected a JSON object, got {type(data).__name__}")
        unknown = sorted(set(data) - set(cls.__dataclass_fields__))
        if unknown:
            raise ManifestError(f"unknown field(s) {unknown}")
        for name in ("key", "split", "audio"):
            if name not in data:
                raise ManifestError(f"missing required field '{name}'")
        record = cls(
            key=_typed(data, "key", str),
            split=_typed(data, "split", str),
            audio=_typed(data, "audio", str),
            image=_typed(data, "image", str, optional=True),
            label=_typed(data, "label", int, default=-1),
            caption=_typed(data, "caption", str, default=""),
            features=_typed(data, "features", dict, default={}),
            meta=_typed(data, "meta", dict, default={}),
        )
        if not record.key:
            raise ManifestError("field 'key' must not be empty")
        if record.split not in SPLITS:
            raise ManifestError(f"field 'split' must be one of {SPLITS}, got '{record.split}'")
        if record.label < -1:
            raise ManifestError(f"field 'label' must be >= -1, got {record.label}")
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in record.features.items()):
            raise ManifestError("field 'features' must map names to relative file paths (strings)")
        return record

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict; empty ``features``/``meta`` are left out to keep lines short."""
        data: dict[str, Any] = {
            "key": self.key,
            "split": self.split,
            "audio": self.audio,
            "image": self.image,
            "label": self.label,
            "caption": self.caption,
        }
        if self.features:
            data["features"] = dict(self.features)
        if self.meta:
            data["meta"] = dict(self.meta)
        return data


def _typed(
    data: dict[str, Any],
    name: str,
    kind: type,
    *,
    optional: bool = False,
    default: Any = None,
) -> Any:
    """``data[name]`` (or ``default``) checked to be a ``kind`` (bools are not ints here)."""
    value = data.get(name, default)
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, kind):
        null = " or null" if optional else ""
        raise ManifestError(f"field '{name}' must be {kind.__name__}{null}, got {value!r}")
    return value


def read_manifest(root: str | Path) -> list[ManifestRecord]:
    """Read every record of ``<root>/manifest.jsonl`` (blank lines are skipped).

    Raises:
        DatasetNotFoundError: The manifest does not exist.
        ManifestError: A line is not valid JSON, a record is malformed, or a key repeats; the
            message names the file and line number.
    """
    path = Path(root) / MANIFEST_FILE
    if not path.is_file():
        raise DatasetNotFoundError(
            root,
            f"no {MANIFEST_FILE} there; prepare the dataset first (e.g. `a2i world --out {root}` "
            "for the synthetic world, or write one with a2i.data.manifest.write_manifest)",
        )
    records: list[ManifestRecord] = []
    first_line_of_key: dict[str, int] = {}
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                record = ManifestRecord.from_dict(json.loads(line))
            except json.JSONDecodeError as error:
                raise ManifestError(f"{path}:{number}: invalid JSON ({error.msg})") from None
            except ManifestError as error:
                raise ManifestError(f"{path}:{number}: {error}") from None
            if record.key in first_line_of_key:
                raise ManifestError(
                    f"{path}:{number}: key '{record.key}' already used on line "
                    f"{first_line_of_key[record.key]}; keys must be unique"
                )
            first_line_of_key[record.key] = number
            records.append(record)
    return records


def read_classes(root: str | Path) -> list[str] | None:
    """Class names from ``<root>/classes.json``, or None when the dataset has no such file."""
    path = Path(root) / CLASSES_FILE
    if not path.is_file():
        return None
    try:
        classes = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise ManifestError(f"{path}: invalid JSON ({error.msg} at line {error.lineno})") from None
    if not isinstance(classes, list) or not all(isinstance(name, str) for name in classes):
        raise ManifestError(f"{path}: expected a JSON list of class names (strings)")
    return classes


def write_manifest(
    root: str | Path,
    records: Iterable[ManifestRecord],
    classes: Sequence[str] | None = None,
    *,
    overwrite: bool = False,
) -> Path:
    """Write ``manifest.jsonl`` (and ``classes.json`` when ``classes`` is given) atomically.

    Args:
        root: Dataset directory (created if needed).
        records: Clips to list, written in the given order.
        classes: Class names, index = label; labels must be below ``len(classes)``.
        overwrite: Replace existing files instead of refusing.

    Returns:
        The manifest path.
    """
    root = Path(root)
    records = list(records)
    targets = [root / MANIFEST_FILE] + ([root / CLASSES_FILE] if classes is not None else [])
    existing = [str(path) for path in targets if path.exists()]
    if existing and not overwrite:
        raise FileExistsError(f"{existing} already exist; pass overwrite=True to replace them")
    duplicates = [key for key, count in Counter(r.key for r in records).items() if count > 1]
    if duplicates:
        raise ManifestError(f"keys must be unique; repeated: {duplicates[:10]}")
    for record in records:
        ManifestRecord.from_dict(record.to_dict())  # same checks as reading, before writing
        if classes is not None and record.label >= len(classes):
            raise ManifestError(
                f"record '{record.key}': label {record.label} but only {len(classes)} classes"
            )
    root.mkdir(parents=True, exist_ok=True)
    if classes is not None:
        atomic_write_text(root / CLASSES_FILE, json.dumps(list(classes), indent=1) + "\n")
    lines = "".join(json.dumps(record.to_dict(), ensure_ascii=False) + "\n" for record in records)
    atomic_write_text(root / MANIFEST_FILE, lines)
    return root / MANIFEST_FILE


class ManifestDataset(Dataset):
    """The clips of one split of a manifest dataset, as batch-contract dicts.

    At construction every listed audio and image file is checked (exists, non-empty,
    readable). Problem files are written to ``<root>/problems_<split>.log`` and their clips
    skipped, or, with ``strict=True``, reported in a :class:`ManifestError`. A file that passes
    these checks but fails to decode is found when loaded: it is named in a warning and the
    next clip of the split is served in its place (one damaged file among thousands must not end
    a run hours in; substituting silence instead would train on garbage), or, with
    ``strict=True``, its error is raised. Only the seconds the model hears are decoded
    (:func:`~a2i.audio.io.read_audio_window`, :func:`~a2i.audio.io.read_random_window`).

    A split either has an image for every clip (items carry ``image``) or for none
    (audio-only items); a mix cannot be batched and is rejected.

    Args:
        root: Dataset directory holding ``manifest.jsonl``.
        split: Which clips to serve.
        sample_rate: Audio rate delivered, in Hz.
        clip_seconds: Audio length delivered (cropped or zero-padded).
        image_size: Square image resolution delivered.
        random_crop: Crop audio at random offsets (training) instead of from the start.
        strict: Raise on problem files instead of logging and skipping them.
    """

    def __init__(
        self,
        root: str | Path,
        split: Split,
        sample_rate: int = 16000,
        clip_seconds: float = 10.0,
        image_size: int = 224,
        random_crop: bool = False,
        strict: bool = False,
    ) -> None:
        if split not in SPLITS:
            raise ManifestError(f"split must be one of {SPLITS}, got '{split}'")
        self.root = Path(root)
        self.split = split
        self.sample_rate = sample_rate
        self.num_samples = round(sample_rate * clip_seconds)
        self.image_size = image_size
        self.random_crop = random_crop
        self.strict = strict
        self.undecodable: set[str] = set()
        listed = [r for r in read_manifest(self.root) if r.split == split]
        problems = self._find_problems(listed)
        if problems and strict:
            shown = "; ".join(f"{key}: {text}" for key, text in problems[:10])
            shown += " ..." if len(problems) > 10 else ""
            raise ManifestError(
                f"{self.root / MANIFEST_FILE} lists {len(problems)} unusable file(s) in split "
                f"'{split}': {shown}. Fix them, or set strict=False to skip those clips"
            )
        self._report_problems(problems)
        bad_keys = {key for key, _ in problems}
        self.records = [r for r in listed if r.key not in bad_keys]
        if not self.records:
            raise DatasetNotFoundError(
                self.root,
                f"{MANIFEST_FILE} has no usable '{split}' clips ({len(listed)} listed, "
                f"{len(listed) - len(self.records)} skipped); check the manifest and the log",
            )
        with_image = sum(r.image is not None for r in self.records)
        if 0 < with_image < len(self.records):
            raise ManifestError(
                f"{self.root / MANIFEST_FILE}: split '{split}' mixes clips with and without "
                f"images ({with_image} of {len(self.records)} have one); a split must be "
                "all audio-visual or all audio-only"
            )
        self.has_images = with_image > 0
        labelled = sum(r.label >= 0 for r in self.records)
        logger.info(
            "%s: split '%s' has %d clips (%d labelled, %d skipped)",
            self.root,
            split,
            len(self.records),
            labelled,
            len(listed) - len(self.records),
        )

    def _find_problems(self, records: list[ManifestRecord]) -> list[tuple[str, str]]:
        """``(key, description)`` for every listed file that cannot be used."""
        problems = []
        for record in records:
            paths = [("audio", record.audio)] + ([("image", record.image)] if record.image else [])
            for kind, relative in paths:
                problem = file_problem(self.root / relative)
                if problem is not None:
                    problems.append((record.key, f"{kind} '{relative}': {problem}"))
        return problems

    def _report_problems(self, problems: list[tuple[str, str]]) -> None:
        """Write (or clear) ``problems_<split>.log``; log instead if the root is read-only."""
        log_path = self.root / f"problems_{self.split}.log"
        try:
            if problems:
                lines = "".join(f"{key}\t{text}\n" for key, text in problems)
                atomic_write_text(log_path, "key\tproblem\n" + lines)
            else:
                log_path.unlink(missing_ok=True)  # a stale log would report fixed problems
        except OSError as error:
            logger.warning("cannot write %s (%s); problems: %s", log_path, error, problems)
            return
        if problems:
            logger.warning(
                "%s: skipping %d unusable file(s) in split '%s', listed in %s",
                self.root,
                len(problems),
                self.split,
                log_path,
            )

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> dict[str, Any]:
        for step in range(len(self.records)):
            record = self.records[(index + step) % len(self.records)]
            try:
                return self._load(record)
            except (AudioDecodeError, ImageDecodeError) as error:
                if self.strict:
                    raise
                if record.key not in self.undecodable:  # (once per file and loader worker)
                    self.undecodable.add(record.key)
                    logger.warning("%s: serving the next clip instead of %s", error, record.key)
        raise DatasetNotFoundError(self.root, f"no clip of split '{self.split}' can be decoded")

    def _load(self, record: ManifestRecord) -> dict[str, Any]:
        path, seconds = self.root / record.audio, self.num_samples / self.sample_rate
        if self.random_crop:
            window = read_random_window(path, self.sample_rate, seconds)
        else:
            window = read_audio_window(path, self.sample_rate, seconds)
        item: dict[str, Any] = {
            AUDIO: fit_length(window.waveform, self.num_samples, random_crop=False),
            LABEL: record.label,
            CAPTION: record.caption,
            KEY: record.key,
        }
        if record.image is not None:
            item[IMAGE] = read_image(self.root / record.image, self.image_size)
        return item


class ManifestDataModule(AudioVisualDataModule):
    """Serves a manifest dataset: train (random crops), val and test (from the start).

    ``predict`` serves the test split, so ``a2i predict`` on a dataset reproduces test inputs.

    Args:
        root: Dataset directory holding ``manifest.jsonl``.
        strict: Raise on missing/unreadable files instead of logging and skipping them.
        **kwargs: Loader settings (:class:`~a2i.data.base.AudioVisualDataModule`).
    """

    prepare_hint = (
        "generate the synthetic world with `a2i world --out {root}`, or write a manifest.jsonl "
        "with a2i.data.manifest.write_manifest"
    )
    """How to create the dataset, shown when ``root`` is missing; subclasses name their command."""

    def __init__(self, root: str, strict: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.root = root
        self.strict = strict
        self.check_root()

    def check_root(self) -> None:
        """Fail early, naming the remedy, when ``root`` holds no dataset."""
        if not (Path(self.root) / MANIFEST_FILE).is_file():
            missing = (
                "directory does not exist"
                if not Path(self.root).is_dir()
                else f"no {MANIFEST_FILE}"
            )
            hint = self.prepare_hint.format(root=self.root)
            raise DatasetNotFoundError(self.root, f"{missing}; {hint}")

    @property
    def classes(self) -> list[str] | None:
        """Class names (``classes.json``), or None when the dataset has none."""
        return read_classes(self.root)

    def build_dataset(self, split: str) -> ManifestDataset:
        """Train uses random crops; val, test and predict (= test) crop from the start."""
        manifest_split = "test" if split == "predict" else split
        return ManifestDataset(
            self.root,
            manifest_split,
            sample_rate=self.sample_rate,
            clip_seconds=self.clip_seconds,
            image_size=self.image_size,
            random_crop=split == "train",
            strict=self.strict,
        )
