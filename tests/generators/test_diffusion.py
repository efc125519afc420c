"""LatentDiffusion with an injected denoiser: training, guidance, v-prediction, padding masks."""

from __future__ import annotations

import pytest
import torch
from diffusers import DDPMScheduler, UNet2DConditionModel
from torch import Tensor

from a2i.errors import ConfigError
from a2i.generators.diffusion import NOISE_SCHEDULE, Denoiser, LatentDiffusion, UNetDenoiser
from a2i.interfaces import Condition

WIDTH = 16


def seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def tiny_unet(in_channels: int = 3) -> UNet2DConditionModel:
    torch.manual_seed(0)
    return UNet2DConditionModel(
        sample_size=8,
        in_channels=in_channels,
        out_channels=in_channels,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        block_out_channels=(32, 32),
        layers_per_block=1,
        attention_head_dim=4,
        norm_num_groups=32,
        cross_attention_dim=WIDTH,
    )


@pytest.fixture
def diffusion() -> LatentDiffusion:
    """Pixel-space diffusion of 8×8 images around a tiny UNet."""
    return LatentDiffusion(UNetDenoiser(tiny_unet()), image_size=8).eval()


@pytest.fixture
def condition() -> Condition:
    return Condition(torch.randn(2, 3, WIDTH, generator=seeded(1)))


class Recorder(Denoiser):
    """Predicts zeros and keeps what it was given."""

    in_channels = 3
    condition_dim = WIDTH

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[Tensor, Tensor, Condition]] = []

    def forward(self, sample: Tensor, timesteps: Tensor, condition: Condition) -> Tensor:
        self.calls.append((sample, timesteps, condition))
        return torch.zeros_like(sample)


def test_injected_denoiser_trains_a_step_and_samples(diffusion, condition):
    diffusion.train()
    before = [p.clone() for p in diffusion.parameters()]
    optimizer = torch.optim.SGD(diffusion.parameters(), lr=0.1)
    loss = diffusion.training_losses(torch.rand(2, 3, 8, 8), condition)["loss"]
    loss.backward()
    optimizer.step()
    assert torch.isfinite(loss)
    assert any(not torch.equal(a, b) for a, b in zip(before, diffusion.parameters(), strict=True))
    images = diffusion.eval().sample(condition, generator=seeded(0), num_inference_steps=2)
    assert images.shape == (2, 3, 8, 8) and 0 <= images.min() and images.max() <= 1


def test_guidance_scale_one_is_one_conditional_pass(diffusion, condition, monkeypatch):
    batches = []
    forward = diffusion.denoiser.forward
    monkeypatch.setattr(
        diffusion.denoiser,
        "forward",
        lambda x, t, c: batches.append(len(x)) or forward(x, t, c),
    )
    plain = diffusion.sample(condition, generator=seeded(0), num_inference_steps=2)
    assert batches == [2, 2]
    # u + s·(c − u) = c when the unconditional input is the condition itself.
    guided = diffusion.sample(
        condition, condition, generator=seeded(0), num_inference_steps=2, guidance_scale=3.0
    )
    assert batches[2:] == [4, 4]
    assert torch.allclose(guided, plain, atol=1e-5)
    nulled = diffusion.sample(
        condition, generator=seeded(0), num_inference_steps=2, guidance_scale=3
    )
    assert not torch.allclose(nulled, plain, atol=1e-3)


def test_v_prediction_target_is_the_velocity():
    recorder = Recorder()
    scheduler = DDPMScheduler(**NOISE_SCHEDULE, prediction_type="v_prediction")
    diffusion = LatentDiffusion(recorder, 8, noise_scheduler=scheduler, condition_dropout=0.0)
    image = torch.rand(4, 3, 8, 8, generator=seeded(2))
    torch.manual_seed(5)
    loss = diffusion.training_losses(image, Condition(torch.randn(4, 1, WIDTH)))["loss"]
    torch.manual_seed(5)
    torch.randn(4, 1, WIDTH)
    x0 = image * 2 - 1
    noise = torch.randn_like(x0)
    timesteps = torch.randint(0, 1000, (4,))
    alpha_bar = scheduler.alphas_cumprod[timesteps].view(-1, 1, 1, 1)
    velocity = alpha_bar.sqrt() * noise - (1 - alpha_bar).sqrt() * x0
    assert torch.allclose(velocity, scheduler.get_velocity(x0, noise, timesteps), atol=1e-6)
    sample, seen_timesteps, _ = recorder.calls[0]
    assert torch.equal(seen_timesteps, timesteps)
    assert torch.allclose(sample, alpha_bar.sqrt() * x0 + (1 - alpha_bar).sqrt() * noise, atol=1e-6)
    assert loss == pytest.approx(float(velocity.pow(2).mean()), rel=1e-5)  # the recorder predicts 0


def test_padding_tokens_masked_out_change_nothing(diffusion, condition):
    padding = 5 * torch.randn(2, 2, WIDTH, generator=seeded(3))
    tokens = torch.cat([condition.tokens, padding], dim=1)
    mask = torch.tensor([[True] * 3 + [False] * 2] * 2)

    def draw(condition: Condition) -> Tensor:
        generators = [seeded(0), seeded(1)]
        return diffusion.sample(
            condition, None, generators, num_inference_steps=2, guidance_scale=3
        )

    plain = draw(condition)
    assert torch.allclose(draw(Condition(tokens, mask)), plain, atol=1e-5)
    assert not torch.allclose(draw(Condition(tokens)), plain, atol=1e-3)


def test_conditions_and_denoisers_that_do_not_fit_are_refused(diffusion):
    with pytest.raises(ConfigError, match=r"expects conditions of 16-d tokens"):
        diffusion.sample(Condition(torch.zeros(2, 1, 8)))
    with pytest.raises(ConfigError, match="4-channel samples but the images have 3"):
        LatentDiffusion(UNetDenoiser(tiny_unet(in_channels=4)), image_size=8)
    with pytest.raises(ConfigError, match="condition_dropout"):
        LatentDiffusion(Recorder(), 8, condition_dropout=1.0)


def test_composed_conditions_add_their_weighted_guidance(diffusion, condition):
    """Composable diffusion (Liu et al. 2022): ε(∅) + s·Σ w_i (ε(c_i) − ε(∅))."""
    other = Condition(torch.randn(2, 3, WIDTH, generator=seeded(2)))

    def draw(conditions, **kwargs):
        return diffusion.sample(
            conditions, generator=seeded(0), num_inference_steps=2, guidance_scale=3.0, **kwargs
        )

    alone = draw(condition)
    torch.testing.assert_close(
        draw([condition, other], weights=[1.0, 0.0]), alone, atol=1e-5, rtol=0
    )
    torch.testing.assert_close(
        draw([condition, condition], weights=[0.5, 0.5]), alone, atol=1e-5, rtol=0
    )
    assert not torch.allclose(draw([condition, other], weights=[0.5, 0.5]), alone, atol=1e-3)
    with pytest.raises(ConfigError, match="one weight per condition"):
        draw([condition, other], weights=[1.0])
