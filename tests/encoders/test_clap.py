"""CLAP wrapper: tiny preset shapes, paper preset size, missing checkpoint, a2i weights round trip."""

from __future__ import annotations

import torch

from a2i.encoders.audio.clap import PAPER_CHECKPOINT, ClapEncoder
from a2i.errors import CheckpointNotFoundError
from a2i.pretrained import save_module


def test_tiny_clap_embeds_audio_and_text_in_one_unit_length_space(waveforms):
    torch.manual_seed(0)
    clap = ClapEncoder(preset="tiny")
    assert (clap.sample_rate, clap.clip_seconds, clap.embed_dim) == (16000, 5.0, 32)
    audio = clap(waveforms).pooled
    text = clap.embed_text(["a dog barking", "rain on a tin roof"])
    assert audio.shape == text.shape == (2, 32)
    assert torch.allclose(audio.norm(dim=-1), torch.ones(2), atol=1e-5)
    assert torch.allclose(text.norm(dim=-1), torch.ones(2), atol=1e-5)
    # embeddings are deterministic (no random crop of a chunk) and depend on the audio
    assert torch.equal(clap(waveforms).pooled, audio)
    assert not torch.allclose(audio[0], audio[1])
    loss = clap.contrastive_loss(waveforms, ["a dog barking", "rain on a tin roof"])
    assert loss.ndim == 0 and torch.isfinite(loss)


def test_paper_preset_is_laion_clap_htsat_unfused_size():
    with torch.device("meta"):
        clap = ClapEncoder(preset="paper")
    assert sum(p.numel() for p in clap.parameters()) == 153_492_890
    assert (clap.sample_rate, clap.clip_seconds, clap.embed_dim) == (48000, 10.0, 512)


def test_missing_published_clap_is_one_clear_error():
    try:
        ClapEncoder(pretrained=PAPER_CHECKPOINT)
    except CheckpointNotFoundError as error:
        message = str(error)
    assert PAPER_CHECKPOINT in message and "ClapEncoder.pretrained" in message
    assert f"hf download {PAPER_CHECKPOINT}" in message


def test_a2i_weights_round_trip_and_change_the_recipe(tmp_path, waveforms):
    torch.manual_seed(1)
    trained = ClapEncoder(preset="tiny")
    save_module(trained, tmp_path / "clap.safetensors", dtype=torch.float16)
    loaded = ClapEncoder(preset="tiny", pretrained=str(tmp_path / "clap.safetensors"))
    assert torch.allclose(loaded(waveforms).pooled, trained(waveforms).pooled, atol=1e-2)
    assert loaded.recipe()["weights_sha1"] != ClapEncoder(preset="tiny").recipe()["weights_sha1"]
