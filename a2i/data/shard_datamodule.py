"""The base of every dataset built into shards (video datasets, sonified images).

A subclass names its source and its builder; this base serves the result. Nothing is scanned or
built at construction: ``prepare_data`` (Lightning calls it before ``setup``, once per node, and
``a2i prepare`` / ``a2i sonify`` call it with a progress bar) builds the shards unless the ones
on disk were built from exactly this recipe, and each split is then read from the shards, so
training never opens a raw file.
"""

from __future__ import annotations

import json
import logging
from abc import abstractmethod
from pathlib import Path
from typing import Any

import webdataset as wds
from torch.utils.data import DataLoader

from a2i.build.shards import DONE_FILE, SETTINGS_FILE
from a2i.data.base import collate_batch
from a2i.data.manifest import SPLITS, ManifestDataModule
from a2i.data.shards import ShardDataset
from a2i.errors import ConfigError, DatasetNotFoundError, ManifestError
from a2i.io_utils import atomic_write_text
from a2i.runtime import ONE_PROCESS, Ranks

logger = logging.getLogger(__name__)

SPLITS_FILE = "splits.csv"
"""``key,split`` of every item the source listed (another machine's ``split_file``)."""
SCAN_LOG = "scan_problems.log"
"""Items the source lists that cannot be used (missing, empty, unreadable)."""


class ShardDataModule(ManifestDataModule):
    """Built once into ``prepared``, served from its shards; subclasses implement the build.

    Args:
        prepared: Folder of the shards.
        features: Names of the cached features delivered as ``features/<name>``.
        split_file: CSV of ``key,split`` rows replacing the dataset's split rule (items it does
            not list are left out).
        stream_train: Stream training shards with WebDataset (sequential reads, for network
            storage) instead of reading items by offset; epochs are then fixed-length draws.
        shuffle_buffer: Samples in WebDataset's shuffle buffer when streaming.
        **kwargs: Loader settings (:class:`~a2i.data.manifest.ManifestDataModule`).
    """

    build_command = "a2i prepare"
    """The command that builds this dataset, named when its shards are missing."""
    prepare_device: str
    """Where the builder's models run (each subclass takes it as an argument)."""

    def __init__(
        self,
        prepared: Path,
        features: list[str],
        split_file: str | None = None,
        stream_train: bool = False,
        shuffle_buffer: int = 1000,
        **kwargs: Any,
    ) -> None:
        self.prepared = prepared
        super().__init__(root=str(prepared), **kwargs)
        self.feature_names = features
        self.split_file = split_file
        self.stream_train = stream_train
        self.shuffle_buffer = shuffle_buffer

    def check_root(self) -> None:
        """Nothing to check at construction: the source is read by ``prepare_data``."""

    @property
    @abstractmethod
    def source(self) -> Path:
        """The raw folder the shards are built from (named in messages)."""

    @abstractmethod
    def is_recipe(self, settings: dict[str, Any], done: dict[str, Any]) -> bool:
        """Whether ``settings.json`` and ``prepared.json`` on disk are this recipe's, complete."""

    @abstractmethod
    def build(self, progress: bool, ranks: Ranks = ONE_PROCESS) -> Any:
        """Build (or finish building) the shards, this rank's share; return the builder's report."""

    def is_prepared(self) -> bool:
        """Whether the shards of exactly this source and recipe are complete.

        A folder built with another recipe is not: ``prepare_data`` then stops with an error
        naming the settings that differ instead of training on the old shards.
        """
        marker, recipe = self.prepared / DONE_FILE, self.prepared / SETTINGS_FILE
        if not marker.is_file() or not recipe.is_file():
            return False
        settings = json.loads(recipe.read_text(encoding="utf-8"))
        return self.is_recipe(settings, json.loads(marker.read_text(encoding="utf-8")))

    def prepare_data(self, progress: bool = True, ranks: Ranks = ONE_PROCESS) -> Any:
        """Build the shards unless that is done (resumes a killed run); the report or None.

        ``ranks``: the processes of ``a2i prepare --devices N`` (each calls this); Lightning's
        own call, on one rank of a training job, builds alone.
        """
        if self.is_prepared():
            return None
        return self.build(progress, ranks)

    def read_split_file(self) -> dict[str, str]:
        """Key → split of ``split_file`` (``key,split`` rows, an optional header)."""
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
            if split not in SPLITS:
                raise ManifestError(
                    f"{path}:{number}: split must be train, val or test, got '{split}'"
                )
            assigned[key] = split
        return assigned

    def write_scan(
        self, splits: dict[str, str], unusable: list[tuple[str, str, str]], kind: str
    ) -> None:
        """Record the split used (``splits.csv``) and the unusable ``kind`` files (the log)."""
        rows = "".join(f"{key},{splits[key]}\n" for key in sorted(splits))
        lines = "".join(f"{key}\t{path}\t{problem}\n" for key, path, problem in unusable)
        try:
            self.prepared.mkdir(parents=True, exist_ok=True)
            atomic_write_text(self.prepared / SCAN_LOG, f"key\t{kind}\tproblem\n" + lines)
            atomic_write_text(self.prepared / SPLITS_FILE, "key,split\n" + rows)
        except OSError as error:
            raise ConfigError(
                f"data.prepared '{self.prepared}' is not writable ({error.strerror}); a read-only "
                "dataset folder needs `prepared:` set to a writable folder for the shards"
            ) from None

    def refuse_unusable(self, unusable: list[tuple[str, str, str]]) -> None:
        """In strict mode, stop on the first unusable items the source lists."""
        if unusable and self.strict:
            shown = ", ".join(f"{path} ({problem})" for _, path, problem in unusable[:5])
            raise ManifestError(
                f"{self.source}: {len(unusable)} listed file(s) cannot be used (e.g. {shown}); "
                "fix them, or set strict: false to skip them"
            )

    def build_dataset(self, split: str) -> ShardDataset:
        """Serve a split from the shards (``predict`` = test)."""
        if not self.is_prepared():
            raise DatasetNotFoundError(
                self.prepared,
                f"the shards of {self.source} are not (completely) built; run "
                f"`{self.build_command} --config <this config>` (it resumes an interrupted run)",
            )
        return ShardDataset(
            self.prepared,
            "test" if split == "predict" else split,
            sample_rate=self.sample_rate,
            clip_seconds=self.clip_seconds,
            image_size=self.image_size,
            random_crop=split == "train",
            features=self.feature_names,
        )

    def train_dataloader(self) -> DataLoader:
        """Offset-indexed batches, or (``stream_train``) a fixed-length WebDataset stream.

        Streaming epochs are ``items // (batch_size · world_size)`` batches on every rank.
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
