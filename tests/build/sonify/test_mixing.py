"""LUFS normalisation per source, time-domain sum, recorded peak protection, reproducible recipes."""

from __future__ import annotations

import math

import pytest
import torch

from a2i.audio.effects import loudness
from a2i.build.sonify.mixing import (
    MixRecipe,
    MixSource,
    draw_lufs,
    normalize_source,
    render_mixture,
)
from a2i.errors import ConfigError

RATE = 16000


def sources() -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    t = torch.arange(5 * RATE) / RATE
    short = torch.zeros(5 * RATE)
    short[:3200] = 0.3 * torch.sin(2 * torch.pi * 880 * t[:3200])  # 0.2 s of sound, zero-padded
    return {
        "noise": 0.05 * torch.randn(5 * RATE, generator=generator),
        "tone": 0.5 * torch.sin(2 * torch.pi * 440 * t),
        "quiet": 1e-3 * torch.sin(2 * torch.pi * 100 * t),
        "short": short,
        "tiny_file": 0.2 * torch.randn(1000, generator=generator),  # shorter than a gating block
        "silence": torch.zeros(5 * RATE),
    }


@pytest.mark.parametrize("target", [-30.0, -23.0, -12.0])
def test_each_normalised_source_hits_its_lufs_target_within_half_a_lu(target):
    for name, wave in sources().items():
        scaled, measured, gain = normalize_source(wave.double(), RATE, target)
        assert torch.isfinite(scaled).all(), name
        if name == "silence":
            assert measured is None and gain == 0.0 and torch.equal(scaled, wave.double())
            continue
        assert abs(loudness(scaled, RATE) - target) < 0.5, name
        assert math.isclose(gain, target - measured, abs_tol=1e-3)


def reader(name: str, chunk: int) -> torch.Tensor:
    wave = sources()[name]
    return torch.nn.functional.pad(wave, (0, 5 * RATE - len(wave)))


def test_mixture_is_the_sum_of_the_normalised_sources_and_its_recipe_re_renders_it():
    recipe = MixRecipe(
        [MixSource("dog", "noise", lufs=-24.0), MixSource("bird", "short", lufs=-22.0, offset=1.5)],
        RATE,
        5.0,
    )
    mix = render_mixture(recipe, reader)
    noise, _, _ = normalize_source(reader("noise", 0).double(), RATE, -24.0)
    short, _, _ = normalize_source(reader("short", 0).double(), RATE, -22.0)
    expected = noise.clone()
    expected[int(1.5 * RATE) :] += short[: int(3.5 * RATE)]
    assert torch.allclose(mix.waveform.double(), expected, atol=1e-6)
    assert mix.recipe.peak_gain_db == 0.0 and not mix.notes
    assert [s.measured_lufs is not None for s in mix.recipe.sources] == [True, True]
    stored = MixRecipe.from_dict(mix.recipe.to_dict())
    assert torch.equal(render_mixture(stored, reader).waveform, mix.waveform)


def test_a_sum_that_would_clip_is_scaled_down_and_the_gain_is_recorded():
    recipe = MixRecipe([MixSource(n, n, lufs=-3.0) for n in ("noise", "tone", "short")], RATE, 5.0)
    mix = render_mixture(recipe, reader, peak_ceiling=0.9)
    assert mix.recipe.peak_gain_db < 0
    assert mix.waveform.abs().max() <= 0.9 + 1e-6 and mix.recipe.peak <= 0.9 + 1e-6
    assert any("scaled by" in note for note in mix.notes)


def test_a_silent_source_is_added_at_zero_db_without_nan():
    recipe = MixRecipe([MixSource("a", "silence"), MixSource("b", "tone")], RATE, 5.0)
    mix = render_mixture(recipe, reader)
    assert torch.isfinite(mix.waveform).all()
    silent = mix.recipe.sources[0]
    assert silent.measured_lufs is None and silent.gain_db == 0.0
    assert any("silent" in note for note in mix.notes)


def test_loudness_targets_are_uniform_in_the_range_and_stable_per_image():
    draws = [draw_lufs(f"sa_{i}", 0, 0, (-25.0, -21.0)) for i in range(500)]
    assert all(-25.0 <= d <= -21.0 for d in draws)
    assert min(draws) < -24.5 and max(draws) > -21.5
    assert draw_lufs("sa_3", 0, 1, (-25.0, -21.0)) == draw_lufs("sa_3", 0, 1, (-25.0, -21.0))
    assert draw_lufs("sa_3", 1, 1, (-25.0, -21.0)) != draw_lufs("sa_3", 0, 1, (-25.0, -21.0))
    with pytest.raises(ConfigError, match="lufs_range"):
        draw_lufs("x", 0, 0, (-10.0, 3.0))
