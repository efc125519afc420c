from __future__ import annotations

import pytest
import torch

from a2i.errors import CheckpointNotFoundError, ConfigError
from a2i.generators.autoencoder import KLAutoencoder, foreground_weighted_l1, foreground_weights
from a2i.pretrained import save_module


def test_foreground_weights_mark_the_object_not_the_background_bands(scenes):
    weights = foreground_weights(scenes, foreground_weight=10.0)
    assert weights.shape == (8, 1, 32, 32)
    assert set(weights.unique().tolist()) == {1.0, 10.0}
    # Image 0's square: every pixel whose colour differs from both background bands.
    sky = torch.tensor([0.55, 0.75, 0.95])[:, None, None]
    grass = torch.tensor([0.30, 0.60, 0.25])[:, None, None]
    is_sky = (scenes[0] - sky).abs().amax(0) < 1e-6
    is_grass = (scenes[0] - grass).abs().amax(0) < 1e-6
    expected = torch.where(is_sky | is_grass, 1.0, 10.0)
    assert torch.equal(weights[0, 0], expected)


def test_weighted_l1_is_plain_l1_with_weight_one(scenes):
    prediction = torch.rand_like(scenes)
    plain = (prediction - scenes).abs().mean()
    assert torch.allclose(foreground_weighted_l1(prediction, scenes, foreground_weight=1.0), plain)
    background_only_error = scenes.clone()
    background_only_error[:, :, :2, :] += 0.5
    weighted = foreground_weighted_l1(background_only_error, scenes, foreground_weight=10.0)
    assert weighted < foreground_weighted_l1(background_only_error, scenes, foreground_weight=1.0)


def test_tiny_shapes_and_range(scenes):
    vae = KLAutoencoder(preset="tiny").eval()
    latents = vae.encode(scenes)
    assert latents.shape == (8, 4, 8, 8) == (8, *vae.latent_shape(32))
    images = vae.decode(latents)
    assert images.shape == scenes.shape
    assert images.min() >= 0 and images.max() <= 1


def test_training_reduces_loss_and_tracks_latent_std(scenes, train):
    torch.manual_seed(0)
    vae = KLAutoencoder(preset="tiny")

    def evaluate() -> float:
        torch.manual_seed(123)
        with torch.no_grad():
            return float(vae.training_losses(scenes)["loss"])

    before = evaluate()
    losses = train(lambda: vae.training_losses(scenes), vae.parameters(), lr=2e-3)
    assert set(losses) == {"loss", "reconstruction", "kl"}
    assert evaluate() < 0.8 * before
    assert vae.latent_std.item() != 1.0


def test_paper_preset_has_stable_diffusion_vae_shapes():
    with torch.device("meta"):
        vae = KLAutoencoder(preset="paper")
    assert sum(p.numel() for p in vae.parameters()) == 83_653_863
    assert vae.latent_shape(512) == (4, 64, 64)


def test_missing_published_vae_names_checkpoint_and_field():
    with pytest.raises(CheckpointNotFoundError) as error:
        KLAutoencoder(preset="paper", pretrained="stabilityai/sd-vae-ft-mse")
    message = str(error.value)
    assert "stabilityai/sd-vae-ft-mse" in message and "'KLAutoencoder.pretrained'" in message
    assert "hf download" in message


def test_safetensors_round_trip(tmp_path, scenes):
    vae = KLAutoencoder(preset="tiny")
    vae.latent_std.fill_(2.5)
    path = tmp_path / "vae.safetensors"
    save_module(vae, path)
    loaded = KLAutoencoder(preset="tiny", pretrained=str(path), freeze=True)
    assert loaded.latent_std.item() == 2.5
    assert torch.equal(loaded(scenes), vae.eval()(scenes))
    assert not any(p.requires_grad for p in loaded.parameters())


def test_rejects_image_size_not_divisible_by_the_downsampling():
    with pytest.raises(ConfigError, match="image_size=30"):
        KLAutoencoder(preset="tiny", image_size=30)
