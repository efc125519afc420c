"""benchmarks/seeing_sound_ablations.py: §4.5's sweep and separated vs mixed on a tiny Seeing Sound."""

import torch

from a2i.encoders.audio.ast import ASTAudioEncoder
from a2i.generators.pixart import PixArtGenerator
from a2i.methods.seeing_sound import SeeingSound
from a2i.pipelines import AudioToImagePipeline


def tiny_seeing_sound() -> SeeingSound:
    """An untrained tiny Seeing Sound, seeded so every test draws the same weights."""
    torch.manual_seed(0)
    return SeeingSound(
        ASTAudioEncoder(preset="tiny"),
        PixArtGenerator(preset="tiny", num_inference_steps=2),
        clip_seconds=2.0,
    ).eval()


def test_both_ablations_run_on_an_untrained_model_and_give_tables(load_benchmark):
    ablations = load_benchmark("seeing_sound_ablations")
    pipeline = AudioToImagePipeline(tiny_seeing_sound())
    sweep = ablations.loudness_sweep(pipeline, scenes=2)
    separation = ablations.separated_vs_mixed(pipeline, scenes=2)
    assert [row["first_gain_db"] for row in sweep["rows"]] == list(ablations.FIRST_GAINS_DB)
    assert [row["presentation"] for row in separation] == list(ablations.PRESENTATIONS)
    assert all(0.0 <= row["both_present"] <= 1.0 for row in separation)
    table = ablations.markdown("tiny", sweep, separation)
    assert "| +10 | +15 |" in table and "| own tokens |" in table


def test_own_tokens_condition_on_both_sources_token_sequences(load_benchmark, monkeypatch):
    ablations = load_benchmark("seeing_sound_ablations")
    model = tiny_seeing_sound()
    seen = []
    generate = model.generate

    def record(condition, *args, **kwargs):
        seen.append(condition)
        return generate(condition, *args, **kwargs)

    monkeypatch.setattr(model, "generate", record)
    sources = [0.1 * torch.randn(2, 32000) for _ in range(2)]
    images = ablations.draw_own_tokens(AudioToImagePipeline(model), sources)
    tokens = model.audio_encoder.token_count
    assert images.shape[0] == 2 and seen[0].tokens.shape[1] == 2 * tokens
    assert torch.equal(seen[0].tokens[:, :tokens], model.condition(sources[0]).tokens)
