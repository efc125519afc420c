"""Images → sounding concepts → retrieved chunks → mixtures → shards (Seeing Sound §3).

:func:`sonify_images` runs the steps that turn an image collection into audio-visual training
pairs, each resumable and each recorded under the output folder:

1. ``concepts.jsonl``: every image's concepts and caption from each concept source, appended
   as they are computed (a VLM is the slow step; a killed run keeps what was done).
2. The A.2 filter drops images that any source's caption says are silent, for every source
   (``problems.log``).
3. ``recipes.jsonl``: for every kept (image, source) sample, the retrieved chunk of each concept
   (Algorithm 1 over all concepts at once, :func:`a2i.build.sonify.retrieval.retrieve`), its
   loudness target and scores; written once, atomically (the loudness measured and the gains
   applied when rendering are in each shard's record, ``meta.recipe``). ``retrieval.json``
   records how the pool was searched (FAISS index, its recall@k against exact search).
4. ``shards/``: the mixtures rendered from the recipes with the images, in ``a2i prepare``'s
   shard format (``<key>.jpg``, ``<key>.flac``, ``<key>.json`` whose ``meta.recipe`` is the
   recipe as rendered, optional cached features), each shard atomic; a killed run redoes only
   the missing shards, byte-identical to an uninterrupted run.

Several ranks (``a2i sonify --devices N --num_nodes M``) share every step: each describes every
N·M-th batch of images into its own ``concepts.rankR.jsonl`` (merged into ``concepts.jsonl`` by
rank 0), embeds its share of the pool's parts, retrieves a block of the queries and renders its
share of the shards; rank 0 writes the recipes and the final index. The result is the one
process's, and a rerun with another rank count resumes.

``settings.json`` holds everything that decides these bytes; another recipe is refused with the
differing fields named (:func:`a2i.build.sonify.pool_cache.refuse_other_settings`).
"""

from __future__ import annotations

import json
import logging
import pickle
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from tqdm.auto import tqdm

from a2i.build.prepare import CachedFeature, compute_features
from a2i.build.shards import (
    DONE_FILE,
    FAILED_INPUTS,
    PROBLEMS_FILE,
    SETTINGS_FILE,
    SHARD_DIR,
    PreparedClip,
    build_shards,
    completed_shards,
    plan_shards,
    read_shard_index,
    remove_partial_files,
    write_shard,
)
from a2i.build.sonify.concepts import (
    NON_SONIC_KEYWORDS,
    ConceptSource,
    ImageConcepts,
    KeywordMatch,
    non_sonic_keyword,
)
from a2i.build.sonify.gathering import gather_concepts
from a2i.build.sonify.images import ImageItem
from a2i.build.sonify.mixing import (
    DEFAULT_LUFS_RANGE,
    DEFAULT_PEAK_CEILING,
    MixRecipe,
    MixSource,
    draw_lufs,
    render_mixture,
    stable_uniform,
)
from a2i.build.sonify.pool import CHUNK_SECONDS, POOL_SAMPLE_RATE, PoolReader
from a2i.build.sonify.pool_cache import PoolIndex, refuse_other_settings
from a2i.build.sonify.retrieval import DEFAULT_TOP_K, IndexSettings, SearchReport, retrieve
from a2i.encoders.audio.clap import ClapEncoder
from a2i.errors import A2IError, ConfigError
from a2i.image import open_rgb
from a2i.io_utils import atomic_write_text, printable
from a2i.runtime import ONE_PROCESS, Ranks

logger = logging.getLogger(__name__)

CONCEPTS_FILE = "concepts.jsonl"
RECIPES_FILE = "recipes.jsonl"
RETRIEVAL_FILE = "retrieval.json"


@dataclass
class SonifySettings:
    """Everything that decides the bytes of a sonified dataset (stored as ``settings.json``).

    Attributes:
        sample_rate: Rate of pool chunks and mixtures (A.7: 16 kHz).
        chunk_seconds: Chunk and mixture length (A.7: 5 s).
        top_k: k of the dynamic threshold (:data:`~a2i.build.sonify.retrieval.DEFAULT_TOP_K`).
        lufs_range: Range the loudness targets are drawn from
            (:data:`~a2i.build.sonify.mixing.DEFAULT_LUFS_RANGE`).
        peak_ceiling: Largest sample of a mixture (louder sums are scaled down, recorded).
        seed: Seeds the draws among candidates and the loudness targets.
        filter_keywords: A.2's non-sonic keywords (empty: no filtering).
        filter_match: ``word`` or ``substring`` matching of those keywords.
        frame_size: Longest allowed short side of the stored image (larger ones are resized).
        shard_size: Samples per shard.
        pool: Digest of the pool cache's recipe (CLAP, chunking, files).
        clap: The CLAP recipe that embedded the concepts (None: no retrieval needed).
        sources: Each concept source's recipe.
        features: Cached features (``name=class``).
        images_sha1: Hash of the image keys and splits.
    """

    sample_rate: int = POOL_SAMPLE_RATE
    chunk_seconds: float = CHUNK_SECONDS
    top_k: int = DEFAULT_TOP_K
    lufs_range: tuple[float, float] = DEFAULT_LUFS_RANGE
    peak_ceiling: float = DEFAULT_PEAK_CEILING
    seed: int = 0
    filter_keywords: tuple[str, ...] = NON_SONIC_KEYWORDS
    filter_match: KeywordMatch = "word"
    frame_size: int = 512
    shard_size: int = 256
    pool: str = ""
    clap: dict[str, Any] | None = None
    sources: dict[str, dict[str, Any]] = field(default_factory=dict)
    features: list[str] = field(default_factory=list)
    images_sha1: str = ""

    def as_json(self) -> dict[str, Any]:
        """JSON value (tuples as lists) stored in and compared with ``settings.json``."""
        return json.loads(json.dumps(asdict(self)))


@dataclass
class Sample:
    """One image sonified by one concept source."""

    key: str
    image: ImageItem
    source: str
    caption: str | None
    recipe: MixRecipe

    def record(self) -> dict[str, Any]:
        """One line of ``recipes.jsonl``."""
        return {
            "key": self.key,
            "split": self.image.split,
            "image": self.image.relative,
            "source": self.source,
            "caption": self.caption,
            "recipe": self.recipe.to_dict(),
        }


@dataclass
class SonifyReport:
    """What a sonification did."""

    kept: dict[str, int]
    dropped: list[dict[str, Any]]
    failed: list[dict[str, Any]]
    shards_written: int = 0
    shards_reused: int = 0
    seconds: float = 0.0
    retrieval: dict[str, Any] | None = None

    def describe(self, prepared: Path) -> list[str]:
        """What the run made of the shards in ``prepared`` and how it searched the pool."""
        counts = ", ".join(f"{split} {count}" for split, count in sorted(self.kept.items()))
        lines = [
            f"{counts} samples in {printable(prepared)}; {len(self.dropped)} filtered (non-sonic "
            f"caption or no sounding concept), {len(self.failed)} failed (see "
            f"{printable(prepared / 'problems.log')}); {self.shards_written} shards written, "
            f"{self.shards_reused} reused in {self.seconds:.1f} s"
        ]
        search = self.retrieval
        if search is not None:
            index = f"{search['index']} FAISS index"
            if search["nlist"]:
                recall = search["recall_at_k"]
                checked = (
                    "recall not measured"
                    if recall is None
                    else f"recall@k {recall:.4f} of exact search on {search['recall_queries']} "
                    "concepts"
                )
                index += f" (nlist {search['nlist']}, nprobe {search['nprobe']}; {checked})"
            lines.append(
                f"retrieval: {search['queries']} concepts × {search['pool']} clips, {index}; "
                f"see {printable(prepared / RETRIEVAL_FILE)}"
            )
        return lines


def sample_key(image: ImageItem, source: ConceptSource, sources: Sequence[ConceptSource]) -> str:
    """The image key, suffixed with the source name when several sources sonify each image."""
    return image.key if len(sources) == 1 else f"{image.key}-{source.name}"


def needs_retrieval(concepts: dict[tuple[str, str], ImageConcepts]) -> bool:
    """Whether any concept has no fixed audio (then the pool must be embedded)."""
    return any(c.audio is None for found in concepts.values() for c in found.concepts)


def non_sonic_reason(
    image: ImageItem,
    sources: Sequence[ConceptSource],
    concepts: dict[tuple[str, str], ImageConcepts],
    settings: SonifySettings,
) -> str | None:
    """Why A.2 drops ``image`` (None: kept), decided once per image over every source's caption.

    The paper removes such an image from the training data altogether, so a source without a
    caption (CogVLM has no caption prompt) must not sonify an image another source flags.
    """
    for source in sources:
        caption = concepts[(source.name, image.key)].caption
        keyword = non_sonic_keyword(caption, settings.filter_keywords, settings.filter_match)
        if keyword is not None:
            return f"non-sonic caption ('{keyword}') from {source.name}: {caption}"
    return None


def build_recipes(
    images: Sequence[ImageItem],
    sources: Sequence[ConceptSource],
    concepts: dict[tuple[str, str], ImageConcepts],
    pool: PoolIndex | None,
    reader: PoolReader,
    clap: ClapEncoder | None,
    settings: SonifySettings,
    *,
    device: str = "cpu",
    text_batch: int = 256,
    index: IndexSettings | None = None,
    ranks: Ranks = ONE_PROCESS,
) -> tuple[list[Sample], list[dict[str, str]], SearchReport | None]:
    """Filter, retrieve every open concept at once, and write each sample's recipe.

    Returns the samples, the dropped (image, reason) rows and how the pool was searched (None
    when no concept needed retrieval), on every rank.
    """
    samples: list[tuple[str, ImageItem, str, ImageConcepts]] = []
    dropped: list[dict[str, str]] = []
    for image in images:
        non_sonic = non_sonic_reason(image, sources, concepts, settings)
        for source in sources:
            found = concepts[(source.name, image.key)]
            key = sample_key(image, source, sources)
            if non_sonic is not None:
                reason = non_sonic
            elif not found.concepts:
                reason = found.problem or "no sounding concept"
            else:
                samples.append((key, image, source.name, found))
                continue
            row = {"key": key, "image": image.relative, "problem": reason}
            dropped.append({**row, "failed": True} if found.failed else row)
    open_queries = [
        (number, index)
        for number, (_, _, _, found) in enumerate(samples)
        for index, concept in enumerate(found.concepts)
        if concept.audio is None
    ]
    drawn, search = _retrieve_open(
        samples, open_queries, pool, clap, settings, device, text_batch, index, ranks
    )
    result, rejected = [], set()
    for number, (key, image, source, found) in enumerate(samples):
        sources_of_mix = []
        for index, concept in enumerate(found.concepts):
            lufs = concept.lufs
            if lufs is None:
                lufs = draw_lufs(key, settings.seed, index, settings.lufs_range)
            if concept.audio is None:
                sources_of_mix.append(MixSource(concept.text, lufs=lufs, **drawn[(number, index)]))
                continue
            audio = reader.resolve(concept.audio)
            if audio is None:
                problem = f"audio '{concept.audio}' is not in the pool (or not unique)"
                dropped.append({"key": key, "image": image.relative, "problem": problem})
                rejected.add(number)
                break
            sources_of_mix.append(
                MixSource(concept.text, audio, concept.chunk or 0, lufs, similarity=concept.score)
            )
        if number not in rejected:
            recipe = MixRecipe(sources_of_mix, settings.sample_rate, settings.chunk_seconds)
            result.append(Sample(key, image, source, found.caption, recipe))
    return result, dropped, search


@torch.no_grad()
def _retrieve_open(
    samples: list[tuple[str, ImageItem, str, ImageConcepts]],
    queries: list[tuple[int, int]],
    pool: PoolIndex | None,
    clap: ClapEncoder | None,
    settings: SonifySettings,
    device: str,
    text_batch: int,
    index: IndexSettings | None,
    ranks: Ranks = ONE_PROCESS,
) -> tuple[dict[tuple[int, int], dict[str, Any]], SearchReport | None]:
    """Algorithm 1 for every concept without fixed audio; → MixSource fields per query.

    Ranks embed every ``world_size``-th batch of texts (the batches of one process) and
    retrieve one block of the queries each; every rank gets every query's draw.
    """
    if not queries:
        return {}, None
    if pool is None or clap is None:
        raise ConfigError("concepts without fixed audio need a CLAP model and an embedded pool")
    texts = [samples[n][3].concepts[i].text for n, i in queries]
    unique = list(dict.fromkeys(texts))
    clap.to(device).eval()
    starts = range(0, len(unique), text_batch)[ranks.rank :: ranks.world_size]
    mine = {i: clap.embed_text(unique[i : i + text_batch]).float().cpu() for i in starts}
    batches = {i: batch for found in ranks.gather(mine) for i, batch in found.items()}
    embedded = torch.cat([batches[i] for i in sorted(batches)])
    position = {text: row for row, text in enumerate(unique)}
    query_embeddings = embedded[[position[text] for text in texts]]
    audible = pool.audible().nonzero()[:, 0]
    if len(audible) < settings.top_k:
        raise ConfigError(
            f"the pool has {len(audible)} audible chunks, fewer than top_k = {settings.top_k}"
        )
    block = ranks.block(len(queries))
    queries, query_embeddings = queries[block], query_embeddings[block]
    if not queries:  # more ranks than queries
        return _every_ranks({}, ranks), _search_of_ranks(None, ranks)
    uniforms = torch.tensor(
        [stable_uniform(f"draw:{settings.seed}:{samples[n][0]}:{i}") for n, i in queries],
        dtype=torch.float64,
    )
    found = retrieve(
        query_embeddings,
        pool.embeddings[audible],
        uniforms,
        settings.top_k,
        index=index,
        device=device,
    )
    rows = audible[found.index]
    drawn = {
        query: {
            "audio": pool.chunk_file[int(row)],
            "chunk": int(pool.chunk_index[row]),
            "similarity": round(float(found.similarity[q]), 5),
            "score": round(float(found.score[q]), 5),
            "threshold": round(float(found.threshold[q]), 5),
            "candidates": int(found.candidates[q]),
        }
        for q, (query, row) in enumerate(zip(queries, rows, strict=True))
    }
    return _every_ranks(drawn, ranks), _search_of_ranks(found.search, ranks)


def _every_ranks(drawn: dict[Any, Any], ranks: Ranks) -> dict[Any, Any]:
    """The union of every rank's ``drawn`` (on every rank)."""
    return {query: fields for part in ranks.gather(drawn) for query, fields in part.items()}


def _search_of_ranks(search: SearchReport | None, ranks: Ranks) -> SearchReport | None:
    """One report of the ranks' searches of their blocks of queries.

    Queries and recall samples add up, the recall is over every rank's sample, the times are
    the slowest rank's (the ranks search at once).
    """
    reports = [report for report in ranks.gather(search) if report is not None]
    if len(reports) < 2:
        return reports[0] if reports else None
    sampled = sum(report.recall_queries for report in reports)
    recall = reports[0].recall_at_k
    if sampled and all(report.recall_at_k is not None for report in reports):
        recall = sum(r.recall_at_k * r.recall_queries for r in reports) / sampled  # type: ignore[operator]
    return replace(
        reports[0],
        queries=sum(report.queries for report in reports),
        recall_at_k=recall,
        recall_queries=sampled,
        wide_queries=sum(report.wide_queries for report in reports),
        build_seconds=max(report.build_seconds for report in reports),
        search_seconds=max(report.search_seconds for report in reports),
        recall_seconds=max(report.recall_seconds for report in reports),
    )


def write_recipes(path: Path, samples: Sequence[Sample]) -> None:
    """``recipes.jsonl``, atomically (all samples, in key order)."""
    lines = "".join(json.dumps(s.record(), ensure_ascii=False) + "\n" for s in samples)
    atomic_write_text(path, lines)


def read_recipes(path: Path, images: Sequence[ImageItem]) -> list[Sample]:
    """Samples of a ``recipes.jsonl`` (re-rendering without retrieval)."""
    by_key = {image.key: image for image in images}
    by_relative = {image.relative: image for image in images}
    samples = []
    for line in path.read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        image = by_relative.get(row["image"]) or by_key.get(row["key"])
        if image is None:
            raise ConfigError(f"{path}: image '{row['image']}' is not among the images")
        recipe = MixRecipe.from_dict(row["recipe"])
        samples.append(Sample(row["key"], image, row["source"], row.get("caption"), recipe))
    return samples


def load_frame(path: str, frame_size: int) -> np.ndarray:
    """``(H, W, 3)`` uint8 image, short side reduced to ``frame_size`` when larger."""
    picture = open_rgb(path)
    scale = frame_size / min(picture.size)
    if scale < 1:
        size = (max(1, round(picture.width * scale)), max(1, round(picture.height * scale)))
        picture = picture.resize(size, Image.Resampling.BICUBIC, reducing_gap=None)
    return np.asarray(picture, dtype=np.uint8).copy()


def render_sample(sample: Sample, reader: PoolReader, settings: SonifySettings) -> PreparedClip:
    """The shard entry of one sample: its image and the mixture rendered from its recipe."""
    frame = load_frame(sample.image.path, settings.frame_size)
    mix = render_mixture(sample.recipe, reader.read_chunk, settings.peak_ceiling)
    meta = {
        "image": sample.image.relative,
        "source": sample.source,
        "image_caption": sample.caption,
        "recipe": mix.recipe.to_dict(),
        "notes": mix.notes,
    }
    caption = "; ".join(source.concept for source in sample.recipe.sources)
    return PreparedClip(
        key=sample.key,
        split=sample.image.split,
        audio=mix.waveform,
        sample_rate=sample.recipe.sample_rate,
        frame=frame,
        caption=caption,
        meta=meta,
    )


_worker: dict[str, Any] = {}


def _init_worker(payload: bytes, device: str) -> None:
    """Worker initialiser: reader, settings and features arrive as plain pickle bytes."""
    torch.set_num_threads(1)
    reader, settings, features = pickle.loads(payload)
    for feature in features:
        feature.setup(device)
    _worker.update(reader=reader, settings=settings, features=features)


def _render_shard(out: str, name: str, samples: list[Sample]) -> None:
    """Render one shard's samples, compute features, write the shard atomically."""
    reader, settings, features = _worker["reader"], _worker["settings"], _worker["features"]
    rendered, failed = [], []
    for sample in samples:
        try:
            rendered.append(render_sample(sample, reader, settings))
        except (A2IError, OSError) as error:
            failed.append(
                {"key": sample.key, "video": sample.image.relative, "problem": str(error)}
            )
    if rendered and features:
        compute_features(rendered, features)
    write_shard(Path(out) / SHARD_DIR, name, rendered, failed)


def sonify_images(
    images: Sequence[ImageItem],
    out: str | Path,
    sources: Sequence[ConceptSource],
    reader: PoolReader,
    embed_pool: Any,
    clap: ClapEncoder | None,
    settings: SonifySettings,
    features: Sequence[CachedFeature] = (),
    *,
    workers: int = 0,
    device: str = "cpu",
    progress: bool = True,
    index: IndexSettings | None = None,
    ranks: Ranks = ONE_PROCESS,
) -> SonifyReport:
    """Run the four steps of the module docstring into ``out`` (resuming a killed run).

    Args:
        images: The images, with their splits.
        out: The sonified dataset's folder.
        sources: Concept sources (one sample per image and source).
        reader: Reads pool chunks (rendering).
        embed_pool: ``Ranks → PoolIndex``, called (by every rank) only when some concept must
            be retrieved.
        clap: Embeds the concepts' texts (None when every concept has fixed audio).
        settings: The dataset's recipe (``settings.json``).
        features: Frozen models whose outputs are cached in the shards (VAE latents, AST tokens).
        workers: Rendering processes (0: in this process).
        device: Where CLAP, the VLM, retrieval and the features run (this rank's device).
        progress: Show progress bars (rank 0's).
        index: How the pool is searched (default :class:`~a2i.build.sonify.retrieval.IndexSettings`).
        ranks: The processes that sonify together (each calls this with the same arguments).
    """
    out = Path(out)
    start = time.perf_counter()
    directory = out / SHARD_DIR
    recipes_path = out / RECIPES_FILE
    refused = None
    if ranks.is_main:
        try:
            refuse_other_settings(
                out / SETTINGS_FILE,
                settings.as_json(),
                "sonify into a new folder, or delete that one to start again",
            )
            remove_partial_files(directory)
        except A2IError as error:
            refused = error
    ranks.agree(refused)
    dropped: list[dict[str, str]] = []
    if recipes_path.is_file():
        samples = read_recipes(recipes_path, images)
        dropped = json.loads((out / "filtered.json").read_text(encoding="utf-8"))
    else:
        concepts = gather_concepts(images, sources, out / CONCEPTS_FILE, device, progress, ranks)
        pool = embed_pool(ranks) if needs_retrieval(concepts) else None
        samples, dropped, search = build_recipes(
            images,
            sources,
            concepts,
            pool,
            reader,
            clap,
            settings,
            device=device,
            index=index,
            ranks=ranks,
        )
        if ranks.is_main:
            if search is not None:
                row = json.dumps(search.to_dict(), indent=1) + "\n"
                atomic_write_text(out / RETRIEVAL_FILE, row)
            atomic_write_text(out / "filtered.json", json.dumps(dropped, indent=0) + "\n")
            write_recipes(recipes_path, samples)
    plan = plan_shards(samples, settings.shard_size, lambda s: s.image.split, lambda s: s.key)
    done = completed_shards(directory) & set(plan)
    todo = {name: plan[name] for name in ranks.share(set(plan) - done)}
    bar = tqdm(
        total=sum(len(group) for group in todo.values()),
        unit="image",
        desc="a2i sonify: mixing",
        disable=not progress or not ranks.is_main,
    )
    payload = pickle.dumps((reader, settings, list(features)))
    setup = partial(_init_worker, payload, device)
    build_shards(_render_shard, out, todo, bar, setup, workers, "a2i.build.sonify.build")
    bar.close()
    written = sum(ranks.gather(len(todo)))  # waits for every rank's shards
    report = _finish(out, plan, dropped) if ranks.is_main else SonifyReport({}, dropped, [])
    report.shards_written, report.shards_reused = written, len(done)
    if (out / RETRIEVAL_FILE).is_file():
        report.retrieval = json.loads((out / RETRIEVAL_FILE).read_text(encoding="utf-8"))
    report.seconds = time.perf_counter() - start
    return report


def _finish(
    out: Path, plan: dict[str, list[Sample]], dropped: list[dict[str, Any]]
) -> SonifyReport:
    """Counts, ``problems.log`` (filtered and failed samples) and the completion marker.

    Images a concept source could not read come in ``dropped`` marked ``failed``: they are
    failures, as images that could not be rendered are.
    """
    kept: dict[str, int] = {}
    failed = [row for row in dropped if row.get("failed")]
    dropped = [row for row in dropped if not row.get("failed")]
    for index in read_shard_index(out / SHARD_DIR, plan):
        split = index["shard"].rsplit("-", 1)[0]
        kept[split] = kept.get(split, 0) + len(index["clips"])
        failed += [
            {"key": d["key"], "image": d["video"], "problem": d["problem"]}
            for d in index["dropped"]
        ]
    rows = [(d, "filtered") for d in dropped] + [(f, "failed") for f in failed]
    lines = "".join(f"{d['key']}\t{d['image']}\t{kind}\t{d['problem']}\n" for d, kind in rows)
    atomic_write_text(out / PROBLEMS_FILE, "key\timage\tkind\tproblem\n" + lines)
    summary = {
        "samples": kept,
        "filtered": len(dropped),
        "failed": len(failed),
        FAILED_INPUTS: failed,
        "shards": sorted(plan),
    }
    atomic_write_text(out / DONE_FILE, json.dumps(summary, indent=1) + "\n")
    return SonifyReport(kept=kept, dropped=dropped, failed=failed)
