"""``a2i embed``: a folder of audio → one ``.npy`` per file; bad files named, resumable (issue 15)."""

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from cli_runs import run_on_folder

from a2i.cli import main
from a2i.methods.sound2vision import Sound2Vision
from a2i.pipelines import AudioToImagePipeline
from a2i.pipelines.embedding import load_embeddings
from a2i.pipelines.writer import read_manifest

pytestmark = pytest.mark.slow  # every test embeds with a run the real CLI trained


def embed(run: Path, inputs: Path, out: Path, *extra: str, config: Path | None = None) -> int:
    return run_on_folder("embed", run, inputs, out, *extra, config=config)


def audio_folder(folder: Path, count: int) -> Path:
    """``count`` tones (one in a sub-folder), a text file named .wav and an empty .wav."""
    for i in range(count):
        t = np.arange(round((0.5 + 0.3 * i) * 16000)) / 16000
        path = folder / ("sub" if i == 0 else "") / f"clip{i}.wav"
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(path, (0.3 * np.sin(2 * np.pi * 150.0 * (i + 1) * t)).astype(np.float32), 16000)
    (folder / "notes.wav").write_text("these are not samples\n")
    (folder / "empty.wav").write_bytes(b"")
    return folder


def mtimes(folder: Path) -> dict[str, int]:
    return {str(p.relative_to(folder)): p.stat().st_mtime_ns for p in folder.rglob("*.npy")}


def test_folder_with_bad_files_embeds_the_others_names_the_bad_ones_and_exits_1(
    gan_run, tmp_path, capsys
):
    inputs = audio_folder(tmp_path / "in", 3)
    out = tmp_path / "out"
    assert embed(gan_run, inputs, out) == 1
    captured = capsys.readouterr()
    failed = [line for line in captured.err.splitlines() if "failed:" in line]
    assert len(failed) == 2
    assert any("empty.wav" in line and "cannot read audio file" in line for line in failed)
    assert any("notes.wav" in line and "cannot read audio file" in line for line in failed)
    assert "3 embeddings written, 0 inputs already done" in captured.out
    keys, embeddings = load_embeddings(out)
    assert keys == ["clip1.wav", "clip2.wav", "sub/clip0.wav"]
    assert embeddings.shape == (3, 64) and embeddings.dtype == np.float32
    assert (out / "sub" / "clip0.wav.npy").is_file()
    _, rows = read_manifest(out)
    ok = {r["input"]: r for r in rows if r["status"] == "ok"}
    assert ok["clip2.wav"]["dim"] == 64 and ok["clip2.wav"]["duration"] == pytest.approx(1.1)
    # each file holds the method's audio_features of the window it heard
    pipe = AudioToImagePipeline.from_run(gan_run / "checkpoints" / "last.ckpt")
    with torch.no_grad():
        expected = pipe.model.audio_features(pipe.read(inputs / "clip2.wav")[0][None])[0]
    assert np.allclose(np.load(out / "clip2.wav.npy"), expected.numpy(), atol=1e-5)


def test_rerun_skips_done_files_and_a_killed_run_resumes(gan_run, tmp_path, monkeypatch, capsys):
    inputs = audio_folder(tmp_path / "in", 6)  # 6 good files: batches of 4 (the run's) and 2
    out = tmp_path / "out"
    real = Sound2Vision.audio_features
    embedded: list[int] = []

    def dies_after_one_batch(self, waveform):
        if embedded:
            raise KeyboardInterrupt  # the kill
        embedded.append(len(waveform))
        return real(self, waveform)

    monkeypatch.setattr(Sound2Vision, "audio_features", dies_after_one_batch)
    with pytest.raises(KeyboardInterrupt):
        embed(gan_run, inputs, out)
    assert len(load_embeddings(out)[0]) == 4

    def counting(self, waveform):
        embedded.append(len(waveform))
        return real(self, waveform)

    monkeypatch.setattr(Sound2Vision, "audio_features", counting)
    first = mtimes(out)
    assert embed(gan_run, inputs, out) == 1  # the two bad files fail again
    assert embedded == [4, 2]  # only what the kill left
    assert all(mtimes(out)[name] == stamp for name, stamp in first.items())
    capsys.readouterr()
    done, manifest = mtimes(out), (out / "manifest.jsonl").read_bytes()
    assert embed(gan_run, inputs, out) == 1
    assert embedded == [4, 2]  # nothing recomputed
    assert mtimes(out) == done and (out / "manifest.jsonl").read_bytes() == manifest
    assert "0 embeddings written, 6 inputs already done" in capsys.readouterr().out


def test_rerun_with_other_settings_is_refused_unless_overwrite(gan_run, tmp_path, capsys):
    inputs = audio_folder(tmp_path / "in", 1)
    out = tmp_path / "out"
    assert embed(gan_run, inputs, out) == 1
    before = mtimes(out)
    capsys.readouterr()
    assert embed(gan_run, inputs, out, "--crop", "center") == 2
    err = capsys.readouterr().err
    assert "holds embeddings made with other settings (crop 'start' → 'center')" in err
    assert mtimes(out) == before
    assert embed(gan_run, inputs, out, "--crop", "center", "--overwrite", "true") == 1
    request, _ = read_manifest(out)
    assert request["crop"] == "center"


def test_method_without_audio_features_is_one_clear_line(audiotoken_run, tmp_path, capsys):
    inputs = audio_folder(tmp_path / "in", 1)
    assert embed(audiotoken_run, inputs, tmp_path / "out") == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "AudioToken has no audio embedding (audio_features)" in err
    assert not (tmp_path / "out").exists()


def test_missing_audio_dir_is_refused_before_anything_is_built(gan_run, tmp_path, capsys):
    ckpt = str(gan_run / "checkpoints" / "last.ckpt")
    args = ["embed", "--config", str(gan_run / "config.yaml"), "--ckpt_path", ckpt]
    with pytest.raises(SystemExit) as info:
        main([*args, "--output_dir", str(tmp_path / "out")])
    assert info.value.code == 2
    assert "a2i embed needs --audio_dir" in capsys.readouterr().err
