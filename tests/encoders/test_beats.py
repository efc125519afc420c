"""BEATs encoder: shapes, the paper's 248 tokens, parameter count, and the published-format loader."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import pytest
import torch

from a2i.encoders.audio.beats import (
    BEATS_PRESETS,
    PUBLISHED_CHECKPOINT,
    BEATsAudioEncoder,
    CheckpointFormatError,
)
from a2i.errors import CheckpointNotFoundError, ConfigError
from a2i.pretrained import save_module

PAPER_PARAMETERS = 90_717_055
"""iter3+ AS2M fine-tuned BEATs, counted once per tensor. The published file is 363,145,291 bytes:
these parameters in float32 (362.9 MB) plus 11 stored copies of the shared position-bias table."""


class NotATensor:
    """Stands for any pickled object that is not a tensor or a plain container."""


def published_format(encoder: BEATsAudioEncoder) -> dict:
    """The encoder's weights as upstream saves them: ``cfg`` + ``model``, the bias table per layer."""
    state = dict(encoder.model.state_dict())
    table = state["encoder.layers.0.self_attn.relative_attention_bias.weight"]
    for index in range(1, encoder.config.encoder_layers):
        state[f"encoder.layers.{index}.self_attn.relative_attention_bias.weight"] = table
    return {"cfg": asdict(encoder.config), "model": state, "label_dict": {0: "/m/09x0r"}}


def test_tiny_output_shapes(waveforms: torch.Tensor) -> None:
    encoder = BEATsAudioEncoder(preset="tiny", clip_seconds=4.0).eval()
    with torch.no_grad():
        output = encoder(waveforms)
        logits = encoder.classify(waveforms)
    # 4 s = 398 fbank frames → 24 time patches × 8 mel patches; layers 4, 8, 12 side by side.
    assert encoder.num_tokens == 192
    assert output.tokens.shape == (2, 192, 3 * 64) and encoder.token_dim == 192
    assert output.pooled.shape == (2, 64) and encoder.embed_dim == 64
    assert logits.shape == (2, 527)
    torch.testing.assert_close(output.tokens[..., -64:].mean(dim=1), output.pooled)


def test_short_clips_are_padded_and_long_ones_encoded_whole(waveforms: torch.Tensor) -> None:
    encoder = BEATsAudioEncoder(preset="tiny", hidden_layers=(12,), clip_seconds=2.0).eval()
    assert encoder.any_length
    with torch.no_grad():
        whole = encoder(waveforms).tokens
        exact = encoder(waveforms[:, :32000]).tokens
        padded = encoder(waveforms[:, :20000]).tokens
        zeros = encoder(torch.nn.functional.pad(waveforms[:, :20000], (0, 12000))).tokens
    assert exact.shape == padded.shape == (2, encoder.num_tokens, 64)
    torch.testing.assert_close(padded, zeros)
    assert whole.shape == (2, 192, 64)  # 4 s: AudioToken's official inference hears 10 s whole


def test_paper_preset_yields_248_tokens_for_5_seconds() -> None:
    with torch.device("meta"):
        encoder = BEATsAudioEncoder(preset="paper")
        output = encoder(torch.zeros(1, 5 * 16000))
    assert encoder.num_tokens == 248  # AudioToken §3: "attention pooling ... a sequence of 248"
    assert output.tokens.shape == (1, 248, 2304) and encoder.token_dim == 2304
    assert output.pooled.shape == (1, 768)


def test_paper_preset_parameter_count() -> None:
    with torch.device("meta"):
        encoder = BEATsAudioEncoder(preset="paper")
    assert sum(p.numel() for p in encoder.parameters()) == PAPER_PARAMETERS


def test_published_format_round_trip(tmp_path: Path, waveforms: torch.Tensor) -> None:
    original = BEATsAudioEncoder(preset="tiny", clip_seconds=4.0).eval()
    path = tmp_path / PUBLISHED_CHECKPOINT
    torch.save(published_format(original), path)
    loaded = BEATsAudioEncoder(pretrained=str(path), preset="paper", clip_seconds=4.0).eval()
    assert loaded.config == BEATS_PRESETS["tiny"]  # the checkpoint's cfg replaced the preset
    assert loaded.class_ids == {0: "/m/09x0r"}
    with torch.no_grad():
        expected, actual = original(waveforms), loaded(waveforms)
    torch.testing.assert_close(actual.tokens, expected.tokens, rtol=0, atol=0)
    torch.testing.assert_close(actual.pooled, expected.pooled, rtol=0, atol=0)


def test_bare_name_is_found_in_the_a2i_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("A2I_CACHE", str(tmp_path))
    original = BEATsAudioEncoder(preset="tiny")
    torch.save(published_format(original), tmp_path / PUBLISHED_CHECKPOINT)
    loaded = BEATsAudioEncoder(pretrained=PUBLISHED_CHECKPOINT, freeze=True)
    assert loaded.config == original.config and loaded.frozen


def test_a2i_safetensors_round_trip(tmp_path: Path, waveforms: torch.Tensor) -> None:
    original = BEATsAudioEncoder(preset="tiny", hidden_layers=(2, 12)).eval()
    save_module(original, tmp_path / "beats.safetensors")
    loaded = BEATsAudioEncoder(
        pretrained=str(tmp_path / "beats.safetensors"), preset="tiny", hidden_layers=(2, 12)
    ).eval()
    with torch.no_grad():
        torch.testing.assert_close(loaded(waveforms).tokens, original(waveforms).tokens)


def test_missing_checkpoint_names_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("A2I_CACHE", str(tmp_path))
    with pytest.raises(CheckpointNotFoundError) as raised:
        BEATsAudioEncoder(pretrained=PUBLISHED_CHECKPOINT)
    message = str(raised.value)
    assert PUBLISHED_CHECKPOINT in message
    assert "BEATsAudioEncoder.pretrained" in message
    assert "microsoft/unilm/blob/master/beats/README.md" in message


def test_checkpoint_with_pickled_objects_is_refused(tmp_path: Path) -> None:
    checkpoint = published_format(BEATsAudioEncoder(preset="tiny"))
    checkpoint["cfg"]["payload"] = NotATensor()
    path = tmp_path / "unsafe.pt"
    torch.save(checkpoint, path)
    with pytest.raises(CheckpointFormatError, match="weights_only=True") as raised:
        BEATsAudioEncoder(pretrained=str(path))
    assert "unsafe.pt" in str(raised.value)


@pytest.mark.parametrize(
    ("corrupt", "expected"),
    [
        (lambda c: c.pop("cfg"), "expected a dict with 'cfg' and 'model'"),
        (lambda c: c["model"].pop("encoder.layer_norm.weight"), "does not fit"),
        (
            lambda c: c["model"].update(
                {"encoder.layers.3.self_attn.relative_attention_bias.weight": torch.zeros(64, 4)}
            ),
            "shares one position-bias table",
        ),
    ],
)
def test_malformed_checkpoint_is_refused(tmp_path: Path, corrupt, expected: str) -> None:
    checkpoint = published_format(BEATsAudioEncoder(preset="tiny"))
    corrupt(checkpoint)
    torch.save(checkpoint, tmp_path / "bad.pt")
    with pytest.raises(CheckpointFormatError, match=expected):
        BEATsAudioEncoder(pretrained=str(tmp_path / "bad.pt"))


@pytest.mark.parametrize("hidden_layers", [(0, 4), (4, 13), ()])
def test_hidden_layers_out_of_range(hidden_layers: tuple[int, ...]) -> None:
    with pytest.raises(ConfigError, match=r"hidden_layers .* 1\.\.12"):
        BEATsAudioEncoder(preset="tiny", hidden_layers=hidden_layers)


def test_clip_too_short_for_one_patch() -> None:
    with pytest.raises(ConfigError, match="clip_seconds"):
        BEATsAudioEncoder(preset="tiny", clip_seconds=0.1)
