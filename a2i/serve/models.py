"""What ``a2i serve`` offers and draws, without the web layer (so it is tested without a browser).

Every drawing goes through :class:`~a2i.pipelines.AudioToImagePipeline` as ``a2i predict`` does:
the widgets' :class:`Controls` become a :class:`~a2i.interfaces.GenerationRequest`,
``prepare_request`` checks it, ``read`` decodes the window of the file the model hears
and ``generate`` draws one image per seed. A file the CLI refuses is refused here with the same
:mod:`a2i.errors` message, and an image is the one ``predict`` writes for the same request.
"""

from __future__ import annotations

import functools
import math
import re
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Literal

import numpy as np
import torch
import yaml
from PIL import Image
from torch import Tensor

from a2i.audio.features import LogMel
from a2i.config_files import resolve_config
from a2i.errors import ConfigError
from a2i.image import image_grid, to_uint8
from a2i.interfaces import Crop, GenerationRequest
from a2i.pipelines import AudioToImagePipeline
from a2i.pipelines.loading import CONFIG_FILE, WEIGHTS_FILE

DEMO_ROOT = Path("runs/demo")
"""Where ``make demo`` writes: ``runs/demo/<time>/logs/gan/version_N`` (the stage-2 run) and
``runs/demo/<time>/configs/ldm.yaml`` (the LDM naming its weights; see a2i/demo.py)."""
DEMO_TIME = re.compile(r"\d{8}-\d{6}")
"""The name of a ``make demo`` folder: its start time, ``%Y%m%d-%H%M%S``."""
DISPLAY_SIDE = 256
"""Generated images are enlarged to this side (nearest neighbour: every model pixel stays a block)."""
GENERATOR_VARIANTS = {
    "BigGANGenerator": "GAN",
    "LatentDiffusionGenerator": "LDM",
    "PixArtGenerator": "PixArt",
}
"""The short name of a generator class in a model's name (others: the class name less
``Generator``): Sound2Vision's two variants are called GAN and LDM in its paper."""


@dataclass(frozen=True)
class ModelEntry:
    """A model the demo offers: a training run, an export, or a config naming all its weights.

    Attributes:
        label: Its key: the path as given, relative to the models folder (unique).
        path: The run or export folder, checkpoint or config.
        kind: Which loader reads it.
        name: What the page shows: method, variant and where it comes from
            (``Sound2Vision GAN · demo run 2026-12-05 06:53``); the label where empty.
    """

    label: str
    path: Path
    kind: Literal["run", "export", "config"]
    name: str = field(default="", compare=False)

    @property
    def title(self) -> str:
        """The name shown on the page."""
        return self.name or self.label

    def load(self) -> AudioToImagePipeline:
        """Its pipeline: ``from_run``, ``from_pretrained`` or ``from_config``."""
        if self.kind == "export":
            return AudioToImagePipeline.from_pretrained(self.path)
        if self.kind == "config":
            return AudioToImagePipeline.from_config(self.path)
        return AudioToImagePipeline.from_run(self.path)


def entry_for(path: Path, root: Path | None = None) -> ModelEntry | None:
    """The entry of a run or export folder, a ``.ckpt`` in a run, or a config naming all weights.

    None if it is none of these (a config's weights are checked when it loads).
    """
    label = str(path)
    if root is not None and path.is_relative_to(root):
        label = str(path.relative_to(root)) if path != root else path.name
    if path.suffix in (".yaml", ".yml") and path.is_file():
        name = model_name(path, origin(path, f"config {path.stem}"))
        return ModelEntry(label=label, path=path, kind="config", name=name)
    folder = path
    if path.suffix == ".ckpt":  # as find_run: <run>/checkpoints/x.ckpt or <run>/x.ckpt
        folder = path.parent.parent if path.parent.name == "checkpoints" else path.parent
    if not (folder / CONFIG_FILE).is_file():
        return None
    exported = (folder / WEIGHTS_FILE).is_file()
    if not exported and not (path.is_file() or any((folder / "checkpoints").glob("*.ckpt"))):
        return None
    if exported:
        made = origin(path, f"export {folder.name},", folder / WEIGHTS_FILE)
    else:
        made = origin(path, "run", folder / CONFIG_FILE)
        if path.suffix == ".ckpt":
            made += f", {path.name}"
    name = model_name(folder / CONFIG_FILE, made)
    return ModelEntry(label=label, path=path, kind="export" if exported else "run", name=name)


def model_name(config: Path, source: str) -> str:
    """``<method> <variant> · <source>``, the method and generator read from ``config``.

    An unreadable config gives ``model · <source>``: loading it reports what is wrong.
    """
    try:
        model = yaml.safe_load(config.read_text(encoding="utf-8"))["model"]
        method = str(model["class_path"]).rsplit(".", 1)[-1]
        generator = (model.get("init_args") or {}).get("generator") or {}
    except (OSError, UnicodeDecodeError, yaml.YAMLError, TypeError, KeyError):
        return f"model · {source}"
    kind = str(generator.get("class_path", "")).rsplit(".", 1)[-1] if generator else ""
    variant = GENERATOR_VARIANTS.get(kind, kind.removesuffix("Generator"))
    return f"{' '.join(filter(None, (method, variant)))} · {source}"


def origin(path: Path, what: str, written: Path | None = None) -> str:
    """Where a model comes from, as its name ends.

    ``demo run <start>`` inside a ``make demo`` folder, else ``what`` and the time ``written``
    was written (a run: its config, saved as the run starts).
    """
    for folder in path.parents:
        if DEMO_TIME.fullmatch(folder.name) and folder.parent.name == DEMO_ROOT.name:
            return f"demo run {datetime.strptime(folder.name, '%Y%m%d-%H%M%S'):%Y-%m-%d %H:%M}"
    if written is None:
        return what
    try:
        return f"{what} {datetime.fromtimestamp(written.stat().st_mtime):%Y-%m-%d %H:%M}"
    except OSError:
        return what.rstrip(",")


def find_models(root: Path) -> list[ModelEntry]:
    """Every run with a checkpoint and every export under ``root`` (evaluation-only logs are not)."""
    if not root.is_dir():
        return []
    entries = (entry_for(config.parent, root) for config in sorted(root.rglob(CONFIG_FILE)))
    return [entry for entry in entries if entry is not None]


def newest_demo_runs(root: Path = DEMO_ROOT) -> list[Path]:
    """The models of the newest ``make demo`` that finished training: run folders, then configs.

    A config (``configs/ldm.yaml``) is offered once its stage-2 weights exist.
    """
    if not root.is_dir():
        return []
    for demo in sorted((p for p in root.iterdir() if p.is_dir()), reverse=True):
        runs = sorted(
            {ckpt.parents[1] for ckpt in demo.glob("logs/*/version_*/checkpoints/*.ckpt")}
        )
        if runs and (demo / "stage2").is_dir():
            runs += sorted(demo.glob("configs/*.yaml"))
        if runs:
            return runs
    return []


SHIPPED_CONFIG = "tiny/sound2vision_gan_shipped"
"""The model served when there is no ``make demo`` run: every weight ships in ``a2i/assets``."""
SHIPPED_LABEL = "tiny GAN (shipped weights)"


def shipped_entry() -> ModelEntry:
    """The tiny GAN whose weights ship with a2i: something to draw with before any training."""
    config = Path(resolve_config(SHIPPED_CONFIG))
    return ModelEntry(SHIPPED_LABEL, config, "config", name=model_name(config, "shipped weights"))


def offered_models(runs: list[str], models_dir: str) -> tuple[list[ModelEntry], list[str]]:
    """``(entries, selected labels)``: the ``runs`` (or the demo's) then the folder's models.

    Without ``runs`` or a ``make demo`` run, the shipped tiny GAN is offered, so the page works
    right after installing.

    Raises:
        ConfigError: A run that is neither a training run nor an export.
    """
    root = Path(models_dir)
    chosen = []
    for run in runs:
        entry = entry_for(Path(run), root)
        if entry is None:
            raise ConfigError(
                f"--run '{run}' is neither a training run (config.yaml + checkpoints/*.ckpt) nor "
                "an exported model (config.yaml + model.safetensors)"
            )
        chosen.append(entry)
    if not runs:
        demo = (entry_for(run, root) for run in newest_demo_runs())
        chosen = [entry for entry in demo if entry is not None] or [shipped_entry()]
    known = {entry.path.resolve() for entry in chosen}
    found = [e for e in find_models(root) if e.path.resolve() not in known]
    return chosen + found, [e.label for e in chosen]


class ModelShelf:
    """The offered models by label, each loaded on first use and then kept.

    Args:
        entries: The models, in the order the page lists them.
        device: Where the models run.

    Attributes:
        names: The name each label is shown by, unique (two runs started in the same minute
            are told apart by their labels).
    """

    def __init__(self, entries: list[ModelEntry], device: str | torch.device = "cpu") -> None:
        if not entries:
            raise ConfigError("a2i serve has no model to offer")
        self.entries = {entry.label: entry for entry in entries}
        shared = Counter(entry.title for entry in entries)
        self.names = {
            e.label: e.title if shared[e.title] == 1 else f"{e.title} ({e.label})" for e in entries
        }
        self.device = torch.device(device)
        self._loaded: dict[str, AudioToImagePipeline] = {}
        self._lock = threading.Lock()

    @property
    def labels(self) -> list[str]:
        """Labels of every offered model, in order."""
        return list(self.entries)

    @property
    def choices(self) -> list[tuple[str, str]]:
        """``(name, label)`` of every offered model, in order: what a dropdown lists."""
        return [(self.names[label], label) for label in self.entries]

    def pipeline(self, label: str) -> AudioToImagePipeline:
        """The loaded pipeline of ``label`` (loaded now if it was not yet)."""
        if label not in self.entries:
            raise ConfigError(f"no model '{label}' (offered: {', '.join(self.entries)})")
        with self._lock:
            if label not in self._loaded:
                self._loaded[label] = self.entries[label].load().to(self.device)
            return self._loaded[label]


@dataclass(frozen=True)
class Controls:
    """What the page's widgets ask for (see :meth:`AudioToImagePipeline.__call__`)."""

    num_images: int = 4
    seed: int = 0
    crop: Crop = "start"
    gain_db: float = 0.0
    mix_with: str | None = None
    mix_gain_db: float = 0.0
    image: str | None = None
    image_weight: float = 0.5
    prompt: str | None = None
    guidance_scale: float | None = None
    num_inference_steps: int | None = None

    def request(self, pipeline: AudioToImagePipeline) -> GenerationRequest:
        """The request of the controls the model supports.

        The page hides the widgets of controls the model does not support; the values they kept
        from another model are not asked for (the pipeline would refuse them by name).
        """
        supports = pipeline.model.supports
        mixing = self.mix_with is not None and "mix" in supports
        return GenerationRequest.from_seed(
            self.seed,
            self.num_images,
            crop=self.crop,
            gain_db=self.gain_db if "gain" in supports else 0.0,
            mix_with=(self.mix_with,) if mixing else (),
            mix_gains_db=(self.mix_gain_db,) if mixing else (),
            image=self.image if "image_blend" in supports else None,
            image_weight=self.image_weight,
            prompt=(self.prompt or None) if "prompt" in supports else None,
            guidance_scale=self.guidance_scale if "guidance_scale" in supports else None,
            num_inference_steps=(
                self.num_inference_steps if "num_inference_steps" in supports else None
            ),
        )


@dataclass(frozen=True)
class Drawing:
    """One sound drawn by one model.

    Attributes:
        images: ``(S, 3, H, W)`` in ``[0, 1]``, one per seed.
        seeds: The seeds, in order.
        clip: The window the model heard (before gain and mixing), at its sample rate.
        sample_rate: Rate of ``clip``.
        duration: Seconds in the whole input.
        offset: Where ``clip`` starts in the input, in seconds.
        clip_seconds: What the model hears (shorter inputs are zero-padded to it).
        seconds: Time spent reading and drawing.
    """

    images: Tensor
    seeds: list[int]
    clip: Tensor
    sample_rate: int
    duration: float
    offset: float
    clip_seconds: float
    seconds: float

    def pil_images(self, side: int = DISPLAY_SIDE) -> list[Image.Image]:
        """The images enlarged to ``side`` pixels (nearest neighbour) for display."""
        return [
            Image.fromarray(to_uint8(image)).resize((side, side), Image.Resampling.NEAREST)
            for image in self.images
        ]

    def strip(self, side: int = DISPLAY_SIDE // 2) -> Image.Image:
        """All seeds side by side in one image (a row of the method comparison)."""
        row = image_grid(self.images, nrow=len(self.images), padding=1)
        scale = side / self.images.shape[-1]
        size = (round(row.shape[-1] * scale), round(row.shape[-2] * scale))
        return Image.fromarray(to_uint8(row)).resize(size, Image.Resampling.NEAREST)

    def summary(self) -> str:
        """What was heard and how long it took, in one line."""
        heard = f"{self.clip_seconds:g} s"
        if self.duration > self.clip_seconds:
            where = f"from {self.offset:.1f} s of a {format_duration(self.duration)} sound"
        elif self.duration < self.clip_seconds:
            where = f"the whole {self.duration:.2f} s sound, zero-padded"
        else:
            where = "the whole sound"
        drawn = f"{len(self.seeds)} images (seeds {self.seeds[0]}–{self.seeds[-1]})"
        if len(self.seeds) == 1:
            drawn = f"1 image (seed {self.seeds[0]})"
        return f"{drawn} in {self.seconds * 1000:.0f} ms; the model heard {heard}: {where}"


def draw(pipeline: AudioToImagePipeline, audio: str | Path, controls: Controls) -> Drawing:
    """Read the window of ``audio`` the model hears and draw one image per seed.

    Raises:
        A2IError: The file cannot be read (:class:`~a2i.errors.AudioDecodeError`), or a control
            is out of range (:class:`~a2i.errors.ConfigError`): the same error ``a2i predict``
            reports for that input.
    """
    start = time.perf_counter()
    request = pipeline.prepare_request(controls.request(pipeline))
    clip, duration, offset = pipeline.read(audio, controls.crop)
    images = pipeline.generate(clip[None], request)[0].cpu()
    return Drawing(
        images=images,
        seeds=list(request.seeds),
        clip=clip,
        sample_rate=pipeline.model.sample_rate,
        duration=duration,
        offset=offset,
        clip_seconds=pipeline.model.clip_seconds,
        seconds=time.perf_counter() - start,
    )


def warm_up(pipeline: AudioToImagePipeline) -> None:
    """Draw once from silence, so that the first request does not pay one-time costs."""
    silence = torch.zeros(pipeline.num_samples)
    pipeline.generate(silence[None], pipeline.prepare_request(GenerationRequest()))
    spectrogram_image(silence, pipeline.model.sample_rate)


def describe_model(pipeline: AudioToImagePipeline, source: str | Path) -> str:
    """One Markdown line: method, paper, what it hears and draws, its controls, its files."""
    model, card = pipeline.model, pipeline.card
    name = card.method.rsplit(".", 1)[-1] or type(model).__name__
    paper = f" — {card.paper.rstrip('.')}" if card.paper else ""
    controls = ", ".join(sorted(model.supports)) or "none"
    return (
        f"**{name}**{paper}. Hears {model.clip_seconds:g} s at {model.sample_rate} Hz, draws "
        f"{model.image_size}×{model.image_size} px. Controls: {controls}. From `{source}`."
    )


def format_duration(seconds: float) -> str:
    """``7.3 s``, ``2:05`` or ``2:00:00``."""
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


SPECTROGRAM_RAMP = np.array(
    [[0, 0, 4], [80, 18, 123], [183, 55, 121], [252, 137, 97], [252, 253, 191]], dtype=np.float32
)
"""Colour stops (dark → bright) of the spectrogram image, sampled from matplotlib's "magma";
five stops interpolated are enough to read it, and spare a plotting dependency."""
DYNAMIC_RANGE_DB = 80.0


@functools.lru_cache(maxsize=4)
def _log_mel(sample_rate: int) -> LogMel:
    n_fft = 1 << math.ceil(math.log2(sample_rate * 0.04))  # ≥ 40 ms windows
    return LogMel(sample_rate, n_fft=n_fft, hop_length=sample_rate // 100, n_mels=64)


def spectrogram_image(
    clip: Tensor, sample_rate: int, width: int = 512, height: int = 192
) -> np.ndarray:
    """``(height, width, 3)`` uint8 log-mel spectrogram of ``clip``, low frequencies at the bottom.

    Levels span the top :data:`DYNAMIC_RANGE_DB` of the clip (silence is uniformly dark).
    """
    with torch.no_grad():
        log_power = _log_mel(sample_rate)(clip.float().cpu()[None])[0, 0]  # (frames, mels)
    decibels = log_power * (10.0 / math.log(10.0))
    level = ((decibels - decibels.max()) / DYNAMIC_RANGE_DB + 1.0).clamp(0.0, 1.0)
    level = level.T.flip(0).numpy()  # (mels, frames), low frequencies last
    stops = np.linspace(0.0, 1.0, len(SPECTROGRAM_RAMP))
    rgb = np.stack([np.interp(level, stops, SPECTROGRAM_RAMP[:, c]) for c in range(3)], axis=-1)
    image = Image.fromarray(rgb.round().astype(np.uint8))
    return np.asarray(image.resize((width, height), Image.Resampling.BILINEAR))
