from __future__ import annotations

import pytest
import torch

from a2i.encoders.audio.ast import ASTAudioEncoder
from a2i.encoders.audio.resnet_spectrogram import SpectrogramResNet
from a2i.errors import ConfigError


def count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_spectrogram_resnet_tiny_outputs(waveforms: torch.Tensor) -> None:
    torch.manual_seed(0)
    encoder = SpectrogramResNet(preset="tiny", embed_dim=64, clip_seconds=4.0)
    out = encoder(waveforms)
    assert out.tokens is None
    assert out.pooled.shape == (2, 64) and out.pooled.dtype == torch.float32
    assert torch.isfinite(out.pooled).all()
    assert (encoder.embed_dim, encoder.sample_rate, encoder.clip_seconds) == (64, 16000, 4.0)
    assert encoder.output == "pooled"
    assert count(encoder) == 318_304 + 128 * 64 + 64


def test_spectrogram_resnet_paper_shapes_on_meta() -> None:
    with torch.device("meta"):
        encoder = SpectrogramResNet(preset="paper")
        pooled = encoder(torch.empty(1, 160_000)).pooled
    # Sound2Vision §4.1: 10 s at 16 kHz → 1004×257 log-spectrogram; ResNet-18 + Linear 512→2048.
    assert encoder.front_end.output_shape(160_000) == (1, 1004, 257)
    assert count(encoder.trunk) == 11_170_240
    assert count(encoder) == 11_170_240 + 512 * 2048 + 2048
    assert pooled.shape == (1, 2048)


def test_spectrogram_resnet_rejects_clips_shorter_than_a_frame() -> None:
    with pytest.raises(ConfigError, match="clip_seconds"):
        SpectrogramResNet(preset="tiny", clip_seconds=0.01)


def test_ast_tiny_outputs(waveforms: torch.Tensor) -> None:
    torch.manual_seed(0)
    encoder = ASTAudioEncoder(preset="tiny")
    out = encoder(waveforms)
    assert encoder.output == "both" and encoder.clip_seconds == pytest.approx(4.0)
    assert out.pooled.shape == (2, encoder.embed_dim) == (2, 64)
    # 64 mel bins × 400 frames in non-overlapping 16×16 patches: 4 × 25 patches + 2 class tokens.
    assert out.tokens.shape == (2, 102, encoder.token_dim) == (2, 102, 64)
    assert out.tokens.dtype == torch.float32
    assert count(encoder) == 223_168


def test_ast_hidden_layers_are_concatenated(waveforms: torch.Tensor) -> None:
    torch.manual_seed(0)
    encoder = ASTAudioEncoder(preset="tiny", hidden_layers=(2, 4)).eval()
    out = encoder(waveforms)
    assert out.tokens.shape == (2, 102, 128) and encoder.token_dim == 128
    hidden = encoder.model(
        input_values=encoder.front_end(waveforms), output_hidden_states=True
    ).hidden_states
    torch.testing.assert_close(out.tokens[..., :64], hidden[2])
    torch.testing.assert_close(out.tokens[..., 64:], hidden[4])


@pytest.mark.parametrize("layers", [(0,), (5,), ()])
def test_ast_rejects_layers_out_of_range(layers: tuple[int, ...]) -> None:
    with pytest.raises(ConfigError, match="hidden_layers"):
        ASTAudioEncoder(preset="tiny", hidden_layers=layers)


def test_ast_paper_shapes_on_meta() -> None:
    with torch.device("meta"):
        encoder = ASTAudioEncoder(preset="paper", hidden_layers=(4, 8, 12))
        tokens = encoder.model(input_values=torch.empty(1, 1024, 128)).last_hidden_state
    assert count(encoder) == 86_187_264
    assert tokens.shape == (1, 1214, 768)
    assert (encoder.embed_dim, encoder.token_dim) == (768, 3 * 768)
    assert encoder.clip_seconds == pytest.approx(10.24)
    assert (encoder.front_end.target_length, encoder.front_end.num_mel_bins) == (1024, 128)


def test_ast_loads_a_local_transformers_directory(tmp_path, waveforms: torch.Tensor) -> None:
    torch.manual_seed(0)
    source = ASTAudioEncoder(preset="tiny").eval()
    source.model.save_pretrained(tmp_path / "ast")
    loaded = ASTAudioEncoder(preset="paper", pretrained=str(tmp_path / "ast")).eval()
    # The checkpoint's config wins over the preset, front end included.
    assert loaded.front_end.target_length == 400 and loaded.embed_dim == 64
    torch.testing.assert_close(loaded(waveforms).tokens, source(waveforms).tokens)
