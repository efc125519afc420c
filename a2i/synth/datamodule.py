"""The synthetic world as a datamodule: rendered on the fly, identical in every worker and rank.

Items are a pure function of ``(world seed, split, index)``, so DataLoader workers and DDP ranks
render the same scene for the same index without sharing state, and nothing touches the disk.
Rendering costs about 3-4 ms per item on one thread (audio dominates; reverberant scenes cost
most), so a 64-item batch of 4 s clips takes about 0.25 s of one core: no caching needed, but
render it in a loader worker (``num_workers: 1`` in the tiny configs), overlapped with the step.
In the training process it would also run its many small torch ops on torch's intra-op threads,
which cost up to 15 times the CPU of one thread on a busy 2-core machine.
"""

from __future__ import annotations

from typing import Any

from torch.utils.data import Dataset

from a2i.data.base import AudioVisualDataModule
from a2i.errors import ConfigError
from a2i.interfaces import AUDIO, CAPTION, IMAGE, KEY, LABEL
from a2i.synth.world import Split, SyntheticWorld, describe

GAIN_DB = "gain_db"
REVERB = "reverb"
NUM_SOURCES = "num_sources"
SECOND_SOURCE = "second_source"
DESCRIPTION = "description"


class SyntheticWorldDataset(Dataset):
    """``size`` scenes of one split of a :class:`~a2i.synth.world.SyntheticWorld`.

    Besides the batch contract, each item carries the factors the controllability experiments
    vary: ``gain_db`` (first source), ``reverb``, ``num_sources``, ``second_source`` (the
    second source's class, ``-1`` for single-source scenes) and ``description`` (the scene as text,
    :func:`~a2i.synth.world.describe`).
    """

    def __init__(self, world: SyntheticWorld, split: Split, size: int) -> None:
        if size < 0:
            raise ConfigError(f"a {split} dataset needs a scene count >= 0 (got {size})")
        self.world = world
        self.split = split
        self.size = size

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, index: int) -> dict[str, Any]:
        if not 0 <= index < self.size:
            raise IndexError(f"index {index} out of range for {self.size} {self.split} scenes")
        spec = self.world.sample_spec(self.split, index)
        sample = self.world.render(spec)
        return {
            AUDIO: sample.audio,
            IMAGE: sample.image,
            LABEL: sample.label,
            CAPTION: sample.caption,
            KEY: f"{self.split}/{index:06d}",
            GAIN_DB: spec.gains_db[0],
            REVERB: spec.reverb,
            NUM_SOURCES: len(spec.sources),
            SECOND_SOURCE: spec.sources[1] if len(spec.sources) > 1 else -1,
            DESCRIPTION: describe(spec),
        }


class SyntheticWorldDataModule(AudioVisualDataModule):
    """Train/val/test scenes of the embedded synthetic world (prediction uses the test scenes).

    Args:
        batch_size: Clips per batch on each device.
        num_workers: DataLoader worker processes.
        pin_memory: Pin host memory for faster host→GPU copies.
        sample_rate: Audio sample rate in Hz (at least 8000).
        clip_seconds: Audio clip duration in seconds.
        image_size: Image side in pixels (32 and 64 are the working sizes).
        train_size: Number of training scenes.
        val_size: Number of validation scenes.
        test_size: Number of test (and prediction) scenes.
        seed: World seed; the splits never share a scene.
        mixture_prob: Probability of a two-source scene.
        reverb_prob: Probability of a reverberant (indoor) scene.
        gain_range_db: Range of source gains in dB (inside ``[-20, 10]``).
    """

    def __init__(
        self,
        batch_size: int = 64,
        num_workers: int = 0,
        pin_memory: bool = False,
        sample_rate: int = 16000,
        clip_seconds: float = 4.0,
        image_size: int = 64,
        train_size: int = 4096,
        val_size: int = 256,
        test_size: int = 512,
        seed: int = 0,
        mixture_prob: float = 0.2,
        reverb_prob: float = 0.3,
        gain_range_db: tuple[float, float] = (-20.0, 10.0),
    ) -> None:
        super().__init__(batch_size, num_workers, pin_memory, sample_rate, clip_seconds, image_size)
        self.world = SyntheticWorld(
            image_size=image_size,
            sample_rate=sample_rate,
            clip_seconds=clip_seconds,
            seed=seed,
            mixture_prob=mixture_prob,
            reverb_prob=reverb_prob,
            gain_range_db=gain_range_db,
        )
        self.split_sizes = {"train": train_size, "val": val_size, "test": test_size}
        for split, size in self.split_sizes.items():
            if size < 0:
                raise ConfigError(f"data.{split}_size must be >= 0 (got {size})")

    @property
    def classes(self) -> list[str]:
        """Class names (the captions), indexed by label."""
        return self.world.classes

    def build_dataset(self, split: str) -> SyntheticWorldDataset:
        """The scenes of ``split``; ``predict`` serves the test scenes."""
        world_split = "test" if split == "predict" else split
        if world_split not in self.split_sizes:
            raise ConfigError(f"unknown split '{split}' (expected train, val, test or predict)")
        return SyntheticWorldDataset(self.world, world_split, self.split_sizes[world_split])
