"""The shard format and its writer: WebDataset tars written atomically, indexed by byte offset.

``a2i prepare`` turns a video dataset into ``<out>/shards/<split>-NNNNN.tar`` files in the
WebDataset layout (one sample = ``<key>.flac`` audio, ``<key>.jpg`` training frame,
``<key>.json`` record, ``<key>.<feature>.npy`` cached features), so any WebDataset pipeline can
stream them from a bucket. Each tar has a JSON sidecar (``<split>-NNNNN.json``) listing its
clips, the byte offset and size of every member, and the clips dropped while writing it, so
:class:`a2i.data.shards.ShardDataset` reads clips by offset without opening a tar first. A
shard and its sidecar are written under temporary names and renamed (sidecar first, tar last),
so a shard whose tar exists is complete.
"""

from __future__ import annotations

import io
import json
import multiprocessing
import tarfile
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import soundfile as sf
import torch.nn.functional as F
import webdataset as wds
from PIL import Image
from torch import Tensor
from tqdm.auto import tqdm

from a2i.errors import A2IError, ConfigError
from a2i.io_utils import TEMP_GLOB, atomic_write

SHARD_DIR = "shards"
SETTINGS_FILE = "settings.json"
"""The recipe the shards were built with (a builder refuses to continue with another)."""
DONE_FILE = "prepared.json"
"""Written last by a builder: the shards are complete."""
PROBLEMS_FILE = "problems.log"
"""Items a builder dropped, and why."""
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


T = TypeVar("T")


def plan_shards(
    items: Sequence[T], shard_size: int, split: Callable[[T], str], key: Callable[[T], str]
) -> dict[str, list[T]]:
    """Shard name → its items: sorted by ``key`` within each ``split``, cut every ``shard_size``.

    Which item lands in which shard never depends on timing or on the number of workers.
    """
    if shard_size < 1:
        raise ConfigError(f"shard_size must be >= 1 (got {shard_size})")
    plan: dict[str, list[T]] = {}
    for name in sorted({split(item) for item in items}):
        ordered = sorted((item for item in items if split(item) == name), key=key)
        for index in range(0, len(ordered), shard_size):
            plan[shard_name(name, index // shard_size)] = ordered[index : index + shard_size]
    return plan


def build_shards(
    job: Callable[[str, str, list[T]], None],
    out: Path,
    todo: dict[str, list[T]],
    bar: tqdm,
    setup: Callable[[], None],
    workers: int,
    preload: str,
) -> None:
    """Run ``job(out, name, items)`` for each shard of ``todo``, here or in ``workers`` processes.

    ``setup`` loads the models, once here or once per worker (so it must pickle for workers).
    Workers fork from a forkserver that imported ``preload`` once: forking a process that holds
    torch threads is unsafe, and spawn would re-import torch per worker.
    """
    if workers == 0:
        setup()
        for name, group in todo.items():
            job(str(out), name, group)
            bar.update(len(group))
        return
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload([preload])
    with ProcessPoolExecutor(workers, mp_context=context, initializer=setup) as pool:
        jobs = {pool.submit(job, str(out), name, group): name for name, group in todo.items()}
        for finished in as_completed(jobs):
            finished.result()
            bar.update(len(todo[jobs[finished]]))


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
    dropped: Sequence[dict[str, Any]] = (),
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


FAILED_INPUTS = "failed_inputs"
"""The marker's (:data:`DONE_FILE`) list of inputs a builder could not read, kept so that a rerun
of a complete folder names them again (and exits with status 1) as the first run did."""


def recorded_failures(prepared: Path) -> list[dict[str, Any]]:
    """The failed inputs a complete folder's marker records (none in one built before them)."""
    done = json.loads((prepared / DONE_FILE).read_text(encoding="utf-8"))
    return done.get(FAILED_INPUTS, [])


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


def resize_center_crop(image: Tensor, size: int) -> Tensor:
    """``(3, H, W)`` → ``(3, size, size)``: short side to ``size``, then a centre crop."""
    height, width = image.shape[-2:]
    scale = size / min(height, width)
    new = (max(size, round(height * scale)), max(size, round(width * scale)))
    if new != (height, width):
        image = F.interpolate(image[None], size=new, mode="bilinear", antialias=True)[0]
    top, left = (new[0] - size) // 2, (new[1] - size) // 2
    return image[:, top : top + size, left : left + size].clamp(0, 1).contiguous()
