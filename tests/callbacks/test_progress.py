"""The step-counting progress bar and the eval-mode check on a tiny Lightning run."""

import lightning as L
import pytest
from lightning.pytorch.demos.boring_classes import BoringModel
from torch import nn

from a2i.callbacks.progress import PlainProgressBar, StepProgressBar, UnfrozenEvalModeCheck
from a2i.interfaces import FreezableMixin


def fit(
    model: L.LightningModule, callbacks: list[L.Callback], ckpt_path=None, **trainer_args
) -> L.Trainer:
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
    trainer.fit(model, ckpt_path=ckpt_path)
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


def test_plain_lines_count_steps_or_each_epochs_batches_and_tests(capsys):
    bar = PlainProgressBar(every_percent=50)
    fit(BoringModel(), [bar], max_steps=4)  # 2 epochs of 3 batches
    lines = [line.split(",")[0] for line in capsys.readouterr().out.splitlines()]
    assert lines == ["Step 2/4 (50%)", "Step 4/4 (100%)"]
    trainer = fit(BoringModel(), [PlainProgressBar(every_percent=50)], max_epochs=2)
    lines = [line.split(",")[0] for line in capsys.readouterr().out.splitlines()]
    assert lines == [
        "Epoch 0 2/3 (67%)",
        "Epoch 0 3/3 (100%)",
        "Epoch 1 2/3 (67%)",
        "Epoch 1 3/3 (100%)",
    ]
    trainer.test(BoringModel(), verbose=False)
    assert capsys.readouterr().out.splitlines()[-1].startswith("Test 64/64 (100%), ")


def test_the_bar_stops_before_lightning_says_the_run_stopped():
    bar = StepProgressBar()
    live_at_epoch_ends = []

    class Spy(L.Callback):  # (runs after the bar: callbacks run in their list's order)
        def on_train_epoch_end(self, trainer, pl_module):
            live_at_epoch_ends.append(bar.progress.live.is_started)

    fit(BoringModel(), [bar, Spy()], max_steps=4)  # 2 epochs of 3 batches
    assert live_at_epoch_ends == [True, False]  # stopped before the fit loop's line


def test_a_run_resumed_mid_epoch_counts_steps_from_where_it_was(tmp_path):
    trainer = L.Trainer(
        accelerator="cpu", max_steps=2, limit_train_batches=3, limit_val_batches=0, logger=False,
        enable_model_summary=False, enable_progress_bar=False, default_root_dir=tmp_path,
    )  # fmt: skip
    trainer.fit(BoringModel())
    checkpoint = tmp_path / "mid_epoch.ckpt"
    trainer.save_checkpoint(checkpoint)
    bar = StepProgressBar()
    fit(BoringModel(), [bar], max_steps=5, ckpt_path=checkpoint)
    task = bar.train_progress_bar
    assert (task.completed, task.total, task.description.strip()) == (5, 5, "Step")


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
