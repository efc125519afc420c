"""The real ``a2i`` command guides a newcomer: typos, help, progress and where a run went."""

import contextlib
import os
import pty
import subprocess
import sys
from pathlib import Path

import pytest

from a2i.cli import main
from a2i.commands import next_steps
from a2i.errors import ConfigError
from a2i.pipelines.loading import find_run
from a2i.pipelines.progress import FolderProgress, ProgressLines
from a2i.runtime import Ranks

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "tests" / "conf"
GAN = str(CONF / "sound2vision_gan.yaml")


def exit_code(args):
    with pytest.raises(SystemExit) as info:
        main(args)
    return info.value.code


@pytest.mark.parametrize("command", ["fit", "test", "predict"])
def test_an_abbreviated_option_is_refused_with_the_full_one(command, capsys):
    assert exit_code([command, "--config", GAN, "--trainer.max_step", "5"]) == 2
    assert capsys.readouterr().err.splitlines() == [
        "a2i: error: unknown option --trainer.max_step (did you mean '--trainer.max_steps'?)",
        f"(options: a2i {command} --help)",
    ]


def test_a_mistyped_option_suggests_the_closest_one(capsys):
    assert exit_code(["fit", "--config", GAN, "--trainer.max_stpes", "5"]) == 2
    err = capsys.readouterr().err
    assert "unknown option --trainer.max_stpes (did you mean '--trainer.max_steps'?)" in err


def test_a_mistyped_command_suggests_the_closest_one(capsys):
    assert exit_code(["fitt", "--config", GAN]) == 2
    assert "invalid subcommand 'fitt' (did you mean 'fit'?)" in capsys.readouterr().err


def test_a_tool_refuses_an_abbreviated_option(tmp_path, capsys):
    assert exit_code(["world", "--ou", str(tmp_path / "w")]) == 2
    assert "--out" in capsys.readouterr().err and not (tmp_path / "w").exists()


@pytest.mark.parametrize("command", ["fit", "predict"])
def test_help_starts_with_the_shipped_configs_and_methods_in_plain_text(command, capsys):
    assert exit_code([command, "--help"]) == 0
    out = capsys.readouterr().out
    head = "\n".join(out.splitlines()[:40])
    assert out.startswith(f"usage: a2i {command} [-h]")
    assert "configs shipped with a2i (--config NAME): audiotoken," in head
    assert "methods (--model.class_path): a2i.methods.audiotoken.AudioToken," in head
    for markup in (":class:", ":meth:", ":func:", "``", ".. note::", ".. warning::"):
        assert markup not in out, markup


def test_plain_text_renders_docstring_markup():
    from a2i.commands.catalog import plain_text

    assert plain_text("Lightning's ``Trainer`` and :class:`~a2i.interfaces.Crop`") == (
        "Lightning's Trainer and Crop"
    )
    assert plain_text(":meth:`the loop <a.b.run>`; .. note:: Example:: x") == (
        "the loop; Note: Example: x"
    )


def run_a2i(args, cwd, **kwargs):
    """The installed command as a user runs it: a new process, with this tree's a2i."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}
    return subprocess.run(
        [sys.executable, "-m", "a2i", *args], cwd=cwd, env=env, text=True, **kwargs
    )


@pytest.fixture(scope="module")
def fit_log(tmp_path_factory):
    """``a2i fit`` with its output captured (not a terminal): the folder and what it printed."""
    folder = tmp_path_factory.mktemp("fit")
    done = run_a2i(
        ["fit", "--config", GAN, "--trainer.max_steps", "4"],
        folder,
        capture_output=True,
        check=True,
    )
    return folder, done.stdout


def test_fit_off_a_terminal_prints_progress_lines(fit_log):
    _, out = fit_log
    steps = [line for line in out.splitlines() if line.startswith("Step ")]
    assert [line.split(",")[0] for line in steps] == [
        "Step 1/4 (25%)",
        "Step 2/4 (50%)",
        "Step 3/4 (75%)",
        "Step 4/4 (100%)",
    ]
    assert all("train/loss " in line and "eta " in line for line in steps)
    assert "\r" not in out and "━" not in out


def test_fit_names_its_run_checkpoint_and_next_commands(fit_log):
    folder, out = fit_log
    run = Path("runs/lightning_logs/version_0")
    assert f"a2i fit: run folder {run}" in out
    assert f"checkpoint: {run}/checkpoints/last.ckpt" in out
    lines = out.splitlines()
    commands = lines[lines.index("next (SOUNDS_DIR: a folder of audio files):") + 1 :]
    with contextlib.chdir(folder):  # spelled from where fit ran
        a2i = next_steps.executable("a2i", "a2i")
    assert commands[0] == (  # a world run: with the world's evaluation report
        f"  {a2i} test --config {run}/config.yaml --config eval/world "
        f"--ckpt_path {run}/checkpoints/last.ckpt"
    )
    assert (
        f"predict --config {run}/config.yaml --ckpt_path {run}/checkpoints/last.ckpt"
        in (commands[1])
    )
    assert f"--audio_dir SOUNDS_DIR --output_dir {run}/predictions" in commands[1]
    assert commands[2] == f"  {a2i} serve --run {run}"
    assert (folder / run / "config.yaml").is_file()


@pytest.mark.slow
def test_the_printed_test_command_runs_as_printed(fit_log):
    folder, out = fit_log
    lines = out.splitlines()
    printed = lines[lines.index("next (SOUNDS_DIR: a folder of audio files):") + 1].strip()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(printed, shell=True, cwd=folder, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "Evaluation report written to " in done.stderr  # the world's full report


@pytest.mark.slow
def test_fit_in_a_terminal_draws_the_final_bar_once_before_the_stop_line(tmp_path):
    """The stop line used to be logged under the live bar, whose last redraw wiped it."""
    main_end, child_end = pty.openpty()
    process = run_a2i(
        ["fit", "--config", GAN, "--trainer.max_steps", "2"],
        tmp_path,
        stdin=subprocess.DEVNULL,
        stdout=child_end,
        stderr=child_end,
        check=False,
    )
    os.close(child_end)
    chunks = []
    with contextlib.suppress(OSError):  # (EIO once the process and its terminal are gone)
        while chunk := os.read(main_end, 65536):
            chunks.append(chunk)
    os.close(main_end)
    screen = b"".join(chunks).decode(errors="replace")
    assert process.returncode == 0, screen
    after = screen[screen.index("`Trainer.fit` stopped") :]
    assert "\x1b[1A" not in after and "━" not in after  # nothing redrawn over or below it


def test_executable_is_spelled_as_this_machine_runs_it(tmp_path, monkeypatch):
    bin_dir = tmp_path / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    for name in ("python", "a2i"):
        (bin_dir / name).write_text("#!/bin/sh\n")
        (bin_dir / name).chmod(0o755)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "executable", str(bin_dir / "python"))
    monkeypatch.setenv("PATH", "/nonexistent")
    assert next_steps.executable("a2i", "a2i") == ".venv/bin/a2i"
    monkeypatch.setenv("PATH", str(bin_dir))
    assert next_steps.executable("a2i", "a2i") == "a2i"
    assert next_steps.executable("tensorboard", "tensorboard.main") == (
        "python -m tensorboard.main"
    )
    monkeypatch.setenv("PATH", "/nonexistent")
    assert next_steps.executable("tensorboard", "tensorboard.main") == (
        ".venv/bin/python -m tensorboard.main"
    )


def fake_run(folder: Path) -> Path:
    (folder / "checkpoints").mkdir(parents=True)
    (folder / "checkpoints" / "last.ckpt").write_bytes(b"")
    (folder / "config.yaml").write_text("model: {class_path: a.B}\n")
    return folder


def test_find_run_finds_the_run_inside_a_demo_folder_or_lists_them(tmp_path):
    demo = tmp_path / "demo" / "20261205-065323"
    gan = fake_run(demo / "logs" / "gan" / "version_0")
    (demo / "configs").mkdir()
    (demo / "configs" / "ldm.yaml").write_text("model: {class_path: a.B}\n")
    assert find_run(demo) == (gan, gan / "config.yaml", gan / "checkpoints" / "last.ckpt")
    other = fake_run(demo / "logs" / "gan" / "version_1")
    with pytest.raises(ConfigError, match="holds 2 runs, pass one of them") as error:
        find_run(demo)
    assert str(gan) in str(error.value) and str(other) in str(error.value)


def test_progress_lines_come_every_tenth_and_every_minute(capsys):
    now = [0.0]
    lines = ProgressLines("Step", 1000, unit="it", clock=lambda: now[0])
    for done in range(1, 1001):
        now[0] = done * 0.5  # 2 it/s: a tenth takes 50 s
        lines.update(done)
    printed = capsys.readouterr().out.splitlines()
    assert printed[0] == "Step 100/1000 (10%), 2 it/s, eta 7:30"
    assert len(printed) == 10 and printed[-1] == "Step 1000/1000 (100%), 2 it/s, eta 0:00"
    slow = ProgressLines("a2i predict:", 1000, unit="input", clock=lambda: now[0])
    now[0] += 61.0
    slow.update(1)
    assert capsys.readouterr().out == "a2i predict: 1/1000 (0%), 61 s/input, eta 16:55:39\n"


def test_folder_progress_prints_nothing_when_nothing_is_left(capsys):
    progress = FolderProgress("embed", 0)
    progress.close()
    assert capsys.readouterr().out == ""


def test_rank_0_says_its_bar_is_its_share_of_the_ranks(capsys):
    progress = FolderProgress("predict", 4, ranks=Ranks(0, 2))
    progress.advance(4)
    progress.close()
    assert (
        capsys.readouterr()
        .out.splitlines()[-1]
        .startswith("a2i predict (rank 0's share of 2): 4/4 (100%)")
    )


def test_the_demo_ends_with_runnable_commands_for_its_runs(tmp_path, monkeypatch):
    from a2i.demo import next_commands

    monkeypatch.chdir(tmp_path)
    out = Path("runs/demo/20261205-065323")
    run = fake_run(out / "logs" / "gan" / "version_0")
    a2i = next_steps.executable("a2i", "a2i")
    lines = next_commands(out, ["ldm", "gan"])
    assert lines[0] == (
        f"{a2i} test --config {run}/config.yaml --config eval/world "
        f"--ckpt_path {run}/checkpoints/last.ckpt"
    )
    assert lines[1] == (
        f"{a2i} predict --config {out}/configs/ldm.yaml --audio_dir {out}/world/audio/test "
        f"--output_dir {out}/images/ldm_again"
    )
    assert f"--ckpt_path {run}/checkpoints/last.ckpt" in lines[2]
    assert lines[3] == f"{a2i} serve"
    tensorboard = next_steps.executable("tensorboard", "tensorboard.main")
    assert lines[4] == f"{tensorboard} --logdir {out}/logs"
