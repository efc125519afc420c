"""Report files, their flattening, the no-overwrite rule and benchmarks/compare.py."""

import json

import pytest
import torch

from a2i.errors import ConfigError
from a2i.metrics.report import flatten, write_report

RESULTS = {
    "run": {"method": "Sound2Vision", "test_images": 4},
    "metrics": {"clip_r@1": 0.5, "judge_class_accuracy": 0.75, "fid": float("nan")},
    "controllability": {
        "volume": [{"gain_db": -20.0, "mean_size": 0.2}, {"gain_db": 10.0, "mean_size": 0.6}],
        "volume_trend": {"spearman_rho": 0.9, "slope_per_db": 0.01},
        "reverb": [{"reverb": 0.0, "indoor": 0.1}, {"reverb": 1.0, "indoor": 0.8}],
    },
    "modality_gap": {"magnitude_mean": 0.4, "alignment": 0.9},
    "confusion": [[1, 1], [0, 2]],
    "classes": ["a red circle", "an orange square"],
}


def test_flatten_names_sweep_rows_by_their_setting():
    flat = flatten(RESULTS)
    assert flat["controllability/volume/gain_db=-20/mean_size"] == 0.2
    assert flat["controllability/reverb/reverb=1/indoor"] == 0.8
    assert flat["controllability/volume_trend/spearman_rho"] == 0.9
    assert flat["metrics/clip_r@1"] == 0.5
    assert not any(key.startswith("confusion") for key in flat)


def test_write_report_writes_every_file_and_never_overwrites(tmp_path):
    grids = {"best": [[torch.rand(3, 8, 8), torch.rand(3, 8, 8)], [torch.rand(3, 8, 8)]]}
    out = write_report(tmp_path / "report", RESULTS, grids)
    assert json.loads((out / "metrics.json").read_text())["metrics"]["clip_r@1"] == 0.5
    markdown = (out / "metrics.md").read_text()
    assert "## Controllability: volume" in markdown and "| n/a |" in markdown
    assert "metrics/judge_class_accuracy,0.75" in (out / "metrics.csv").read_text()
    assert (out / "grids" / "best.png").is_file()
    with pytest.raises(ConfigError, match="overwrite"):
        write_report(out, RESULTS, grids)
    write_report(out, {**RESULTS, "metrics": {"clip_r@1": 0.25}}, grids, overwrite=True)
    assert json.loads((out / "metrics.json").read_text())["metrics"]["clip_r@1"] == 0.25


def test_compare_builds_one_table_from_several_reports(load_benchmark, tmp_path, capsys):
    for name, accuracy in (("gan_l2", 0.9), ("ldm_l2", 0.8)):
        write_report(
            tmp_path / name / "eval" / "evaluation",
            {**RESULTS, "metrics": {**RESULTS["metrics"], "judge_class_accuracy": accuracy}},
            {},
        )
    compare = load_benchmark("compare")
    compare.main([str(tmp_path), "--all", "--out", str(tmp_path / "table.md")])
    table = capsys.readouterr().out
    lines = table.splitlines()
    assert lines[0].startswith("| run | judge class acc. | CLIP R@1 | FID | gain→size ρ")
    assert lines[2].startswith("| gan_l2/eval | 0.900 | 0.500 | n/a | 0.900")
    assert (tmp_path / "table.md").read_text() == table
    with pytest.raises(SystemExit):
        compare.main([str(tmp_path / "missing")])
    # The world benchmarks' ending: named rows, then the --with folders named by their folder.
    compare.compare_runs([("GAN L2", tmp_path / "gan_l2")], [str(tmp_path / "ldm_l2")])
    rows = [line.split(" | ")[0] for line in capsys.readouterr().out.splitlines()[2:]]
    assert rows == ["| GAN L2", "| ldm_l2"]
