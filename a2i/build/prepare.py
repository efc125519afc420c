"""Decode a video dataset once into shards: audio, one selected frame, cached features.

The unit of work is a shard: clips are sorted by key within each split and cut into
consecutive groups of ``shard_size``, so which clip lands in which shard never depends on
timing or on the number of workers. Each worker decodes a whole shard, asks the frame selector
for the training frame, computes the cached features in batches and writes the shard
atomically (:func:`a2i.data.shards.write_shard`). A killed run restarts by skipping the shards
whose tar exists and redoing the rest, which yields byte-identical shards.

Several ranks (``a2i prepare --devices N --num_nodes M``) take every N·M-th shard still to do,
each with its own worker pool; rank 0 writes the final index once all are done. Shards do not
depend on the rank count either, so a rerun with another one resumes.

Bad clips never stop the run: an unreadable video, a missing audio track, a clip shorter than
``min_seconds`` or a frame selector's veto is recorded in the shard's sidecar and collected in
``problems.log``. A video that could not be decoded is a failure (``a2i prepare`` exits with
status 1 once the rest is done); the others are the dataset's rules at work.
"""

from __future__ import annotations

import json
import logging
import math
import pickle
import time
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor
from tqdm.auto import tqdm

from a2i.audio.io import read_audio
from a2i.build.clips import VideoClip
from a2i.build.frames import FrameSelector
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
    resize_center_crop,
    write_shard,
)
from a2i.build.video import VideoDecodeError, decode_video
from a2i.errors import A2IError, ConfigError
from a2i.generators.autoencoder import KLAutoencoder
from a2i.interfaces import AudioEncoder, ImageEncoder
from a2i.io_utils import atomic_write_text, printable
from a2i.runtime import ONE_PROCESS, Ranks

logger = logging.getLogger(__name__)


class CachedFeature(ABC):
    """A frozen model whose output is stored in the shards, so training skips recomputing it.

    Every feature is one frozen module and what :meth:`compute` does with it, so the module is
    handed in here and moved to the preparation device by :meth:`setup` for all of them.

    Args:
        name: Member and batch name (``features/<name>``); letters, digits and ``_`` only.
        frozen_model: The frozen module the feature is computed with.
    """

    def __init__(self, name: str, frozen_model: torch.nn.Module) -> None:
        if not name.replace("_", "").isalnum():
            raise ConfigError(f"feature name '{name}' may hold only letters, digits and '_'")
        self.name = name
        self.frozen_model = frozen_model
        self.device = torch.device("cpu")

    def setup(self, device: str) -> None:
        """Move the frozen model to ``device`` in eval mode (called once per worker)."""
        self.device = torch.device(device)
        self.frozen_model.to(self.device).eval()

    @abstractmethod
    def compute(self, images: Tensor, audio: Tensor) -> Tensor:
        """Features ``(B, ...)`` from frames ``(B, 3, H, W)`` in [0, 1] and audio ``(B, T)``."""


class ImageFeature(CachedFeature):
    """Image-encoder embeddings of the training frame (Sound2Vision's frozen targets z_V).

    Args:
        encoder: The same frozen image encoder the method's config names.
        name: Batch name suffix.
    """

    def __init__(self, encoder: ImageEncoder, name: str = "image") -> None:
        super().__init__(name, encoder)
        self.encoder = encoder

    def compute(self, images: Tensor, audio: Tensor) -> Tensor:
        """Embeddings ``(B, D)``."""
        return self.encoder(images.to(self.device)).float().cpu()


class AudioFeature(CachedFeature):
    """Pooled embeddings of a frozen audio encoder (e.g. AudioToken's frozen BEATs).

    Args:
        encoder: A frozen audio encoder with a pooled output.
        name: Batch name suffix.
    """

    def __init__(self, encoder: AudioEncoder, name: str = "audio") -> None:
        super().__init__(name, encoder)
        self.encoder = encoder

    def compute(self, images: Tensor, audio: Tensor) -> Tensor:
        """Pooled embeddings ``(B, D)`` of the first ``clip_seconds`` of each clip."""
        length = round(self.encoder.sample_rate * self.encoder.clip_seconds)
        audio = F.pad(audio, (0, max(0, length - audio.shape[-1])))[:, :length]
        pooled = self.encoder(audio.to(self.device)).pooled
        if pooled is None:
            raise ConfigError(f"{type(self.encoder).__name__} has no pooled output to cache")
        return pooled.float().cpu()


class LatentFeature(CachedFeature):
    """VAE latents of the frame at the generator's resolution (latent-diffusion training).

    Args:
        autoencoder: The generator's frozen VAE.
        image_size: Resolution the generator is trained at.
        name: Batch name suffix.
    """

    def __init__(self, autoencoder: KLAutoencoder, image_size: int, name: str = "latents") -> None:
        super().__init__(name, autoencoder)
        self.autoencoder = autoencoder
        self.image_size = image_size

    def compute(self, images: Tensor, audio: Tensor) -> Tensor:
        """Posterior mean and std ``(B, 2, C, h, w)`` of the latents.

        Training draws from them at read time, the objective it has on images (a mean alone
        would train another one).
        """
        images = F.interpolate(images, size=self.image_size, mode="bilinear", antialias=True)
        return self.autoencoder.posterior(images.to(self.device)).float().cpu()


@dataclass
class PrepareSettings:
    """Everything that decides the bytes of the shards (stored as ``settings.json``).

    A resumed or repeated preparation must use the same settings, otherwise its shards would
    mix two recipes; :func:`prepare_clips` refuses that. A ``settings.json`` written before a
    field existed is read with that field's default (:meth:`stored`).
    """

    sample_rate: int = 16000
    frame_rate: float = 1.0
    frame_size: int = 256
    shard_size: int = 256
    min_seconds: float = 1.0
    max_seconds: float | None = 600.0
    frame_selector: str = ""
    features: list[str] = field(default_factory=list)
    clips_sha1: str = ""

    def record(self, selector: FrameSelector, features: Sequence[CachedFeature]) -> None:
        """Name the frame selector and the cached features in the recipe."""
        self.frame_selector = class_path_of(selector)
        self.features = [f"{f.name}={class_path_of(f)}" for f in features]

    @classmethod
    def stored(cls, found: dict[str, Any]) -> dict[str, Any]:
        """A stored ``settings.json`` as this version writes it (later fields at their default).

        ``max_seconds`` came after the first prepared folders; its default leaves every clip
        shorter than it byte-identical, so those folders stay valid.
        """
        return {**asdict(cls()), **found}


@dataclass
class PrepareReport:
    """What a preparation did: counts per split, dropped clips, speed.

    ``dropped`` holds every clip left out (``key``, ``video``, ``problem``); those whose video
    could not be decoded also have ``failed: True`` (:attr:`failed`).
    """

    kept: dict[str, int]
    dropped: list[dict[str, Any]]
    shards_written: int = 0
    shards_reused: int = 0
    seconds: float = 0.0
    processed: int = 0
    cut: int = 0
    max_seconds: float = math.inf

    @property
    def clips_per_second(self) -> float:
        """Throughput over the clips processed by this run (reused shards excluded)."""
        return self.processed / self.seconds if self.seconds > 0 else math.nan

    @property
    def failed(self) -> list[dict[str, Any]]:
        """The dropped clips whose video could not be decoded (damaged, truncated, not a video)."""
        return [clip for clip in self.dropped if clip.get("failed")]

    def describe(self, prepared: Path) -> str:
        """What the run made of the shards in ``prepared``, in one line (``a2i prepare`` says it)."""
        counts = ", ".join(f"{split} {count}" for split, count in sorted(self.kept.items()))
        return (
            f"{counts} clips in {printable(prepared)}; {len(self.dropped)} dropped "
            f"({len(self.failed)} undecodable; see "
            f"{printable(prepared / 'problems.log')}); {self.shards_written} shards written, "
            f"{self.shards_reused} reused; {self.processed} clips in {self.seconds:.1f} s = "
            f"{self.clips_per_second:.2f} clips/s"
            + (
                f"; {self.cut} longer videos kept their first {self.max_seconds:g} s (max_seconds)"
                if self.cut
                else ""
            )
        )


_worker: dict[str, Any] = {}


def _init_worker(
    selector: FrameSelector,
    features: Sequence[CachedFeature],
    settings: PrepareSettings,
    device: str,
) -> None:
    """Load the selector's and features' models once per worker process."""
    torch.set_num_threads(1)
    selector.setup(device)
    for feature in features:
        feature.setup(device)
    _worker.update(selector=selector, features=list(features), settings=settings)


def _init_worker_from_bytes(payload: bytes, device: str) -> None:
    """Worker initialiser: the models arrive as plain pickle bytes.

    multiprocessing's own pickler shares every tensor through a file descriptor and fails
    with "too many fds" on models of a few hundred tensors; plain pickle copies them.
    """
    selector, features, settings = pickle.loads(payload)
    _init_worker(selector, features, settings, device)


def prepare_one(
    clip: VideoClip, settings: PrepareSettings, selector: FrameSelector
) -> PreparedClip | str:
    """Decode and select; returns a :class:`PreparedClip` or why the dataset's rules drop it.

    Raises:
        VideoDecodeError, A2IError, OSError: The video (or its separate audio) cannot be decoded.
    """
    longest = math.inf if settings.max_seconds is None else settings.max_seconds
    window = min(longest, math.inf if clip.duration is None else clip.duration)
    video = decode_video(
        clip.video,
        sample_rate=settings.sample_rate,
        frame_rate=settings.frame_rate,
        start=clip.start,
        duration=None if window == math.inf else window,  # decoding stops there: bounded memory
        max_side=None if clip.crop else settings.frame_size,
    )
    audio = video.audio if clip.audio is None else _separate_audio(clip, settings)
    if audio is None:
        return "no audio track"
    seconds = audio.shape[-1] / settings.sample_rate
    if seconds < settings.min_seconds:
        return f"only {seconds:.2f} s of audio (min_seconds = {settings.min_seconds})"
    if video.frames.shape[0] == 0:
        return "no video frames in the clip window"
    frames = video.frames
    if clip.crop is not None:
        frames = crop_frames(frames, clip.crop, settings.frame_size)
    choice = selector.select(
        frames,
        video.times,
        audio,
        settings.sample_rate,
        clip.label,
        clip.caption,
        key=clip.key,
        fps=video.info.frame_rate,
    )
    if not choice.keep:
        return choice.reason or f"dropped by {type(selector).__name__}"
    meta = {
        **clip.meta,
        "video": Path(clip.video).name,
        "seconds": round(seconds, 3),
        "frame_time": round(float(video.times[choice.index]), 3),
        "frame_score": None if math.isnan(choice.score) else round(float(choice.score), 5),
        "fps": round(video.info.frame_rate, 3),
        "rotation": video.info.rotation,
    }
    remaining = video.info.duration - clip.start
    if min(remaining, clip.duration or remaining) > longest:
        meta["cut_to_max_seconds"] = longest  # (only the first part is kept)
    return PreparedClip(
        key=clip.key,
        split=clip.split,
        audio=audio,
        sample_rate=settings.sample_rate,
        frame=frames[choice.index].numpy(),
        label=clip.label,
        caption=clip.caption,
        meta=meta,
    )


def _separate_audio(clip: VideoClip, settings: PrepareSettings) -> Tensor:
    """The clip's window of its separate audio file (the same seconds as its frames)."""
    waveform = read_audio(clip.audio, settings.sample_rate)
    first = round(clip.start * settings.sample_rate)
    last = None if clip.duration is None else first + round(clip.duration * settings.sample_rate)
    return waveform[first:last]


def crop_frames(frames: Tensor, box: tuple[int, int, int, int], size: int) -> Tensor:
    """Cut ``(top, bottom, left, right)`` from ``(N, H, W, 3)`` frames, short side to ``size``."""
    top, bottom, left, right = box
    height, width = frames.shape[1:3]
    top, left = max(0, top), max(0, left)
    bottom, right = min(height, bottom), min(width, right)
    if bottom - top < 2 or right - left < 2:
        return frames
    cut = frames[:, top:bottom, left:right].permute(0, 3, 1, 2).float()
    scale = size / min(cut.shape[-2:])
    if scale < 1:
        shape = (round(cut.shape[-2] * scale), round(cut.shape[-1] * scale))
        cut = F.interpolate(cut, size=shape, mode="bilinear", antialias=True)
    return cut.round().clamp(0, 255).byte().permute(0, 2, 3, 1).contiguous()


def _prepare_shard(out: str, name: str, clips: list[VideoClip]) -> None:
    """Worker job: decode, select, compute features and write one shard."""
    settings, selector, features = _worker["settings"], _worker["selector"], _worker["features"]
    prepared: list[PreparedClip] = []
    dropped: list[dict[str, Any]] = []
    for clip in clips:
        named = {"key": clip.key, "video": clip.video}
        try:
            result = prepare_one(clip, settings, selector)
        except (VideoDecodeError, A2IError, OSError) as error:
            dropped.append({**named, "problem": str(error), "failed": True})
            continue
        if isinstance(result, str):
            dropped.append({**named, "problem": result})
        else:
            prepared.append(result)
    if prepared and features:
        compute_features(prepared, features)
    write_shard(Path(out) / SHARD_DIR, name, prepared, dropped)


@torch.no_grad()
def compute_features(
    clips: list[PreparedClip], features: Sequence[CachedFeature], batch: int = 32
) -> None:
    """Fill ``clip.features`` in batches (frames centre-cropped to the batch's smallest side)."""
    for first in range(0, len(clips), batch):
        group = clips[first : first + batch]
        size = min(min(c.frame.shape[:2]) for c in group)
        images = torch.stack(
            [
                resize_center_crop(torch.from_numpy(c.frame).permute(2, 0, 1).float() / 255, size)
                for c in group
            ]
        )
        longest = max(c.audio.shape[-1] for c in group)
        audio = torch.stack([F.pad(c.audio, (0, longest - c.audio.shape[-1])) for c in group])
        for feature in features:
            values = feature.compute(images, audio)
            for clip, value in zip(group, values, strict=True):
                clip.features[feature.name] = value


def plan_clip_shards(clips: Sequence[VideoClip], shard_size: int) -> dict[str, list[VideoClip]]:
    """Shard name → its clips (:func:`~a2i.build.shards.plan_shards`); keys must be unique."""
    counts = Counter(clip.key for clip in clips)
    repeated = sorted(key for key, count in counts.items() if count > 1)
    if repeated:
        raise ConfigError(f"clip keys must be unique; repeated: {repeated[:10]}")
    return plan_shards(clips, shard_size, lambda clip: clip.split, lambda clip: clip.key)


def prepare_clips(
    clips: Sequence[VideoClip],
    out: str | Path,
    classes: Sequence[str] | None,
    selector: FrameSelector,
    features: Sequence[CachedFeature] = (),
    settings: PrepareSettings | None = None,
    *,
    workers: int = 0,
    device: str = "cpu",
    progress: bool = True,
    ranks: Ranks = ONE_PROCESS,
) -> PrepareReport:
    """Write the shards of ``clips`` under ``out`` (resuming a killed run).

    Args:
        clips: Every clip to prepare (the dataset's scan).
        out: Prepared dataset directory.
        classes: Class names (written to ``classes.json``), or None.
        selector: Chooses each clip's training frame and may veto clips.
        features: Frozen models whose outputs are cached in the shards.
        settings: Decoding and sharding settings.
        workers: Worker processes (0: in this process).
        device: Where the selector's and features' models run.
        progress: Show a progress bar (rank 0's share).
        ranks: The processes that prepare together (each calls this with the same arguments).
    """
    out = Path(out)
    settings = settings or PrepareSettings()
    settings.record(selector, features)
    directory = out / SHARD_DIR
    refused = None
    if ranks.is_main:  # before any rank writes a shard
        try:
            _check_settings(out, settings)
            stale = remove_partial_files(directory)
            if stale:
                logger.info("removed %d partial file(s) of an interrupted run", len(stale))
        except A2IError as error:
            refused = error
    ranks.agree(refused)
    plan = plan_clip_shards(clips, settings.shard_size)
    done = completed_shards(directory) & set(plan)
    todo = {name: plan[name] for name in ranks.share(set(plan) - done)}
    start = time.perf_counter()
    bar = tqdm(
        total=sum(len(g) for g in todo.values()),
        unit="clip",
        desc="a2i prepare" + (f" (rank 0 of {ranks.world_size})" if ranks.distributed else ""),
        disable=not progress or not ranks.is_main,
    )
    if workers == 0:
        setup = partial(_init_worker, selector, features, settings, device)
    else:
        payload = pickle.dumps((selector, list(features), settings))
        setup = partial(_init_worker_from_bytes, payload, device)
    build_shards(_prepare_shard, out, todo, bar, setup, workers, "a2i.build.prepare")
    bar.close()
    written = ranks.gather((len(todo), sum(len(g) for g in todo.values())))  # waits for all
    seconds = time.perf_counter() - start
    report = _finish(out, plan, classes, settings) if ranks.is_main else PrepareReport({}, [])
    report.shards_written = sum(shards for shards, _ in written)
    report.shards_reused = len(done)
    report.seconds = seconds
    report.processed = sum(clips for _, clips in written)
    return report


def class_path_of(component: Any) -> str:
    """``module.Class`` of a configured component (recorded in ``settings.json``)."""
    return f"{type(component).__module__}.{type(component).__qualname__}"


def _check_settings(out: Path, settings: PrepareSettings) -> None:
    """Record the settings, or refuse to continue a preparation made with other ones."""
    path = out / SETTINGS_FILE
    wanted = asdict(settings)
    if path.is_file():
        found = PrepareSettings.stored(json.loads(path.read_text()))
        if found != wanted:
            changed = sorted(k for k in wanted if found.get(k) != wanted[k])
            raise ConfigError(
                f"{out} was prepared with other settings ({', '.join(changed)} differ; see "
                f"{path}); prepare into a new directory or delete that one first"
            )
        return
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(wanted, indent=1) + "\n")


def _finish(
    out: Path,
    plan: dict[str, list[VideoClip]],
    classes: Sequence[str] | None,
    settings: PrepareSettings,
) -> PrepareReport:
    """Collect counts and problems from the sidecars; write ``problems.log`` and the marker.

    The marker (``prepared.json``) keeps the undecodable videos, so a rerun of a complete
    preparation names them again.
    """
    kept: dict[str, int] = {}
    dropped: list[dict[str, Any]] = []
    cut = 0
    for index in read_shard_index(out / SHARD_DIR, plan):
        split = index["shard"].rsplit("-", 1)[0]
        kept[split] = kept.get(split, 0) + len(index["clips"])
        dropped.extend(index["dropped"])
        cut += sum("cut_to_max_seconds" in clip["meta"] for clip in index["clips"])
    lines = "".join(f"{d['key']}\t{d['video']}\t{d['problem']}\n" for d in dropped)
    atomic_write_text(out / PROBLEMS_FILE, "key\tvideo\tproblem\n" + lines)
    if classes is not None:
        atomic_write_text(out / "classes.json", json.dumps(list(classes), indent=1) + "\n")
    report = PrepareReport(kept, dropped, cut=cut, max_seconds=settings.max_seconds or math.inf)
    summary = {"clips": kept, "dropped": len(dropped), FAILED_INPUTS: report.failed}
    marker = json.dumps({**summary, "shards": sorted(plan)}, indent=1) + "\n"
    atomic_write_text(out / DONE_FILE, marker)
    return report
