"""What every a2i method shares: hyper-parameter capture, frozen-part handling, the predict contract.

A method is a ``LightningModule`` composed of injected components (``AudioEncoder``,
``ImageEncoder``, ``ImageGenerator``). Frozen components (published backbones, stage-1 models) are
rebuilt from their config on load, so by default they are left out of checkpoints: a Sound2Vision
checkpoint holds the audio encoder, not a copy of the generator.

Methods that draw images from sound also implement :class:`~a2i.interfaces.AudioToImageModel`;
inference goes through :class:`~a2i.pipelines.AudioToImagePipeline` (``a2i predict``, the
evaluation harness, Python), so ``predict_step`` is only Lightning's default-controls view of it:
a dict with ``key`` (B input names), ``images`` ``(B, S, 3, H, W)``, ``seeds`` and ``error``.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.core.mixins.hparams_mixin import _given_hyperparameters
from torch import Tensor, nn

from a2i.errors import ConfigError
from a2i.interfaces import AUDIO, KEY, AudioToImageModel, FreezableMixin
from a2i.pipelines import AudioToImagePipeline
from a2i.pipelines.loading import frozen_prefixes, plain_config
from a2i.pretrained import export_parts


class A2IMethod(L.LightningModule):
    """Base class of every method.

    Args:
        save_frozen: Keep frozen components' weights in checkpoints (off: they are rebuilt from
            their ``pretrained`` path or preset when the checkpoint is loaded).
    """

    monitor = "val/loss"
    mode = "min"

    def __init__(self, save_frozen: bool = False) -> None:
        super().__init__()
        self.save_frozen = save_frozen
        # Frozen weights may be absent from the checkpoint; on_load_checkpoint checks the rest.
        self.strict_loading = False

    def save_config(self, init_locals: dict[str, Any]) -> None:
        """Record the constructor arguments as hyper-parameters.

        Under ``a2i`` (LightningCLI) the parsed config — components as ``class_path/init_args`` —
        is what gets stored, so ``load_from_checkpoint`` can rebuild everything. Called from
        Python with component objects, those objects are left out (they are weights, not config).
        """
        built_by_cli = _given_hyperparameters.get() is not None
        ignore = (
            [] if built_by_cli else [k for k, v in init_locals.items() if isinstance(v, nn.Module)]
        )
        caller = inspect.currentframe().f_back  # the subclass __init__ whose args are recorded
        self.save_hyperparameters(ignore=ignore, frame=caller)

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

    def parts_without_weights(self) -> list[str]:
        """Trainable components whose config names no weights to load (``*pretrained`` unset).

        ``a2i predict`` without a checkpoint is refused while any is left: its images would come
        from random weights. A part counts as given when its component config has a
        ``pretrained``-like argument set (e.g. the released Sound2Scene audio encoder), or the
        method has ``<part>_pretrained`` set (e.g. AudioToken's ``embedder_pretrained``).
        """
        hparams = plain_config(dict(self.hparams))
        missing = []
        for name, child in self.named_children():
            if isinstance(child, FreezableMixin) and child.frozen:
                continue
            if not any(p.requires_grad for p in child.parameters()):
                continue
            config = hparams.get(name)
            init_args = (config.get("init_args") or {}) if isinstance(config, dict) else {}
            given = any(k.endswith("pretrained") and v for k, v in init_args.items())
            if not (given or hparams.get(f"{name}_pretrained")):
                missing.append(name)
        return missing

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

    def predict_step(self, batch: dict[str, Any], batch_idx: int) -> dict[str, Any]:
        """Images of the batch's clips with default controls (one seed, 0).

        ``a2i predict`` and :class:`~a2i.pipelines.AudioToImagePipeline` add the controls.
        """
        pipeline = AudioToImagePipeline(self)
        request = pipeline.prepare_request()
        errors = batch.get("error", [""] * len(batch[KEY]))
        images = pipeline.generate(batch[AUDIO], request)
        return {"key": batch[KEY], "images": images, "seeds": request.seeds, "error": errors}

    def log_images(self, batch: dict[str, Any]) -> dict[str, Tensor]:
        """Named ``(N, 3, H, W)`` image stacks in ``[0, 1]`` for TensorBoard grids (ImageLogger)."""
        return {}

    # --- Export: the one place a method's trained parts are written as weights files -------------
    # A method lists them in ``exported_parts``; its ``overwrite_export`` and ``export_dtype``
    # arguments (when it has them) say whether existing files may be replaced and in which type.

    def exported_parts(self) -> dict[str | Path, nn.Module | dict[str, Tensor]]:
        """Weights to write when ``fit`` ends: ``.safetensors`` path → module or state dict.

        Stage-1 trainers return what stage 2 loads through ``pretrained``; none by default.
        """
        return {}

    def on_fit_end(self) -> None:
        """Write :meth:`exported_parts` once, from rank 0 (:func:`~a2i.pretrained.export_parts`)."""
        if self.global_rank == 0:
            export_parts(
                self.exported_parts(),
                overwrite=self.hparams.get("overwrite_export", False),
                dtype=self.hparams.get("export_dtype", "float32"),
            )
