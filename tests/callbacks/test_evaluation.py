"""``a2i test`` with the evaluation harness on a tiny Sound2Vision run: the full report."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from a2i.cli import main
from a2i.metrics.report import flatten
from a2i.pipelines import AudioToImagePipeline

ROOT = Path(__file__).resolve().parents[2]
CONF = ROOT / "tests" / "conf"

pytestmark = pytest.mark.slow  # a real fit, then a2i test (and under DDP)


@pytest.fixture(scope="module")
def report(tmp_path_factory, fit_run):
    out = tmp_path_factory.mktemp("eval")
    common = ["--trainer.logger.init_args.save_dir", str(out)]
    ckpt = fit_run("sound2vision_gan.yaml", out) / "checkpoints" / "last.ckpt"
    args = [
        "test",
        "--config",
        str(CONF / "sound2vision_gan.yaml"),
        "--config",
        str(CONF / "eval_world.yaml"),
        "--ckpt_path",
        str(ckpt),
        "--trainer.callbacks.init_args.output_dir",
        str(out / "report"),
        *common,
    ]
    main(args)
    return out / "report", args


def test_report_has_every_metric_table_and_grid(report):
    folder, _ = report
    results = json.loads((folder / "metrics.json").read_text())
    metrics = results["metrics"]
    for key in (
        "fid",
        "kid",
        "is",
        "clip_r@1",
        "clip_r@5",
        "iis",
        "ais",
        "iis_cosine",
        "ais_cosine",
        "aic",
        "judge_class_accuracy",
        "judge_all_sources_present",
        "judge_size_gain_spearman",
        "judge_background_accuracy",
        "diversity_distinct_layouts",
        "diversity_pairwise_distance",
    ):
        assert key in metrics, key
    assert results["run"]["test_images"] == 4  # limit_test_batches 1 × batch 4
    assert set(results["controllability"]) == {
        "volume",
        "volume_trend",
        "mixture",
        "reverb",
        "interpolation",
    }
    assert len(results["controllability"]["volume"]) == 7
    assert {"magnitude_mean", "orthogonality_image_abs_mean", "alignment"} <= set(
        results["modality_gap"]
    )
    assert len(results["confusion"]) == 10
    agreement = results["aic_agreement"]  # how loose the 0.75 CLIP-text threshold is here
    assert agreement["labels"] == 10 and agreement["pairs_admitted_by_threshold"] >= 0
    assert "## AIC agreement" in (folder / "metrics.md").read_text()
    assert (folder / "metrics.md").read_text().startswith("# Evaluation of Sound2Vision")
    assert (folder / "metrics.csv").is_file()
    for grid in ("best", "worst", "random"):
        assert (folder / "grids" / f"{grid}.png").is_file()
    assert list(folder.parent.rglob("events.out.tfevents.*"))


def test_a_second_test_run_never_overwrites_the_report(report, capsys):
    folder, args = report
    before = (folder / "metrics.json").read_text()
    with pytest.raises(SystemExit) as info:
        main([*args, "--trainer.logger.init_args.version", "again"])
    assert info.value.code == 2
    assert "already holds an evaluation report" in capsys.readouterr().err
    assert (folder / "metrics.json").read_text() == before


def test_the_report_is_recorded_in_the_run_where_its_model_card_finds_it(report, tmp_path):
    """Item 6 of issue 24: `a2i test --ckpt_path RUN/checkpoints/last.ckpt` reaches RUN's card."""
    folder, args = report
    run = Path(args[args.index("--ckpt_path") + 1]).parent.parent
    records = {
        json.loads((record / "test.json").read_text())["report"]: record
        for record in (run / "reports" / "evaluation").iterdir()
    }
    record = records[str(folder.resolve())]
    assert record.name.startswith("epoch=0-step=2-")  # tests/conf: max_steps 2
    assert (record / "metrics.json").read_text() == (folder / "metrics.json").read_text()
    assert (record / "grids" / "best.png").is_file()
    pipe = AudioToImagePipeline.from_run(run)
    accuracies = {
        json.loads((r / "metrics.json").read_text())["metrics"]["judge_class_accuracy"]
        for r in records.values()
    }
    assert pipe.card.metrics["judge_class_accuracy"] in accuracies
    card = (pipe.save_pretrained(tmp_path / "exported") / "README.md").read_text()
    assert "## Last evaluation" in card and "| judge_class_accuracy |" in card


@pytest.mark.xdist_group("subprocess")
def test_two_process_ddp_test_writes_one_report(report, tmp_path):
    """Under DDP each rank scores its share; rank 0 writes one report covering both."""
    _, args = report
    tested = args[: args.index("--trainer.callbacks.init_args.output_dir")]  # config and ckpt
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": "1"}
    cmd = [
        sys.executable,
        "-m",
        "a2i",
        *tested,
        "--trainer.strategy",
        "ddp",
        "--trainer.devices",
        "2",
        "--trainer.logger.init_args.save_dir",
        str(tmp_path),
        "--trainer.callbacks.init_args.output_dir",
        str(tmp_path / "report"),
    ]
    done = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads((tmp_path / "report" / "metrics.json").read_text())
    assert results["run"]["world_size"] == 2
    assert results["run"]["test_images"] == 8  # one batch of 4 on each rank
    assert sum(map(sum, results["confusion"])) == 8
    assert len(results["controllability"]["volume"]) == 7
    # One process over the same 8 clips draws the same images: every judged count and sweep agrees.
    single = tmp_path / "single"
    main(
        [
            *tested,
            "--trainer.callbacks.init_args.output_dir",
            str(single),
            "--trainer.limit_test_batches",
            "2",
        ]
    )
    alone = json.loads((single / "metrics.json").read_text())
    assert alone["confusion"] == results["confusion"]
    # Sizes are means of judged boxes: equal up to the float order of 1 vs 2 processes.
    together = flatten(results["controllability"])
    assert flatten(alone["controllability"]) == pytest.approx(together, rel=1e-4, abs=1e-6)
    for name, value in results["metrics"].items():
        if name.startswith(("judge_", "clip_", "aic")):
            assert alone["metrics"][name] == pytest.approx(value, abs=1e-6), name
