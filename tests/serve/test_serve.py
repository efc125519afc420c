"""``a2i serve`` without a browser: which models it offers, what it draws, what it refuses."""

from __future__ import annotations

import argparse
import os
import signal
import socket
import stat
import threading
from datetime import datetime
from pathlib import Path

import gradio as gr
import httpx
import numpy as np
import pytest
import soundfile as sf
import torch
import yaml
from crafted_audio import write_silent_flac
from PIL import Image

from a2i.audio.io import LOUDEST_SCAN_SAMPLES
from a2i.commands.serve import file_size, logins, main, parse, serving
from a2i.data.manifest import read_manifest
from a2i.errors import AudioDecodeError, ConfigError
from a2i.interfaces import GenerationRequest
from a2i.io_utils import current_umask
from a2i.pipelines import AudioToImagePipeline
from a2i.pipelines.loading import build_method
from a2i.serve.models import (
    SHIPPED_LABEL,
    Controls,
    ModelShelf,
    draw,
    entry_for,
    find_models,
    newest_demo_runs,
    offered_models,
    spectrogram_image,
)
from a2i.serve.server import address, is_loopback
from a2i.synth.judge import WorldJudge
from a2i.synth.materialize import materialize_world
from a2i.synth.world import SyntheticWorld

CONF = Path(__file__).resolve().parents[1] / "conf"


def fake_run(folder: Path, checkpoint: str | None = "last.ckpt", export: bool = False) -> Path:
    """The files discovery looks at (their contents are not read)."""
    folder.mkdir(parents=True)
    (folder / "config.yaml").write_text("model: {}\n")
    if checkpoint:
        (folder / "checkpoints").mkdir()
        (folder / "checkpoints" / checkpoint).write_bytes(b"")
    if export:
        (folder / "model.safetensors").write_bytes(b"")
    return folder


def test_the_demo_offers_runs_with_a_checkpoint_and_exports(tmp_path):
    fake_run(tmp_path / "a/version_0")
    fake_run(tmp_path / "a/eval", checkpoint=None)  # an evaluation log: nothing to draw with
    fake_run(tmp_path / "exported", checkpoint=None, export=True)
    found = {entry.label: entry.kind for entry in find_models(tmp_path)}
    assert found == {"a/version_0": "run", "exported": "export"}
    checkpoint = entry_for(tmp_path / "a/version_0/checkpoints/last.ckpt", tmp_path)
    assert checkpoint.label == "a/version_0/checkpoints/last.ckpt"
    assert entry_for(tmp_path / "a/eval") is None


def test_the_newest_make_demo_runs_are_offered_first(tmp_path, monkeypatch):
    old = fake_run(tmp_path / "runs/demo/20260101-000000/logs/gan/version_0")
    demo = tmp_path / "runs/demo/20260202-000000"
    gan = fake_run(demo / "logs/gan/version_0")  # stage 2, trained once (a2i/demo.py)
    (demo / "stage2").mkdir()
    (demo / "configs").mkdir()
    ldm = demo / "configs/ldm.yaml"  # the LDM naming the stage-2 weights
    ldm.write_text("model: {}\n")
    (tmp_path / "runs/demo/20260303-000000/logs").mkdir(parents=True)  # a demo still training
    monkeypatch.chdir(tmp_path)
    assert newest_demo_runs() == [Path(p.relative_to(tmp_path)) for p in (gan, ldm)]
    entries, selected = offered_models([], "runs")
    assert selected == [
        "demo/20260202-000000/logs/gan/version_0",
        "demo/20260202-000000/configs/ldm.yaml",
    ]
    assert [e.kind for e in entries][:2] == ["run", "config"]
    assert [e.label for e in entries][2:] == [str(old.relative_to(tmp_path / "runs"))]


def method_config(folder: Path, generator: str, name: str = "config.yaml") -> Path:
    """A config naming the method and generator (all that naming a model reads)."""
    folder.mkdir(parents=True, exist_ok=True)
    config = {
        "model": {
            "class_path": "a2i.methods.sound2vision.Sound2Vision",
            "init_args": {"generator": {"class_path": generator, "init_args": {}}},
        }
    }
    (folder / name).write_text(yaml.safe_dump(config))
    return folder / name


def test_models_are_named_by_method_variant_and_run_date_not_by_path(tmp_path, monkeypatch):
    demo = tmp_path / "runs/demo/20261205-065323"
    method_config(fake_run(demo / "logs/gan/version_0"), "a2i.generators.biggan.BigGANGenerator")
    (demo / "stage2").mkdir()
    ldm = "a2i.generators.latent_diffusion.LatentDiffusionGenerator"
    method_config(demo / "configs", ldm, "ldm.yaml")
    older = []
    for name in ("lightning_logs/version_0", "lightning_logs/version_1"):  # the same minute
        run = fake_run(tmp_path / "runs" / name)
        os.utime(method_config(run, "a2i.generators.pixart.PixArtGenerator"), (1.8e9, 1.8e9))
        older.append(run)
    export = fake_run(tmp_path / "runs/birds", checkpoint=None, export=True)
    method_config(export, "a2i.generators.my.TinyGenerator")
    os.utime(export / "model.safetensors", (1.8e9, 1.8e9))
    monkeypatch.chdir(tmp_path)
    entries, selected = offered_models([], "runs")
    shelf = ModelShelf(entries, "cpu")
    minute = datetime.fromtimestamp(1.8e9).strftime("%Y-%m-%d %H:%M")
    assert [shelf.names[label] for label in selected] == [
        "Sound2Vision GAN · demo run 2026-12-05 06:53",
        "Sound2Vision LDM · demo run 2026-12-05 06:53",
    ]
    assert [name for name, _ in shelf.choices[2:]] == [
        f"Sound2Vision Tiny · export birds, {minute}",
        f"Sound2Vision PixArt · run {minute} (lightning_logs/version_0)",
        f"Sound2Vision PixArt · run {minute} (lightning_logs/version_1)",
    ]
    checkpoint = entry_for(older[0] / "checkpoints/last.ckpt")
    assert checkpoint.title == f"Sound2Vision PixArt · run {minute}, last.ckpt"


def test_before_make_demo_it_offers_the_shipped_gan_which_draws_the_sounds_class(
    tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)  # a fresh clone: no runs/demo, no runs
    entries, selected = offered_models([], "runs")
    assert [e.label for e in entries] == selected == [SHIPPED_LABEL]
    assert entries[0].title == "Sound2Vision GAN · shipped weights"
    materialize_world(
        tmp_path,
        sizes={"test": 3},
        world=SyntheticWorld(image_size=32, clip_seconds=4.0),
        audio_only=True,
    )
    pipeline = ModelShelf(entries, "cpu").pipeline(SHIPPED_LABEL)
    records = read_manifest(tmp_path)
    images = [draw(pipeline, tmp_path / r.audio, Controls()).images for r in records]
    judged = WorldJudge.load().judge(torch.cat(images)).main_class.view(len(records), -1)
    labels = torch.tensor([r.label for r in records])[:, None]
    assert (judged == labels).float().mean() >= 2 / 3, (labels, judged)  # chance: 1/10


def test_a_run_that_is_not_a_run_is_refused_by_name(tmp_path, capsys):
    with pytest.raises(SystemExit):
        parse(["--run", str(tmp_path)])
    assert f"--run '{tmp_path}' is neither a training run" in capsys.readouterr().err


def test_an_unknown_device_is_refused_by_name(capsys):
    with pytest.raises(SystemExit):
        parse(["--device", "abacus"])
    assert "--device abacus:" in capsys.readouterr().err


def test_share_is_refused_offline(monkeypatch, capsys):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(SystemExit):
        parse(["--share"])
    assert "gradio.live, which needs the network" in capsys.readouterr().err


@pytest.fixture(scope="module")
def pipeline():
    """Tiny Sound2Vision with its construction-time weights (nothing trained: the shapes matter)."""
    config = yaml.safe_load((CONF / "sound2vision_gan.yaml").read_text())
    return AudioToImagePipeline(build_method(config["model"], seed=0))


def test_a_drawing_has_one_image_per_seed_and_says_what_the_model_heard(pipeline, tmp_path):
    sound = tmp_path / "long.wav"
    sf.write(sound, np.full(16000 * 3, 0.1, dtype=np.float32), 16000)
    drawing = draw(pipeline, sound, Controls(num_images=3, seed=5, crop="center", gain_db=6.0))
    assert drawing.images.shape == (3, 3, 32, 32)
    assert drawing.seeds == [5, 6, 7]
    assert drawing.offset == pytest.approx(1.0)
    assert "the model heard 1 s: from 1.0 s of a 3.0 s sound" in drawing.summary()
    assert [image.size for image in drawing.pil_images()] == [(256, 256)] * 3
    assert spectrogram_image(drawing.clip, 16000).shape == (192, 512, 3)


def test_six_hours_of_crafted_silence_are_drawn_from_a_bounded_decode(
    pipeline, tmp_path, monkeypatch
):
    """A 1 MB FLAC holding 4.1 billion samples kept the only worker busy 45 s with "loudest"."""
    sound = write_silent_flac(tmp_path / "six_hours.flac", 6 * 3600, 192000)
    decoded, read = [], sf.SoundFile.read

    def counting_read(self, *args, **kwargs):
        block = read(self, *args, **kwargs)
        decoded.append(len(block))
        if sum(decoded) > 2 * LOUDEST_SCAN_SAMPLES:
            raise RuntimeError("decoded too much")  # fail now, not after decoding it all
        return block

    monkeypatch.setattr(sf.SoundFile, "read", counting_read)
    drawing = draw(pipeline, sound, Controls(num_images=1, crop="loudest"))
    assert "the model heard 1 s: from 0.0 s of a 6:00:00 sound" in drawing.summary()


def test_mixing_and_blending_change_the_images(pipeline, tmp_path):
    sf.write(tmp_path / "a.wav", np.full(16000, 0.1, dtype=np.float32), 16000)
    sf.write(tmp_path / "b.wav", 0.3 * np.sin(np.arange(16000) / 5).astype(np.float32), 16000)
    Image.new("RGB", (40, 40), (255, 0, 0)).save(tmp_path / "red.png")
    plain = draw(pipeline, tmp_path / "a.wav", Controls(num_images=1)).images
    mixed = draw(
        pipeline, tmp_path / "a.wav", Controls(num_images=1, mix_with=str(tmp_path / "b.wav"))
    )
    blended = draw(
        pipeline, tmp_path / "a.wav", Controls(num_images=1, image=str(tmp_path / "red.png"))
    )
    assert not torch.equal(plain, mixed.images)
    assert not torch.equal(plain, blended.images)


def test_values_left_in_hidden_widgets_are_not_asked_of_the_model(pipeline):
    stale = Controls(prompt="a photo of", guidance_scale=7.5, num_inference_steps=4)
    with pytest.raises(ConfigError, match="does not support"):
        pipeline.prepare_request(GenerationRequest(prompt="a photo of"))
    request = stale.request(pipeline)
    assert (request.prompt, request.guidance_scale, request.num_inference_steps) == (None,) * 3


def test_an_unreadable_sound_is_the_error_a2i_predict_reports(pipeline, tmp_path):
    (tmp_path / "empty.wav").write_bytes(b"")
    with pytest.raises(AudioDecodeError, match="empty file"):
        draw(pipeline, tmp_path / "empty.wav", Controls())


def test_a_seed_past_torchs_range_is_the_pages_one_line_error(pipeline, tmp_path):
    """The page's seed box has no maximum: 2**64 was gradio's generic error, not a2i's line."""
    sf.write(tmp_path / "a.wav", np.full(16000, 0.1, dtype=np.float32), 16000)
    with pytest.raises(ConfigError, match=r"seeds must be in \[0, 18446744073709551615\]"):
        draw(pipeline, tmp_path / "a.wav", Controls(num_images=2, seed=2**64 - 1))


def test_models_load_once_and_unknown_labels_are_refused(pipeline, tmp_path):
    export = pipeline.save_pretrained(tmp_path / "export")
    readable = 0o666 & ~current_umask()  # as every other file (safetensors alone makes 0600)
    assert {stat.S_IMODE(p.stat().st_mode) for p in export.iterdir()} == {readable}
    shelf = ModelShelf(find_models(tmp_path), "cpu")
    assert shelf.labels == ["export"]
    assert shelf.pipeline("export") is shelf.pipeline("export")
    with pytest.raises(ConfigError, match="no model 'gan'"):
        shelf.pipeline("gan")
    with pytest.raises(ConfigError, match="no model to offer"):
        ModelShelf([], "cpu")


def test_logins_come_from_auth_and_an_auth_file_and_bad_ones_are_refused_by_line(tmp_path):
    logins_file = tmp_path / "logins.txt"
    logins_file.write_text("# demo logins\nann:s3cret:with colon\n\nbob:pw\n")
    assert logins(["eve:x"], logins_file) == [
        ("eve", "x"),
        ("ann", "s3cret:with colon"),
        ("bob", "pw"),
    ]
    logins_file.write_text("ann:ok\nbob-hunter2\n")
    with pytest.raises(ConfigError, match=r"logins.txt:2: expected USER:PASSWORD") as refused:
        logins([], logins_file)
    assert "hunter2" not in str(refused.value)  # the line holds a password
    with pytest.raises(ConfigError, match="--auth #1: expected USER:PASSWORD"):
        logins(["ann:"], None)
    with pytest.raises(ConfigError, match="cannot read it"):
        logins([], tmp_path / "missing.txt")


def test_sizes_and_addresses():
    assert file_size("200MB") == 200 << 20 and file_size("512 kb") == 512 << 10
    assert file_size("1000") == 1000
    for bad in ("0", "-1MB", "lots", "2TB"):
        with pytest.raises(argparse.ArgumentTypeError, match="is not a size"):
            file_size(bad)
    assert all(map(is_loopback, ["127.0.0.1", "::1", "localhost", "127.0.1.1"]))
    assert not any(map(is_loopback, ["0.0.0.0", "::", "192.168.1.20", "demo.example.org"]))
    assert address("0.0.0.0", 80) == "http://0.0.0.0:80/ (every network interface of this machine)"
    assert address("::1", 8080) == "http://[::1]:8080/"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def fresh_clone(tmp_path, monkeypatch):
    """No runs/demo and no runs: the server offers the shipped tiny GAN."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def upload(url: str, name: str, data: bytes, **cookies) -> httpx.Response:
    return httpx.post(f"{url}gradio_api/upload", files={"files": (name, data)}, cookies=cookies)


def test_a_public_address_without_a_login_warns_and_prints_the_real_address(fresh_clone, capsys):
    port = free_port()
    with serving(["--host", "0.0.0.0", "--port", str(port)]):
        printed = capsys.readouterr()
        assert f"on http://0.0.0.0:{port}/ (every network interface" in printed.out
        assert printed.err.count("\n") == 1
        assert "warning: listening beyond this machine without a login" in printed.err
        assert httpx.get(f"http://127.0.0.1:{port}/config").status_code == 200
    with serving(["--port", str(port)]):  # this machine only: no warning
        printed = capsys.readouterr()
        assert "warning" not in printed.err
        assert f"a2i serve: 1 model on http://127.0.0.1:{port}/" in printed.out  # not "1 models"


def test_a_login_is_asked_before_anything_is_served(fresh_clone, capsys):
    (fresh_clone / "logins.txt").write_text("ann:s3cret\n")
    port = free_port()
    with serving(["--host", "0.0.0.0", "--port", str(port), "--auth_file", "logins.txt"]) as app:
        assert "warning" not in capsys.readouterr().err
        url = f"http://127.0.0.1:{port}/"
        assert httpx.get(f"{url}config").status_code == 401
        assert upload(url, "a.wav", b"RIFF").status_code == 401
        assert httpx.post(f"{url}login", data={"username": "ann", "password": "no"}).is_error
        login = httpx.post(f"{url}login", data={"username": "ann", "password": "s3cret"})
        assert login.status_code == 200 and app.server_port == port
        cookies = dict(login.cookies)
        assert httpx.get(f"{url}config", cookies=cookies).status_code == 200
        assert upload(url, "a.wav", b"RIFF", **cookies).status_code == 200


def test_uploads_above_the_limit_are_refused_and_all_are_deleted_when_the_server_stops(
    fresh_clone,
):
    port = free_port()
    with serving(["--port", str(port), "--max_file_size", "1kb"]) as app:
        url = app.local_url
        assert upload(url, "big.wav", bytes(2000)).status_code == 413
        stored = Path(upload(url, "small.wav", bytes(1000)).json()[0])
        assert stored.is_file()
        folder = Path(os.environ["GRADIO_TEMP_DIR"])
        assert stored.is_relative_to(folder) and folder.name.startswith("a2i-serve-")
    assert not folder.exists()


def test_sigterm_stops_a2i_serve_and_deletes_its_uploads(fresh_clone, monkeypatch):
    port, stored, serving_now = free_port(), [], threading.Event()
    block_thread = gr.Blocks.block_thread

    def announced_block_thread(app: gr.Blocks) -> None:
        serving_now.set()
        block_thread(app)

    monkeypatch.setattr(gr.Blocks, "block_thread", announced_block_thread)

    def upload_then_terminate() -> None:
        if serving_now.wait(timeout=300):
            url = f"http://127.0.0.1:{port}/"
            stored.append(Path(upload(url, "a.wav", bytes(100)).json()[0]))
        os.kill(os.getpid(), signal.SIGTERM)

    handler = signal.getsignal(signal.SIGTERM)
    client = threading.Thread(target=upload_then_terminate)
    client.start()
    try:
        main(["--port", str(port)])
    finally:
        signal.signal(signal.SIGTERM, handler)
        client.join()
    assert stored and not stored[0].parent.parent.exists()
