"""The generator contract: declared sampling controls, one signature, refusals by name."""

from __future__ import annotations

import pytest
import torch

from a2i.errors import ConfigError
from a2i.generators.biggan import BigGANGenerator
from a2i.generators.diffusion import DiffusionGenerator, ProjectedConditionGenerator
from a2i.generators.latent_diffusion import LatentDiffusionGenerator
from a2i.generators.pixart import PixArtGenerator
from a2i.interfaces import Condition, ImageGenerator

WIDTH = 64


def seeded(rows: int, seed: int = 0) -> list[torch.Generator]:
    return [torch.Generator().manual_seed(seed) for _ in range(rows)]


@pytest.fixture(scope="module", params=["unet", "pixart"])
def diffusion_generator(request) -> DiffusionGenerator:
    torch.manual_seed(0)
    if request.param == "unet":
        return LatentDiffusionGenerator(preset="tiny", num_inference_steps=2).eval()
    return PixArtGenerator(preset="tiny", num_inference_steps=2).eval()


@pytest.mark.parametrize(
    ("asked", "named"),
    [
        ({"guidance_scale": 3.0}, "guidance_scale"),
        ({"weights": [0.5, 0.5]}, "weights"),
        ({"num_inference_steps": 5}, "num_inference_steps"),
        ({"guidance": lambda latents, t, prediction: prediction}, "guidance"),
    ],
)
def test_gan_refuses_each_diffusion_control_by_name(asked, named):
    gan = BigGANGenerator(preset="tiny").eval()
    assert isinstance(gan, ImageGenerator) and not isinstance(gan, DiffusionGenerator)
    assert gan.sampling_controls == frozenset() and not gan.composes_conditions
    condition = torch.randn(2, gan.condition_dim)
    with pytest.raises(ConfigError, match=rf"BigGANGenerator cannot generate with {named}"):
        gan.generate(condition, seeded(2), **asked)
    with pytest.raises(ConfigError, match="unconditional"):
        gan.generate(condition, seeded(2), torch.zeros(1, gan.condition_dim))
    with pytest.raises(ConfigError, match="several conditions"):
        gan.generate([condition, condition], seeded(2))
    assert gan.generate(condition, seeded(2), guidance_scale=None).shape == (2, 3, 32, 32)


def test_diffusion_generators_take_every_control_with_the_same_keywords(diffusion_generator):
    generator = diffusion_generator
    assert generator.sampling_controls == {"guidance_scale", "num_inference_steps"}
    assert generator.composes_conditions
    tokens = torch.randn(2, 3, WIDTH, generator=torch.Generator().manual_seed(1))
    other = torch.randn(2, 3, WIDTH, generator=torch.Generator().manual_seed(2))
    steps = []

    def guidance(latents, timestep, prediction):
        steps.append(int(timestep))
        return prediction

    images = generator.generate(
        [Condition(tokens), Condition(other)],
        seeded(2),
        unconditional=Condition(torch.zeros(1, 3, WIDTH)),
        guidance_scale=2.0,
        num_inference_steps=1,
        weights=[0.7, 0.3],
        guidance=guidance,
    )
    assert images.shape == (2, 3, 32, 32) and len(steps) == 1
    configured = generator.generate(tokens, seeded(2))
    explicit = generator.generate(
        tokens,
        seeded(2),
        unconditional=Condition(tokens).null(),
        guidance_scale=generator.guidance_scale,
        num_inference_steps=generator.num_inference_steps,
    )
    assert torch.equal(configured, explicit)  # None leaves each control at its default


def test_only_pixart_offers_a_replaceable_condition_projection():
    with torch.device("meta"):
        unet, pixart = LatentDiffusionGenerator(preset="tiny"), PixArtGenerator(preset="tiny")
    assert isinstance(pixart, ProjectedConditionGenerator)
    assert not isinstance(unet, ProjectedConditionGenerator)
    assert {type(g).__name__: g.trained_parts().keys() for g in (unet, pixart)} == {
        "LatentDiffusionGenerator": {"unet"},
        "PixArtGenerator": {"transformer"},
    }


def test_preset_typos_and_published_mismatches_name_the_generator():
    with pytest.raises(ConfigError, match=r"PixArtGenerator\.preset must be 'paper' or 'tiny'"):
        PixArtGenerator(preset="small")
    with pytest.raises(ConfigError, match=r"LatentDiffusionGenerator: image_size=30"):
        LatentDiffusionGenerator(preset="tiny", image_size=30)
