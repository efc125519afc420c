from __future__ import annotations

import pytest
import torch

from a2i.encoders.audio.ast import ASTAudioEncoder
from a2i.encoders.audio.resnet_spectrogram import SpectrogramResNet
from a2i.errors import ConfigError


def count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def conv(k: int, c_in: int, c_out: int, bias: bool = False) -> int:
    return k * k * c_in * c_out + (c_out if bias else 0)


def linear(d_in: int, d_out: int) -> int:
    return d_in * d_out + d_out


def resnet_basic_count(layers, channels, in_chans=1, stem=64) -> int:
    """Parameters of a timm ResNet of BasicBlocks (convs without bias, BatchNorm = 2 per channel).

    timm's plain stem is a 7×7 conv to 64 channels whatever the preset's channels; a block
    gets a 1×1 projection shortcut whenever its width or stride changes (every stage but a
    first one that keeps 64 channels).
    """
    total, width = conv(7, in_chans, stem) + 2 * stem, stem
    for stage, (blocks, out) in enumerate(zip(layers, channels, strict=True)):
        for block in range(blocks):
            total += conv(3, width, out) + conv(3, out, out) + 4 * out
            if block == 0 and (stage > 0 or width != out):
                total += conv(1, width, out) + 2 * out
            width = out
    return total


def ast_count(hidden, layers, intermediate, patches, patch=16) -> int:
    """Parameters of transformers' ASTModel: patch embedding, 2 class tokens, positions, blocks."""
    embeddings = conv(patch, 1, hidden, bias=True) + 2 * hidden + (patches + 2) * hidden
    block = 4 * linear(hidden, hidden) + linear(hidden, intermediate) + linear(intermediate, hidden)
    return embeddings + layers * (block + 2 * 2 * hidden) + 2 * hidden  # + layer norms


def test_spectrogram_resnet_tiny_outputs(waveforms: torch.Tensor) -> None:
    torch.manual_seed(0)
    encoder = SpectrogramResNet(preset="tiny", embed_dim=64, clip_seconds=4.0)
    out = encoder(waveforms)
    assert out.tokens is None
    assert out.pooled.shape == (2, 64) and out.pooled.dtype == torch.float32
    assert torch.isfinite(out.pooled).all()
    assert (encoder.embed_dim, encoder.sample_rate, encoder.clip_seconds) == (64, 16000, 4.0)
    assert encoder.output == "pooled"
    trunk = resnet_basic_count(layers=(1, 1, 1, 1), channels=(16, 32, 64, 128))
    assert count(encoder.trunk) == trunk
    assert count(encoder) == trunk + linear(128, 64)


def test_spectrogram_resnet_paper_shapes_on_meta() -> None:
    with torch.device("meta"):
        encoder = SpectrogramResNet(preset="paper")
        pooled = encoder(torch.empty(1, 160_000)).pooled
    # Sound2Vision §4.1: 10 s at 16 kHz → 1004×257 log-spectrogram; ResNet-18 + Linear 512→2048.
    assert encoder.front_end.output_shape(160_000) == (1, 1004, 257)
    assert count(encoder.trunk) == 11_170_240  # ResNet-18 on one input channel, no classifier
    assert count(encoder.trunk) == resnet_basic_count((2, 2, 2, 2), (64, 128, 256, 512))
    assert count(encoder) == 11_170_240 + linear(512, 2048)
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
    # tiny preset: 4 layers of 64 (MLP 256) over 4 × 25 patches
    assert count(encoder) == ast_count(hidden=64, layers=4, intermediate=256, patches=100)


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
    assert count(encoder) == ast_count(hidden=768, layers=12, intermediate=3072, patches=1212)
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
