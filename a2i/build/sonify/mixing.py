"""The mixture of a sonified image: LUFS-normalised sources summed in time (Seeing Sound §3.3, A.9).

Each retrieved pool chunk is brought to a loudness drawn uniformly from a dB-LUFS range
(ITU-R BS.1770 integrated loudness, measured with pyloudnorm through
:func:`a2i.audio.effects.loudness`), the sources are summed sample by sample, and a sum whose
peak would clip is scaled down as a whole (``peak_gain_db`` in the recipe; never clipped).

Everything that decides the samples is written into a :class:`MixRecipe` (the pool file and
chunk of every source, its offset, target and measured loudness, gain, retrieval scores), stored
with the image, so a dataset can be re-rendered from the recipes alone, without CLAP or the VLM
(:func:`render_mixture`), and the paper's own released concept files (file id, LUFS, score per
concept) are recipes of the same kind.

Edge cases, said once: a silent chunk has no measurable loudness (BS.1770's absolute gate at
-70 LUFS); it is never retrieved (the pool excludes it), and a recipe naming one renders it at
0 dB with ``measured_lufs`` null instead of an infinite gain (no NaN). A source shorter than
pyloudnorm's 0.4 s gating block is measured zero-padded to that length (the chunk is 5 s anyway,
padded by the pool).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import Tensor

from a2i.audio.effects import apply_gain, loudness
from a2i.errors import ConfigError

DEFAULT_LUFS_RANGE = (-25.0, -21.0)
"""Targets are drawn uniformly from this range. The paper gives no numbers, only that the range
has "very small variance" (§4.5, footnote 4); a2i centres it on EBU R128's -23 LUFS programme
level with ±2 LU, so two sources differ by at most 4 LU and stay both audible, and the sum of
three sources at -21 LUFS rarely comes near full scale."""

DEFAULT_PEAK_CEILING = 0.99
"""Largest absolute sample of a mixture; a louder sum is scaled down as a whole (recorded)."""


@dataclass
class MixSource:
    """One source of a mixture: which chunk, where, how loud, and why it was chosen.

    Attributes:
        concept: The sounding concept's text (what CLAP searched for).
        audio: Pool file id (``<pool>/<file>``).
        chunk: Index of the chunk inside that file (chunk ``i`` starts at ``i · chunk_seconds``).
        lufs: Target loudness in dB LUFS.
        offset: Start inside the mixture in seconds (0: every source spans the whole clip, as in
            the paper's sum of 5 s chunks).
        similarity: Cosine similarity of concept and chunk in CLAP space (the paper's "score").
        score: SSR of that similarity.
        threshold: The concept's dynamic threshold τ.
        candidates: Pool chunks at or above τ for this concept.
        measured_lufs: Loudness of the chunk before normalisation (None: silent).
        gain_db: Gain applied to reach ``lufs``.
    """

    concept: str
    audio: str
    chunk: int = 0
    lufs: float = -23.0
    offset: float = 0.0
    similarity: float | None = None
    score: float | None = None
    threshold: float | None = None
    candidates: int | None = None
    measured_lufs: float | None = None
    gain_db: float | None = None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MixSource:
        """Build from a stored recipe entry (unknown fields are refused)."""
        unknown = sorted(set(data) - set(cls.__dataclass_fields__))
        if unknown:
            raise ConfigError(f"recipe source has unknown field(s) {unknown}")
        return cls(**data)


@dataclass
class MixRecipe:
    """Everything that decides the samples of one sonified image's audio.

    Attributes:
        sources: The sources, summed in this order.
        sample_rate: Rate of the mixture in Hz.
        seconds: Length of the mixture.
        peak_gain_db: Gain applied to the whole sum so that its peak stays under the ceiling
            (0 when none was needed, negative otherwise).
        peak: Absolute peak of the rendered mixture.
    """

    sources: list[MixSource]
    sample_rate: int
    seconds: float
    peak_gain_db: float = 0.0
    peak: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (stored in the shard record and in ``recipes.jsonl``)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MixRecipe:
        """Build from :meth:`to_dict`'s output."""
        sources = [MixSource.from_dict(s) for s in data.get("sources", [])]
        return cls(**{**data, "sources": sources})


ChunkReader = Callable[[str, int], Tensor]
"""``(audio file id, chunk index) → (T,)`` waveform of that chunk at the recipe's rate."""


@dataclass
class RenderedMix:
    """A mixture and the recipe it was rendered from (with measured loudness and gains filled)."""

    waveform: Tensor
    recipe: MixRecipe
    notes: list[str] = field(default_factory=list)


def draw_lufs(key: str, seed: int, index: int, lufs_range: tuple[float, float]) -> float:
    """A target loudness for source ``index`` of image ``key``, uniform in ``lufs_range``.

    Drawn from a hash of (seed, key, index), not from a running generator, so an image's targets
    do not depend on which other images are sonified or in what order (resume, sharding).
    """
    low, high = lufs_range
    if not low <= high <= 0:
        raise ConfigError(
            f"lufs_range must be (low, high) with low <= high <= 0 (got {lufs_range})"
        )
    return round(low + (high - low) * stable_uniform(f"lufs:{seed}:{key}:{index}"), 3)


def stable_uniform(text: str) -> float:
    """A uniform in [0, 1) determined by ``text`` (SHA-1), the same on every machine."""
    digest = hashlib.sha1(text.encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def normalize_source(
    waveform: Tensor, sample_rate: int, target_lufs: float
) -> tuple[Tensor, float | None, float]:
    """Scale a ``(T,)`` source to ``target_lufs`` (A.9: gain = target − measured, in dB).

    Returns the scaled waveform, the measured loudness (None for silence, which is returned
    unchanged: 0 dB, never an infinite gain) and the gain in dB.
    """
    measured = loudness(waveform, sample_rate)
    if not math.isfinite(measured):
        return waveform.clone(), None, 0.0
    gain = target_lufs - measured
    return apply_gain(waveform, gain), round(measured, 4), round(gain, 4)


def render_mixture(
    recipe: MixRecipe,
    read_chunk: ChunkReader,
    peak_ceiling: float = DEFAULT_PEAK_CEILING,
) -> RenderedMix:
    """Normalise every source of ``recipe``, sum them, keep the peak under ``peak_ceiling``.

    The returned recipe carries each source's measured loudness and gain and the whole mixture's
    ``peak_gain_db``, so what happened to the samples is stored with them.
    """
    length = round(recipe.seconds * recipe.sample_rate)
    mixture = torch.zeros(length, dtype=torch.float64)
    sources, notes = [], []
    for source in recipe.sources:
        waveform = read_chunk(source.audio, source.chunk).double()
        scaled, measured, gain = normalize_source(waveform, recipe.sample_rate, source.lufs)
        if measured is None:
            notes.append(f"{source.audio}#{source.chunk} is silent: added at 0 dB")
        start = round(source.offset * recipe.sample_rate)
        if not 0 <= start < length:
            raise ConfigError(
                f"recipe source {source.audio}: offset {source.offset} s is outside the "
                f"{recipe.seconds} s mixture"
            )
        piece = scaled[: length - start]
        mixture[start : start + len(piece)] += piece
        sources.append(MixSource(**{**asdict(source), "measured_lufs": measured, "gain_db": gain}))
    peak = float(mixture.abs().max()) if length else 0.0
    peak_gain_db = 0.0
    if peak > peak_ceiling:
        # rounded down to 1e-4 dB (stored exactly in the recipe) so the peak stays under
        peak_gain_db = math.floor(20 * math.log10(peak_ceiling / peak) * 1e4) / 1e4
        mixture = apply_gain(mixture, peak_gain_db)
        notes.append(f"sum peaked at {peak:.3f}: scaled by {peak_gain_db} dB")
        peak = float(mixture.abs().max())
    rendered = MixRecipe(
        sources=sources,
        sample_rate=recipe.sample_rate,
        seconds=recipe.seconds,
        peak_gain_db=peak_gain_db,
        peak=round(peak, 5),
    )
    return RenderedMix(mixture.float(), rendered, notes)
