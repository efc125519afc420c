"""The CLIP text encoder: offline tokenizer, presets, published-checkpoint errors."""

import open_clip
import pytest
import torch

from a2i.encoders.text.clip_text import CLIPTextEncoder, offline_clip_tokenizer
from a2i.errors import CheckpointNotFoundError, ConfigError
from a2i.interfaces import TextEncoder

PROMPTS = ["A photo of a dog barking!", "a photo of a red circle on grass", "Héllo wörld 123"]


def test_offline_tokenizer_matches_open_clips_ids(tmp_path, monkeypatch):
    monkeypatch.setenv("A2I_CACHE", str(tmp_path))
    ours = offline_clip_tokenizer(16)(PROMPTS, padding="max_length", max_length=16).input_ids
    reference = open_clip.tokenizer.SimpleTokenizer(context_length=16)(PROMPTS).tolist()
    for mine, theirs in zip(ours, reference, strict=True):
        length = theirs.index(49407) + 1
        assert mine[:length] == theirs[:length]  # open_clip pads with 0, SD with <|endoftext|>
        assert set(mine[length:]) <= {49407}
    assert (tmp_path / "clip_tokenizer" / "vocab.json").is_file()


def test_paper_preset_is_sd_text_tower_size_plus_the_placeholder_row():
    with torch.device("meta"):
        encoder = CLIPTextEncoder(preset="paper")
    assert encoder.width == 768 and encoder.max_length == 77
    assert sum(p.numel() for p in encoder.parameters()) == 123_060_480 + 768


def test_tiny_encoder_gives_one_state_per_token():
    encoder = CLIPTextEncoder(preset="tiny", freeze=True)
    states = encoder(["a photo of a red circle", ""])
    assert states.shape == (2, 16, 64) and encoder.frozen


def test_label_target_is_the_mean_of_the_labels_input_word_embeddings():
    encoder = CLIPTextEncoder(preset="tiny", freeze=True)
    ids = encoder.tokenizer("a red circle").input_ids[1:-1]  # without start and end tokens
    table = encoder.model.get_input_embeddings().weight
    assert len(ids) == 3
    expected = table[ids].mean(dim=0, keepdim=True)
    torch.testing.assert_close(encoder.pooled_label(["a red circle"]), expected)


def test_label_target_stops_at_the_first_end_token_when_padding_is_another_token():
    """SD-2's tokenizer (the official AudioToken default) pads with "!" (id 0), not
    <|endoftext|>: counting the ids that are not the end token took the padding as label words."""
    encoder = CLIPTextEncoder(preset="tiny", freeze=True)
    padded_with_end = encoder.pooled_label(["a red circle"])
    encoder.tokenizer.pad_token = "!"
    ids = encoder.tokenize(["a red circle"])[0].tolist()
    assert ids[5:] == [encoder.tokenizer.pad_token_id] * 11 != [encoder.tokenizer.eos_token_id] * 11
    torch.testing.assert_close(encoder.pooled_label(["a red circle"]), padded_with_end)


def test_placeholder_that_is_a_word_and_missing_checkpoints_are_refused():
    with pytest.raises(ConfigError, match="known token"):
        CLIPTextEncoder(preset="tiny", placeholder="<|endoftext|>")
    with pytest.raises(CheckpointNotFoundError, match="CompVis/stable-diffusion-v1-4"):
        CLIPTextEncoder(pretrained="CompVis/stable-diffusion-v1-4")


def test_clip_text_encoder_is_the_text_encoder_role_methods_read():
    encoder = CLIPTextEncoder(preset="tiny", freeze=True)
    assert isinstance(encoder, TextEncoder) and encoder.frozen
    assert (encoder.width, encoder.placeholder) == (64, "<audio>")
    injected = torch.randn(2, encoder.width, generator=torch.Generator().manual_seed(0))
    plain = encoder(["a photo of a red circle", "a photo of a red circle"])
    states = encoder(["a photo of a <audio>", "a photo of a <audio>"], injected)
    assert states.shape == plain.shape == (2, 16, 64)
    torch.testing.assert_close(states[:, :5], plain[:, :5])  # causal: before the slot unchanged
    assert not torch.allclose(states[0, 5:], states[1, 5:])  # after it, each row's own token
    assert encoder.pooled_label(["a red circle"]).shape == (1, encoder.width)
    with pytest.raises(ConfigError, match="placeholder '<audio>' exactly once"):
        encoder(["a photo of a red circle"], injected[:1])
