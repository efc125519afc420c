"""``a2i predict``/``embed`` on folders nobody here made: every decodable format, odd names (issue 25).

The shipped tiny GAN config draws without training, so these run the real CLI in seconds.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import pytest
import soundfile as sf
from cli_runs import a2i_status

from a2i.pipelines.writer import read_manifest

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = str(ROOT / "configs" / "tiny" / "sound2vision_gan_shipped.yaml")
RATE = 16000
ESCAPE_NAME = "evil\x1b]0;pwned\x07\x1b[2K.wav"
"""Retitles the terminal and erases its own line when printed raw."""


def run(command: str, inputs: Path, out: Path, *extra: str) -> int:
    args = [command, "--config", SHIPPED, "--audio_dir", str(inputs), "--output_dir", str(out)]
    return a2i_status([*args, *extra])


def tone(seconds: float = 0.5, rate: int = RATE) -> np.ndarray:
    t = np.arange(round(seconds * rate)) / rate
    return (0.3 * np.sin(2 * np.pi * 440.0 * t)).astype(np.float32)


def write_mov(path: Path) -> None:
    """A QuickTime movie whose only stream is PCM audio (as a camera's soundtrack is read)."""
    with av.open(str(path), "w", format="mov") as container:
        stream = container.add_stream("pcm_s16le", rate=RATE, layout="mono")
        frame = av.AudioFrame.from_ndarray(
            (tone()[None] * 32767).astype(np.int16), format="s16", layout="mono"
        )
        frame.sample_rate = RATE
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            container.mux(packet)


@pytest.fixture(scope="module")
def foreign_formats(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Only formats the old hand list skipped (.opus .oga .aiff .aif .mov), plus two non-audio files."""
    folder = tmp_path_factory.mktemp("foreign")
    sf.write(folder / "voice.opus", tone(rate=48000), 48000, format="OGG", subtype="OPUS")
    sf.write(folder / "rain.oga", tone(), RATE, format="OGG", subtype="VORBIS")
    sf.write(folder / "bell.aiff", tone(), RATE, format="AIFF")
    sf.write(folder / "drum.aif", tone(), RATE, format="AIFF")
    write_mov(folder / "camera.mov")
    (folder / "notes.txt").write_text("not a sound\n")
    (folder / "cover.jpg").write_bytes(b"\xff\xd8\xff\xe0 not decoded")
    return folder


AUDIO = {"voice.opus", "rain.oga", "bell.aiff", "drum.aif", "camera.mov"}


@pytest.mark.parametrize(("command", "noun"), [("predict", "images"), ("embed", "embeddings")])
def test_every_format_the_decoders_read_is_an_input_and_the_rest_is_named(
    foreign_formats, tmp_path, capsys, command, noun
):
    out = tmp_path / "out"
    assert run(command, foreign_formats, out) == 0
    printed = capsys.readouterr().out
    _, rows = read_manifest(out)
    assert {r["input"] for r in rows if r["status"] == "ok"} == AUDIO
    assert f"a2i {command}: 5 {noun} written" in printed
    assert "0 failed, 2 files skipped as not audio" in printed
    assert "not audio (skipped): cover.jpg" in printed
    assert "not audio (skipped): notes.txt" in printed


def test_a_bad_input_counts_once_whatever_the_seeds(tmp_path, capsys):
    inputs = tmp_path / "in"
    inputs.mkdir()
    sf.write(inputs / "good.wav", tone(), RATE)
    (inputs / "broken.wav").write_bytes(b"RIFF....WAVEfmt ")
    assert run("predict", inputs, tmp_path / "out", "--num_seeds", "2") == 1
    captured = capsys.readouterr()
    assert "2 images written, 0 inputs already done" in captured.out
    assert ", 1 failed → " in captured.out
    failed = [line for line in captured.err.splitlines() if line.startswith("  failed: ")]
    assert len(failed) == 1 and failed[0].startswith("  failed: broken.wav: ")


def test_a_broken_link_named_as_audio_fails_by_name(tmp_path, capsys):
    inputs = tmp_path / "in"
    inputs.mkdir()
    sf.write(inputs / "good.wav", tone(), RATE)
    (inputs / "gone.wav").symlink_to(tmp_path / "deleted.wav")
    assert run("predict", inputs, tmp_path / "out") == 1
    err = capsys.readouterr().err
    assert f"  failed: gone.wav: cannot read audio file '{inputs / 'gone.wav'}': broken link" in err
    _, rows = read_manifest(tmp_path / "out")
    assert {(r["input"], r["status"]) for r in rows} == {("good.wav", "ok"), ("gone.wav", "failed")}


def test_an_empty_folder_of_other_files_says_what_it_holds(tmp_path, capsys):
    inputs = tmp_path / "in"
    inputs.mkdir()
    (inputs / "a.txt").write_text("x")
    (inputs / "b.txt").write_text("x")
    assert run("embed", inputs, tmp_path / "out") == 2
    assert "2 other files: .txt 2" in capsys.readouterr().err


def test_a_name_holding_terminal_escapes_is_printed_escaped(tmp_path, capsys):
    inputs = tmp_path / "in"
    inputs.mkdir()
    sf.write(inputs / "good.wav", tone(), RATE)
    (inputs / ESCAPE_NAME).write_bytes(b"RIFF but not audio")
    (inputs / "notes\x1b[8m.txt").write_text("hidden text")
    assert run("predict", inputs, tmp_path / "out") == 1
    captured = capsys.readouterr()
    console = captured.out + captured.err
    assert "\x1b" not in console and "\x07" not in console
    assert "  failed: evil\\x1b]0;pwned\\x07\\x1b[2K.wav: cannot read audio file" in captured.err
    assert "  not audio (skipped): notes\\x1b[8m.txt" in captured.out


@pytest.mark.slow  # a fresh process: the console a user sees, Lightning's and C libraries' lines included
def test_the_console_holds_only_a2i_lines_with_names_escaped(tmp_path):
    """Issue 25 items 15 and 16, in a real process: what a user's terminal receives."""
    inputs = tmp_path / "in"
    inputs.mkdir()
    sf.write(inputs / "good.wav", tone(), RATE)
    (inputs / ESCAPE_NAME).write_bytes(b"RIFF but not audio")
    (inputs / "random.mp3").write_bytes(np.random.default_rng(0).bytes(4096))
    args = ["predict", "--config", SHIPPED, "--audio_dir", str(inputs)]
    args += ["--output_dir", str(tmp_path / "out"), "--trainer.limit_val_batches", "1"]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "a2i.cli", *args], env=env, capture_output=True, timeout=300
    )
    assert done.returncode == 1
    console = (done.stdout + done.stderr).decode()
    assert "\x1b" not in console and "\x07" not in console
    assert "failed: evil\\x1b]0;pwned\\x07\\x1b[2K.wav: cannot read audio file" in console
    assert "failed: random.mp3: " in console
    foreign = [
        line for line in console.splitlines() if not line.startswith(("a2i predict: ", "  "))
    ]
    assert foreign == []  # no Lightning "Trainer(limit_val_batches=1)", no libmpg123 notes


@pytest.mark.parametrize("seed", ["18446744073709551615", "-1"])
def test_a_seed_outside_torchs_range_is_one_line_before_any_output(tmp_path, capsys, seed):
    """The last seed 2**64 (2**64 - 1 and --num_seeds 2) raised a traceback mid-run; -1 drew
    silently what 2**64 - 1 draws."""
    inputs = tmp_path / "in"
    inputs.mkdir()
    sf.write(inputs / "good.wav", tone(), RATE)
    assert run("predict", inputs, tmp_path / "out", "--seed", seed, "--num_seeds", "2") == 2
    assert "seeds must be in [0, 18446744073709551615]" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
