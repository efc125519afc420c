"""``a2i predict``/``embed`` against kills, a second run, a full or read-only disk (issue 25, 1-4).

Every run is the real CLI on the shipped tiny GAN (no training): in this process where a
folder's state can be crafted, in a subprocess where it must really die (SIGKILL).
"""

import errno
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from cli_runs import a2i_status
from PIL import Image

from a2i.io_utils import FolderLock
from a2i.pipelines.writer import MANIFEST, read_manifest

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "configs" / "tiny" / "sound2vision_gan_shipped.yaml"
BATCH = 4


def run_args(command: str, inputs: Path, out: Path, *extra: str) -> list[str]:
    return [
        command,
        "--config",
        str(SHIPPED),
        "--audio_dir",
        str(inputs),
        "--output_dir",
        str(out),
        "--data.init_args.batch_size",
        str(BATCH),
        *extra,
    ]


def predict(inputs: Path, out: Path, *extra: str, command: str = "predict") -> int:
    return a2i_status(run_args(command, inputs, out, *extra))


def tiny_wavs(folder: Path, count: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    t = np.arange(1600) / 16000
    for i in range(count):
        wave = 0.3 * np.sin(2 * np.pi * (100 + 10 * i) * t)
        sf.write(folder / f"c{i:03d}.wav", wave.astype(np.float32), 16000)
    return folder


def assert_complete(inputs: Path, out: Path) -> None:
    """One image per input, one ok row per image, every line whole, no temporary file."""
    keys = sorted(p.name for p in inputs.glob("*.wav"))
    lines = (out / MANIFEST).read_text().splitlines()
    records = [json.loads(line) for line in lines]  # every line whole
    rows = [r for r in records if "type" not in r]
    assert sorted(r["output"] for r in rows if r["status"] == "ok") == [f"{k}.png" for k in keys]
    assert all(r["status"] == "ok" for r in rows)
    assert sorted(p.name for p in out.glob("c*.png")) == [f"{k}.png" for k in keys]
    assert not [p for p in out.rglob("*") if p.name.endswith(".tmp")]
    assert not (out / FolderLock.NAME).exists()


def assert_no_partial_work(out: Path) -> None:
    """Every image on disk has its row; no temporary file."""
    _, rows = read_manifest(out)
    listed = {r["output"] for r in rows if r["status"] == "ok"}
    assert {p.name for p in out.glob("c*.png")} == listed
    assert not [p for p in out.rglob("*") if p.name.endswith(".tmp")]


@pytest.fixture
def inputs(tmp_path: Path) -> Path:
    return tiny_wavs(tmp_path / "in", 6)  # two batches


def kill_after_images_before_rows(out: Path) -> None:
    """A kill after the last batch's images, before its rows (the rerun was once refused)."""
    lines = (out / MANIFEST).read_text().splitlines(keepends=True)
    cut = [i for i, line in enumerate(lines) if '"type": "writing"' in line][-1]
    (out / MANIFEST).write_text("".join(lines[: cut + 1]))  # the last batch: images, no rows
    (out / "c005.wav.png").unlink()  # and one image the kill stopped before it was renamed
    (out / ".c005.wav.png.0123abcd.tmp").write_bytes(b"\x89PNG half")


def tear_the_last_line(out: Path) -> None:
    """The last row cut mid-way: it is cut off and its batch redone."""
    manifest = out / MANIFEST
    manifest.write_bytes(manifest.read_bytes()[:-40])


@pytest.mark.parametrize(
    ("kill", "redone"),
    [
        (kill_after_images_before_rows, "2 images written, 4 inputs already done"),
        (tear_the_last_line, "1 images written, 5 inputs already done"),
    ],
    ids=["rows_cut_off", "torn_last_line"],
)
def test_the_batch_a_kill_left_unrecorded_is_redone(kill, redone, inputs, tmp_path, capsys):
    out = tmp_path / "out"
    assert predict(inputs, out) == 0
    kill(out)
    capsys.readouterr()
    assert predict(inputs, out) == 0
    assert redone in capsys.readouterr().out
    assert_complete(inputs, out)


def test_an_image_the_manifest_does_not_name_is_still_never_replaced(inputs, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    Image.new("RGB", (4, 4)).save(out / "c000.wav.png")  # the user's own file
    mine = (out / "c000.wav.png").read_bytes()
    (out / ".notes.txt.0123abcd.tmp").write_text("not a2i's")
    assert predict(inputs, out) == 1
    assert "c000.wav.png exists and this run did not write it" in capsys.readouterr().err
    assert (out / "c000.wav.png").read_bytes() == mine
    assert (out / ".notes.txt.0123abcd.tmp").exists()  # only this writer's temp files go


def test_a_second_run_into_a_folder_in_use_exits_2_naming_the_holder(inputs, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    holder = FolderLock(out)
    holder.acquire()
    try:
        assert predict(inputs, out) == 2
    finally:
        holder.release()
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert f"is in use by another a2i run (pid {os.getpid()} on " in err
    assert list(out.iterdir()) == []  # the refused run wrote nothing
    assert predict(inputs, out) == 0  # released: the folder is free again
    assert_complete(inputs, out)


def test_the_lock_of_a_killed_run_does_not_block_the_next(inputs, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    hold = (
        "import sys, time; from a2i.io_utils import FolderLock; "
        "FolderLock(sys.argv[1]).acquire(); print('held', flush=True); time.sleep(600)"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    holder = subprocess.Popen(
        [sys.executable, "-c", hold, str(out)], stdout=subprocess.PIPE, text=True, env=env
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        assert predict(inputs, out) == 2
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert (out / FolderLock.NAME).exists()  # the killed holder's file stays, unlocked
    assert predict(inputs, out) == 0
    assert_complete(inputs, out)


@pytest.mark.parametrize("command", ["predict", "embed"])
def test_a_folder_without_audio_creates_no_output_folder(tmp_path, capsys, command):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("not audio")
    out = tmp_path / "out"
    assert predict(empty, out, command=command) == 2
    assert "no audio files in it" in capsys.readouterr().err
    assert not out.exists()


def refuse_after(monkeypatch, images: int, code: int) -> None:
    """The disk takes ``images`` PNGs, then refuses the next half-way through with ``code``."""
    real_save = Image.Image.save
    saved = []

    def save(self, fp, *args, **kwargs):
        if len(saved) == images:
            Path(fp).write_bytes(b"\x89PNG half")
            raise OSError(code, os.strerror(code))
        saved.append(fp)
        return real_save(self, fp, *args, **kwargs)

    monkeypatch.setattr(Image.Image, "save", save)


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EROFS, errno.EACCES])
def test_a_refused_image_is_one_line_and_leaves_no_partial_batch(
    inputs, tmp_path, capsys, monkeypatch, code
):
    out = tmp_path / "out"
    refuse_after(monkeypatch, images=5, code=code)  # mid-way through the second batch
    assert predict(inputs, out) == 2
    err = capsys.readouterr().err.strip()
    assert err.splitlines() == [
        f"a2i: error: cannot write '{out / 'c005.wav.png'}': {os.strerror(code)} (the run "
        "stopped; 4 images written, finished work is kept: fix this and rerun the same command "
        "to resume)"
    ]
    assert_no_partial_work(out)
    assert len(list(out.glob("c*.png"))) == 4
    monkeypatch.undo()
    assert predict(inputs, out) == 0
    assert_complete(inputs, out)


def test_a_manifest_the_disk_cuts_short_is_cut_back(inputs, tmp_path, capsys, monkeypatch):
    out = tmp_path / "out"
    real_write = os.write
    appends = []

    def write(fd, data):
        if os.readlink(f"/proc/self/fd/{fd}").endswith(MANIFEST) and b'"status"' in bytes(data):
            appends.append(fd)
            if len(appends) == 2:  # the second batch's rows: half of them fit
                real_write(fd, bytes(data[: len(data) // 2]))
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", write)
    assert predict(inputs, out) == 2
    assert f"cannot write '{out / MANIFEST}': No space left on device" in capsys.readouterr().err
    assert (out / MANIFEST).read_text().endswith("}\n")
    assert_no_partial_work(out)
    monkeypatch.undo()
    assert predict(inputs, out) == 0
    assert_complete(inputs, out)


@pytest.fixture
def small_disk(tmp_path):
    """A 40 KiB tmpfs (skipped where mounting needs a root this process is not)."""
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=40k", "tmpfs", str(disk)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    yield disk
    subprocess.run(["umount", str(disk)], check=True)


def test_a_real_full_disk_is_one_line_and_the_rerun_resumes(tmp_path, small_disk, capsys):
    inputs = tiny_wavs(tmp_path / "in", 16)  # 4 KiB blocks: ~8 of 16 images fit
    out = small_disk / "out"
    assert predict(inputs, out) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "No space left on device" in err
    assert_no_partial_work(out)
    subprocess.run(["mount", "-o", "remount,size=4m", str(small_disk)], check=True)
    assert predict(inputs, out) == 0
    assert_complete(inputs, out)


def test_a_read_only_folder_is_one_line(inputs, tmp_path, small_disk, capsys):
    subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)
    assert predict(inputs, small_disk / "out") == 2
    err = capsys.readouterr().err.strip()
    assert err == f"a2i: error: cannot write '{small_disk / 'out'}': Read-only file system"
    assert predict(inputs, small_disk) == 2  # the folder exists: its lock cannot be written
    assert capsys.readouterr().err.strip().endswith("Read-only file system")


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into any folder: no EACCES to see")
def test_a_folder_without_write_permission_is_one_line(inputs, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir(mode=0o555)
    assert predict(inputs, out) == 2
    assert capsys.readouterr().err.strip().endswith("Permission denied")
    assert list(out.iterdir()) == []


def cli_process(command: str, inputs: Path, out: Path, *extra: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, "-m", "a2i.cli", *run_args(command, inputs, out, *extra)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def image_count(out: Path) -> int:
    return len(list(out.glob("c*.png")))


@pytest.mark.slow
def test_kills_at_random_instants_lose_at_most_the_batch_in_flight(tmp_path):
    """SIGKILL at random instants of the writing, rerun after each: the end is complete.

    Each kill comes a random 0-250 ms after the run's first new image appears: most land
    mid-batch, between images or between the images and their rows.
    """
    inputs = tiny_wavs(tmp_path / "in", 40)
    out = tmp_path / "out"
    rng = random.Random(25)
    kills = 0
    for _ in range(4):
        before = image_count(out)
        run = cli_process("predict", inputs, out, "--data.init_args.batch_size", "8")
        while run.poll() is None and image_count(out) == before:
            time.sleep(0.001)
        time.sleep(rng.uniform(0.0, 0.25))
        if run.poll() is None:
            run.send_signal(signal.SIGKILL)
            kills += 1
        run.communicate()
    final = cli_process("predict", inputs, out, "--data.init_args.batch_size", "8")
    _, stderr = final.communicate()
    assert final.returncode == 0, stderr
    assert kills >= 1
    assert_complete(inputs, out)


@pytest.mark.slow
def test_two_concurrent_runs_do_each_input_once(tmp_path):
    inputs = tiny_wavs(tmp_path / "in", 40)
    out = tmp_path / "out"
    runs = [cli_process("predict", inputs, out) for _ in range(2)]
    results = [(run.pid, *run.communicate(), run.returncode) for run in runs]
    codes = sorted(code for *_, code in results)
    assert codes in ([0, 0], [0, 2])
    for pid, _, stderr, code in results:
        if code == 2:
            (other,) = [p for p, *_ in results if p != pid]
            assert f"in use by another a2i run (pid {other} on " in stderr
    _, rows = read_manifest(out)
    assert len(rows) == 40  # no input done twice, none recorded as failed
    assert_complete(inputs, out)
