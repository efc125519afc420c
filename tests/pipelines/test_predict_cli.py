"""``a2i predict`` never loses an input, never passes old images off as new, resumes (issue 13)."""

import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from cli_runs import run_on_folder
from PIL import Image

from a2i.cli import main
from a2i.pipelines import AudioToImagePipeline
from a2i.pipelines.writer import read_manifest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow  # every test predicts from a run the real CLI trained


def predict(run: Path, inputs: Path, out: Path, *extra: str, config: Path | None = None) -> int:
    logs = ("--trainer.logger.init_args.save_dir", str(out.parent / "logs"))
    return run_on_folder("predict", run, inputs, out, *logs, *extra, config=config)


def tone_folder(folder: Path, seconds: list[float]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i, length in enumerate(seconds):
        t = np.arange(round(length * 16000)) / 16000
        wave = (0.3 * np.sin(2 * np.pi * 200.0 * (i + 1) * t)).astype(np.float32)
        sf.write(folder / f"clip{i}.wav", wave, 16000)
    return folder


def snapshot(folder: Path) -> dict[str, int]:
    return {str(p.relative_to(folder)): p.stat().st_mtime_ns for p in folder.rglob("*")}


def test_inputs_differing_only_in_extension_get_their_own_images(gan_run, tmp_path):
    inputs = tone_folder(tmp_path / "in", [1.0])
    wave, rate = sf.read(inputs / "clip0.wav")
    sf.write(inputs / "clip0.flac", wave[::-1].copy(), rate)  # another sound, same stem
    assert predict(gan_run, inputs, tmp_path / "out") == 0
    _, rows = read_manifest(tmp_path / "out")
    assert {(r["input"], r["output"], r["status"]) for r in rows} == {
        ("clip0.wav", "clip0.wav.png", "ok"),
        ("clip0.flac", "clip0.flac.png", "ok"),
    }
    out = tmp_path / "out"
    assert (out / "clip0.wav.png").read_bytes() != (out / "clip0.flac.png").read_bytes()


def test_rerun_with_other_settings_is_refused_and_names_the_difference(
    gan_run, ldm_run, tmp_path, capsys
):
    inputs = tone_folder(tmp_path / "in", [1.0, 0.5])
    out = tmp_path / "out"
    assert predict(gan_run, inputs, out) == 0
    before = snapshot(out)
    assert predict(gan_run, inputs, out, "--gain_db", "6") == 2
    assert "holds images made with other settings (gain_db 0.0 → 6.0)" in capsys.readouterr().err
    assert predict(gan_run, inputs, out, "--num_seeds", "2") == 2
    assert "seeds [0] → [0, 1]" in capsys.readouterr().err
    assert snapshot(out) == before
    # another checkpoint of the same method
    other = tmp_path / "other_run"
    shutil.copytree(gan_run, other)
    (other / "checkpoints" / "last.ckpt").touch()
    assert predict(other, inputs, out) == 2
    assert "checkpoint" in capsys.readouterr().err
    assert snapshot(out) == before
    # --overwrite true replaces them, and the manifest records the new request
    assert predict(gan_run, inputs, out, "--gain_db", "6", "--overwrite", "true") == 0
    request, rows = read_manifest(out)
    assert request["gain_db"] == 6.0 and len(rows) == 2


def test_killed_run_keeps_its_manifest_and_resumes_without_recomputing(
    gan_run, tmp_path, monkeypatch, capsys
):
    inputs = tone_folder(tmp_path / "in", [1.0] * 6)  # 2 batches of 4 (the run's batch size)
    out = tmp_path / "out"
    real_run = AudioToImagePipeline.run
    computed: list[int] = []

    def dies_after_one_batch(self, sources, request, output_type="pt"):
        if computed:
            raise KeyboardInterrupt  # the kill
        computed.append(len(sources))
        return real_run(self, sources, request, output_type)

    monkeypatch.setattr(AudioToImagePipeline, "run", dies_after_one_batch)
    with pytest.raises(KeyboardInterrupt):
        predict(gan_run, inputs, out)
    _, rows = read_manifest(out)
    assert [r["input"] for r in rows] == [f"clip{i}.wav" for i in range(4)]

    def counting(self, sources, request, output_type="pt"):
        computed.append(len(sources))
        return real_run(self, sources, request, output_type)

    monkeypatch.setattr(AudioToImagePipeline, "run", counting)
    first = snapshot(out)
    assert predict(gan_run, inputs, out) == 0
    assert computed == [4, 2]  # only the two inputs the kill left
    assert all(snapshot(out)[f"clip{i}.wav.png"] == first[f"clip{i}.wav.png"] for i in range(4))
    capsys.readouterr()
    done = snapshot(out)
    manifest = (out / "manifest.jsonl").read_bytes()
    assert predict(gan_run, inputs, out) == 0  # a third run: nothing to do, nothing changes
    assert computed == [4, 2]
    assert snapshot(out) == done and (out / "manifest.jsonl").read_bytes() == manifest
    assert "0 images written, 6 inputs already done" in capsys.readouterr().out


def test_checkpoint_of_another_method_or_generator_is_one_clear_line(
    gan_run, ldm_run, audiotoken_run, tmp_path, capsys
):
    inputs = tone_folder(tmp_path / "in", [1.0])
    code = predict(ldm_run, inputs, tmp_path / "a", config=gan_run / "config.yaml")
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "generator = a2i.generators.latent_diffusion.LatentDiffusionGenerator" in err
    assert "config: a2i.generators.biggan.BigGANGenerator" in err
    code = predict(gan_run, inputs, tmp_path / "b", config=audiotoken_run / "config.yaml")
    err = capsys.readouterr().err
    assert code == 2
    assert "written by a2i.methods.sound2vision.Sound2Vision" in err and "AudioToken" in err
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_config_settings_apply_with_a_checkpoint(ldm_run, tmp_path):
    inputs = tone_folder(tmp_path / "in", [1.0])
    assert predict(ldm_run, inputs, tmp_path / "two") == 0
    steps = "--model.init_args.generator.init_args.num_inference_steps"
    assert predict(ldm_run, inputs, tmp_path / "five", steps, "5") == 0
    two = (tmp_path / "two" / "clip0.wav.png").read_bytes()
    assert two != (tmp_path / "five" / "clip0.wav.png").read_bytes()


@pytest.mark.parametrize(
    ("drop", "message"),
    [
        ("--ckpt_path", "a2i predict needs --ckpt_path"),
        ("--output_dir", "a2i predict needs --output_dir"),
    ],
)
def test_missing_checkpoint_or_output_folder_is_refused(gan_run, tmp_path, capsys, drop, message):
    args = [
        "predict",
        "--config",
        str(gan_run / "config.yaml"),
        "--ckpt_path",
        str(gan_run / "checkpoints" / "last.ckpt"),
        "--audio_dir",
        str(tone_folder(tmp_path / "in", [1.0])),
        "--output_dir",
        str(tmp_path / "out"),
    ]
    index = args.index(drop)
    del args[index : index + 2]
    with pytest.raises(SystemExit) as info:
        main(args)
    assert info.value.code == 2
    assert message in capsys.readouterr().err


def test_user_errors_are_one_line_before_anything_is_computed(gan_run, tmp_path, capsys):
    inputs = tone_folder(tmp_path / "in", [1.0])
    missing = tmp_path / "nope.ckpt"
    args = ["predict", "--config", str(gan_run / "config.yaml"), "--audio_dir", str(inputs)]
    with pytest.raises(SystemExit) as info:
        main([*args, "--ckpt_path", str(missing), "--output_dir", str(tmp_path / "o")])
    assert info.value.code == 2
    assert capsys.readouterr().err.strip() == (
        f"a2i: error: --ckpt_path '{missing}' does not exist (or is not a file)"
    )
    a_file = tmp_path / "taken"
    a_file.write_text("x")
    ckpt = str(gan_run / "checkpoints" / "last.ckpt")
    with pytest.raises(SystemExit) as info:
        main([*args, "--ckpt_path", ckpt, "--output_dir", str(a_file)])
    assert info.value.code == 2
    assert "is a file, not a folder" in capsys.readouterr().err


def test_bare_mix_with_path_is_accepted(gan_run, tmp_path):
    inputs = tone_folder(tmp_path / "in", [1.0])
    other = tone_folder(tmp_path / "other", [1.0, 1.0]) / "clip1.wav"
    assert predict(gan_run, inputs, tmp_path / "out", "--mix_with", str(other)) == 0
    request, _ = read_manifest(tmp_path / "out")
    assert str(other) in request["mix_with"][0]


def test_crop_and_padding_are_reported_and_durations_recorded(gan_run, tmp_path, capsys):
    inputs = tone_folder(tmp_path / "in", [0.25, 1.0, 3.0])  # the model hears 1 s
    out = tmp_path / "out"
    assert predict(gan_run, inputs, out, "--crop", "center") == 0
    printed = capsys.readouterr().out
    assert "a2i predict: 3/3 (100%), " in printed  # (progress: not a terminal)
    assert "1 longer inputs were cropped (--crop center), 1 shorter ones zero-padded" in printed
    _, rows = read_manifest(out)
    by_input = {r["input"]: r for r in rows}
    assert by_input["clip0.wav"]["duration"] == pytest.approx(0.25, abs=1e-3)
    assert by_input["clip2.wav"]["duration"] == pytest.approx(3.0, abs=1e-3)
    assert by_input["clip2.wav"]["offset"] == pytest.approx(1.0, abs=1e-3)


def test_predict_writes_no_logs_or_checkpoint_folders(gan_run, tmp_path):
    inputs = tone_folder(tmp_path / "in", [1.0])
    assert predict(gan_run, inputs, tmp_path / "out") == 0
    assert not (tmp_path / "logs").exists()


def test_a_folder_mixing_every_case_gives_one_image_per_good_input_and_a_stable_rerun(
    gan_run, tmp_path, capsys
):
    """Issue 13's acceptance: odd formats, broken files, duplicates by stem; then a rerun."""
    inputs = tone_folder(tmp_path / "in", [0.05, 1.0, 30.0])  # 50 ms, exact, long
    rng = np.random.default_rng(0)
    t = np.arange(12000) / 48000
    surround = np.stack([np.sin(2 * np.pi * 300 * (c + 1) * t) for c in range(6)], axis=1)
    sf.write(inputs / "surround.flac", (0.2 * surround).astype(np.float32), 48000)
    sf.write(inputs / "phone.wav", (0.2 * np.sin(2 * np.pi * 300 * t[:4000])), 8000)
    sf.write(inputs / "silence.wav", np.zeros(16000, dtype=np.float32), 16000)
    sf.write(inputs / "clip1.flac", (0.1 * rng.standard_normal(16000)).astype(np.float32), 16000)
    (inputs / "random.mp3").write_bytes(rng.bytes(4096))
    (inputs / "random.flac").write_bytes(rng.bytes(4096))
    (inputs / "empty.wav").write_bytes(b"")
    (inputs / "notes.ogg").write_text("not audio")
    (inputs / "cut.wav").write_bytes((inputs / "clip1.wav").read_bytes()[:1000])
    nan = np.zeros(16000, dtype=np.float32)
    nan[100] = np.nan
    sf.write(inputs / "nan.wav", nan, 16000, subtype="FLOAT")
    good = {"clip0.wav", "clip1.wav", "clip2.wav", "surround.flac", "phone.wav", "silence.wav"}
    good |= {"clip1.flac"}
    bad = {"random.mp3", "random.flac", "empty.wav", "notes.ogg", "cut.wav", "nan.wav"}
    out = tmp_path / "out"
    assert predict(gan_run, inputs, out) == 1
    err = capsys.readouterr().err
    _, rows = read_manifest(out)
    assert {r["input"] for r in rows if r["status"] == "ok"} == good
    assert {r["input"] for r in rows if r["status"] == "failed"} == bad
    assert all(f"failed: {name}" in err for name in bad)
    assert {p.name for p in out.glob("*.png")} == {f"{n}.png" for n in good} | {"grid.png"}
    before = snapshot(out)
    manifest = (out / "manifest.jsonl").read_bytes()
    assert predict(gan_run, inputs, out) == 1  # the same failures, named again
    err = capsys.readouterr().err
    assert all(f"failed: {name}" in err for name in bad)
    assert snapshot(out) == before and (out / "manifest.jsonl").read_bytes() == manifest


def test_manifest_comes_from_the_pipeline_and_no_logs_are_written(gan_run, sounds, tmp_path):
    paths, _ = sounds
    assert predict(gan_run, paths[0].parent, tmp_path / "out", "--num_seeds", "2") == 1  # broken
    _, rows = read_manifest(tmp_path / "out")
    assert sum(r["status"] == "ok" for r in rows) == 10
    assert not (tmp_path / "logs").exists()


def test_an_unsupported_control_is_refused_before_computing(gan_run, sounds, tmp_path, capsys):
    paths, _ = sounds
    assert predict(gan_run, paths[0].parent, tmp_path / "out", "--prompt", "a <audio>") == 2
    assert "does not support prompt" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_mix_and_image_controls_change_the_images(gan_run, sounds, tmp_path):
    paths, _ = sounds
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "one.wav").write_bytes(paths[2].read_bytes())
    photo = tmp_path / "photo.png"
    Image.new("RGB", (40, 40), (200, 30, 30)).save(photo)
    variants = {
        "plain": [],
        "mixed": ["--mix_with", f"[{paths[4]}]", "--mix_gains_db", "[-6]"],
        "blended": ["--image", str(photo), "--image_weight", "0.75"],
    }
    drawn = {}
    for name, extra in variants.items():
        assert predict(gan_run, folder, tmp_path / name, *extra) == 0
        drawn[name] = (tmp_path / name / "one.wav.png").read_bytes()
    assert drawn["mixed"] != drawn["plain"] and drawn["blended"] != drawn["plain"]


def test_published_weights_in_the_config_replace_the_checkpoint(gan_run, tmp_path):
    """The released encoder given as ``pretrained`` is the trained part: no --ckpt_path needed."""
    from a2i.pretrained import save_module

    model = AudioToImagePipeline.from_run(gan_run).model
    weights = tmp_path / "audio_encoder.safetensors"
    save_module(model.audio_encoder, weights)
    inputs = tone_folder(tmp_path / "in", [1.0])
    args = [
        "predict",
        "--config",
        str(gan_run / "config.yaml"),
        "--model.init_args.audio_encoder.init_args.pretrained",
        str(weights),
        "--audio_dir",
        str(inputs),
        "--output_dir",
        str(tmp_path / "out"),
    ]
    main(args)
    assert (tmp_path / "out" / "clip0.wav.png").exists()
