"""What the ``a2i test`` callbacks share: one report folder, also recorded in the tested run.

The report goes to ``output_dir`` (default ``<test log dir>/<kind>``) and is never replaced unless
asked. When the tested checkpoint lies in a run folder (``RUN/checkpoints/*.ckpt``), a copy is
recorded in ``RUN/reports/<kind>/``, where ``AudioToImagePipeline.from_run(RUN)`` and its model
card find it (:mod:`a2i.pipelines.run_reports`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.utilities import rank_zero_info
from torch import Tensor

from a2i.metrics.report import check_report_dir, write_report
from a2i.pipelines.loading import settings_digest
from a2i.pipelines.run_reports import (
    TestedWeights,
    read_tested_weights,
    record_report,
    run_of_checkpoint,
)


class ReportingCallback(Callback):
    """A test-time callback that writes one report (see module docstring).

    Args:
        output_dir: Report folder; default ``<test log dir>/<kind>``.
        overwrite: Replace an existing report in ``output_dir`` (and its record in the run).
    """

    kind = "report"
    """Default folder name of the report, and the kind of its record in the run."""

    def __init__(self, output_dir: str | None = None, overwrite: bool = False) -> None:
        super().__init__()
        self.output_dir = output_dir
        self.overwrite = overwrite
        self.record_dir: Path | None = None

    def open_report(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Choose the report folder and refuse an existing report before any work is done.

        The tested checkpoint is read here too (its epoch and step only), so an unreadable one
        fails now rather than after the test.
        """
        self.report_dir = Path(self.output_dir or Path(trainer.log_dir or ".") / self.kind)
        check_report_dir(self.report_dir, self.overwrite)
        checkpoint = trainer.ckpt_path
        self.run = run_of_checkpoint(checkpoint) if checkpoint else None
        self.tested: TestedWeights | None = None
        if self.run is not None:
            self.tested = read_tested_weights(checkpoint, settings_digest(pl_module))

    def close_report(
        self, trainer: L.Trainer, results: dict[str, Any], grids: dict[str, list[Tensor]]
    ) -> None:
        """On rank zero, write the report, record it in the tested run and say where both went.

        Said on Lightning's console (as its own results are), so ``trainer.test`` from Python
        names the folders as ``a2i test`` does.
        """
        if not trainer.is_global_zero:
            return
        write_report(self.report_dir, results, grids, overwrite=self.overwrite)
        rank_zero_info(f"{self.kind.capitalize()} report written to {self.report_dir}")
        if self.run is not None and self.tested is not None:
            self.record_dir = record_report(self.report_dir, self.kind, self.run, self.tested)
            rank_zero_info(f"{self.kind.capitalize()} report recorded in {self.record_dir}")
