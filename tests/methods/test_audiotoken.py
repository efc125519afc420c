"""AudioToken: the Embedder's size, eqs. 7-8, what trains, token injection, save/load, the CLI."""

from pathlib import Path

import pytest
import torch

from a2i.cli import main
from a2i.encoders.audio.beats import BEATsAudioEncoder
from a2i.encoders.text.clip_text import CLIPTextEncoder
from a2i.errors import ConfigError
from a2i.generators.latent_diffusion import LatentDiffusionGenerator
from a2i.methods.audiotoken import (
    AudioToken,
    classification_loss,
    l1_penalty,
)

ROOT = Path(__file__).resolve().parents[2]


def count(module):
    return sum(p.numel() for p in module.parameters())


def test_embedder_has_the_papers_parameter_count_at_full_size():
    with torch.device("meta"):
        model = AudioToken(
            BEATsAudioEncoder(preset="paper"),
            CLIPTextEncoder(preset="paper"),
            LatentDiffusionGenerator(preset="paper", condition_dropout=0.0),
        )
    assert model.audio_encoder.token_dim == 2304 and model.text_encoder.width == 768
    assert count(model.embedder) == 8_853_507  # AudioToken §3
    assert sum(p.numel() for p in model.parameters() if p.requires_grad) == 8_853_507


def test_classification_and_l1_terms_by_hand():
    token = torch.tensor([[3.0, 4.0], [1.0, -1.0]])
    label = torch.tensor([[3.0, 4.0], [1.0, 1.0]])  # cosines 1 and 0
    assert float(classification_loss(token, label)) == pytest.approx((0.0 + 1.0) / 2)
    assert float(l1_penalty(token)) == pytest.approx((7.0 + 2.0) / 2)


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return AudioToken(
        BEATsAudioEncoder(preset="tiny", clip_seconds=1.0),
        CLIPTextEncoder(preset="tiny"),
        LatentDiffusionGenerator(
            preset="tiny", condition_dim=64, condition_dropout=0.0, num_inference_steps=2
        ),
        lambda_cl=0.01,
    )


def batch(size=2):
    generator = torch.Generator().manual_seed(1)
    return {
        "audio": 0.1 * torch.randn(size, 16000, generator=generator),
        "image": torch.rand(size, 3, 32, 32, generator=generator),
        "caption": ["a red circle", "a blue triangle"][:size],
    }


def test_only_the_embedder_gets_gradients_and_enters_the_optimizer(tiny):
    tiny.zero_grad(set_to_none=True)
    losses = tiny.losses(batch())
    assert set(losses) == {"ldm", "l1", "cl", "loss"}
    losses["loss"].backward()
    with_grad = {n.split(".")[0] for n, p in tiny.named_parameters() if p.grad is not None}
    assert with_grad == {"embedder"}
    optimizer = tiny.configure_optimizers()
    optimized = {id(p) for group in optimizer.param_groups for p in group["params"]}
    assert optimized == {id(p) for p in tiny.embedder.parameters()}


def test_injected_token_changes_the_text_encoder_only_from_its_position(tiny):
    encoder = tiny.text_encoder
    prompt = ["A photo of a <audio>"]
    position = int((encoder.tokenize(prompt)[0] == encoder.placeholder_id).nonzero())
    first = encoder(prompt, torch.zeros(1, encoder.width))
    second = encoder(prompt, torch.ones(1, encoder.width))
    assert torch.equal(first[:, :position], second[:, :position])  # causal: earlier tokens fixed
    assert not torch.allclose(first[:, position], second[:, position])
    plain = encoder(["A photo of a"])
    assert torch.equal(plain[:, :position], first[:, :position])
    with pytest.raises(ConfigError, match="placeholder"):
        encoder(["A photo of a dog"], torch.zeros(1, encoder.width))


def test_saved_embedder_reloads_to_identical_images(tiny, tmp_path):
    audio = batch()["audio"]
    before = tiny.generate_from_audio(audio, [3])
    path = tmp_path / "embedder.safetensors"
    tiny.save_embedder(path)
    assert path.stat().st_size < 2_000_000
    with pytest.raises(FileExistsError):
        tiny.save_embedder(path)
    reloaded = AudioToken(
        tiny.audio_encoder,
        tiny.text_encoder,
        tiny.generator,
        lambda_cl=0.01,
        embedder_pretrained=str(path),
    )
    assert torch.equal(reloaded.generate_from_audio(audio, [3]), before)
    assert before.shape == (2, 1, 3, 32, 32)


def test_prompt_without_placeholder_is_refused():
    with pytest.raises(ConfigError, match="placeholder"):
        AudioToken(
            BEATsAudioEncoder(preset="tiny", clip_seconds=1.0),
            CLIPTextEncoder(preset="tiny"),
            LatentDiffusionGenerator(preset="tiny", condition_dim=64),
            prompt="A photo of a dog",
        )


def test_cli_fit_test_predict_on_the_tiny_config(tmp_path):
    config = ROOT / "tests" / "conf" / "audiotoken.yaml"
    logs = ["--trainer.logger.init_args.save_dir", str(tmp_path)]
    exported = tmp_path / "embedder.safetensors"
    main(
        ["fit", "--config", str(config), "--model.init_args.export_embedder", str(exported), *logs]
    )
    assert exported.is_file()
    (ckpt,) = tmp_path.rglob("last.ckpt")
    state = torch.load(ckpt, map_location="cpu", weights_only=False)["state_dict"]
    assert {k.split(".")[0] for k in state} == {"embedder"}
    main(["test", "--config", str(config), "--ckpt_path", str(ckpt), *logs])
    out = tmp_path / "images"
    main(
        [
            "predict",
            "--config",
            str(config),
            "--ckpt_path",
            str(ckpt),
            "--output_dir",
            str(out),
            *logs,
        ]
    )
    assert len(list(out.rglob("*.png"))) == 8 + 1  # the test split's 8 clips + grid
