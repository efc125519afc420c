"""The template every a2i method fills in, so that a method file holds only its math.

A method is a ``LightningModule`` composed of injected components (an ``AudioEncoder``, an
``ImageEncoder``, an ``ImageGenerator``, …). What the base classes own, once for all methods:

- **Hyper-parameters** (:meth:`A2IMethod.save_config`): the constructor arguments, components as
  their ``class_path``/``init_args`` config, so a run can be rebuilt and compared.
- **Frozen parts**: published backbones and stage-1 models are rebuilt from their config on load,
  so checkpoints leave them out unless ``save_frozen``.
- **One training path**: a method writes :meth:`A2IMethod.step` (``batch, stage → losses``);
  ``training_step``/``validation_step``/``test_step`` call it and log every entry as
  ``<stage>/<name>`` (``loss`` on the progress bar, averaged across processes outside training).
- **The optimiser** over the trainable parameters (``optimizer_class``, ``lr``, ``weight_decay``)
  and its learning-rate schedule (``lr_schedule``: constant, as the papers train, or cosine).
- **The trained parts and their export**: :meth:`A2IMethod.trained_parts` (by default every
  component that is not frozen and has trainable weights, plus the method's own learned tensors
  as ``state``) are written by ``export_dir`` to ``<export_dir>/<part>.safetensors`` when ``fit``
  ends, and read back by ``pretrained`` (the same folder).
- For methods that draw from sound, :class:`AudioToImageMethod` adds the component delegation
  (sample rate, clip length, image size), the supported controls, the per-seed sampling and a
  default ``log_images``.

What a checkpoint (and ``save_pretrained``) keeps: every weight and buffer of the method except
those of frozen components, i.e. the trained parts and training state whose shape the config
fixes (MoCo queues, a running feature norm). What an export keeps: the trained parts only.

Hooks and the last checkpoint: Lightning writes ``last.ckpt`` in ``on_train_end`` of its
checkpoint callback, *before* the module's own ``on_train_end`` and ``on_fit_end`` run, so state
built there would be missing from every checkpoint. Build such state in ``training_step``,
``on_train_epoch_end`` or ``on_validation_end`` (which run before the checkpoint is written); a
method that overrides ``on_train_end`` is refused when its class is defined.

Writing a method (see :mod:`a2i.methods.nearest_image`, the documented example): subclass
:class:`AudioToImageMethod`, take your components and paper hyper-parameters as typed arguments
and forward ``**options`` (:class:`A2IMethod`'s) to ``super().__init__``, call
``self.save_config(locals())``, then write :meth:`A2IMethod.step` and
:meth:`AudioToImageMethod.draw`.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, ClassVar, Literal

import lightning as L
import torch
from safetensors.torch import load_file
from torch import Tensor, nn

from a2i.errors import ConfigError
from a2i.interfaces import (
    AUDIO,
    FEATURES,
    IMAGE,
    KEY,
    WAVEFORM_CONTROLS,
    AudioToImageModel,
    Control,
    FreezableMixin,
    GenerationRequest,
    per_row_generators,
)
from a2i.pipelines import AudioToImagePipeline
from a2i.pipelines.loading import frozen_prefixes, load_trainable_weights, plain_config
from a2i.pretrained import ExportDtype, export_parts, files_in

CACHED_IMAGE_FEATURES = FEATURES + "image"
"""Batch key of a frozen image encoder's embeddings cached in shards (``ImageFeature``)."""

STATE_PART = "state"
"""Name of the trained part holding the method's own learned tensors (not a component's)."""

LRSchedule = Literal["constant", "cosine"]
"""Learning-rate schedules :meth:`A2IMethod.configure_optimizers` builds."""

Logged = Tensor | tuple[Tensor, int]
"""A value :meth:`A2IMethod.step` returns: a scalar, or a scalar and the rows it averages."""


class A2IMethod(L.LightningModule):
    """Base class of every trainer (the methods and the stage-1 pre-trainings).

    Args:
        save_frozen: Keep frozen components' weights in checkpoints (off: they are rebuilt from
            their ``pretrained`` path or preset when the checkpoint is loaded).
        export_dir: Write the trained parts (:meth:`trained_parts`) to
            ``<export_dir>/<part>.safetensors`` when ``fit`` ends; a component's ``pretrained``
            argument, or this method's ``pretrained``, reads them back.
        overwrite_export: Replace existing exported files.
        export_dtype: Floating-point type of the exported weights.
        pretrained: A folder written by ``export_dir``: every trained part is loaded from it.
        lr_schedule: ``constant`` (every method's paper trains at a fixed rate), or ``cosine``:
            a linear warm-up over ``warmup_steps``, then a half cosine from ``lr`` to zero by the
            end of the run (Lightning's ``estimated_stepping_batches``), so a short run ends at a
            converged point rather than wherever its last few steps moved it.
        warmup_steps: Linear warm-up steps of the ``cosine`` schedule.
    """

    optimizer_class: ClassVar[type[torch.optim.Optimizer]] = torch.optim.AdamW
    """The optimiser :meth:`configure_optimizers` builds over the trainable parameters."""

    def __init__(
        self,
        save_frozen: bool = False,
        export_dir: str | None = None,
        overwrite_export: bool = False,
        export_dtype: ExportDtype = "float32",
        pretrained: str | None = None,
        lr_schedule: LRSchedule = "constant",
        warmup_steps: int = 0,
    ) -> None:
        super().__init__()
        if warmup_steps < 0:
            raise ConfigError(f"warmup_steps must be >= 0 (got {warmup_steps})")
        self.lr_schedule = lr_schedule
        self.warmup_steps = warmup_steps
        self.save_frozen = save_frozen
        self.export_dir = export_dir
        self.overwrite_export = overwrite_export
        self.export_dtype = export_dtype
        self.pretrained = pretrained
        # Frozen weights may be absent from the checkpoint; on_load_checkpoint checks the rest.
        self.strict_loading = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """Refuse ``on_train_end``; load ``pretrained`` once the outermost constructor is done.

        Lightning's last checkpoint is written before ``on_train_end`` runs (module docstring).
        """
        super().__init_subclass__(**kwargs)
        if "on_train_end" in vars(cls):
            raise TypeError(
                f"{cls.__name__}.on_train_end runs after Lightning wrote last.ckpt, so what it "
                "builds is lost; build it in training_step, on_train_epoch_end or "
                "on_validation_end (see a2i.methods.base)"
            )
        if "__init__" in vars(cls):
            cls.__init__ = _then_load_pretrained(cls.__init__)

    def save_config(self, init_locals: dict[str, Any]) -> None:
        """Record the constructor arguments as hyper-parameters, components left out.

        Components are built objects (weights, not config); whoever builds the method from a
        config — ``a2i``'s CLI, :func:`~a2i.pipelines.loading.build_method` — records that config
        over them, components as ``class_path/init_args``
        (:func:`~a2i.pipelines.loading.record_config`), so a run can be rebuilt.
        """
        components = [k for k, v in init_locals.items() if isinstance(v, nn.Module)]
        caller = inspect.currentframe().f_back  # the subclass __init__ whose args are recorded
        self.save_hyperparameters(ignore=components, frame=caller)

    # --- training ------------------------------------------------------------------------------

    def step(self, batch: dict[str, Any], stage: str) -> dict[str, Logged]:
        """Losses (key ``loss``, the value minimised) and measures of one batch at ``stage``.

        ``stage`` is ``train``, ``val`` or ``test``. Every entry is logged as ``<stage>/<name>``;
        a ``(value, rows)`` pair is averaged over ``rows`` instead of the batch size.
        """
        raise NotImplementedError(f"{type(self).__name__} defines no step()")

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> Tensor:
        """:meth:`step` on a training batch; returns its ``loss``."""
        return self.log_step(self.step(batch, "train"), "train", batch)["loss"]

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        """:meth:`step` on held-out data (no parameter or queue changes)."""
        self.log_step(self.step(batch, "val"), "val", batch)

    def test_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        """:meth:`step` on the test split (the evaluation harness adds generation metrics)."""
        self.log_step(self.step(batch, "test"), "test", batch)

    def log_step(
        self, values: dict[str, Logged], stage: str, batch: dict[str, Any]
    ) -> dict[str, Tensor]:
        """Log ``values`` as ``<stage>/<name>`` and return them as plain tensors."""
        rows = batch_rows(batch)
        plain = {}
        for name, value in values.items():
            tensor, size = value if isinstance(value, tuple) else (value, rows)
            plain[name] = tensor
            self.log(
                f"{stage}/{name}",
                tensor,
                prog_bar=name == "loss",
                batch_size=size,
                sync_dist=stage != "train",
            )
        return plain

    def trainable_parameters(self) -> list[nn.Parameter]:
        """Parameters that receive gradients (frozen components and momentum copies do not)."""
        return [p for p in self.parameters() if p.requires_grad]

    def optimizer_options(self) -> dict[str, Any]:
        """Keyword arguments of :attr:`optimizer_class`: ``lr`` and ``weight_decay`` if given."""
        return {k: self.hparams[k] for k in ("lr", "weight_decay") if k in self.hparams}

    def configure_optimizers(self) -> torch.optim.Optimizer | dict[str, Any]:
        """:attr:`optimizer_class` over :meth:`trainable_parameters`, with its ``lr_schedule``."""
        optimizer = self.optimizer_class(self.trainable_parameters(), **self.optimizer_options())
        if self.lr_schedule == "constant":
            return optimizer
        total = int(self.trainer.estimated_stepping_batches)
        warmup = min(self.warmup_steps, max(0, total - 1))
        schedules = torch.optim.lr_scheduler
        schedule = schedules.CosineAnnealingLR(optimizer, T_max=max(1, total - warmup))
        if warmup:
            start = schedules.LinearLR(optimizer, start_factor=1 / warmup, total_iters=warmup)
            schedule = schedules.SequentialLR(optimizer, [start, schedule], milestones=[warmup])
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}

    # --- checkpoints ---------------------------------------------------------------------------

    def frozen_prefixes(self) -> tuple[str, ...]:
        """State-dict prefixes of frozen components (top-level children that are frozen)."""
        return frozen_prefixes(self)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Drop frozen components from the checkpoint unless ``save_frozen``."""
        if self.save_frozen:
            return
        prefixes = self.frozen_prefixes()
        state = checkpoint["state_dict"]
        for key in [k for k in state if k.startswith(prefixes)]:
            del state[key]

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Refuse a checkpoint that lacks trainable weights (only frozen ones may be absent)."""
        prefixes = self.frozen_prefixes()
        stored = checkpoint.get("state_dict", {})
        missing = [k for k in self.state_dict() if k not in stored and not k.startswith(prefixes)]
        if missing:
            raise ConfigError(
                f"checkpoint does not match this model: {len(missing)} trainable weights missing "
                f"(first: {missing[:3]}); was it written by a different method or config?"
            )

    # --- trained parts: what training changes, exported and read back --------------------------

    learned_state: ClassVar[tuple[str, ...]] = ()
    """The method's own tensors (not a component's) that training sets and inference reads."""

    def trained_parts(self) -> dict[str, nn.Module | dict[str, Tensor]]:
        """What training changes, by part name (its export file is ``<name>.safetensors``).

        Every top-level component that is not frozen and has trainable weights, and the
        method's :attr:`learned_state` as the part ``state``.
        """
        parts: dict[str, nn.Module | dict[str, Tensor]] = {
            name: child
            for name, child in self.named_children()
            if not (isinstance(child, FreezableMixin) and child.frozen)
            and any(p.requires_grad for p in child.parameters())
        }
        if self.learned_state:
            parts[STATE_PART] = {name: getattr(self, name) for name in self.learned_state}
        return parts

    def on_fit_end(self) -> None:
        """Write :meth:`trained_parts` to ``export_dir`` once, from rank 0."""
        if self.global_rank == 0:
            export_parts(
                files_in(self.export_dir, self.trained_parts()),
                overwrite=self.overwrite_export,
                dtype=self.export_dtype,
            )

    def load_trained_parts(self, directory: str | Path) -> None:
        """Load every trained part from ``<directory>/<part>.safetensors`` (an ``export_dir``)."""
        directory = Path(directory)
        missing = [
            f"{name}.safetensors"
            for name in self.trained_parts()
            if not (directory / f"{name}.safetensors").is_file()
        ]
        if missing:
            raise ConfigError(
                f"{type(self).__name__}.pretrained '{directory}' lacks {', '.join(missing)}: "
                "give the export_dir of a run of this method and config"
            )
        state = {}
        for name in self.trained_parts():
            weights = load_file(str(directory / f"{name}.safetensors"))
            prefix = "" if name == STATE_PART else f"{name}."
            state.update({prefix + key: value for key, value in weights.items()})
        load_trainable_weights(self, state, f"{type(self).__name__}.pretrained '{directory}'")

    def untrained_parts(self) -> list[str]:
        """Trained parts that would keep random (or initial) values without a checkpoint.

        ``a2i predict`` without a checkpoint is refused while any is left. Nothing is left when
        the method's ``pretrained`` folder is set. Otherwise a component counts as given when its
        config has a ``pretrained``-like argument set (e.g. the released Sound2Scene audio
        encoder), or the method has ``<part>_pretrained`` set (AudioToken's
        ``embedder_pretrained``); :attr:`learned_state` is never given by a component.
        """
        if self.pretrained is not None:
            return []
        hparams = plain_config(dict(self.hparams))
        missing = []
        for name in self.trained_parts():
            config = hparams.get(name)
            init_args = (config.get("init_args") or {}) if isinstance(config, dict) else {}
            given = any(k.endswith("pretrained") and v for k, v in init_args.items())
            if not (given or hparams.get(f"{name}_pretrained")):
                missing.append(name)
        return missing

    def cached_image_features(self, batch: dict[str, Any], embed_dim: int) -> Tensor | None:
        """The batch's cached image embeddings in this module's dtype; None when it has none.

        They save the frozen image encoder's forward pass at every step, so they must come from
        the encoder this config names: ``embed_dim`` is its width.

        Raises:
            ConfigError: The cache has another width than ``embed_dim``.
        """
        cached = batch.get(CACHED_IMAGE_FEATURES)
        if cached is None:
            return None
        if cached.shape[-1] != embed_dim:
            raise ConfigError(
                f"the data's cached '{CACHED_IMAGE_FEATURES}' are {cached.shape[-1]}-d but "
                f"model.image_encoder gives {embed_dim}-d; prepare the data "
                "with the same image encoder (data.features) or drop the cached feature"
            )
        return cached.to(self.dtype if self.dtype.is_floating_point else cached.dtype)

    def check_datamodule(self, datamodule: L.LightningDataModule | None) -> None:
        """Refuse a datamodule whose clips differ from what the audio encoder expects."""
        if not isinstance(self, AudioToImageModel) or datamodule is None:
            return
        expected_values = {
            "sample_rate": self.sample_rate,
            "clip_seconds": self.training_clip_seconds,
        }
        for name, expected in expected_values.items():
            delivered = getattr(datamodule, name, None)
            if delivered is not None and delivered != expected:
                raise ConfigError(
                    f"data.init_args.{name} is {delivered} but the model's audio encoder expects "
                    f"{expected}; set data.init_args.{name}: {expected} (or change the encoder)"
                )

    def log_images(self, batch: dict[str, Any]) -> dict[str, Tensor]:
        """Named ``(N, 3, H, W)`` image stacks in ``[0, 1]`` for TensorBoard grids (ImageLogger)."""
        return {}


def _then_load_pretrained(init: Callable[..., None]) -> Callable[..., None]:
    """``init``, then :meth:`A2IMethod.load_trained_parts` of ``pretrained``.

    Only once, when the outermost constructor of the instance returns (subclass constructors
    call their parents').
    """

    @functools.wraps(init)
    def constructed(self: A2IMethod, *args: Any, **kwargs: Any) -> None:
        depth = self.__dict__.get("_constructors_running", 0)
        self.__dict__["_constructors_running"] = depth + 1
        try:
            init(self, *args, **kwargs)
        finally:
            self.__dict__["_constructors_running"] = depth
        if depth == 0 and self.pretrained is not None:
            self.load_trained_parts(self.pretrained)

    return constructed


def batch_rows(batch: dict[str, Any]) -> int:
    """Rows of a batch (its keys, or its audio or images when it has no keys)."""
    for name in (KEY, AUDIO, IMAGE):
        if name in batch:
            return len(batch[name])
    raise ValueError(f"a batch needs '{KEY}', '{AUDIO}' or '{IMAGE}' (got {sorted(batch)})")


class AudioToImageMethod(A2IMethod, AudioToImageModel):
    """The template of a method that draws images from sound.

    Delegates the audio side to ``self.audio_encoder`` and the image side to ``self.generator``
    (override the properties when a method differs), supports the waveform controls, its own
    :attr:`controls` and the generator's sampling controls, and offers :meth:`for_each_seed` and
    :meth:`generate` so every method draws one image per (row, seed) the same way.
    """

    controls: ClassVar[frozenset[Control]] = frozenset()
    """Controls the method adds to the waveform ones (``image_blend``, ``prompt``)."""

    @property
    def can_draw(self) -> bool:
        """Whether the method is configured to draw images (WavBriVL without a generator is not)."""
        return True

    @property
    def supports(self) -> frozenset[Control]:
        """Gain and mixing, :attr:`controls` and the generator's sampling controls."""
        if not self.can_draw:
            return frozenset()
        generator = getattr(self, "generator", None)
        sampling = generator.sampling_controls if generator is not None else frozenset()
        return WAVEFORM_CONTROLS | self.controls | sampling

    @property
    def sample_rate(self) -> int:
        """Sample rate the audio encoder expects."""
        return self.audio_encoder.sample_rate

    @property
    def clip_seconds(self) -> float:
        """Seconds of audio the audio encoder hears."""
        return self.audio_encoder.clip_seconds

    @property
    def image_size(self) -> int:
        """Side of the generator's images."""
        return self.generator.image_size

    def for_each_seed(self, seeds: Sequence[int], draw: Callable[[int], Tensor]) -> Tensor:
        """``(B, S, 3, H, W)``: ``draw(seed)`` (``(B, 3, H, W)``) for every seed, stacked."""
        return torch.stack([draw(seed) for seed in seeds], dim=1)

    def generate(self, condition: Any, seeds: Sequence[int], **sampling: Any) -> Tensor:
        """One image per seed for every condition row, each row with its own noise.

        ``condition`` is what ``self.generator.generate`` reads (a tensor, a
        :class:`~a2i.interfaces.Condition`, or a list of them to compose); ``sampling`` its
        keyword arguments, where None means the generator's default.
        """
        sampling = {k: v for k, v in sampling.items() if v is not None}
        rows = condition[0] if isinstance(condition, list) else condition
        size, device = len(rows), _device_of(rows)
        return self.for_each_seed(
            seeds,
            lambda seed: self.generator.generate(
                condition, per_row_generators(seed, size, device), **sampling
            ),
        )

    @torch.no_grad()
    def generate_from_audio(self, waveform: Tensor, request: GenerationRequest) -> Tensor:
        """Images ``(B, S, 3, H, W)``: the controls the method does not support are refused first.

        Every caller (the pipeline, the harness, Python) goes through this check; the method's
        :meth:`draw` then only reads the controls it supports.
        """
        self.check_controls(request)
        return self.draw(waveform, request)

    def draw(self, waveform: Tensor, request: GenerationRequest) -> Tensor:
        """How the method draws: one image per (row, seed) of ``request.seeds``, ``(B, S, 3, H, W)``.

        ``request.image`` is a ``(1 or B, 3, H, W)`` tensor here (the pipeline reads files).
        """
        raise NotImplementedError(f"{type(self).__name__} defines no draw()")

    def log_images(self, batch: dict[str, Any]) -> dict[str, Tensor]:
        """The batch's frames and the images drawn from their audio (seed 0), when it can draw."""
        if not self.can_draw or IMAGE not in batch or AUDIO not in batch:
            return {}
        audio = batch[AUDIO][:8]
        return {
            "frame": batch[IMAGE][:8],
            "from_audio": self.generate_from_audio(audio, GenerationRequest())[:, 0],
        }

    def predict_step(self, batch: dict[str, Any], batch_idx: int) -> dict[str, Any]:
        """Images of the batch's clips with default controls (one seed, 0).

        ``a2i predict`` and :class:`~a2i.pipelines.AudioToImagePipeline` add the controls.
        """
        pipeline = AudioToImagePipeline(self)
        request = pipeline.prepare_request(GenerationRequest())
        errors = batch.get("error", [""] * len(batch[KEY]))
        images = pipeline.generate(batch[AUDIO], request)
        return {"key": batch[KEY], "images": images, "seeds": list(request.seeds), "error": errors}


def _device_of(rows: Any) -> torch.device:
    tokens = getattr(rows, "tokens", rows)  # a Condition's tokens, or the tensor itself
    return tokens.device
