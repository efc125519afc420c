"""Stage-1 training: each tiny generator trains a few steps and exports weights stage 2 can load."""

import pytest
import torch

from a2i.encoders.audio.beats import BEATsAudioEncoder
from a2i.encoders.image.tiny import TinyImageEncoder
from a2i.encoders.text.clip_text import CLIPTextEncoder
from a2i.errors import OutputExistsError
from a2i.generators.autoencoder import KLAutoencoder
from a2i.generators.biggan import BigGANGenerator
from a2i.generators.latent_diffusion import LatentDiffusionGenerator
from a2i.methods.pretraining import (
    AudioClassifierPretraining,
    AutoencoderPretraining,
    GeneratorPretraining,
    TextToImagePretraining,
)


def test_gan_stage1_trains_encoder_and_generator_and_exports(tmp_path, fit_tiny):
    torch.manual_seed(0)
    encoder = TinyImageEncoder(embed_dim=64, image_size=32)
    generator = BigGANGenerator(preset="tiny", condition_dim=64, image_size=32)
    before = {k: v.clone() for k, v in encoder.state_dict().items()}
    model = GeneratorPretraining(
        encoder, generator, train_image_encoder=True, export_dir=str(tmp_path / "out")
    )
    fit_tiny(model)
    assert any(not torch.equal(v, encoder.state_dict()[k]) for k, v in before.items())
    loaded = BigGANGenerator(
        preset="tiny",
        condition_dim=64,
        image_size=32,
        pretrained=str(tmp_path / "out" / "generator.safetensors"),
    )
    condition = encoder(torch.rand(2, 3, 32, 32)).detach()
    seed = torch.Generator().manual_seed(0)
    generator.eval()
    assert torch.equal(
        loaded.eval().generate(condition, seed),
        generator.generate(condition, torch.Generator().manual_seed(0)),
    )
    exported = {p.name: p.read_bytes() for p in (tmp_path / "out").iterdir()}
    assert sorted(exported) == ["generator.safetensors", "image_encoder.safetensors"]
    again = GeneratorPretraining(encoder, generator, export_dir=str(tmp_path / "out"))
    with pytest.raises(OutputExistsError, match="overwrite_export"):
        fit_tiny(again)
    assert {p.name: p.read_bytes() for p in (tmp_path / "out").iterdir()} == exported


def test_ldm_stage1_trains_only_the_unet_and_exports_it(tmp_path, fit_tiny):
    torch.manual_seed(0)
    encoder = TinyImageEncoder(embed_dim=64, image_size=32)
    generator = LatentDiffusionGenerator(
        preset="tiny", condition_dim=64, image_size=32, num_inference_steps=2
    )
    vae_before = {k: v.clone() for k, v in generator.vae.state_dict().items()}
    model = GeneratorPretraining(
        encoder, generator, export_dir=str(tmp_path / "out"), export_dtype="float16"
    )
    fit_tiny(model)
    assert all(torch.equal(v, generator.vae.state_dict()[k]) for k, v in vae_before.items())
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["unet.safetensors"]
    LatentDiffusionGenerator(
        preset="tiny",
        condition_dim=64,
        image_size=32,
        unet_pretrained=str(tmp_path / "out" / "unet.safetensors"),
    )


def test_vae_pretraining_exports_weights_the_ldm_loads(tmp_path, fit_tiny):
    torch.manual_seed(0)
    autoencoder = KLAutoencoder(preset="tiny")
    before = {k: v.clone() for k, v in autoencoder.state_dict().items()}
    fit_tiny(AutoencoderPretraining(autoencoder, export_dir=str(tmp_path / "out")))
    trained = autoencoder.state_dict()
    assert any(not torch.equal(v, trained[k]) for k, v in before.items())
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["vae.safetensors"]
    ldm = LatentDiffusionGenerator(
        preset="tiny", vae_pretrained=str(tmp_path / "out" / "vae.safetensors")
    )
    loaded = ldm.vae.state_dict()
    assert loaded.keys() == trained.keys()
    assert all(torch.equal(loaded[k], trained[k]) for k in trained)


def test_text_to_image_pretraining_trains_text_encoder_and_unet_and_exports_both(tmp_path):
    generator = LatentDiffusionGenerator(preset="tiny", condition_dim=64, condition_dropout=0.0)
    module = TextToImagePretraining(
        CLIPTextEncoder(preset="tiny"), generator, caption_dropout=0.0, export_dir=str(tmp_path)
    )
    batch = {"image": torch.rand(2, 3, 32, 32), "caption": ["a red circle", "a blue triangle"]}
    module.training_step(batch, 0).backward()
    trained = {n.split(".")[0] for n, p in module.named_parameters() if p.grad is not None}
    assert trained == {"text_encoder", "generator"}
    assert all(p.grad is None for p in generator.vae.parameters())
    module.on_fit_end()
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "text_encoder.safetensors",
        "unet.safetensors",
    ]
    reloaded = CLIPTextEncoder(preset="tiny", pretrained=str(tmp_path / "text_encoder.safetensors"))
    assert torch.equal(reloaded(["a red circle"]), module.text_encoder(["a red circle"]))


def test_audio_classifier_pretraining_exports_the_encoder_only(tmp_path):
    module = AudioClassifierPretraining(
        BEATsAudioEncoder(preset="tiny", clip_seconds=1.0), num_classes=3, export_dir=str(tmp_path)
    )
    batch = {"audio": 0.1 * torch.randn(2, 16000), "label": torch.tensor([0, 2])}
    assert module.training_step(batch, 0).ndim == 0
    module.on_fit_end()
    assert [p.name for p in tmp_path.iterdir()] == ["audio_encoder.safetensors"]


def test_text_encoder_export_keeps_only_the_token_rows_training_reached(tmp_path):
    generator = LatentDiffusionGenerator(preset="tiny", condition_dim=64, condition_dropout=0.0)
    encoder = CLIPTextEncoder(preset="tiny")
    module = TextToImagePretraining(
        encoder, generator, caption_dropout=0.0, export_dir=str(tmp_path)
    )
    module.training_step({"image": torch.rand(1, 3, 32, 32), "caption": ["a red circle"]}, 0)
    module.eval()
    encoder(["a violin"])  # evaluation does not count as training
    module.on_fit_end()
    trained = set(encoder.tokenize(["a red circle"]).unique().tolist())
    assert set(module.trained_tokens.nonzero().flatten().tolist()) == trained
    reloaded = CLIPTextEncoder(preset="tiny", pretrained=str(tmp_path / "text_encoder.safetensors"))
    table = reloaded.model.get_input_embeddings().weight
    kept = table.abs().sum(dim=1).nonzero().flatten().tolist()
    assert set(kept) == trained  # every other row loads as zeros
    assert torch.equal(reloaded(["a red circle"]), encoder(["a red circle"]))
    assert (tmp_path / "text_encoder.safetensors").stat().st_size < 1_000_000
