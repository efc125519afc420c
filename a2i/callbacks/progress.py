"""What ``a2i fit`` shows while training: a step-counting progress bar and a precise eval check.

Lightning's bar counts epochs; a2i's configs stop at ``max_steps`` (``max_epochs`` unset), where
it reads "Epoch 1/-2" with a per-epoch count. Lightning also warns about every module found in
eval mode when training starts, which in a2i are the frozen parts, kept in eval mode on purpose
(:class:`~a2i.interfaces.FreezableMixin`); a2i drops that warning (:mod:`a2i.commands.console`)
and :class:`UnfrozenEvalModeCheck` names only the modules in eval mode outside a frozen part.
"""

from __future__ import annotations

from typing import Any

import lightning as L
from lightning.pytorch.callbacks import RichProgressBar
from lightning.pytorch.utilities import rank_zero_warn

from a2i.interfaces import FreezableMixin


class StepProgressBar(RichProgressBar):
    """Lightning's rich bar, over the whole run in optimizer steps when ``max_steps`` ends it."""

    def _counts_steps(self) -> bool:
        trainer = self.trainer
        return (
            trainer.max_epochs in (None, -1)
            and trainer.max_steps is not None
            and trainer.max_steps > 0
        )

    @property
    def total_train_batches(self) -> int | float:
        """``max_steps`` for a step-limited run (one bar across epochs), else Lightning's count."""
        return self.trainer.max_steps if self._counts_steps() else super().total_train_batches

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Start the bar once for a step-limited run; per epoch otherwise."""
        if self._counts_steps() and self.train_progress_bar_id is not None:
            return
        super().on_train_epoch_start(trainer, pl_module)

    def on_train_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
    ) -> None:
        """Advance to the trainer's step count (the number ``max_steps`` is compared with)."""
        if not self._counts_steps():
            super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)
            return
        if not self.is_disabled and self.train_progress_bar_id is None:
            self._initialize_train_progress_bar_id()  # resumed mid-epoch
        self._update(self.train_progress_bar_id, trainer.global_step)
        self._update_metrics(trainer, pl_module)
        self.refresh()

    def get_metrics(
        self, trainer: L.Trainer, pl_module: L.LightningModule
    ) -> dict[str, int | str | float | dict[str, float]]:
        """The logged metrics, without the logger's version (``v_num: 0.000`` read as a result)."""
        metrics = super().get_metrics(trainer, pl_module)
        metrics.pop("v_num", None)
        return metrics

    def _get_train_description(self, current_epoch: int) -> str:
        if not self._counts_steps():
            return super()._get_train_description(current_epoch)
        return f"{'Step':{len(self.validation_description)}}"


class UnfrozenEvalModeCheck(L.Callback):
    """Warn, when training starts, about modules in eval mode that no frozen part explains."""

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Name up to five such modules (dropout or batch norm there would not train as meant)."""
        frozen = [
            f"{name}."
            for name, module in pl_module.named_modules()
            if isinstance(module, FreezableMixin) and module.frozen
        ]
        unexpected = [
            name or type(pl_module).__name__
            for name, module in pl_module.named_modules()
            if not module.training and not f"{name}.".startswith(tuple(frozen))
        ]
        if unexpected:
            shown = ", ".join(unexpected[:5]) + (" …" if len(unexpected) > 5 else "")
            rank_zero_warn(
                f"{len(unexpected)} module(s) outside the frozen parts are in eval mode at the "
                f"start of training ({shown}): their dropout/batch norm will not train"
            )
