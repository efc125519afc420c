"""benchmarks/seeing_sound_ablations.py: §4.5's sweep and separated vs mixed on a tiny Seeing Sound."""

import importlib.util
import sys
from pathlib import Path

import torch

from a2i.encoders.audio.ast import ASTAudioEncoder
from a2i.generators.pixart import PixArtGenerator
from a2i.methods.seeing_sound import SeeingSound
from a2i.pipelines import AudioToImagePipeline

ROOT = Path(__file__).resolve().parents[1]


def load_benchmark(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    spec = importlib.util.spec_from_file_location(
        "seeing_sound_ablations", ROOT / "benchmarks" / "seeing_sound_ablations.py"
    )
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "seeing_sound_ablations", module)
    spec.loader.exec_module(module)
    return module


def test_both_ablations_run_on_an_untrained_model_and_give_tables(monkeypatch):
    ablations = load_benchmark(monkeypatch)
    torch.manual_seed(0)
    model = SeeingSound(
        ASTAudioEncoder(preset="tiny"),
        PixArtGenerator(preset="tiny", num_inference_steps=2),
        clip_seconds=2.0,
    ).eval()
    pipeline = AudioToImagePipeline(model)
    sweep = ablations.loudness_sweep(pipeline, scenes=2)
    separation = ablations.separated_vs_mixed(pipeline, scenes=2)
    assert [row["first_gain_db"] for row in sweep["rows"]] == list(ablations.FIRST_GAINS_DB)
    assert [row["presentation"] for row in separation] == list(ablations.PRESENTATIONS)
    assert all(0.0 <= row["both_present"] <= 1.0 for row in separation)
    table = ablations.markdown("tiny", sweep, separation)
    assert "| +10 | +15 |" in table and "| own tokens |" in table


def test_own_tokens_condition_on_both_sources_token_sequences(monkeypatch):
    ablations = load_benchmark(monkeypatch)
    torch.manual_seed(0)
    model = SeeingSound(
        ASTAudioEncoder(preset="tiny"),
        PixArtGenerator(preset="tiny", num_inference_steps=2),
        clip_seconds=2.0,
    ).eval()
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
