"""Sounding concepts per image (Seeing Sound §3.2) from pluggable sources, and the A.2 filter.

A :class:`ConceptSource` turns images into short texts naming what in them makes a sound
("dog: sound of a dog barking while running in the grass"), each later matched to a pool chunk
by CLAP. Three sources:

- :class:`~a2i.build.sonify.vlm.VLMConceptSource`: a vision-language model (LLaVA-1.5 or CogVLM,
  the paper's two) asked with the paper's "visible and present in the image" prompt;
- :class:`CaptionConcepts`: existing captions, cut into concepts by a typed rule;
- :class:`FixedConcepts`: a file of concepts per image with their audio already chosen, the
  format of the concept files the paper promises to release (A.1: per image, entries of concept,
  audio file id, LUFS value and matching score); such entries skip retrieval.

The non-sonic filter of A.2 drops an image whose caption (from any source) names a logo, icon,
emblem, symbol, trademark or sign: inherently silent pictures that hurt training.
"""

from __future__ import annotations

import csv
import hashlib
import json
import re
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from a2i.build.sonify.images import ImageItem
from a2i.errors import ConfigError, ManifestError

NON_SONIC_KEYWORDS: tuple[str, ...] = ("logo", "icon", "emblem", "symbol", "trademark", "sign")
"""A.2's keywords: an image whose caption contains one is discarded."""

KeywordMatch = Literal["word", "substring"]


def non_sonic_keyword(
    caption: str | None,
    keywords: Sequence[str] = NON_SONIC_KEYWORDS,
    match: KeywordMatch = "word",
) -> str | None:
    """The first keyword of ``keywords`` the caption contains, or None (A.2).

    ``word`` matches whole words and their plurals, case-insensitively ("Signs", "a logo" but not
    "design" or "signal"); ``substring`` is the paper's wording read literally ("contains any
    of the keywords"), which also drops "design", "assigned" or "signal".
    """
    if not caption:
        return None
    lowered = caption.lower()
    for keyword in keywords:
        word = keyword.lower()
        if match == "substring":
            if word in lowered:
                return keyword
        elif re.search(rf"\b{re.escape(word)}(s|es)?\b", lowered):
            return keyword
    return None


@dataclass
class SoundingConcept:
    """One sounding concept of an image.

    Attributes:
        text: What CLAP searches for ("sound of a dog barking while running in the grass").
        name: The sounding thing ("dog"), when the source names it.
        audio: A pool file id chosen beforehand (released concept files); None: retrieve.
        chunk: The chunk of ``audio`` (None: its first).
        lufs: Loudness target chosen beforehand (None: drawn from the range).
        score: Matching score that came with a fixed choice.
    """

    text: str
    name: str = ""
    audio: str | None = None
    chunk: int | None = None
    lufs: float | None = None
    score: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict without unset fields."""
        return {k: v for k, v in asdict(self).items() if v not in (None, "")}


@dataclass
class ImageConcepts:
    """What a source says about one image: its caption (for the A.2 filter) and concepts.

    ``failed``: the source could not read the image (a failure of the run, named and counted
    apart from images the filter or a concept-less answer drops).
    """

    caption: str | None = None
    concepts: list[SoundingConcept] = field(default_factory=list)
    problem: str = ""
    failed: bool = False

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (one line of ``concepts.jsonl``)."""
        return {
            "caption": self.caption,
            "concepts": [c.to_dict() for c in self.concepts],
            "problem": self.problem,
            **({"failed": True} if self.failed else {}),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ImageConcepts:
        """Inverse of :meth:`to_dict`."""
        return cls(
            caption=data.get("caption"),
            concepts=[SoundingConcept(**c) for c in data.get("concepts", [])],
            problem=data.get("problem", ""),
            failed=data.get("failed", False),
        )


class ConceptSource(ABC):
    """Images → sounding concepts (and captions for the filter).

    Args:
        name: Names the source in recipes and, when a dataset uses several sources (the paper
            uses LLaVA and CogVLM, one sonification of each image per model), in sample keys.
    """

    batch_size: int = 64
    trust_remote_code: bool = False
    """The user allows :meth:`setup` to run the checkpoint's own Python code (:attr:`remote_code`)."""
    remote_code: str | None = None
    """The checkpoint whose own Python code :meth:`setup` would run (None: none)."""

    def __init__(self, name: str) -> None:
        if not re.fullmatch(r"[A-Za-z0-9_\-]+", name):
            raise ConfigError(f"concept source name '{name}' may hold letters, digits, _ and -")
        self.name = name

    @abstractmethod
    def recipe(self) -> dict[str, Any]:
        """What decides this source's concepts (recorded in the dataset's settings)."""

    @abstractmethod
    def describe(self, images: Sequence[ImageItem]) -> list[ImageConcepts]:
        """Concepts of each image (an image without any carries a ``problem``)."""

    def setup(self, device: str) -> None:  # noqa: B027 (a hook: most sources load nothing)
        """Load models onto ``device`` before the first :meth:`describe` (none by default)."""

    def check_remote_code(self) -> None:
        """Refuse to run a checkpoint's own code that the user did not allow.

        Remote code is a Python program from the checkpoint's authors, run with the user's
        rights; a2i runs it only on an opt-in typed for this run, never because a shipped or
        shared config says so.
        """
        if self.remote_code is not None and not self.trust_remote_code:
            raise ConfigError(
                f"concept source '{self.name}' would run the Python code that comes with "
                f"{self.remote_code}; a2i runs it only when you allow it: read that code, then "
                "add --data.init_args.trust_remote_code true (a2i sonify, a2i fit)"
            )


def _lookup(table: dict[str, Any], image: ImageItem) -> Any:
    """An entry by image key, file name, file stem or relative path."""
    for name in (image.key, Path(image.relative).name, Path(image.relative).stem, image.relative):
        if name in table:
            return table[name]
    return None


def read_table_file(path: Path) -> list[dict[str, Any]]:
    """Rows of a ``.json`` (list or ``{id: value}``), ``.jsonl``, ``.csv`` or ``.tsv`` file."""
    if not path.is_file():
        raise ConfigError(f"'{path}' does not exist")
    suffix = path.suffix.lower()
    text = path.read_text(encoding="utf-8-sig")
    if suffix == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as error:
            raise ManifestError(f"{path}: invalid JSON ({error.msg})") from None
        if isinstance(data, dict):
            return [{"image": key, "value": value} for key, value in data.items()]
        if isinstance(data, list):
            return data
        raise ManifestError(f"{path}: expected a JSON object or list")
    if suffix == ".jsonl":
        rows = []
        for number, line in enumerate(text.splitlines(), start=1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as error:
                    raise ManifestError(f"{path}:{number}: invalid JSON ({error.msg})") from None
        return rows
    if suffix in (".csv", ".tsv"):
        return list(csv.DictReader(text.splitlines(), delimiter="\t" if suffix == ".tsv" else ","))
    raise ConfigError(f"'{path}': use a .json, .jsonl, .csv or .tsv file")


CaptionRule = Literal["whole", "sentences", "phrases", "vocabulary"]


class CaptionConcepts(ConceptSource):
    """Concepts cut from existing captions by a typed rule.

    Args:
        captions: File of captions: ``.csv``/``.tsv`` with ``image`` and ``caption`` columns,
            ``.jsonl`` lines ``{"image", "caption"}``, or ``.json`` ``{image: caption}``; images
            are matched by key, file name, stem or relative path.
        rule: ``whole``: the caption is one concept; ``sentences``: one per sentence;
            ``phrases``: split at sentence ends, commas, semicolons, "and", "with" (each
            listed thing);
            ``vocabulary``: every ``vocabulary`` term the caption names (whole words).
        vocabulary: Sounding terms for ``rule: vocabulary``.
        template: Format of each concept's CLAP text (``"the sound of {}"``).
        max_concepts: Most concepts per image (the first ones).
        name: Source name.
    """

    def __init__(
        self,
        captions: str,
        rule: CaptionRule = "phrases",
        vocabulary: list[str] | None = None,
        template: str = "{}",
        max_concepts: int = 5,
        name: str = "captions",
    ) -> None:
        super().__init__(name)
        if rule == "vocabulary" and not vocabulary:
            raise ConfigError("CaptionConcepts rule 'vocabulary' needs a vocabulary list")
        if "{}" not in template:
            raise ConfigError(f"CaptionConcepts.template must contain '{{}}' (got '{template}')")
        if max_concepts < 1:
            raise ConfigError(f"CaptionConcepts.max_concepts must be >= 1 (got {max_concepts})")
        self.path = Path(captions)
        self.rule = rule
        self.vocabulary = list(vocabulary or [])
        self.template = template
        self.max_concepts = max_concepts
        self.captions: dict[str, str] = {}
        for number, row in enumerate(read_table_file(self.path), start=1):
            image, caption = row.get("image"), row.get("caption", row.get("value"))
            if not isinstance(image, str) or not isinstance(caption, str):
                raise ManifestError(f"{self.path}: row {number} needs string image and caption")
            self.captions[image] = caption.strip()

    def recipe(self) -> dict[str, Any]:
        """Rule, vocabulary, template and the captions themselves (hashed)."""
        text = json.dumps(self.captions, sort_keys=True)
        return {
            "class": type(self).__name__,
            "rule": self.rule,
            "vocabulary": self.vocabulary,
            "template": self.template,
            "max_concepts": self.max_concepts,
            "captions_sha1": sha1_text(text),
        }

    def split(self, caption: str) -> list[str]:
        """The caption's concepts by :attr:`rule` (before the template)."""
        if self.rule == "whole":
            parts = [caption]
        elif self.rule == "sentences":
            parts = re.split(r"(?<=[.!?])\s+", caption)
        elif self.rule == "phrases":
            parts = re.split(r"\s*[,;]\s*|(?<=[.!?])\s+|\s+(?:and|with)\s+", caption)
        else:
            lowered = caption.lower()
            parts = [
                term
                for term in self.vocabulary
                if re.search(rf"\b{re.escape(term.lower())}\b", lowered)
            ]
        cleaned = [part.strip(" .!?") for part in parts]
        unique = list(dict.fromkeys(part for part in cleaned if part))
        return unique[: self.max_concepts]

    def describe(self, images: Sequence[ImageItem]) -> list[ImageConcepts]:
        """Look up each image's caption and cut it."""
        found = []
        for image in images:
            caption = _lookup(self.captions, image)
            if caption is None:
                found.append(ImageConcepts(problem=f"no caption in {self.path.name}"))
                continue
            concepts = [
                SoundingConcept(self.template.format(part), name=part)
                for part in self.split(caption)
            ]
            problem = "" if concepts else f"rule '{self.rule}' finds no concept in the caption"
            found.append(ImageConcepts(caption, concepts, problem))
        return found


class FixedConcepts(ConceptSource):
    """Concepts whose audio was chosen already: the paper's released format (A.1).

    Args:
        concepts: ``.json`` ``{image id: [entry, ...]}`` or ``.jsonl`` lines ``{"image", "concepts":
            [entry, ...], "caption"?}``; an entry is ``[concept, audio file id, LUFS, score]``
            (optionally a fifth element, the chunk) or ``{"concept", "audio", "lufs", "score",
            "chunk"}``. An audio id is a pool file id (``fsd50k/1234``) or, when unique, the id
            inside one pool (``1234``); the chunk defaults to the first. An entry without
            ``audio`` is retrieved like any concept.
        name: Source name.
    """

    def __init__(self, concepts: str, name: str = "fixed") -> None:
        super().__init__(name)
        self.path = Path(concepts)
        self.table: dict[str, ImageConcepts] = {}
        for number, row in enumerate(read_table_file(self.path), start=1):
            where = f"{self.path}: entry {number}"
            image = row.get("image")
            entries = row.get("concepts", row.get("value"))
            if not isinstance(image, str) or not isinstance(entries, list):
                raise ManifestError(f"{where}: needs an image id and a list of concepts")
            concepts = [_fixed_entry(entry, f"{where} ({image})") for entry in entries]
            self.table[image] = ImageConcepts(row.get("caption"), concepts)

    def recipe(self) -> dict[str, Any]:
        """The whole table (hashed)."""
        text = json.dumps({k: v.to_dict() for k, v in self.table.items()}, sort_keys=True)
        return {"class": type(self).__name__, "table_sha1": sha1_text(text)}

    def describe(self, images: Sequence[ImageItem]) -> list[ImageConcepts]:
        """Each image's entries."""
        found = []
        for image in images:
            entry = _lookup(self.table, image)
            if entry is None:
                found.append(ImageConcepts(problem=f"not listed in {self.path.name}"))
            else:
                problem = "" if entry.concepts else f"no concepts in {self.path.name}"
                found.append(ImageConcepts(entry.caption, list(entry.concepts), problem))
        return found


def _fixed_entry(entry: Any, where: str) -> SoundingConcept:
    """One released entry → a concept (list or dict form)."""
    if isinstance(entry, list) and 1 <= len(entry) <= 5:
        fields = dict(zip(("concept", "audio", "lufs", "score", "chunk"), entry, strict=False))
    elif isinstance(entry, dict):
        fields = dict(entry)
    else:
        raise ManifestError(f"{where}: an entry is [concept, audio, lufs, score] or a dict")
    unknown = sorted(set(fields) - {"concept", "audio", "lufs", "score", "chunk"})
    if unknown or not isinstance(fields.get("concept"), str):
        raise ManifestError(f"{where}: needs a 'concept' text (unknown fields: {unknown})")
    for number in ("lufs", "score"):
        if fields.get(number) is not None and not isinstance(fields[number], int | float):
            raise ManifestError(f"{where}: '{number}' must be a number")
    if fields.get("lufs") is not None and fields["lufs"] > 0:
        raise ManifestError(f"{where}: LUFS values are <= 0 (got {fields['lufs']})")
    chunk = fields.get("chunk")
    if chunk is not None and (not isinstance(chunk, int) or chunk < 0):
        raise ManifestError(f"{where}: 'chunk' must be a non-negative integer")
    return SoundingConcept(
        text=fields["concept"],
        name=fields["concept"].split(":")[0].strip(),
        audio=fields.get("audio"),
        chunk=chunk,
        lufs=None if fields.get("lufs") is None else float(fields["lufs"]),
        score=None if fields.get("score") is None else float(fields["score"]),
    )


def parse_vlm_answer(answer: str, max_concepts: int) -> list[SoundingConcept]:
    """Concepts from a VLM's answer to the sounding-concept prompt, one per line.

    ``name: description`` lines give ``name`` and the description as CLAP's text; list markers
    (``-``, ``*``, ``1.``) are dropped; "none" and empty lines give nothing.
    """
    concepts = []
    for line in answer.splitlines():
        line = re.sub(r"^\s*(?:[-*•]|\d+[.)])\s*", "", line).strip().strip('"')
        if not line or line.lower().rstrip(".") in ("none", "nothing", "n/a"):
            continue
        name, colon, description = line.partition(":")
        if colon and description.strip():
            concepts.append(SoundingConcept(description.strip(), name=name.strip()))
        else:
            concepts.append(SoundingConcept(line))
    return list({c.text: c for c in concepts}.values())[:max_concepts]


def sha1_text(text: str) -> str:
    """Hex SHA-1 of a text (recipes record hashes of prompts and tables, not their contents)."""
    return hashlib.sha1(text.encode()).hexdigest()
