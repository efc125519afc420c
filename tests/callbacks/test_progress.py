"""The step-counting progress bar and the eval-mode check on a tiny Lightning run."""

import lightning as L
import pytest
from lightning.pytorch.demos.boring_classes import BoringModel
from torch import nn

from a2i.callbacks.progress import StepProgressBar, UnfrozenEvalModeCheck
from a2i.interfaces import FreezableMixin


def fit(model: L.LightningModule, callbacks: list[L.Callback], **trainer_args) -> L.Trainer:
    trainer = L.Trainer(
        accelerator="cpu",
        limit_train_batches=3,
        limit_val_batches=0,
        logger=False,
        enable_checkpointing=False,
        enable_model_summary=False,
        callbacks=callbacks,
        **trainer_args,
    )
    trainer.fit(model)
    return trainer


def test_a_step_limited_run_has_one_bar_over_its_steps():
    bar = StepProgressBar()
    fit(BoringModel(), [bar], max_steps=7)  # 3 epochs of 3 batches, stopped at step 7
    task = bar.train_progress_bar
    assert (task.completed, task.total) == (7, 7)
    assert task.description.strip() == "Step"


def test_the_bar_shows_metrics_not_the_loggers_version(tmp_path):
    bar = StepProgressBar()
    logger = L.pytorch.loggers.TensorBoardLogger(tmp_path)
    trainer = L.Trainer(
        accelerator="cpu", max_steps=2, limit_val_batches=0, logger=logger, callbacks=[bar],
        enable_checkpointing=False, enable_model_summary=False,
    )  # fmt: skip
    model = BoringModel()
    trainer.fit(model)
    assert "v_num" not in bar.get_metrics(trainer, model)


def test_an_epoch_limited_run_keeps_lightnings_bar():
    bar = StepProgressBar()
    fit(BoringModel(), [bar], max_epochs=2)
    task = bar.train_progress_bar
    assert (task.completed, task.total) == (3, 3)
    assert task.description.startswith("Epoch 1/1")


class Frozen(FreezableMixin):
    def __init__(self) -> None:
        super().__init__()
        self.norm = nn.BatchNorm1d(32)


class PartlyFrozen(BoringModel):
    def __init__(self) -> None:
        super().__init__()
        self.frozen_part = Frozen().freeze()
        self.forgotten = nn.Dropout().eval()  # a mistake: this part trains with dropout off


def test_only_eval_mode_outside_frozen_parts_is_named():
    with pytest.warns(UserWarning, match=r"1 module\(s\) outside the frozen parts .*\(forgotten\)"):
        fit(PartlyFrozen(), [UnfrozenEvalModeCheck()], max_steps=1, enable_progress_bar=False)
