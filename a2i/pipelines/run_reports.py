"""Test reports recorded inside the run they score, where the run's model card finds them.

``a2i test --ckpt_path RUN/checkpoints/last.ckpt`` writes its report under the test's own log
folder (a new ``version_N``, or ``output_dir``), which ``AudioToImagePipeline.from_run(RUN)``
never reads. So the test also records a copy of the report inside the run::

    RUN/reports/<kind>/epoch=E-step=S-<id>/   metrics.json/.md/.csv, grids/, test.json

``kind`` is ``evaluation`` or ``downstream``, ``<id>`` names the folder the test wrote its report
to: a later test that writes elsewhere adds a record and never replaces this one, and only a test
that replaced that very report (``overwrite: true``) replaces its record. ``test.json`` says which
weights (epoch and global step of the checkpoint) and which model settings were scored; a card
shows a record only when both are those it loaded (a test run with another ``guidance_scale``
scored other images than the run's config draws). A record is assembled in a hidden ``.*.tmp``
folder and renamed into place, so a killed test leaves the old record or the new one.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from a2i.io_utils import atomic_write_text
from a2i.metrics.report import flatten
from a2i.pretrained import load_tensors

REPORTS = "reports"
"""Folder of a run that holds the records of its tests."""
TEST_FILE = "test.json"
"""What a record scored (:class:`TestedWeights`), where the test wrote it and when."""


@dataclass(frozen=True)
class TestedWeights:
    """The weights and settings a test scored.

    Within one run the global step names the weights: ``last.ckpt`` and ``epoch=3-step=400.ckpt``
    of the same step are the same model, and the name survives copying the run folder.

    Attributes:
        epoch: The checkpoint's epoch.
        global_step: The checkpoint's optimiser step.
        settings: Digest of the method's config (:func:`a2i.pipelines.loading.settings_digest`).
    """

    epoch: int | None
    global_step: int | None
    settings: str

    @classmethod
    def of(cls, checkpoint: dict[str, Any], settings: str) -> TestedWeights:
        """The identity of a Lightning checkpoint's contents under ``settings``."""
        return cls(checkpoint.get("epoch"), checkpoint.get("global_step"), settings)


def run_of_checkpoint(checkpoint: str | Path) -> Path | None:
    """The run folder of ``RUN/checkpoints/<name>.ckpt`` (it holds ``config.yaml``), else None."""
    checkpoint = Path(checkpoint)
    run = checkpoint.parent.parent
    if checkpoint.parent.name != "checkpoints" or not (run / "config.yaml").is_file():
        return None
    return run


def read_tested_weights(checkpoint: str | Path, settings: str) -> TestedWeights:
    """Epoch and step of the checkpoint at ``checkpoint``, memory-mapped (no tensor is read)."""
    return TestedWeights.of(load_tensors(checkpoint, mmap=True), settings)


def record_report(report_dir: Path, kind: str, run: Path, tested: TestedWeights) -> Path:
    """Copy the report in ``report_dir`` into ``run`` as a record (see module docstring)."""
    report_id = hashlib.sha256(str(report_dir.resolve()).encode()).hexdigest()[:8]
    name = f"epoch={tested.epoch}-step={tested.global_step}-{report_id}"
    target = run / REPORTS / kind / name
    staging = target.with_name(f".{name}.{secrets.token_hex(4)}.tmp")
    shutil.copytree(report_dir, staging)
    facts = {"report": str(report_dir.resolve()), "tested_at": time.time(), **asdict(tested)}
    atomic_write_text(staging / TEST_FILE, json.dumps(facts, indent=2) + "\n")
    replaced = target.with_name(f".{name}.{secrets.token_hex(4)}.old.tmp")
    if target.exists():
        os.replace(target, replaced)
    os.replace(staging, target)
    shutil.rmtree(replaced, ignore_errors=True)
    return target


def recorded_metrics(run: Path, tested: TestedWeights) -> dict[str, float] | None:
    """Scalar metrics of the newest record of each kind that scored ``tested``, or None.

    Evaluation metrics keep their names (``judge_class_accuracy``); other kinds are prefixed
    with theirs (``downstream/run/probe_accuracy``).
    """
    metrics: dict[str, float] = {}
    for kind_dir in sorted(p for p in (run / REPORTS).glob("*") if p.is_dir()):
        newest: tuple[float, Path] | None = None
        for facts_file in kind_dir.glob(f"*/{TEST_FILE}"):
            if facts_file.parent.name.startswith("."):  # a record being assembled or replaced
                continue
            facts = json.loads(facts_file.read_text())
            scored = TestedWeights(facts["epoch"], facts["global_step"], facts["settings"])
            if scored == tested and (newest is None or facts["tested_at"] > newest[0]):
                newest = (facts["tested_at"], facts_file.parent)
        if newest is None:
            continue
        report = json.loads((newest[1] / "metrics.json").read_text())
        prefix = "" if kind_dir.name == "evaluation" else f"{kind_dir.name}/"
        metrics.update(flatten(report.get("metrics", {}), prefix))
    return metrics or None
