"""Sonified images as a training set: ``SonifiedImagesDataModule`` (Seeing Sound §3, §4.1).

The data side of Seeing Sound: an image collection (SAM's layout or any folder) is sonified once
(``prepare_data``, or ``a2i sonify --config <this config>``, :mod:`a2i.build.sonify.build`) and
then served from shards like every prepared a2i dataset: the mixture as ``audio``, the image,
the concepts as ``caption`` and optional cached features (VAE latents, AST tokens, §4.3).

SAM has no splits; like the video datasets, a2i draws them by a stable hash of each image key
(``val_fraction``, ``test_fraction``, ``split_seed``) and writes the split it used to
``<prepared>/splits.csv``; ``split_file`` (``key,split`` rows) replaces the rule.
"""

from __future__ import annotations

import hashlib
import logging
from collections import Counter
from functools import cached_property
from pathlib import Path
from typing import Any

from a2i.build.prepare import CachedFeature, class_path_of
from a2i.build.sonify.build import SonifyReport, SonifySettings, sonify_images
from a2i.build.sonify.concepts import NON_SONIC_KEYWORDS, ConceptSource, KeywordMatch
from a2i.build.sonify.images import ImageItem, ImageLayout, assign_splits, scan_images
from a2i.build.sonify.mixing import DEFAULT_LUFS_RANGE, DEFAULT_PEAK_CEILING, stable_uniform
from a2i.build.sonify.pool import CHUNK_SECONDS, AudioPool, PoolReader, scan_pools
from a2i.build.sonify.pool_cache import (
    PoolIndex,
    PoolSettings,
    as_clap,
    complete_settings,
    embed_pool,
)
from a2i.build.sonify.retrieval import (
    DEFAULT_EXACT_MAX_POOL,
    DEFAULT_NPROBE,
    DEFAULT_TOP_K,
    IndexKind,
    IndexSettings,
)
from a2i.data.shard_datamodule import ShardDataModule
from a2i.errors import ConfigError, DatasetNotFoundError
from a2i.interfaces import AudioEncoder
from a2i.runtime import ONE_PROCESS, Ranks

logger = logging.getLogger(__name__)


def split_of(key: str, val_fraction: float, test_fraction: float, seed: int) -> str:
    """A stable split for an image key: the same whatever other images exist."""
    draw = stable_uniform(f"split:{seed}:{key}")
    if draw < test_fraction:
        return "test"
    return "val" if draw < test_fraction + val_fraction else "train"


class SonifiedImagesDataModule(ShardDataModule):
    """Images → sounding concepts → CLAP retrieval → LUFS mixtures → shards → batches.

    Args:
        images: Folder of the images to sonify.
        layout: ``sam`` (``sa_<id>.jpg`` + ``sa_<id>.json``, the paper's SA-1B subset) or
            ``folder`` (every image under ``images``).
        pools: The audio pools (the paper's: AudioSet balanced, FSD50K, BBC SFX).
        concepts: Concept sources; each sonifies every image once (the paper's LLaVA and CogVLM
            give two acoustic scenes per image, §3.2).
        clap: The CLAP that embeds pool chunks and concepts (a
            :class:`~a2i.encoders.audio.clap.ClapEncoder`; None when every concept comes with its
            audio, e.g. the paper's released concept file).
        prepared: Output folder of the shards (default ``<images>/sonified``).
        pool_cache: Folder of the pool's chunk embeddings (default ``<prepared>/pool``); share
            it between datasets sonified from one pool and one CLAP.
        top_k: k of the dynamic threshold (§3.3; the paper gives none, see
            :data:`~a2i.build.sonify.retrieval.DEFAULT_TOP_K`).
        retrieval_index: FAISS index of the pool: ``exact`` (every clip scored), ``ivf``
            (k-means cells, its recall@k against exact search measured and written to
            ``retrieval.json``) or ``auto`` (exact up to ``retrieval_exact_max_pool`` clips).
        retrieval_exact_max_pool: Largest pool ``auto`` searches exactly.
        retrieval_nlist: IVF cells (None: ``2·√N``).
        retrieval_nprobe: IVF cells searched per concept (recall against speed).
        retrieval_recall_sample: Concepts whose IVF top-k is checked against exact search.
        lufs_range: Loudness targets in dB LUFS, drawn uniformly (§3.3, A.9; see
            :data:`~a2i.build.sonify.mixing.DEFAULT_LUFS_RANGE`).
        peak_ceiling: Mixtures peaking above this are scaled down as a whole (recorded).
        seed: Seeds the draws among candidates and the loudness targets.
        filter_keywords: A.2's non-sonic caption keywords (empty list: no filter).
        filter_match: ``word`` (whole words and plurals) or ``substring`` (literal) matching.
        chunk_seconds: Pool chunk and mixture length (A.7: 5 s).
        val_fraction: Share of images held out for validation.
        test_fraction: Share of images held out for testing.
        split_seed: Seed of the split hash.
        split_file: ``key,split`` CSV replacing the split rule (unlisted images are left out).
        frame_size: Stored images keep at most this short side.
        shard_size: Samples per shard.
        features: Frozen models whose outputs are cached in the shards (VAE latents, AST).
        pool_part_size: Pool files per embedding part (the unit of resuming).
        embed_batch_size: Chunks CLAP embeds at once.
        prepare_workers: Processes decoding pool files and rendering mixtures.
        prepare_device: Device of CLAP, the VLM, retrieval and the features.
        batch_size: Samples per batch on each device.
        num_workers: DataLoader worker processes.
        pin_memory: Pin host memory for faster host→GPU copies.
        sample_rate: Rate of the pool and the mixtures (A.7: 16 kHz).
        clip_seconds: Audio length delivered.
        image_size: Square resolution delivered.
        strict: Unused images (missing, empty) raise instead of being logged and skipped.
        trust_remote_code: Let the concept sources run their checkpoints' own Python code
            (CogVLM's): the user's opt-in for this run, typed as
            ``--data.init_args.trust_remote_code true`` after reading that code.
    """

    prepare_hint = "see docs/datasets.md ('Seeing Sound: sonified images')"
    build_command = "a2i sonify"

    def __init__(
        self,
        images: str,
        pools: list[AudioPool],
        concepts: list[ConceptSource],
        clap: AudioEncoder | None = None,
        layout: ImageLayout = "sam",
        prepared: str | None = None,
        pool_cache: str | None = None,
        top_k: int = DEFAULT_TOP_K,
        retrieval_index: IndexKind = "auto",
        retrieval_exact_max_pool: int = DEFAULT_EXACT_MAX_POOL,
        retrieval_nlist: int | None = None,
        retrieval_nprobe: int = DEFAULT_NPROBE,
        retrieval_recall_sample: int = 1000,
        lufs_range: tuple[float, float] = DEFAULT_LUFS_RANGE,
        peak_ceiling: float = DEFAULT_PEAK_CEILING,
        seed: int = 0,
        filter_keywords: list[str] | None = None,
        filter_match: KeywordMatch = "word",
        chunk_seconds: float = CHUNK_SECONDS,
        val_fraction: float = 0.01,
        test_fraction: float = 0.01,
        split_seed: int = 0,
        split_file: str | None = None,
        frame_size: int = 512,
        shard_size: int = 256,
        features: list[CachedFeature] | None = None,
        pool_part_size: int = 256,
        embed_batch_size: int = 64,
        prepare_workers: int = 0,
        prepare_device: str = "cpu",
        batch_size: int = 64,
        num_workers: int = 0,
        pin_memory: bool = False,
        sample_rate: int = 16000,
        clip_seconds: float = CHUNK_SECONDS,
        image_size: int = 512,
        strict: bool = False,
        trust_remote_code: bool = False,
    ) -> None:
        self.image_root = Path(images)
        prepared_path = Path(prepared) if prepared else self.image_root / "sonified"
        super().__init__(
            prepared=prepared_path,
            features=[feature.name for feature in features or []],
            split_file=split_file,
            batch_size=batch_size,
            num_workers=num_workers,
            pin_memory=pin_memory,
            sample_rate=sample_rate,
            clip_seconds=clip_seconds,
            image_size=image_size,
            strict=strict,
        )
        if not concepts:
            raise ConfigError("data.concepts needs at least one concept source")
        names = [source.name for source in concepts]
        if len(set(names)) != len(names):
            raise ConfigError(f"data.concepts need distinct names (got {names}); set `name:`")
        for name, value in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
            if not 0 <= value < 1:
                raise ConfigError(f"data.{name} must be in [0, 1) (got {value})")
        self.layout = layout
        self.pools = list(pools)
        self.concept_sources = list(concepts)
        if trust_remote_code:
            for source in self.concept_sources:
                source.trust_remote_code = True
        self.clap = None if clap is None else as_clap(clap)
        self.pool_cache = Path(pool_cache) if pool_cache else self.prepared / "pool"
        self.features = list(features or [])
        self.pool_settings = PoolSettings(
            sample_rate=sample_rate, chunk_seconds=chunk_seconds, part_size=pool_part_size
        )
        self.embed_batch_size = embed_batch_size
        self.prepare_workers = prepare_workers
        self.prepare_device = prepare_device
        self.split_fractions = (val_fraction, test_fraction, split_seed)
        self.retrieval_index = IndexSettings(
            kind=retrieval_index,
            exact_max_pool=retrieval_exact_max_pool,
            nlist=retrieval_nlist,
            nprobe=retrieval_nprobe,
            recall_sample=retrieval_recall_sample,
        )
        self.settings = SonifySettings(
            sample_rate=sample_rate,
            chunk_seconds=chunk_seconds,
            top_k=top_k,
            lufs_range=tuple(lufs_range),
            peak_ceiling=peak_ceiling,
            seed=seed,
            filter_keywords=tuple(
                NON_SONIC_KEYWORDS if filter_keywords is None else filter_keywords
            ),
            filter_match=filter_match,
            frame_size=frame_size,
            shard_size=shard_size,
            clap=None,
            sources={source.name: source.recipe() for source in self.concept_sources},
            features=[f"{f.name}={class_path_of(f)}" for f in self.features],
        )
        self._pool_scan = None

    @property
    def source(self) -> Path:
        """The image folder."""
        return self.image_root

    @cached_property
    def image_items(self) -> list[ImageItem]:
        """The images with their splits (scanned once, on first use)."""
        return self._scan_images()

    def _complete_recipe(self) -> dict[str, Any]:
        """The recipe as ``settings.json`` stores it, completed by the image scan and CLAP."""
        keys = "\n".join(f"{item.key},{item.split}" for item in self.image_items)
        self.settings.images_sha1 = hashlib.sha1(keys.encode()).hexdigest()
        if self.clap is not None:
            self.settings.clap = self.clap.recipe()
        return self.settings.as_json()

    def _scan_images(self) -> list[ImageItem]:
        """Find the images, give them splits, write ``splits.csv`` and ``scan_problems.log``."""
        scan = scan_images(self.image_root, self.layout)
        self.refuse_unusable(scan.unusable)
        if self.split_file is not None:
            items = assign_splits(scan.images, self.read_split_file())
        else:
            val, test, seed = self.split_fractions
            splits = {item.key: split_of(item.key, val, test, seed) for item in scan.images}
            items = assign_splits(scan.images, splits)
        counts = Counter(item.split for item in items)
        logger.warning(
            "%s: %d images (train %d, val %d, test %d); %d unusable%s",
            self.image_root,
            len(items),
            counts["train"],
            counts["val"],
            counts["test"],
            len(scan.unusable),
            f", {scan.without_annotation} without their sa_<id>.json"
            if self.layout == "sam"
            else "",
        )
        self.write_scan({item.key: item.split for item in items}, scan.unusable, "image")
        if not items:
            raise DatasetNotFoundError(self.image_root, "no image is left after the split file")
        return items

    @property
    def unusable_pool_files(self) -> list[tuple[str, str, str]]:
        """``(id, path, problem)`` of the pool files listed but missing, empty or unreadable.

        Known once the pools were scanned (by a build); empty before.
        """
        return [] if self._pool_scan is None else list(self._pool_scan.unusable)

    def pool_reader(self) -> PoolReader:
        """Reads the pool's chunks (scans the pools once)."""
        if self._pool_scan is None:
            self._pool_scan = scan_pools(self.pools)
        return PoolReader(
            self._pool_scan.files, self.pool_settings.sample_rate, self.pool_settings.chunk_seconds
        )

    def embed_pool(self, progress: bool = True, ranks: Ranks = ONE_PROCESS) -> PoolIndex:
        """The pool's chunk embeddings (computed once, resumable, recipe-checked; ``ranks``' share)."""
        if self.clap is None:
            raise ConfigError("some concepts need retrieval: set data.clap to a CLAP encoder")
        return embed_pool(
            self._pool_scan or scan_pools(self.pools),
            self.pool_cache,
            self.clap,
            self.pool_settings,
            batch_size=self.embed_batch_size,
            decode_workers=self.prepare_workers,
            device=self.prepare_device,
            progress=progress,
            ranks=ranks,
        )

    def is_recipe(self, settings: dict[str, Any], done: dict[str, Any]) -> bool:
        """Same images and recipe, and shards written.

        The pool's digest is not compared (that would scan every pool file at each start); a
        changed pool is found by the build, which compares everything.
        """
        mine = self._complete_recipe()
        same = all(settings.get(k) == v for k, v in mine.items() if k != "pool")
        return same and bool(done.get("shards"))

    def build(self, progress: bool, ranks: Ranks = ONE_PROCESS) -> SonifyReport:
        """Sonify the images, this rank's share of each step (resumes a killed run)."""
        self._complete_recipe()
        reader = self.pool_reader()
        if self.clap is not None:
            pool = complete_settings(self._pool_scan.files, self.clap, self.pool_settings)
            self.settings.clap, self.settings.pool = pool.clap, pool.digest()
        return sonify_images(
            self.image_items,
            self.prepared,
            self.concept_sources,
            reader,
            lambda ranks: self.embed_pool(progress, ranks),
            self.clap,
            self.settings,
            self.features,
            workers=self.prepare_workers,
            device=self.prepare_device,
            progress=progress,
            index=self.retrieval_index,
            ranks=ranks,
        )
