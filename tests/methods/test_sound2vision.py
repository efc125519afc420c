"""Sound2Vision stage 2: frozen parts stay frozen, checkpoints round-trip, controls act."""

import pytest
import torch
from torch import nn

from a2i.encoders.audio.resnet_spectrogram import SpectrogramResNet
from a2i.encoders.image.tiny import TinyImageEncoder
from a2i.errors import ConfigError
from a2i.generators.biggan import BigGANGenerator
from a2i.generators.latent_diffusion import LatentDiffusionGenerator
from a2i.interfaces import AUDIO, IMAGE, GenerationRequest, ImageEncoder
from a2i.methods.sound2vision import Sound2Vision
from a2i.pipelines import AudioToImagePipeline
from tests.methods.conftest import tiny_sound2vision


@pytest.mark.parametrize("generator", ["gan", "ldm"])
def test_frozen_parts_get_no_gradient_and_do_not_change(generator, world, fit_tiny):
    model = tiny_sound2vision(generator)
    frozen = {
        k: v.clone()
        for k, v in model.state_dict().items()
        if k.startswith(("generator.", "image_encoder."))
    }
    audio_before = {k: v.clone() for k, v in model.audio_encoder.state_dict().items()}
    optimizer = model.configure_optimizers()
    trained = {id(p) for group in optimizer.param_groups for p in group["params"]}
    assert trained == {id(p) for p in model.audio_encoder.parameters()}

    model.train()
    assert not model.generator.training and not model.image_encoder.training
    batch = next(iter(world.train_dataloader()))
    loss = model.training_step(batch, 0)
    loss.backward()
    assert all(p.grad is None for p in model.generator.parameters())
    assert all(p.grad is None for p in model.image_encoder.parameters())

    fit_tiny(model)
    after = model.state_dict()
    assert all(torch.equal(v, after[k]) for k, v in frozen.items())
    assert any(
        not torch.equal(v, model.audio_encoder.state_dict()[k]) for k, v in audio_before.items()
    )


def test_checkpoint_round_trip_gives_identical_predictions(tmp_path, fit_tiny):
    model = tiny_sound2vision()
    path = tmp_path / "s2v.ckpt"
    fit_tiny(model).save_checkpoint(path)

    reloaded = (
        tiny_sound2vision()
    )  # fresh random audio encoder, same frozen parts (rebuilt from config)
    reloaded.load_state_dict(torch.load(path, weights_only=False)["state_dict"], strict=False)
    reloaded.on_load_checkpoint(torch.load(path, weights_only=False))
    waveform = torch.randn(2, 16000, generator=torch.Generator().manual_seed(1)) * 0.1
    model.eval(), reloaded.eval()
    assert torch.equal(
        model.generate_from_audio(waveform, GenerationRequest(seeds=(3,))),
        reloaded.generate_from_audio(waveform, GenerationRequest(seeds=(3,))),
    )


def test_exported_audio_encoder_serves_the_other_generator(tmp_path, fit_tiny):
    model = tiny_sound2vision(export_dir=str(tmp_path / "stage2"))
    fit_tiny(model)
    exported = tmp_path / "stage2" / "audio_encoder.safetensors"
    encoder = SpectrogramResNet(
        preset="tiny", embed_dim=64, clip_seconds=1.0, pretrained=str(exported)
    )
    ldm = tiny_sound2vision("ldm")  # the same image encoder: stage 2 needs no other training
    ldm.audio_encoder = encoder
    waveform = torch.randn(2, 16000, generator=torch.Generator().manual_seed(1)) * 0.1
    model.eval(), ldm.eval()
    assert torch.equal(model.audio_features(waveform), ldm.audio_features(waveform))


def test_stage2_export_carries_the_feature_norm_the_ldm_reads(tmp_path, fit_tiny):
    """The running image-feature norm is method state: exported, read back, and required."""
    model = tiny_sound2vision(export_dir=str(tmp_path / "stage2"))
    fit_tiny(model)
    assert sorted(p.name for p in (tmp_path / "stage2").iterdir()) == [
        "audio_encoder.safetensors",
        "state.safetensors",
    ]
    ldm = tiny_sound2vision("ldm", pretrained=str(tmp_path / "stage2"))
    assert ldm.untrained_parts() == []
    torch.testing.assert_close(ldm.image_feature_norm, model.image_feature_norm)
    waveform = torch.randn(2, 16000, generator=torch.Generator().manual_seed(1)) * 0.1
    model.eval(), ldm.eval()
    assert torch.equal(model.audio_features(waveform), ldm.audio_features(waveform))
    # an LDM given only the encoder's weights would scale its conditions by an untrained norm
    encoder_only = tiny_sound2vision("ldm")
    assert encoder_only.untrained_parts() == ["audio_encoder", "state"]
    assert tiny_sound2vision("gan").untrained_parts() == [
        "audio_encoder"
    ]  # unit scale: the norm is unused
    with pytest.raises(ConfigError, match=r"lacks state\.safetensors"):
        (tmp_path / "stage2" / "state.safetensors").unlink()
        tiny_sound2vision("ldm", pretrained=str(tmp_path / "stage2"))


def test_checkpoint_without_trainable_weights_is_refused():
    with pytest.raises(ConfigError, match="trainable weights missing"):
        tiny_sound2vision().on_load_checkpoint({"state_dict": {}})


def test_controls_change_the_input_and_seeds_draw_different_images():
    model = tiny_sound2vision().eval()
    waveform = torch.randn(1, 16000, generator=torch.Generator().manual_seed(2)) * 0.1
    pipe = AudioToImagePipeline(model)
    louder = pipe(waveform, gain_db=10.0).images[0]
    torch.testing.assert_close(louder, pipe(waveform * 10**0.5).images[0])
    images = model.generate_from_audio(waveform, GenerationRequest(seeds=(0, 1)))
    assert images.shape == (1, 2, 3, 32, 32)
    assert not torch.equal(images[:, 0], images[:, 1])
    frame = torch.rand(1, 3, 32, 32)
    only_image = model.generate_from_audio(
        waveform, GenerationRequest(seeds=(0,), image=frame, image_weight=1.0)
    )
    from_frame = model.generate(model.image_features(frame), [0])
    assert torch.allclose(only_image, from_frame)


def test_mismatched_feature_sizes_are_a_config_error():
    with pytest.raises(ConfigError, match="64-d"):
        Sound2Vision(
            audio_encoder=SpectrogramResNet(preset="tiny", embed_dim=32, clip_seconds=1.0),
            image_encoder=TinyImageEncoder(embed_dim=64, image_size=32),
            generator=BigGANGenerator(preset="tiny", condition_dim=64, image_size=32),
        )


class RawImageFeatures(ImageEncoder):
    """A SwAV stand-in: raw features whose length (about 20 here) is far from 1."""

    def __init__(self, embed_dim: int) -> None:
        super().__init__()
        self.embed_dim = embed_dim
        self.image_size = 32
        self.project = nn.Linear(3, embed_dim)

    def forward(self, image):
        return 20.0 * self.project(image.mean(dim=(2, 3)))


def raw_feature_model(generator):
    torch.manual_seed(0)
    return Sound2Vision(
        audio_encoder=SpectrogramResNet(
            preset="tiny", embed_dim=generator.condition_dim, clip_seconds=1.0
        ),
        image_encoder=RawImageFeatures(generator.condition_dim),
        generator=generator,
    )


def trained_batch(model, size=4):
    """A batch after one training step, so ``image_feature_norm`` holds the raw features' norm."""
    generator = torch.Generator().manual_seed(3)
    batch = {
        AUDIO: torch.randn(size, 16000, generator=generator) * 0.1,
        IMAGE: torch.rand(size, 3, 32, 32, generator=generator),
    }
    model.training_step(batch, 0)  # global_step 0: the norm is taken as is
    return batch


def test_feature_scale_generator_gets_audio_at_the_image_features_mean_norm():
    model = raw_feature_model(
        LatentDiffusionGenerator(preset="tiny", condition_dim=64, image_size=32)
    )
    batch = trained_batch(model)
    norms = model.image_features(batch[IMAGE]).norm(dim=-1)
    assert norms.min() > 5.0
    torch.testing.assert_close(model.image_feature_norm, norms.mean())
    condition = model.condition_from_audio(batch[AUDIO])
    torch.testing.assert_close(condition.norm(dim=-1), norms.mean().expand(len(condition)))
    torch.testing.assert_close(
        model.condition_from_image(batch[IMAGE]), model.image_features(batch[IMAGE])
    )


@pytest.mark.slow
def test_paper_gan_receives_unit_length_conditions_for_audio_blend_and_log_grids(monkeypatch):
    """IC-GAN is trained on unit-length SwAV features (Sound2Vision module docstring)."""
    with torch.device("meta"):
        generator = BigGANGenerator(preset="paper")
    assert generator.condition_scale == "unit"
    received = []

    def record(condition, generator=None):
        received.append(condition)
        return torch.zeros(len(condition), 3, 128, 128)

    monkeypatch.setattr(generator, "generate", record)
    model = raw_feature_model(generator)
    batch = trained_batch(model)
    assert model.image_feature_norm > 5.0
    model.eval()
    model.generate_from_audio(batch[AUDIO], GenerationRequest(seeds=(0, 1)))
    model.generate_from_audio(
        batch[AUDIO], GenerationRequest(seeds=(0,), image=batch[IMAGE][:1], image_weight=0.5)
    )
    model.log_images(batch)
    assert len(received) == 2 + 1 + 2
    for condition in received:
        assert condition.shape == (4, 2048)
        torch.testing.assert_close(condition.norm(dim=-1), torch.ones(4))
    blend = torch.nn.functional.normalize(
        0.5 * model.condition_from_image(batch[IMAGE][:1])
        + 0.5 * model.condition_from_audio(batch[AUDIO]),
        dim=-1,
    )
    torch.testing.assert_close(received[2], blend)


@pytest.mark.slow
def test_ldm_composes_image_and_audio_and_a_zero_weight_drops_a_condition():
    """Sound2Vision §6.1 / Fig. 19: composable diffusion (Liu et al. 2022) for the LDM."""
    model = tiny_sound2vision("ldm").eval()
    assert model.image_blend == "composable"
    generator = torch.Generator().manual_seed(4)
    waveform = torch.randn(2, 16000, generator=generator) * 0.1
    frame = torch.rand(1, 3, 32, 32, generator=generator)

    def draw(**kwargs):
        return model.generate_from_audio(
            waveform, GenerationRequest(seeds=(5,), guidance_scale=3.0, **kwargs)
        )

    torch.testing.assert_close(draw(image=frame, image_weight=0.0), draw(), atol=1e-5, rtol=0)
    image_only = model.generate(
        model.condition_from_image(frame).expand(2, -1), [5], guidance_scale=3.0
    )
    torch.testing.assert_close(draw(image=frame, image_weight=1.0), image_only, atol=1e-5, rtol=0)
    composed = draw(image=frame, image_weight=0.5)
    model.image_blend = "interpolate"
    assert not torch.allclose(composed, draw(image=frame, image_weight=0.5), atol=1e-3)


def test_composable_blend_needs_a_diffusion_generator():
    with pytest.raises(ConfigError, match=r"image_blend='composable'.*BigGANGenerator"):
        tiny_sound2vision("gan", image_blend="composable")
    assert tiny_sound2vision("gan").image_blend == "interpolate"
