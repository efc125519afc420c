from __future__ import annotations

import pytest
import torch

from a2i.errors import CheckpointNotFoundError, ConfigError
from a2i.generators.latent_diffusion import IMAGE_VARIATIONS_REPO, LatentDiffusionGenerator
from a2i.interfaces import Condition
from a2i.pretrained import save_module


def seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.fixture
def ldm() -> LatentDiffusionGenerator:
    torch.manual_seed(0)
    return LatentDiffusionGenerator(preset="tiny", num_inference_steps=3).eval()


def test_generate_shape_range_and_seeding(ldm, conditions):
    first = ldm.generate(conditions[:4], seeded(0))
    assert first.shape == (4, 3, 32, 32)
    assert first.min() >= 0 and first.max() <= 1
    assert torch.equal(first, ldm.generate(conditions[:4], seeded(0)))
    assert not torch.equal(first, ldm.generate(conditions[:4], seeded(1)))


def test_a_row_drawn_with_its_own_generator_does_not_depend_on_its_batch(ldm, conditions):
    seeds = [3, 1, 4, 1]
    batch = ldm.generate(conditions[:4], [seeded(s) for s in seeds])
    for row, seed in enumerate(seeds):
        alone = ldm.generate(Condition.from_embedding(conditions[row : row + 1]), [seeded(seed)])
        assert torch.allclose(batch[row : row + 1], alone, atol=1e-5)
    with pytest.raises(ValueError, match="3 generators given for a batch of 4 rows"):
        ldm.generate(conditions[:4], [seeded(s) for s in seeds[:3]])


def test_sampling_controls_override_the_configured_ones_per_call(ldm, conditions):
    assert ldm.sampling_controls == {"guidance_scale", "num_inference_steps"}
    once = ldm.generate(conditions[:2], seeded(0), guidance_scale=1.0, num_inference_steps=2)
    ldm.guidance_scale, ldm.num_inference_steps = 1.0, 2
    assert torch.equal(once, ldm.generate(conditions[:2], seeded(0)))


def test_unguided_sampling_and_token_conditions(ldm, conditions):
    ldm.guidance_scale = 1.0
    images = ldm.generate(conditions[:2, None, :].expand(2, 3, 64), seeded(0))
    assert images.shape == (2, 3, 32, 32)
    with pytest.raises(ConfigError, match="expects conditions"):
        ldm.generate(torch.zeros(2, 32))


def test_only_the_unet_trains_and_the_vae_stays_frozen(ldm):
    ldm.train()
    assert not ldm.vae.training
    trainable = {id(p) for p in ldm.parameters() if p.requires_grad}
    assert trainable == {id(p) for p in ldm.unet.parameters()}
    assert set(ldm.trained_parts()) == {"unet"}


def test_training_reduces_epsilon_loss(scenes, conditions, train):
    torch.manual_seed(0)
    ldm = LatentDiffusionGenerator(preset="tiny")

    def evaluate() -> float:
        torch.manual_seed(7)
        with torch.no_grad():
            return float(ldm.training_losses(scenes, conditions)["loss"])

    before = evaluate()
    train(lambda: ldm.training_losses(scenes, conditions), ldm.unet.parameters(), lr=1e-3)
    assert evaluate() < 0.7 * before


def test_condition_dropout_zeroes_whole_conditions(monkeypatch, scenes, conditions):
    ldm = LatentDiffusionGenerator(preset="tiny", condition_dropout=0.5)
    seen = []
    denoiser = ldm.diffusion.denoiser
    forward = denoiser.forward
    monkeypatch.setattr(
        denoiser,
        "forward",
        lambda x, t, condition: seen.append(condition) or forward(x, t, condition),
    )
    torch.manual_seed(3)
    ldm.training_losses(scenes, conditions)
    tokens = seen[0].tokens
    assert tokens.shape == (8, 1, 64)
    dropped = tokens.abs().sum(dim=(1, 2)) == 0
    assert 0 < dropped.sum() < 8
    assert torch.equal(tokens[~dropped, 0], conditions[~dropped])


def test_paper_preset_has_sd_image_variations_shapes():
    with torch.device("meta"):
        ldm = LatentDiffusionGenerator(preset="paper")
    assert sum(p.numel() for p in ldm.unet.parameters()) == 859_520_964
    assert sum(p.numel() for p in ldm.vae.parameters()) == 83_653_863
    assert ldm.unet.config.cross_attention_dim == ldm.condition_dim == 768
    assert (ldm.image_size, ldm.num_inference_steps, ldm.guidance_scale) == (512, 50, 3.0)


def test_missing_published_model_names_checkpoint_and_field():
    with pytest.raises(CheckpointNotFoundError) as error:
        LatentDiffusionGenerator(preset="paper", pretrained=IMAGE_VARIATIONS_REPO)
    message = str(error.value)
    assert IMAGE_VARIATIONS_REPO in message
    assert "'LatentDiffusionGenerator.pretrained'" in message


def test_missing_tiny_weight_file_names_its_field(tmp_path):
    with pytest.raises(
        CheckpointNotFoundError, match=r"'LatentDiffusionGenerator\.unet_pretrained'"
    ):
        LatentDiffusionGenerator(preset="tiny", unet_pretrained=str(tmp_path / "unet.safetensors"))


def test_safetensors_round_trip_gives_identical_images(tmp_path, ldm, conditions):
    ldm.vae.latent_std.fill_(1.7)
    save_module(ldm.unet, tmp_path / "unet.safetensors")
    save_module(ldm.vae, tmp_path / "vae.safetensors")
    loaded = LatentDiffusionGenerator(
        preset="tiny",
        unet_pretrained=str(tmp_path / "unet.safetensors"),
        vae_pretrained=str(tmp_path / "vae.safetensors"),
        num_inference_steps=3,
        freeze=True,
    )
    assert torch.equal(
        loaded.generate(conditions[:2], seeded(5)), ldm.generate(conditions[:2], seeded(5))
    )


def test_loads_a_local_diffusers_pipeline_directory(tmp_path, ldm, conditions):
    ldm.unet.save_pretrained(tmp_path / "unet")
    ldm.vae.autoencoder.save_pretrained(tmp_path / "vae")
    ldm.noise_scheduler.save_pretrained(tmp_path / "scheduler")
    loaded = LatentDiffusionGenerator(
        preset="tiny", pretrained=str(tmp_path), num_inference_steps=2
    )
    assert loaded.condition_dim == 64 and loaded.image_size == 32
    assert loaded.vae.latent_std.item() == pytest.approx(1 / 0.18215)
    for name, tensor in ldm.unet.state_dict().items():
        assert torch.equal(loaded.unet.state_dict()[name], tensor)
    assert loaded.generate(conditions[:1], seeded(0)).shape == (1, 3, 32, 32)
    with pytest.raises(ConfigError, match="condition_dim=32"):
        LatentDiffusionGenerator(preset="tiny", pretrained=str(tmp_path), condition_dim=32)


def test_unet_weights_of_another_shape_are_refused_with_the_field(tmp_path):
    path = tmp_path / "unet.safetensors"
    save_module(LatentDiffusionGenerator(preset="tiny", condition_dim=32).unet, path)
    with pytest.raises(ConfigError, match=r"field 'LatentDiffusionGenerator\.unet_pretrained'"):
        LatentDiffusionGenerator(preset="tiny", unet_pretrained=str(path))


def test_sampler_is_any_diffusers_scheduler_and_typos_are_named():
    generator = LatentDiffusionGenerator(
        preset="tiny", condition_dim=64, num_inference_steps=2, sampler="EulerDiscreteScheduler"
    )
    images = generator.generate(torch.randn(2, 64), torch.Generator().manual_seed(0))
    assert images.shape == (2, 3, 32, 32) and torch.isfinite(images).all()
    with pytest.raises(ConfigError, match="DDIMScheduler"):
        LatentDiffusionGenerator(preset="tiny", sampler="DDIMSchedular")
