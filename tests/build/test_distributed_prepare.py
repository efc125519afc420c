"""``a2i prepare --devices 2`` (issue 28, item 2): two ranks write the shards one process writes.

The real CLI in a subprocess: Fabric's launcher reruns the command line for the second rank.
"""

import hashlib
import shutil
import subprocess
from pathlib import Path

import pytest
from cli_runs import a2i_process
from video_fixtures import write_vggsound_fixture

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "tests" / "conf" / "data" / "vggsound.yaml"

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("subprocess")]


def prepare(root: Path, prepared: Path, *extra: str) -> subprocess.CompletedProcess:
    args = ["prepare", "--config", str(DATA), "--data.init_args.root", str(root)]
    return a2i_process([*args, "--data.init_args.prepared", str(prepared), *extra])


def digests(prepared: Path) -> dict[str, str]:
    files = [*prepared.glob("shards/*"), prepared / "problems.log", prepared / "prepared.json"]
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(files)}


def test_two_ranks_write_the_shards_of_one_and_resume_its_partial_run(tmp_path):
    root = tmp_path / "raw"
    write_vggsound_fixture(root)
    whole = tmp_path / "whole"
    done = prepare(root, whole)
    assert done.returncode == 1, done.stderr[-3000:]  # the fixture's corrupt video
    shards = sorted(p.stem for p in whole.glob("shards/*.tar"))
    assert len(shards) >= 4

    two = tmp_path / "two"
    done = prepare(root, two, "--devices", "2")
    assert done.returncode == 1, done.stderr[-3000:]  # the fixture's corrupt video
    assert done.stdout.count("a2i prepare:") == 1, "rank 0 reports for both"
    assert "Initializing distributed" not in done.stderr, "the ranks' start is known noise"
    assert f"{len(shards)} shards written, 0 reused" in done.stdout
    assert digests(two) == digests(whole)

    resumed = tmp_path / "resumed"  # a one-process run that finished two shards
    (resumed / "shards").mkdir(parents=True)
    shutil.copy(whole / "settings.json", resumed)
    for name in shards[:2]:
        for suffix in (".tar", ".json"):
            shutil.copy(whole / "shards" / f"{name}{suffix}", resumed / "shards")
    done = prepare(root, resumed, "--devices", "2")
    assert done.returncode == 1, done.stderr[-3000:]  # the fixture's corrupt video
    assert f"{len(shards) - 2} shards written, 2 reused" in done.stdout
    assert digests(resumed) == digests(whole)
