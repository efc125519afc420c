"""Read prepared shards (:mod:`a2i.build.shards` writes them) map-style by byte offset.

An epoch sees every clip exactly once and Lightning's ``DistributedSampler`` splits clips (not
shards) evenly across DDP ranks, so no rank runs out of batches before the others; the sidecar
index gives counts, labels and metadata without opening a tar. For storage where random access
is slow (network file systems, object stores), :meth:`ShardDataset.stream` streams the same
shards through WebDataset instead.
"""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import torch
import webdataset as wds
from PIL import Image
from torch.utils.data import Dataset

from a2i.audio.io import crop_start, fit_length
from a2i.build.shards import (
    SHARD_DIR,
    ShardError,
    completed_shards,
    read_shard_index,
    resize_center_crop,
)
from a2i.data.manifest import SPLITS
from a2i.errors import DatasetNotFoundError, ManifestError
from a2i.interfaces import AUDIO, CAPTION, FEATURES, IMAGE, KEY, LABEL


class ShardDataset(Dataset):
    """The clips of one split of a prepared dataset, read from its shards by byte offset.

    Args:
        root: Prepared dataset directory (holding ``shards/``).
        split: Which clips to serve.
        sample_rate: Audio rate expected; must equal the rate the shards were written at.
        clip_seconds: Audio length delivered (cropped or zero-padded).
        image_size: Square resolution delivered (the frame is resized on its short side and
            centre-cropped, so faces and objects keep their aspect).
        random_crop: Crop audio at random offsets (training) instead of from the start; a crop
            always contains the frame time recorded at preparation (``meta.frame_time``), as
            AudioToken's official code picks the frame inside its random 5 s window
            (guyyariv/AudioToken ab7d280, data/dataloader.py:128-140).
        features: Cached feature names to deliver as ``features/<name>``.
    """

    def __init__(
        self,
        root: str | Path,
        split: str,
        sample_rate: int,
        clip_seconds: float,
        image_size: int,
        random_crop: bool = False,
        features: Sequence[str] = (),
    ) -> None:
        if split not in SPLITS:
            raise ManifestError(f"split must be one of {SPLITS}, got '{split}'")
        self.root = Path(root)
        self.directory = self.root / SHARD_DIR
        self.split = split
        self.sample_rate = sample_rate
        self.num_samples = round(sample_rate * clip_seconds)
        self.image_size = image_size
        self.random_crop = random_crop
        self.features = list(features)
        names = sorted(n for n in completed_shards(self.directory) if n.startswith(f"{split}-"))
        self.clips: list[tuple[str, dict[str, Any]]] = []
        for index in read_shard_index(self.directory, names):
            self.clips.extend((index["shard"], clip) for clip in index["clips"])
        if not self.clips:
            raise DatasetNotFoundError(
                self.root, f"no '{split}' clips in {self.directory}; run `a2i prepare` first"
            )
        missing = [n for n in self.features if f"{n}.npy" not in self.clips[0][1]["members"]]
        if missing:
            raise ShardError(
                f"{self.directory}: features {missing} were not cached when the shards were "
                "written; add them to the preparation's `features` and prepare again"
            )
        self._files: dict[str, Any] = {}

    def __len__(self) -> int:
        return len(self.clips)

    def _read(self, shard: str, member: list[int]) -> bytes:
        """Bytes of one member; tar handles stay open per worker process."""
        handle = self._files.get(shard)
        if handle is None:
            handle = self._files[shard] = open(self.directory / shard, "rb")
        offset, size = member
        handle.seek(offset)
        data = handle.read(size)
        if len(data) != size:
            raise ShardError(f"{self.directory / shard}: truncated (member at byte {offset})")
        return data

    def __getitem__(self, index: int) -> dict[str, Any]:
        shard, clip = self.clips[index]
        names = ["flac", "jpg"] + [f"{name}.npy" for name in self.features]
        blobs = {name: self._read(shard, clip["members"][name]) for name in names}
        return self.decode(blobs, clip, self.directory / shard)

    def decode(
        self, blobs: dict[str, bytes], record: dict[str, Any], source: Path
    ) -> dict[str, Any]:
        """A batch-contract item from a sample's member bytes and its JSON record."""
        with sf.SoundFile(io.BytesIO(blobs["flac"])) as sound:
            rate = sound.samplerate
            if rate != self.sample_rate:
                raise ShardError(
                    f"{source}: audio stored at {rate} Hz but {self.sample_rate} Hz was asked "
                    "for; prepare again with that sample_rate"
                )
            frame_time = record.get("meta", {}).get("frame_time")
            frame_sample = None if frame_time is None else round(frame_time * rate)
            # only the crop is decoded: an hour-long clip costs what a short one does
            start = crop_start(
                sound.frames,
                self.num_samples,
                random_crop=self.random_crop,
                contains=frame_sample,
            )
            sound.seek(start)
            samples = sound.read(self.num_samples, dtype="float32")
        with Image.open(io.BytesIO(blobs["jpg"])) as picture:
            frame = np.asarray(picture.convert("RGB"), dtype=np.float32) / 255.0
        item: dict[str, Any] = {
            AUDIO: fit_length(torch.from_numpy(samples), self.num_samples, random_crop=False),
            IMAGE: resize_center_crop(torch.from_numpy(frame).permute(2, 0, 1), self.image_size),
            LABEL: record["label"],
            CAPTION: record["caption"],
            KEY: record["key"],
        }
        for name in self.features:
            item[FEATURES + name] = torch.from_numpy(np.load(io.BytesIO(blobs[f"{name}.npy"])))
        return item

    def stream(self, shuffle_buffer: int = 1000) -> wds.WebDataset:
        """The same items streamed with WebDataset: shards drawn with replacement, shuffled.

        Every rank and worker draws shards independently, so no shard list has to be split
        evenly across DDP ranks; the caller fixes the epoch length per rank
        (``WebLoader.with_epoch``) so that all ranks run the same number of steps.
        """
        urls = [str(self.directory / shard) for shard in sorted({s for s, _ in self.clips})]

        def to_item(sample: dict[str, Any]) -> dict[str, Any]:
            return self.decode(sample, json.loads(sample["json"]), Path(sample["__url__"]))

        return (
            wds.WebDataset(urls, resampled=True, shardshuffle=False, nodesplitter=None)
            .shuffle(shuffle_buffer)
            .map(to_item)
        )

    def __getstate__(self) -> dict[str, Any]:
        """Open file handles stay behind when the dataset is sent to a worker process."""
        return {**self.__dict__, "_files": {}}
