"""What every a2i method shares: hyper-parameter capture, frozen-part handling, the predict contract.

A method is a ``LightningModule`` composed of injected components (``AudioEncoder``,
``ImageEncoder``, ``ImageGenerator``). Frozen components (published backbones, stage-1 models) are
rebuilt from their config on load, so by default they are left out of checkpoints: a Sound2Vision
checkpoint holds the audio encoder, not a copy of the generator.

Prediction contract: ``predict_step`` returns a dict with ``key`` (list of B input names),
``images`` ``(B, S, 3, H, W)`` in ``[0, 1]`` (S seeds per input), ``seeds`` (list of S ints) and
``error`` (list of B strings, empty when the input was fine). :class:`~a2i.callbacks.ImageFolderWriter`
turns it into files.
"""

from __future__ import annotations

import inspect
from typing import Any

import lightning as L
from lightning.pytorch.core.mixins.hparams_mixin import _given_hyperparameters
from torch import Tensor, nn

from a2i.controls import Controls
from a2i.errors import ConfigError
from a2i.interfaces import FreezableMixin


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
        self.controls = Controls()

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

    def frozen_prefixes(self) -> list[str]:
        """State-dict prefixes of frozen components (top-level children that are frozen)."""
        return [
            f"{name}."
            for name, child in self.named_children()
            if isinstance(child, FreezableMixin) and child.frozen
        ]

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Drop frozen components from the checkpoint unless ``save_frozen``."""
        if self.save_frozen:
            return
        prefixes = tuple(self.frozen_prefixes())
        state = checkpoint["state_dict"]
        for key in [k for k in state if k.startswith(prefixes)]:
            del state[key]

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Refuse a checkpoint that lacks trainable weights (only frozen ones may be absent)."""
        prefixes = tuple(self.frozen_prefixes())
        stored = checkpoint.get("state_dict", {})
        missing = [k for k in self.state_dict() if k not in stored and not k.startswith(prefixes)]
        if missing:
            raise ConfigError(
                f"checkpoint does not match this model: {len(missing)} trainable weights missing "
                f"(first: {missing[:3]}); was it written by a different method or config?"
            )

    def log_images(self, batch: dict[str, Any]) -> dict[str, Tensor]:
        """Named ``(N, 3, H, W)`` image stacks in ``[0, 1]`` for TensorBoard grids (ImageLogger)."""
        return {}
