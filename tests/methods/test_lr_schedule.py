"""The template's learning-rate schedule: constant by default, cosine to zero when asked."""

import math

import lightning as L
import pytest

from a2i.errors import ConfigError
from tests.methods.conftest import quiet_cpu_trainer, tiny_sound2vision, tiny_world


class LearningRates(L.Callback):
    """The optimiser's learning rate before every training step."""

    def __init__(self) -> None:
        self.seen: list[float] = []

    def on_train_batch_start(self, trainer, *args) -> None:
        self.seen.append(trainer.optimizers[0].param_groups[0]["lr"])


def rates(tmp_path, steps: int, **options) -> list[float]:
    model = tiny_sound2vision(lr=1e-3, **options)
    record = LearningRates()
    trainer = quiet_cpu_trainer(
        tmp_path,
        max_steps=steps,
        enable_checkpointing=False,
        limit_val_batches=0,
        callbacks=[record],
    )
    trainer.fit(model, datamodule=tiny_world())
    return record.seen


def test_the_papers_constant_rate_is_the_default(tmp_path):
    assert rates(tmp_path, 3) == pytest.approx([1e-3] * 3)


def test_cosine_warms_up_then_decays_to_zero_at_the_last_step(tmp_path):
    seen = rates(tmp_path, 6, lr_schedule="cosine", warmup_steps=2)
    assert seen[:3] == pytest.approx([5e-4, 7.5e-4, 1e-3])  # linear warm-up, then the peak
    half_cosine = [1e-3 * (1 + math.cos(math.pi * k / 4)) / 2 for k in range(4)]
    assert seen[2:] == pytest.approx(half_cosine)  # zero would be the step after the last


def test_negative_warmup_is_refused():
    with pytest.raises(ConfigError, match="warmup_steps"):
        tiny_sound2vision(warmup_steps=-1)
