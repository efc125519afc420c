"""PixArt-α as an injected denoiser: XL/2-512's size, the projector swap, masking, guidance, loading."""

import pytest
import torch
from diffusers import DPMSolverMultistepScheduler

from a2i.errors import CheckpointNotFoundError
from a2i.generators.pixart import PIXART_NOISE_SCHEDULE, PIXART_REPO, PixArtGenerator
from a2i.generators.score_guidance import ScoreGuidance
from a2i.interfaces import Condition


def count(module):
    return sum(p.numel() for p in module.parameters())


def seeded(seed=0):
    return torch.Generator().manual_seed(seed)


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return PixArtGenerator(preset="tiny", num_inference_steps=2).eval()


def test_paper_preset_is_pixart_xl2_512():
    with torch.device("meta"):
        generator = PixArtGenerator(preset="paper")
    assert count(generator.transformer) == 610_856_096
    assert generator.condition_dim == 4096  # T5-XXL tokens before the swap
    assert generator.image_size == 512 and generator.diffusion.sample_shape == (4, 64, 64)
    assert generator.denoiser.learned_sigma  # 8 output channels: ε and the variance range
    schedule = generator.diffusion.noise_scheduler.config
    assert (schedule.beta_schedule, schedule.beta_start, schedule.beta_end) == (
        "linear",
        0.0001,
        0.02,
    )


def test_projector_swap_leaves_every_other_weight_untouched():
    torch.manual_seed(0)
    generator = PixArtGenerator(preset="tiny")
    before = {k: v.clone() for k, v in generator.transformer.state_dict().items()}
    projector = generator.denoiser.replace_projector(48, hidden_dim=32)
    after = generator.transformer.state_dict()
    swapped = {k for k in after if k.startswith("caption_projection.")}
    assert swapped == {
        f"caption_projection.linear_{i}.{p}" for i in (1, 2) for p in ("weight", "bias")
    }
    assert set(after) == set(before)
    for key in set(after) - swapped:
        assert torch.equal(after[key], before[key]), key
    assert projector.linear_1.weight.shape == (32, 48)
    assert projector.linear_2.weight.shape == (128, 32)  # to the transformer's width
    assert generator.condition_dim == 48
    images = generator.generate(torch.randn(1, 5, 48), seeded(), num_inference_steps=1)
    assert images.shape == (1, 3, 32, 32)


def test_padded_tokens_are_masked_out(tiny):
    mask = torch.tensor([[True] * 6 + [False] * 4] * 2)
    tokens = torch.randn(2, 10, 64, generator=seeded(1))
    other_padding = tokens.clone()
    other_padding[:, 6:] = 100 * torch.randn(2, 4, 64, generator=seeded(2))
    other_audio = tokens.clone()
    other_audio[:, :6] = torch.randn(2, 6, 64, generator=seeded(3))
    sample, steps = torch.randn(2, 4, 8, 8, generator=seeded(4)), torch.tensor([10, 700])
    with torch.no_grad():
        outputs = [
            tiny.denoiser(sample, steps, Condition(t, mask))
            for t in (tokens, other_padding, other_audio)
        ]
    torch.testing.assert_close(outputs[0], outputs[1], rtol=0, atol=1e-6)
    assert not torch.allclose(outputs[0], outputs[2])
    first = tiny.generate(Condition(tokens, mask), [seeded(), seeded()])
    second = tiny.generate(Condition(other_padding, mask), [seeded(), seeded()])
    torch.testing.assert_close(first, second, rtol=0, atol=1e-5)


def test_guidance_scale_one_is_the_conditional_prediction(tiny):
    mask = torch.tensor([[True] * 7 + [False] * 3])
    condition = Condition(torch.randn(1, 10, 64, generator=seeded(5)), mask)
    plain = tiny.generate(condition, seeded(), guidance_scale=1.0)
    # ε(∅) + 1·Σ 0.5 (ε(c) − ε(∅)) over two copies of c runs the batched guided pass
    guided = tiny.diffusion.sample(
        [condition, condition], None, seeded(), num_inference_steps=2, weights=[0.5, 0.5]
    )
    torch.testing.assert_close(plain, guided, rtol=0, atol=1e-4)
    stronger = tiny.generate(condition, seeded(), guidance_scale=4.5)
    assert not torch.allclose(plain, stronger, atol=1e-3)


def test_score_guidance_steers_pixart_as_it_steers_the_unet(tiny):
    """WavBriVL's ``generation: guidance`` through PixArt: scale 0 is the plain draw."""
    tokens = torch.randn(2, 10, 64, generator=seeded(6))

    def redness(images):
        return images[:, 0].mean(dim=(1, 2)) - images[:, 1:].mean(dim=(1, 2, 3))

    def draw(scale=None):
        guidance = None if scale is None else ScoreGuidance(tiny.diffusion, redness, scale)
        return tiny.generate(tokens, [seeded(0), seeded(1)], guidance=guidance)

    plain = draw()
    assert torch.equal(draw(0.0), plain)
    steered = draw(1.0)
    assert bool((redness(steered) > redness(plain)).all())


def test_published_directory_loads_transformer_vae_and_schedule(tiny, tmp_path):
    tiny.transformer.save_pretrained(tmp_path / "transformer")
    tiny.vae.autoencoder.save_pretrained(tmp_path / "vae")
    schedule = {k: v for k, v in PIXART_NOISE_SCHEDULE.items() if k != "clip_sample"}
    schedule["beta_end"] = 0.021
    DPMSolverMultistepScheduler(**schedule).save_config(tmp_path / "scheduler")
    loaded = PixArtGenerator(preset="tiny", pretrained=str(tmp_path))
    own = tiny.transformer.state_dict()
    assert all(torch.equal(v, own[k]) for k, v in loaded.transformer.state_dict().items())
    assert loaded.image_size == 32
    assert loaded.diffusion.noise_scheduler.config.beta_end == 0.021


def test_missing_published_checkpoint_names_it_and_the_download(tmp_path, monkeypatch):
    monkeypatch.setenv("A2I_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    with pytest.raises(CheckpointNotFoundError) as info:
        PixArtGenerator(preset="paper", pretrained=PIXART_REPO)
    message = str(info.value)
    assert f"'{PIXART_REPO}'" in message and "PixArtGenerator.pretrained" in message
    assert f"hf download {PIXART_REPO}" in message
