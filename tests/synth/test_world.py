from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from a2i.errors import ConfigError
from a2i.synth.render_image import INDOOR_COLOURS, OUTDOOR_COLOURS
from a2i.synth.world import (
    GAIN_LIMITS_DB,
    PAIR_SIZE_SCALE,
    REFERENCE_RMS,
    SIZE_RANGE,
    WORLD_CLASSES,
    SceneSpec,
    SyntheticWorld,
    size_for_gain,
)

NUM_CLASSES = len(WORLD_CLASSES)


@pytest.fixture(scope="module")
def world() -> SyntheticWorld:
    return SyntheticWorld(clip_seconds=2.0)


def test_classes_are_unique_in_shape_colour_and_sound() -> None:
    assert NUM_CLASSES >= 10
    for attribute in ("caption", "shape", "colour", "sound"):
        values = [getattr(c, attribute) for c in WORLD_CLASSES]
        assert len(set(values)) == NUM_CLASSES, attribute
    backgrounds = np.asarray(INDOOR_COLOURS + OUTDOOR_COLOURS)
    for cls in WORLD_CLASSES:
        distance = np.abs(backgrounds - np.asarray(cls.colour)).max(axis=1)
        assert distance.min() > 0.3, cls.caption


def test_same_spec_renders_same_bytes() -> None:
    first, second = SyntheticWorld(clip_seconds=1.0), SyntheticWorld(clip_seconds=1.0)
    for index in range(6):
        spec = first.sample_spec("train", index)
        assert spec == second.sample_spec("train", index)
        a, b = first.render(spec), second.render(spec)
        assert a.audio.numpy().tobytes() == b.audio.numpy().tobytes()
        assert a.image.numpy().tobytes() == b.image.numpy().tobytes()
        assert a.audio.dtype == torch.float32 and a.image.dtype == torch.float32


def test_splits_never_share_a_scene(world: SyntheticWorld) -> None:
    seeds = {
        split: {world.sample_spec(split, i).seed for i in range(2000)}
        for split in ("train", "val", "test")
    }
    for a, b in itertools.combinations(seeds.values(), 2):
        assert not a & b
    other_world = SyntheticWorld(seed=1)
    assert not seeds["test"] & {other_world.sample_spec("test", i).seed for i in range(2000)}
    assert not torch.equal(
        world.render_audio(world.sample_spec("train", 0)),
        world.render_audio(world.sample_spec("test", 0)),
    )


def test_sampled_factors_follow_the_configuration() -> None:
    world = SyntheticWorld(mixture_prob=0.5, reverb_prob=0.25, gain_range_db=(-10.0, 5.0))
    specs = [world.sample_spec("val", i) for i in range(800)]
    mixtures = np.mean([len(s.sources) == 2 for s in specs])
    reverb = np.mean([s.reverb for s in specs])
    assert 0.42 < mixtures < 0.58 and 0.19 < reverb < 0.31
    for spec in specs:
        assert all(-10.0 <= g <= 5.0 for g in spec.gains_db)
        assert list(spec.gains_db) == sorted(spec.gains_db, reverse=True)  # label = loudest
        assert len(set(spec.sources)) == len(spec.sources)
    assert {s.sources[0] for s in specs} == set(range(NUM_CLASSES))


def test_32_and_64_are_the_same_scene() -> None:
    small, large = SyntheticWorld(image_size=32), SyntheticWorld(image_size=64)
    for index in range(8):
        spec = small.sample_spec("test", index)
        assert spec == large.sample_spec("test", index)
        assert small.layout(spec) == large.layout(spec)
        pooled = F.avg_pool2d(large.render_image(spec)[None], 2)[0]
        difference = (pooled - small.render_image(spec)).abs()
        # Anti-aliasing ramps differ slightly at sharp corners; everywhere else they agree.
        assert difference.mean() < 0.01 and difference.quantile(0.99) < 0.05


def test_louder_source_draws_bigger_object_with_the_same_sound() -> None:
    world = SyntheticWorld(clip_seconds=1.0)
    gains = (-20.0, -10.0, 0.0, 10.0)
    for source in range(NUM_CLASSES):
        specs = [SceneSpec((source,), (g,), False, 77) for g in gains]
        sizes = [world.layout(s).sizes[0] for s in specs]
        centres = {world.layout(s).positions[0] for s in specs}
        areas = [float(world.render_layers(s).objects.sum()) for s in specs]
        audio = [world.render_audio(s) for s in specs]
        assert sizes == sorted(sizes) and len(set(sizes)) == len(sizes)
        assert sizes[0] == pytest.approx(SIZE_RANGE[0]) and sizes[-1] == pytest.approx(
            SIZE_RANGE[1]
        )
        assert len(centres) == 1  # grows in place
        assert areas == sorted(areas) and areas[0] < areas[-1] / 4
        # Same waveform scaled by the gain, over the same noise floor: differences cancel the floor.
        amplitude = [10 ** (g / 20) for g in gains]
        span = audio[-1] - audio[0]
        for a, amp in zip(audio, amplitude, strict=True):
            expected = span * (amp - amplitude[0]) / (amplitude[-1] - amplitude[0])
            torch.testing.assert_close(a - audio[0], expected, atol=1e-6, rtol=1e-4)


def test_size_map_is_monotone_and_pairs_fit_side_by_side() -> None:
    grid = np.linspace(*GAIN_LIMITS_DB, 31)
    solo = [size_for_gain(g) for g in grid]
    assert np.all(np.diff(solo) > 0)
    assert size_for_gain(GAIN_LIMITS_DB[1], 2) == pytest.approx(SIZE_RANGE[1] * PAIR_SIZE_SCALE)
    assert size_for_gain(GAIN_LIMITS_DB[1], 2) < 0.5


def test_mixture_draws_both_objects_apart() -> None:
    world = SyntheticWorld(image_size=64)
    for index, (a, b) in enumerate([(0, 1), (2, 9), (5, 6), (4, 8)]):
        spec = SceneSpec((a, b), (10.0, 10.0), index % 2 == 0, 1000 + index)
        layers = world.render_layers(spec)
        assert layers.objects.shape == (2, 64, 64)
        assert (layers.objects.sum(axis=(1, 2)) > 30).all()
        assert float((layers.objects[0] * layers.objects[1]).sum()) == 0.0
        columns = [np.nonzero(o.sum(axis=0))[0] for o in layers.objects]
        left, right = sorted(columns, key=lambda c: c.mean())
        assert left.max() < 32 <= right.min()
        sample = world.render(spec)
        assert sample.label == a and sample.caption == WORLD_CLASSES[a].caption
        assert len(sample.sizes) == len(sample.positions) == 2


def test_reverb_means_indoor_background() -> None:
    world = SyntheticWorld(image_size=32, clip_seconds=1.0)
    for reverb in (False, True):
        spec = SceneSpec((3,), (-20.0,), reverb, 5)
        image = world.render_image(spec)
        upper, lower = INDOOR_COLOURS if reverb else OUTDOOR_COLOURS
        assert torch.allclose(image[:, 0, 0], torch.tensor(upper), atol=0.05)
        assert torch.allclose(image[:, -1, -1], torch.tensor(lower), atol=0.05)
    dry, wet = (world.render_audio(SceneSpec((6,), (0.0,), r, 5)) for r in (False, True))
    assert not torch.allclose(dry, wet, atol=1e-3)
    assert wet.pow(2).mean().sqrt() == pytest.approx(float(dry.pow(2).mean().sqrt()), rel=0.05)


@pytest.mark.parametrize("reverb", [False, True])
def test_every_sound_is_audible_throughout_and_never_clips(reverb: bool) -> None:
    world = SyntheticWorld(clip_seconds=2.0)
    window = world.sample_rate // 2
    for source in range(NUM_CLASSES):
        audio = world.render_audio(SceneSpec((source,), (GAIN_LIMITS_DB[0],), reverb, source))
        assert audio.shape == (world.num_samples,)
        rms = audio.unfold(0, window, window // 4).pow(2).mean(dim=1).sqrt()
        quiet_reference = REFERENCE_RMS * 10 ** (GAIN_LIMITS_DB[0] / 20)
        assert rms.min() > 0.3 * quiet_reference, WORLD_CLASSES[source].sound
    for index, (a, b) in enumerate([(4, 9), (5, 6), (0, 1)]):
        loud = world.render_audio(SceneSpec((a, b), (10.0, 10.0), reverb, index))
        assert loud.abs().max() < 0.99


def test_every_class_sound_differs(world: SyntheticWorld) -> None:
    spectra = []
    for source in range(NUM_CLASSES):
        audio = world.render_audio(SceneSpec((source,), (0.0,), False, 3))
        spectrum = torch.stft(audio, 512, window=torch.hann_window(512), return_complex=True)
        spectra.append(spectrum.abs().mean(dim=1))
    spectra = F.normalize(torch.stack(spectra), dim=1)
    similarity = spectra @ spectra.T
    assert (similarity - torch.eye(NUM_CLASSES)).max() < 0.9


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"gain_range_db": (-30.0, 0.0)}, "gain_range_db"),
        ({"mixture_prob": 1.5}, "mixture_prob"),
        ({"sample_rate": 4000}, "sample_rate"),
        ({"image_size": 4}, "image_size"),
    ],
)
def test_bad_world_configuration_names_the_field(kwargs: dict, field: str) -> None:
    with pytest.raises(ConfigError, match=field):
        SyntheticWorld(**kwargs)


@pytest.mark.parametrize(
    "spec",
    [
        SceneSpec((0, 0), (0.0, 0.0), False, 1),
        SceneSpec((0, 1, 2), (0.0, 0.0, 0.0), False, 1),
        SceneSpec((NUM_CLASSES,), (0.0,), False, 1),
        SceneSpec((0,), (0.0, 1.0), False, 1),
        SceneSpec((0,), (20.0,), False, 1),
    ],
)
def test_bad_spec_is_refused(spec: SceneSpec, world: SyntheticWorld) -> None:
    with pytest.raises(ConfigError, match="SceneSpec"):
        world.render(spec)


def test_unknown_split_is_refused(world: SyntheticWorld) -> None:
    with pytest.raises(ConfigError, match="split"):
        world.sample_spec("training", 0)  # type: ignore[arg-type]


def test_chirps_render_finite_audio():
    """Regression: float32 sin(π·x) dips below zero near x=1 and the chirp envelope took its
    square root, so some scenes (seed 260 of the yellow star, found by search) held NaN samples."""
    world = SyntheticWorld(image_size=32, clip_seconds=4.0)
    spec = SceneSpec(sources=(2,), gains_db=(0.0,), reverb=False, seed=260)
    assert torch.isfinite(world.render_audio(spec)).all()


def test_spectrogram_survives_a_16_bit_wav_round_trip() -> None:
    """Regression: without a noise floor, silent bins sit at log(eps) and 16-bit quantisation
    moved them by several log units, so models trained on renders misread the world's wavs."""
    from a2i.audio.features import LogSpectrogram

    world = SyntheticWorld(clip_seconds=1.0)
    spectrogram = LogSpectrogram(n_fft=256, hop_length=320, normalize=False)
    for source in range(NUM_CLASSES):  # quietest gain: the floor matters most there
        audio = world.render_audio(SceneSpec((source,), (-20.0,), False, 5))
        quantised = torch.round(audio * 32767) / 32767
        shift = (spectrogram(audio[None]) - spectrogram(quantised[None])).abs().mean()
        assert shift < 0.1, source  # was ~4 log units before the floor
