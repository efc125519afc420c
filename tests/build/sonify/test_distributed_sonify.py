"""``a2i sonify --devices 2`` (issue 28, item 3): every step shared by two ranks, one's result.

The real CLI in subprocesses: Fabric's launcher reruns the command line for the second rank.
"""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

import pytest
from cli_runs import a2i_process

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("subprocess")]


def sonify(config: Path, *extra: str) -> subprocess.CompletedProcess:
    return a2i_process(["sonify", "--config", str(config), *extra])


def digests(out: Path) -> dict[str, str]:
    files = [*out.glob("shards/*"), out / "recipes.jsonl", out / "problems.log"]
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(files)}


def test_two_ranks_give_the_recipes_and_shards_of_one_and_resume_a_killed_run(
    sonify_inputs, make_config, tmp_path
):
    one = tmp_path / "one"
    done = sonify(make_config(sonify_inputs, one))
    assert done.returncode == 1, done.stderr[-3000:]  # the broken pool file, named

    two = tmp_path / "two"  # a killed run left half the concepts and a rank's part
    two.mkdir()
    (two / "settings.json").write_bytes((one / "settings.json").read_bytes())
    concepts = (one / "concepts.jsonl").read_text().splitlines(keepends=True)
    (two / "concepts.jsonl").write_text("".join(concepts[:5]))
    (two / "concepts.rank1.jsonl").write_text("".join(concepts[5:8]) + concepts[8][:20])
    done = sonify(make_config(sonify_inputs, two), "--devices", "2")
    assert done.returncode == 1, done.stderr[-3000:]
    assert done.stdout.count(" samples in ") == 1, "rank 0 reports for both"
    assert "broken.wav" in done.stderr
    assert digests(two) == digests(one)
    assert sorted((two / "concepts.jsonl").read_text().splitlines()) == sorted(
        line.rstrip("\n") for line in concepts
    )
    assert not list(two.glob("concepts.rank*.jsonl"))
