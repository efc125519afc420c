"""The base of every a2i datamodule: batch size, workers and the batch contract.

Datasets yield dicts following :mod:`a2i.interfaces` (``audio``, ``image``, ``label``,
``caption``, ``key``); subclasses only say which dataset serves which stage. Sharding across
DDP ranks is left to Lightning, which wraps these loaders in a ``DistributedSampler``.
"""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset

from a2i.errors import ConfigError


def collate_batch(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """Stack tensors and ints, keep strings as lists (captions, keys)."""
    batch: dict[str, Any] = {}
    for name in samples[0]:
        values = [s[name] for s in samples]
        if isinstance(values[0], torch.Tensor):
            batch[name] = torch.stack(values)
        elif isinstance(values[0], bool | int | float):
            batch[name] = torch.tensor(values)
        else:
            batch[name] = values
    return batch


class AudioVisualDataModule(L.LightningDataModule):
    """Shared loader settings; subclasses implement :meth:`build_dataset`.

    Args:
        batch_size: Clips per batch on each device (Sound2Vision §4.1 uses 64).
        num_workers: DataLoader worker processes.
        pin_memory: Pin host memory for faster host→GPU copies.
        sample_rate: Audio sample rate in Hz delivered to the model.
        clip_seconds: Audio clip duration in seconds (cropped or zero-padded).
        image_size: Square image resolution delivered to the model.
    """

    def __init__(
        self,
        batch_size: int = 64,
        num_workers: int = 0,
        pin_memory: bool = False,
        sample_rate: int = 16000,
        clip_seconds: float = 10.0,
        image_size: int = 224,
    ) -> None:
        super().__init__()
        if batch_size < 1:
            raise ConfigError(f"data.batch_size must be >= 1 (got {batch_size})")
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.pin_memory = pin_memory
        self.sample_rate = sample_rate
        self.clip_seconds = clip_seconds
        self.image_size = image_size
        self._datasets: dict[str, Dataset] = {}

    def build_dataset(self, split: str) -> Dataset:
        """Return the dataset of ``split`` (``train``, ``val``, ``test`` or ``predict``)."""
        raise NotImplementedError(f"{type(self).__name__} has no '{split}' split")

    def dataset(self, split: str) -> Dataset:
        """The dataset of ``split``, built once and cached."""
        if split not in self._datasets:
            self._datasets[split] = self.build_dataset(split)
        return self._datasets[split]

    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        return DataLoader(
            self.dataset(split),
            batch_size=self.batch_size,
            shuffle=shuffle,
            num_workers=self.num_workers,
            pin_memory=self.pin_memory,
            collate_fn=collate_batch,
            persistent_workers=self.num_workers > 0,
            drop_last=shuffle and len(self.dataset(split)) > self.batch_size,
        )

    def train_dataloader(self) -> DataLoader:
        """Shuffled training batches (the last incomplete batch is dropped)."""
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        """Validation batches in a fixed order."""
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        """Test batches in a fixed order."""
        return self._loader("test", shuffle=False)

    def predict_dataloader(self) -> DataLoader:
        """Prediction batches in a fixed order."""
        return self._loader("predict", shuffle=False)
