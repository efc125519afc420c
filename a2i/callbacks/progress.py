"""What ``a2i fit`` shows while training: a step-counting progress bar and a precise eval check.

Lightning's bar counts epochs; a2i's configs stop at ``max_steps`` (``max_epochs`` unset), where
it reads "Epoch 1/-2" with a per-epoch count. Written to a file or a pipe a bar shows nothing
until the run ends: :class:`PlainProgressBar` prints lines there instead. Lightning also warns about every module found in
eval mode when training starts, which in a2i are the frozen parts, kept in eval mode on purpose
(:class:`~a2i.interfaces.FreezableMixin`); a2i drops that warning (:mod:`a2i.commands.console`)
and :class:`UnfrozenEvalModeCheck` names only the modules in eval mode outside a frozen part.
"""

from __future__ import annotations

from typing import Any

import lightning as L
from lightning.pytorch.callbacks import ProgressBar, RichProgressBar
from lightning.pytorch.utilities import rank_zero_warn

from a2i.interfaces import FreezableMixin
from a2i.pipelines.progress import EVERY_PERCENT, EVERY_SECONDS, ProgressLines


def counts_steps(trainer: L.Trainer) -> bool:
    """Whether ``max_steps`` alone ends the run (a2i's configs): progress is then in steps."""
    return (
        trainer.max_epochs in (None, -1) and trainer.max_steps is not None and trainer.max_steps > 0
    )


def ends_after_this_epoch(trainer: L.Trainer) -> bool:
    """Whether the fit loop stops once the current training epoch ends (its limit is reached)."""
    if trainer.max_steps is not None and 0 < trainer.max_steps <= trainer.global_step:
        return True
    max_epochs = trainer.max_epochs
    return max_epochs not in (None, -1) and trainer.current_epoch + 1 >= max_epochs


class StepProgressBar(RichProgressBar):
    """Lightning's rich bar, over the whole run in optimizer steps when ``max_steps`` ends it.

    The bar stops when the last epoch ends, before Lightning says why the run stopped: a line
    logged under a live bar was wiped by its last redraw, which drew the final bar twice. Only
    Lightning's public hooks and attributes and rich's own ``Progress`` are used, so a Lightning
    release that renames its private helpers does not break the bar.
    """

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Start the bar once for a step-limited run; per epoch otherwise."""
        if counts_steps(trainer) and self.train_progress_bar_id is not None:
            return
        super().on_train_epoch_start(trainer, pl_module)
        self.show_steps(trainer)

    @property
    def total_train_batches(self) -> int | float:
        """``max_steps`` for a step-limited run (one bar across epochs), else Lightning's count."""
        if counts_steps(self.trainer):
            return self.trainer.max_steps
        return super().total_train_batches

    def on_train_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
    ) -> None:
        """Advance to the trainer's step count (the number ``max_steps`` is compared with)."""
        super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)
        self.show_steps(trainer)

    def show_steps(self, trainer: L.Trainer) -> None:
        """In a step-limited run, label the bar "Step" and set it to the trainer's step count.

        Lightning labels it "Epoch N" and counts the epoch's batches (also when it adds the bar
        in a run resumed mid-epoch).
        """
        if not counts_steps(trainer) or self.progress is None or self.train_progress_bar_id is None:
            return
        label = f"{'Step':{len(self.validation_description)}}"
        style = self.theme.description
        self.progress.update(
            self.train_progress_bar_id,
            completed=trainer.global_step,
            description=f"[{style}]{label}" if style else label,
        )
        self.refresh()

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Show the epoch's metrics; after the last epoch, leave the final bar on screen."""
        super().on_train_epoch_end(trainer, pl_module)
        if ends_after_this_epoch(trainer) and self.progress is not None:
            self.progress.stop()  # (Lightning stops it again at the end of training: a no-op)

    def get_metrics(
        self, trainer: L.Trainer, pl_module: L.LightningModule
    ) -> dict[str, int | str | float | dict[str, float]]:
        """The logged metrics, without the logger's version (``v_num: 0.000`` read as a result)."""
        metrics = super().get_metrics(trainer, pl_module)
        metrics.pop("v_num", None)
        return metrics


class PlainProgressBar(ProgressBar):
    """Progress as plain lines, for a console that is not a terminal (a log file, CI, ``tee``).

    ``Step 120/800 (15%), train/loss 1.234, 8.1 it/s, eta 1:25``: one line at every
    ``every_percent`` of the run and at least one every ``every_seconds`` (:class:`ProgressLines`),
    in steps when ``max_steps`` ends the run, else per epoch; validation and test batches the
    same way when they take long enough to be worth a line.

    Args:
        every_seconds: Longest time between two lines.
        every_percent: A line each time this share of the run (or epoch) is done.
    """

    def __init__(
        self, every_seconds: float = EVERY_SECONDS, every_percent: float = EVERY_PERCENT
    ) -> None:
        super().__init__()
        self.every_seconds = every_seconds
        self.every_percent = every_percent
        self.enabled = True
        self.lines: ProgressLines | None = None
        self.evaluated = 0

    def disable(self) -> None:
        """Print nothing (Lightning calls this on every rank but the first)."""
        self.enabled = False

    def enable(self) -> None:
        """Print the lines again."""
        self.enabled = True

    def _start(self, label: str, total: int | float, initial: int = 0) -> None:
        known = isinstance(total, int) or float(total).is_integer()
        self.evaluated = 0
        self.lines = ProgressLines(
            label,
            int(total) if known else 0,
            initial=initial,
            every_seconds=self.every_seconds,
            every_percent=self.every_percent if known else 0.0,
        )

    def _metrics(self, trainer: L.Trainer, pl_module: L.LightningModule) -> str:
        metrics = self.get_metrics(trainer, pl_module)
        metrics.pop("v_num", None)
        return ", ".join(
            f"{name} {value:.4g}" if isinstance(value, float) else f"{name} {value}"
            for name, value in metrics.items()
        )

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Count the run's steps from where it starts (a resumed run starts past 0)."""
        if counts_steps(trainer):
            self._start("Step", trainer.max_steps, initial=trainer.global_step)

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Count an epoch's batches when epochs end the run."""
        if not counts_steps(trainer):
            self._start(f"Epoch {trainer.current_epoch}", self.total_train_batches)

    def on_train_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
    ) -> None:
        """Print a line when one is due."""
        if self.enabled and self.lines is not None:
            done = trainer.global_step if counts_steps(trainer) else batch_idx + 1
            self.lines.update(done, self._metrics(trainer, pl_module))

    def on_test_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Count the test batches (of every test set together)."""
        self._start("Test", sum(trainer.num_test_batches))

    def on_validation_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Count the validation batches of ``a2i validate`` (fit's are too short to report)."""
        if trainer.state.fn == "validate":
            self._start("Validation", sum(trainer.num_val_batches))

    def on_test_batch_end(self, trainer: L.Trainer, *args: Any, **kwargs: Any) -> None:
        """Print a line when one is due."""
        self._evaluated()

    def on_validation_batch_end(self, trainer: L.Trainer, *args: Any, **kwargs: Any) -> None:
        """Print a line when one is due (under ``a2i validate``)."""
        if trainer.state.fn == "validate":
            self._evaluated()

    def _evaluated(self) -> None:
        self.evaluated += 1
        if self.enabled and self.lines is not None:
            self.lines.update(self.evaluated)


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
