"""The Lightning-free pipeline on tiny runs made by the real CLI: load, controls, export, batches."""

import re
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from a2i.errors import ConfigError
from a2i.methods.audiotoken import AudioToken
from a2i.methods.sound2vision import Sound2Vision
from a2i.pipelines import AudioToImagePipeline
from a2i.pipelines.loading import load_checkpoint_into
from a2i.pretrained import ASSETS_DIR

ROOT = Path(__file__).resolve().parents[2]
CONF = ROOT / "tests" / "conf"


@pytest.mark.slow
def test_from_run_draws_images_and_names_bad_inputs(gan_run, sounds):
    paths, broken = sounds
    pipe = AudioToImagePipeline.from_run(gan_run)
    assert isinstance(pipe.model, Sound2Vision) and not pipe.model.training
    out = pipe([paths[0], broken, paths[1]], num_images_per_input=2)
    assert out.seeds == [0, 1]
    assert out.images[0].shape == (2, 3, 32, 32) and out.images[2].shape == (2, 3, 32, 32)
    assert out.images[1] is None and "broken.wav" in out.errors[1]
    assert out.failed == [1]
    assert out.durations[0] == pytest.approx(0.3, abs=1e-3)
    pil = pipe(paths[0], output_type="pil").images[0]
    assert len(pil) == 1 and pil[0].size == (32, 32)


@pytest.mark.slow
def test_from_run_accepts_the_checkpoint_and_loads_its_weights(gan_run):
    pipe = AudioToImagePipeline.from_run(gan_run / "checkpoints" / "last.ckpt")
    state = torch.load(gan_run / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    for key, value in state.items():
        assert torch.equal(pipe.model.state_dict()[key], value), key
    assert pipe.card.source.endswith("last.ckpt")


def test_from_config_loads_the_shipped_weights_and_refuses_untrained_parts(sounds):
    pipe = AudioToImagePipeline.from_config(ROOT / "configs/tiny/sound2vision_gan_shipped.yaml")
    shipped = load_file(str(ASSETS_DIR / "tiny/gan/audio_encoder.safetensors"))
    for key, value in shipped.items():
        assert torch.equal(pipe.model.audio_encoder.state_dict()[key], value.float()), key
    assert pipe(sounds[0][0]).images[0].shape == (1, 3, 32, 32)
    with pytest.raises(ConfigError, match="names no weights for audio_encoder"):
        AudioToImagePipeline.from_config(CONF / "sound2vision_gan.yaml")


def test_from_config_takes_a_shipped_configs_name(sounds):
    by_name = AudioToImagePipeline.from_config("tiny/sound2vision_gan_shipped")
    assert by_name.card.source == str(ROOT / "a2i/configs/tiny/sound2vision_gan_shipped.yaml")
    assert by_name(sounds[0][0]).images[0].shape == (1, 3, 32, 32)


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"- model\n", "holds a list, not a mapping of config sections"),
        (bytes(range(128, 256)), "is not a text file (not UTF-8)"),
        (b"model: !!python/object/apply:os.system [true]\n", "is not valid YAML"),
    ],
    ids=["list", "binary", "python-object"],
)
def test_a_config_or_runs_config_that_is_not_a_yaml_mapping_is_one_error(content, reason, tmp_path):
    config = tmp_path / "config.yaml"
    config.write_bytes(content)
    with pytest.raises(ConfigError, match=re.escape(f"config '{config}' {reason}")):
        AudioToImagePipeline.from_config(config)
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "last.ckpt").write_bytes(b"")
    with pytest.raises(ConfigError, match=re.escape(reason)):
        AudioToImagePipeline.from_run(tmp_path)


@pytest.mark.slow
def test_images_do_not_depend_on_the_batch(ldm_run, sounds):
    paths, _ = sounds
    alone = AudioToImagePipeline.from_run(ldm_run, batch_size=1)(paths, num_images_per_input=2)
    batched = AudioToImagePipeline.from_run(ldm_run, batch_size=4)(paths, num_images_per_input=2)
    for one, many in zip(alone.images, batched.images, strict=True):
        torch.testing.assert_close(one, many, atol=1e-5, rtol=0)


@pytest.mark.slow
def test_save_pretrained_round_trip_gives_identical_images(ldm_run, sounds, tmp_path):
    paths, _ = sounds
    pipe = AudioToImagePipeline.from_run(ldm_run)
    exported = pipe.save_pretrained(tmp_path / "export")
    assert sorted(p.name for p in exported.iterdir()) == [
        "README.md",
        "config.yaml",
        "model.safetensors",
    ]
    card = (exported / "README.md").read_text()
    assert "Sound2Vision" in card and "SyntheticWorldDataModule" in card
    reloaded = AudioToImagePipeline.from_pretrained(exported)
    torch.testing.assert_close(
        reloaded(paths[:2], seed=3).images[0], pipe(paths[:2], seed=3).images[0], atol=0, rtol=0
    )
    with pytest.raises(ConfigError, match="already holds"):
        pipe.save_pretrained(exported)


@pytest.mark.slow
def test_controls_reach_the_method(gan_run, sounds):
    paths, _ = sounds
    pipe = AudioToImagePipeline.from_run(gan_run)
    model = pipe.model
    plain = pipe(paths[0]).images[0]
    silent = torch.zeros(model.sample_rate)
    torch.testing.assert_close(pipe(paths[0], mix_with=[silent]).images[0], plain)
    assert not torch.equal(pipe(paths[0], gain_db=12.0).images[0], plain)
    image = torch.rand(3, 32, 32)
    blended = pipe(paths[0], image=image, image_weight=1.0).images[0]
    expected = model.generate(model.image_features(image[None]), [0])[0]
    torch.testing.assert_close(blended, expected)


@pytest.mark.slow
def test_unsupported_controls_are_refused_by_name(gan_run, sounds):
    paths, _ = sounds
    pipe = AudioToImagePipeline.from_run(gan_run)
    with pytest.raises(ConfigError, match="does not support prompt"):
        pipe(paths[0], prompt="a photo of a <audio>")
    with pytest.raises(ConfigError, match="does not support guidance_scale"):
        pipe(paths[0], guidance_scale=2.0)
    with pytest.raises(ConfigError, match="mix_gains_db has 2 values for 1"):
        pipe(paths[0], mix_with=[paths[1]], mix_gains_db=[0.0, 1.0])


@pytest.mark.slow
def test_sampling_overrides_apply_to_diffusion(ldm_run, sounds):
    paths, _ = sounds
    pipe = AudioToImagePipeline.from_run(ldm_run)
    assert {"guidance_scale", "num_inference_steps"} <= pipe.model.supports
    default = pipe(paths[0]).images[0]
    assert not torch.equal(pipe(paths[0], num_inference_steps=3).images[0], default)


@pytest.mark.slow
def test_checkpoint_of_another_method_or_shape_is_refused(gan_run, audiotoken_run, ldm_run):
    audiotoken = AudioToImagePipeline.from_run(audiotoken_run).model
    with pytest.raises(ConfigError, match=r"Sound2Vision, but the config builds .*AudioToken"):
        load_checkpoint_into(audiotoken, gan_run / "checkpoints" / "last.ckpt")
    ldm = AudioToImagePipeline.from_run(ldm_run).model
    with pytest.raises(ConfigError, match=r"generator = .*BigGANGenerator \(config: .*Latent"):
        load_checkpoint_into(ldm, gan_run / "checkpoints" / "last.ckpt")
    gan = AudioToImagePipeline.from_run(gan_run).model
    gan.audio_encoder.project = torch.nn.Linear(3, 64)  # another architecture of the same method
    with pytest.raises(ConfigError, match="does not fit Sound2Vision"):
        load_checkpoint_into(gan, gan_run / "checkpoints" / "last.ckpt")


@pytest.mark.slow
def test_lightning_load_from_checkpoint_rebuilds_the_method(gan_run, sounds):
    paths, _ = sounds
    ckpt = gan_run / "checkpoints" / "last.ckpt"
    torch.manual_seed(0)  # the run's seed_everything: the tiny test generator has random weights
    model = Sound2Vision.load_from_checkpoint(ckpt, map_location="cpu")
    pipe = AudioToImagePipeline.from_run(gan_run)
    torch.testing.assert_close(
        AudioToImagePipeline(model)(paths[0]).images[0], pipe(paths[0]).images[0]
    )


def test_a_method_that_is_not_audio_to_image_is_refused():
    with pytest.raises(ConfigError, match="does not draw images from audio"):
        AudioToImagePipeline(torch.nn.Linear(2, 2))


@pytest.mark.slow
def test_audiotoken_refuses_an_image_and_a_prompt_without_placeholder(audiotoken_run, sounds):
    paths, _ = sounds
    pipe = AudioToImagePipeline.from_run(audiotoken_run)
    assert isinstance(pipe.model, AudioToken)
    with pytest.raises(ConfigError, match="does not support image_blend"):
        pipe(paths[0], image=torch.rand(3, 32, 32))
    with pytest.raises(ConfigError, match="placeholder"):
        pipe(paths[0], prompt="a painting")
    images = pipe(paths[0], prompt="A painting of a <audio>", num_images_per_input=2).images[0]
    assert images.shape[0] == 2


def test_a_waveform_with_nan_inf_or_no_samples_is_refused_as_such_a_file_is():
    """They drew NaN images without an error, where a file holding them is refused."""
    pipe = AudioToImagePipeline.from_config("tiny/sound2vision_gan_shipped")
    bad = torch.zeros(16000)
    bad[8000] = float("nan")
    out = pipe([bad, torch.zeros(16000), torch.zeros(0)])
    assert out.failed == [0, 2] and out.images[1].isfinite().all()
    assert "1 NaN or infinite samples (the first at 0.50 s)" in out.errors[0]
    assert "zero samples" in out.errors[2]
    with pytest.raises(ConfigError, match="NaN or infinite"):
        pipe(torch.zeros(16000), mix_with=[torch.full((8000,), float("inf"))])
