"""``a2i predict``/``embed`` on several processes (issue 28, item 1).

The two-process runs are the real CLI with Lightning's launcher (DDP on CPU, gloo) in a
subprocess: ``--trainer.strategy ddp`` reruns the command line, which must be ``a2i``'s, not
pytest's. Every run has one torch thread: float sums over 1 and 2 threads round differently, and
the images are compared to the bit.
"""

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from cli_runs import a2i_process, a2i_status

from a2i.io_utils import FolderLock
from a2i.pipelines.writer import MANIFEST, PARTS, part_name, read_manifest

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "configs" / "tiny" / "sound2vision_gan_shipped.yaml"
TWO_RANKS = ("--trainer.devices", "2", "--trainer.strategy", "ddp", "--trainer.accelerator", "cpu")


def write_inputs(folder: Path, count: int, broken: bool = False) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    t = np.arange(8000) / 16000
    for i in range(count):
        wave = 0.3 * np.sin(2 * np.pi * (110 + 23 * i) * t)
        sf.write(folder / f"c{i:03d}.wav", wave.astype(np.float32), 16000)
    if broken:
        (folder / "c100.wav").write_bytes(b"RIFF....WAVEfmt ")
    return folder


def cli(command: str, inputs: Path, out: Path, *extra: str) -> subprocess.CompletedProcess:
    args = ["--config", str(SHIPPED), "--audio_dir", str(inputs), "--output_dir", str(out)]
    batch = ("--data.init_args.batch_size", "2")
    return a2i_process([command, *args, *batch, *extra], cwd=out.parent)


def outputs(out: Path, suffix: str) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(out.glob(f"c*{suffix}"))}


def rows(out: Path, inputs: Path | None = None) -> list[str]:
    """The manifest's rows, order aside (ranks append in their own order), ``inputs`` as IN."""
    found = [json.dumps(row, sort_keys=True) for row in read_manifest(out)[1]]
    return sorted(row.replace(str(inputs), "IN") if inputs else row for row in found)


def assert_one_manifest(out: Path) -> None:
    assert (out / MANIFEST).is_file()
    assert not list(out.glob(PARTS)), "rank 0 merges every part"
    assert not (out / FolderLock.NAME).exists()
    assert len(rows(out)) == len(set(rows(out))), "no row twice"


@pytest.fixture(scope="module")
def one_process_run(tmp_path_factory):
    """7 inputs and a broken one, drawn by one process: what two must give."""
    base = tmp_path_factory.mktemp("one")
    inputs = write_inputs(base / "in", 7, broken=True)
    done = cli("predict", inputs, base / "out")
    assert done.returncode == 1, done.stderr[-3000:]
    return inputs, base / "out"


@pytest.mark.slow
@pytest.mark.xdist_group("subprocess")
def test_two_processes_draw_the_same_images_and_one_manifest_as_one(one_process_run, tmp_path):
    inputs, reference = one_process_run
    out = tmp_path / "out"
    done = cli("predict", inputs, out, *TWO_RANKS)
    assert done.returncode == 1, done.stderr[-3000:]  # the broken input, drawn by some rank
    assert done.stdout.count("images written") == 1, "rank 0 reports for both"
    assert "7 images written" in done.stdout
    assert "failed: c100.wav: cannot read audio file" in done.stderr
    assert outputs(out, ".png") == outputs(reference, ".png")
    assert rows(out) == rows(reference)
    assert (out / "grid.png").read_bytes() == (reference / "grid.png").read_bytes()
    assert_one_manifest(out)


@pytest.mark.slow
@pytest.mark.xdist_group("subprocess")
def test_two_processes_resume_a_partial_one_process_run(one_process_run, tmp_path):
    inputs, reference = one_process_run
    partial = write_inputs(tmp_path / "in", 3)
    out = tmp_path / "out"
    assert cli("predict", partial, out).returncode == 0
    shutil.rmtree(partial)
    shutil.copytree(inputs, partial)
    done = cli("predict", partial, out, *TWO_RANKS)
    assert done.returncode == 1, done.stderr[-3000:]
    assert "4 images written, 3 inputs already done" in done.stdout
    assert outputs(out, ".png") == outputs(reference, ".png")
    assert rows(out, partial) == rows(reference, inputs)
    assert_one_manifest(out)


@pytest.mark.slow
@pytest.mark.xdist_group("subprocess")
def test_embed_on_two_processes_resumes_one_and_gives_its_embeddings(tmp_path):
    inputs = write_inputs(tmp_path / "in", 5)
    reference = tmp_path / "reference"
    assert cli("embed", inputs, reference).returncode == 0
    partial = write_inputs(tmp_path / "partial", 2)
    out = tmp_path / "out"
    assert cli("embed", partial, out).returncode == 0
    done = cli("embed", inputs, out, *TWO_RANKS)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "3 embeddings written, 2 inputs already done" in done.stdout
    assert outputs(out, ".npy") == outputs(reference, ".npy")
    assert rows(out) == rows(reference)  # (no failed row names its folder)
    assert_one_manifest(out)


def predict_here(inputs: Path, out: Path) -> int:
    args = ["predict", "--config", str(SHIPPED), "--audio_dir", str(inputs)]
    return a2i_status([*args, "--output_dir", str(out), "--data.init_args.batch_size", "2"])


def test_the_part_of_a_killed_rank_is_merged_by_the_next_run_of_any_size(tmp_path, capsys):
    """A rank's rows written before a kill count as done; a merge redone never duplicates."""
    inputs = write_inputs(tmp_path / "in", 4)
    out = tmp_path / "out"
    assert predict_here(inputs, out) == 0
    lines = (out / MANIFEST).read_text().splitlines(keepends=True)
    rank1 = [line for line in lines if "c002" in line or "c003" in line]  # its writing line, rows
    kept = [line for line in lines if line not in rank1]
    (out / MANIFEST).write_text("".join(kept))
    (out / part_name(1)).write_text("".join(rank1))
    (out / part_name(2)).write_text(rank1[-1] + '{"input": "c0')  # merged twice, torn
    capsys.readouterr()
    assert predict_here(inputs, out) == 0
    assert "0 images written, 4 inputs already done" in capsys.readouterr().out
    assert_one_manifest(out)
    assert len(rows(out)) == 4


@pytest.mark.slow
@pytest.mark.xdist_group("subprocess")
def test_a_full_disk_on_two_ranks_keeps_both_ranks_work_and_the_rerun_resumes(tmp_path):
    """The disk fills under both ranks: one named error, nothing torn, the rerun completes."""
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=40k", "tmpfs", str(disk)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        inputs = write_inputs(tmp_path / "in", 16)  # 4 KiB blocks: about half the images fit
        out = disk / "out"
        full = cli("predict", inputs, out, *TWO_RANKS)
        assert full.returncode == 2, full.stderr[-3000:]  # the run stopped, as on one process
        summary = next(line for line in full.stdout.splitlines() if " written, " in line)
        written = int(summary.split("a2i predict: ")[1].split()[0])
        assert 0 < written < 16 and "0 failed, stopped early on " in summary
        reasons = [line for line in full.stderr.splitlines() if "stopped: cannot write" in line]
        assert reasons and all("No space left on device" in line for line in reasons)
        assert f"stopped early on {len(reasons)} rank" in summary
        assert len(rows(out)) == len(list(out.glob("c*.png"))) == written  # none torn
        subprocess.run(["mount", "-o", "remount,size=4m", str(disk)], check=True)
        done = cli("predict", inputs, out, *TWO_RANKS)
        assert done.returncode == 0, done.stderr[-3000:]
        assert f"{16 - written} images written, {written} inputs already done" in done.stdout
        assert_one_manifest(out)
        assert len(rows(out)) == len(list(out.glob("c*.png"))) == 16
    finally:
        subprocess.run(["umount", str(disk)], check=True)
