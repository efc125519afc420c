"""Test reports recorded in a run: which record a card shows, and which one a test replaces."""

import json
from pathlib import Path

import torch

from a2i.pipelines.run_reports import (
    TestedWeights,
    read_tested_weights,
    record_report,
    recorded_metrics,
    run_of_checkpoint,
)

TESTED = TestedWeights(epoch=0, global_step=2, settings="abc")


def write_report(folder: Path, metrics: dict) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "metrics.json").write_text(json.dumps({"run": {}, "metrics": metrics}))
    return folder


def test_a_checkpoint_beside_a_config_belongs_to_a_run(tmp_path):
    (tmp_path / "config.yaml").write_text("model: {}\n")
    checkpoint = tmp_path / "checkpoints" / "last.ckpt"
    checkpoint.parent.mkdir()
    torch.save({"epoch": 3, "global_step": 400, "state_dict": {}}, checkpoint)
    assert run_of_checkpoint(checkpoint) == tmp_path
    assert run_of_checkpoint(tmp_path / "elsewhere" / "last.ckpt") is None
    assert read_tested_weights(checkpoint, "abc") == TestedWeights(3, 400, "abc")


def test_the_card_shows_the_newest_record_of_its_weights_and_settings(tmp_path):
    run = tmp_path / "run"
    first = write_report(tmp_path / "test1", {"judge_class_accuracy": 0.5})
    record_report(first, "evaluation", run, TESTED)
    second = write_report(tmp_path / "test2", {"judge_class_accuracy": 0.75})
    record_report(second, "evaluation", run, TESTED)
    other_step = write_report(tmp_path / "test3", {"judge_class_accuracy": 0.1})
    record_report(other_step, "evaluation", run, TestedWeights(1, 4, "abc"))
    other_settings = write_report(tmp_path / "test4", {"judge_class_accuracy": 0.2})
    record_report(other_settings, "evaluation", run, TestedWeights(0, 2, "guidance"))
    probe = write_report(tmp_path / "test5", {"run": {"probe_accuracy": 0.9}})
    record_report(probe, "downstream", run, TESTED)
    assert len(list((run / "reports" / "evaluation").iterdir())) == 4  # none replaced another
    assert recorded_metrics(run, TESTED) == {
        "judge_class_accuracy": 0.75,
        "downstream/run/probe_accuracy": 0.9,
    }
    assert recorded_metrics(run, TestedWeights(5, 9, "abc")) is None


def test_only_a_test_that_replaced_the_same_report_replaces_its_record(tmp_path):
    run = tmp_path / "run"
    report = write_report(tmp_path / "report", {"fid": 30.0})
    record = record_report(report, "evaluation", run, TESTED)
    write_report(report, {"fid": 20.0})  # the same request again, with overwrite: true
    assert record_report(report, "evaluation", run, TESTED) == record
    assert list(record.parent.iterdir()) == [record]  # no temporary folder left behind
    assert recorded_metrics(run, TESTED) == {"fid": 20.0}
    # A record being assembled (hidden, .tmp) is never read.
    write_report(record.parent / ".half.1234.tmp", {"fid": 1.0})
    (record.parent / ".half.1234.tmp" / "test.json").write_text("{")
    assert recorded_metrics(run, TESTED) == {"fid": 20.0}
