"""The control sweeps on an oracle that draws exactly the scene it hears."""

from dataclasses import replace

import pytest
import torch

from a2i.interfaces import AudioToImageModel
from a2i.pipelines import AudioToImagePipeline
from a2i.synth.controllability import ControlSweeps, other_class, solo_specs
from a2i.synth.judge import WorldJudge
from a2i.synth.world import SceneSpec, SyntheticWorld


class RecordingWorld(SyntheticWorld):
    """Remembers which scene produced each rendered waveform."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.heard: dict[bytes, SceneSpec] = {}

    def render_audio(self, spec: SceneSpec) -> torch.Tensor:
        audio = super().render_audio(spec)
        self.heard[audio[:4000].numpy().tobytes()] = spec
        return audio


class Oracle(torch.nn.Module, AudioToImageModel):
    """Draws the scene whose audio it is given; with an image, draws that image when λ ≥ 0.5."""

    supports = frozenset({"gain", "mix", "image_blend"})

    def __init__(self, world: RecordingWorld) -> None:
        super().__init__()
        self.world = world
        self.anchor = torch.nn.Parameter(torch.zeros(()))

    sample_rate = property(lambda self: self.world.sample_rate)
    clip_seconds = property(lambda self: self.world.clip_seconds)
    image_size = property(lambda self: self.world.image_size)

    def generate_from_audio(self, waveform, request):
        specs = [self.world.heard[clip[:4000].numpy().tobytes()] for clip in waveform]
        drawn = torch.stack([self.world.render_image(s) for s in specs])
        if request.image is not None and request.image_weight >= 0.5:
            drawn = request.image
        return drawn[:, None].expand(-1, len(request.seeds), -1, -1, -1)


@pytest.fixture(scope="module")
def tables():
    world = RecordingWorld(image_size=32, clip_seconds=1.0)
    sweeps = ControlSweeps(world, WorldJudge.load(), scenes=6, batch_size=4)
    return sweeps.run(AudioToImagePipeline(Oracle(world)))


def test_oracle_is_bigger_when_louder(tables):
    sizes = [row["mean_size"] for row in tables["volume"]]
    assert [row["gain_db"] for row in tables["volume"]] == [-20, -15, -10, -5, 0, 5, 10]
    assert sizes == sorted(sizes)
    assert tables["volume_trend"]["spearman_rho"] > 0.9
    assert tables["volume_trend"]["slope_per_db"] > 0


def test_oracle_draws_both_sources_and_the_louder_one(tables):
    rows = {row["ratio_db"]: row for row in tables["mixture"]}
    assert rows[0.0]["both_present"] == 1.0
    assert rows[10.0]["first_present"] == 1.0


def test_oracle_reverb_moves_indoors(tables):
    assert [(row["reverb"], row["indoor"]) for row in tables["reverb"]] == [(0.0, 0.0), (1.0, 1.0)]


def test_oracle_interpolation_switches_class_at_one_half(tables):
    rows = {row["image_weight"]: row for row in tables["interpolation"]}
    assert rows[0.0]["audio_class_main"] == 1.0 and rows[0.0]["image_class_present"] == 0.0
    assert rows[1.0]["image_class_present"] == 1.0 and rows[1.0]["audio_class_present"] == 0.0


def test_methods_without_image_blending_skip_interpolation():
    world = RecordingWorld(image_size=32, clip_seconds=1.0)

    class AudioOnly(Oracle):
        supports = frozenset({"gain", "mix"})

    tables = ControlSweeps(world, WorldJudge.load(), scenes=2, gains_db=(0.0, 5.0)).run(
        AudioToImagePipeline(AudioOnly(world))
    )
    assert "interpolation" not in tables and len(tables["volume"]) == 2


def test_sweep_scenes_are_single_source_and_other_class_differs():
    world = SyntheticWorld(image_size=32, clip_seconds=1.0)
    specs = solo_specs(world, 20)
    assert all(len(s.sources) == 1 for s in specs)
    assert all(other_class(s, 10) != s.sources[0] for s in specs)
    assert other_class(replace(specs[0], seed=3), 10) == other_class(replace(specs[0], seed=3), 10)


def test_loudness_varies_one_source_and_holds_the_other():
    """Seeing Sound §4.5: one source's loudness moves, the other's stays (not ±d/2 each)."""
    world = RecordingWorld(image_size=32, clip_seconds=1.0)
    sweeps = ControlSweeps(world, WorldJudge.load(), scenes=3, batch_size=4)
    pipeline = AudioToImagePipeline(Oracle(world))
    rows = sweeps.loudness(pipeline, solo_specs(world, 3), lambda t: t, (-20.0, 10.0), -5.0)
    assert {spec.gains_db for spec in world.heard.values()} == {(-20.0, -5.0), (10.0, -5.0)}
    assert [row["first_gain_db"] for row in rows] == [-20.0, 10.0]
    assert rows[1]["first_present"] == 1.0
