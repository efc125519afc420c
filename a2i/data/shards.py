"""Prepared datasets as WebDataset tar shards: written atomically, read by byte offset.

``a2i prepare`` turns a video dataset into ``<out>/shards/<split>-NNNNN.tar`` files in the
WebDataset layout (one sample = ``<key>.flac`` audio, ``<key>.jpg`` training frame,
``<key>.json`` record, ``<key>.<feature>.npy`` cached features), so any WebDataset pipeline can
stream them from a bucket. Each tar has a JSON sidecar (``<split>-NNNNN.json``) listing its
clips, the byte offset and size of every member, and the clips dropped while writing it.

a2i reads shards map-style through those offsets by default: an epoch sees every clip exactly
once, Lightning's ``DistributedSampler`` splits clips (not shards) evenly across DDP ranks, so
no rank runs out of batches before the others, and the index gives counts, labels and metadata
without opening a tar. For storage where random access is slow (network file systems, object
stores), :meth:`ShardDataset.stream` streams the same shards through WebDataset instead. A shard and its sidecar are written under temporary names
and renamed (sidecar first, tar last), so a shard whose tar exists is complete.
"""

from __future__ import annotations

import io
import json
import tarfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import torch
import torch.nn.functional as F
import webdataset as wds
from PIL import Image
from torch import Tensor
from torch.utils.data import Dataset

from a2i.audio.io import fit_length
from a2i.data.manifest import SPLITS, ManifestError
from a2i.errors import A2IError, DatasetNotFoundError
from a2i.interfaces import AUDIO, CAPTION, FEATURES, IMAGE, KEY, LABEL
from a2i.io_utils import TEMP_GLOB, atomic_write

SHARD_DIR = "shards"
JPEG_QUALITY = 95


class ShardError(A2IError, ValueError):
    """A shard or its sidecar is missing, truncated or inconsistent."""


@dataclass
class PreparedClip:
    """One clip ready for a shard: decoded audio, the chosen frame, cached features, facts.

    Attributes:
        key: Unique identifier without dots (WebDataset splits member names on the first dot).
        split: ``train``, ``val`` or ``test``.
        audio: ``(T,)`` mono waveform in ``[-1, 1]``.
        sample_rate: Rate of ``audio`` in Hz.
        frame: ``(H, W, 3)`` uint8 RGB training frame.
        label: Class index, -1 when unknown.
        caption: Text description (class name for labelled datasets).
        features: Name → cached feature tensor.
        meta: Free-form JSON facts (source video, frame time, selector score, attributes).
    """

    key: str
    split: str
    audio: Tensor
    sample_rate: int
    frame: np.ndarray
    label: int = -1
    caption: str = ""
    features: dict[str, Tensor] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)

    def record(self) -> dict[str, Any]:
        """The JSON record stored in the shard and the sidecar."""
        return {
            "key": self.key,
            "split": self.split,
            "label": self.label,
            "caption": self.caption,
            "meta": self.meta,
        }


def shard_name(split: str, index: int) -> str:
    """``train-00003``: shards sort by split, then by position."""
    return f"{split}-{index:05d}"


def encode_flac(audio: Tensor, sample_rate: int) -> bytes:
    """16-bit FLAC bytes (lossless for 16-bit sources, about half the size of wav)."""
    buffer = io.BytesIO()
    samples = audio.detach().float().clamp(-1, 1).cpu().numpy()
    sf.write(buffer, samples, sample_rate, format="FLAC", subtype="PCM_16")
    return buffer.getvalue()


def encode_jpeg(frame: np.ndarray) -> bytes:
    """JPEG bytes of an ``(H, W, 3)`` uint8 frame."""
    buffer = io.BytesIO()
    Image.fromarray(frame).save(buffer, format="JPEG", quality=JPEG_QUALITY)
    return buffer.getvalue()


def encode_npy(array: Tensor) -> bytes:
    """``.npy`` bytes of a tensor (float32)."""
    buffer = io.BytesIO()
    np.save(buffer, array.detach().float().cpu().numpy())
    return buffer.getvalue()


def write_shard(
    directory: Path,
    name: str,
    clips: Sequence[PreparedClip],
    dropped: Sequence[dict[str, str]] = (),
) -> Path:
    """Write ``<name>.tar`` and its sidecar ``<name>.json`` atomically; return the tar path.

    Byte-identical for identical inputs (fixed mtime and owner), so a resumed preparation
    writes the same shards as an uninterrupted one.

    Args:
        directory: The ``shards`` folder.
        name: Shard name from :func:`shard_name`.
        clips: The clips to store, in order.
        dropped: ``{"key", "video", "problem"}`` for each clip of this shard that was skipped.
    """
    tar_path, index_path = directory / f"{name}.tar", directory / f"{name}.json"
    # the index is renamed into place first, the tar last: a tar on disk marks a finished shard
    with atomic_write(tar_path) as tmp_tar, atomic_write(index_path) as tmp_index:
        with open(tmp_tar, "wb") as stream:
            writer = wds.TarWriter(stream, user="a2i", group="a2i", mtime=0.0)
            for clip in clips:
                if "." in clip.key:
                    raise ShardError(f"clip key '{clip.key}' contains a dot; keys must not")
                sample: dict[str, Any] = {
                    "__key__": clip.key,
                    "flac": encode_flac(clip.audio, clip.sample_rate),
                    "jpg": encode_jpeg(clip.frame),
                    "json": json.dumps(clip.record(), sort_keys=True).encode(),
                }
                for feature, value in sorted(clip.features.items()):
                    sample[f"{feature}.npy"] = encode_npy(value)
                writer.write(sample)
            writer.close()
        members = _member_offsets(tmp_tar)
        index = {
            "shard": f"{name}.tar",
            "clips": [{**clip.record(), "members": members[clip.key]} for clip in clips],
            "dropped": list(dropped),
        }
        tmp_index.write_text(json.dumps(index, indent=1, sort_keys=True) + "\n")
    return tar_path


def _member_offsets(tar_path: Path) -> dict[str, dict[str, list[int]]]:
    """Key → member extension → ``[byte offset, size]`` of its data inside the tar."""
    offsets: dict[str, dict[str, list[int]]] = {}
    with tarfile.open(tar_path) as archive:
        for member in archive.getmembers():
            key, _, extension = member.name.partition(".")
            offsets.setdefault(key, {})[extension] = [member.offset_data, member.size]
    return offsets


def completed_shards(directory: Path) -> set[str]:
    """Names of the shards whose tar (written last) exists."""
    if not directory.is_dir():
        return set()
    return {path.stem for path in directory.glob("*.tar")}


def remove_partial_files(directory: Path) -> list[Path]:
    """Delete temporary files a killed preparation left behind; return them."""
    if not directory.is_dir():
        return []
    stale = sorted(directory.glob(TEMP_GLOB))
    for path in stale:
        path.unlink(missing_ok=True)
    return stale


def read_shard_index(directory: Path, names: Iterable[str]) -> list[dict[str, Any]]:
    """The sidecars of ``names`` (each with ``shard``, ``clips`` and ``dropped``)."""
    indexes = []
    for name in sorted(names):
        path = directory / f"{name}.json"
        try:
            indexes.append(json.loads(path.read_text()))
        except FileNotFoundError:
            raise ShardError(
                f"{path} is missing: the shard index was deleted; rerun prepare"
            ) from None
        except json.JSONDecodeError as error:
            raise ShardError(f"{path}: invalid JSON ({error.msg})") from None
    return indexes


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
        samples, rate = sf.read(io.BytesIO(blobs["flac"]), dtype="float32")
        if rate != self.sample_rate:
            raise ShardError(
                f"{source}: audio stored at {rate} Hz but {self.sample_rate} Hz was asked for; "
                "prepare again with that sample_rate"
            )
        with Image.open(io.BytesIO(blobs["jpg"])) as picture:
            frame = np.asarray(picture.convert("RGB"), dtype=np.float32) / 255.0
        frame_time = record.get("meta", {}).get("frame_time")
        frame_sample = None if frame_time is None else round(frame_time * rate)
        item: dict[str, Any] = {
            AUDIO: fit_length(
                torch.from_numpy(samples),
                self.num_samples,
                random_crop=self.random_crop,
                contains=frame_sample,
            ),
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


def resize_center_crop(image: Tensor, size: int) -> Tensor:
    """``(3, H, W)`` → ``(3, size, size)``: short side to ``size``, then a centre crop."""
    height, width = image.shape[-2:]
    scale = size / min(height, width)
    new = (max(size, round(height * scale)), max(size, round(width * scale)))
    if new != (height, width):
        image = F.interpolate(image[None], size=new, mode="bilinear", antialias=True)[0]
    top, left = (new[0] - size) // 2, (new[1] - size) // 2
    return image[:, top : top + size, left : left + size].clamp(0, 1).contiguous()
