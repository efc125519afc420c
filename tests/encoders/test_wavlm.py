"""WavLM behind the AudioEncoder interface (an alternative audio network for AudioToken)."""

import pytest
import torch

from a2i.encoders.audio.wavlm import WavLMAudioEncoder
from a2i.errors import CheckpointNotFoundError, ConfigError


def test_tiny_wavlm_concatenates_layers_4_8_12_per_frame():
    encoder = WavLMAudioEncoder(preset="tiny", clip_seconds=1.0, freeze=True)
    out = encoder(0.1 * torch.randn(2, 12000))  # padded to 1 s
    assert out.tokens.shape == (2, 49, 3 * 64)  # one frame per 320 samples
    assert out.pooled.shape == (2, 64) and encoder.token_dim == 192
    last = WavLMAudioEncoder(preset="tiny", clip_seconds=1.0, hidden_layers=None)
    assert last(torch.randn(1, 16000)).tokens.shape == (1, 49, 64)


def test_paper_preset_is_wavlm_base_size():
    with torch.device("meta"):
        encoder = WavLMAudioEncoder()
    assert round(sum(p.numel() for p in encoder.parameters()) / 1e6, 1) == 94.4
    assert encoder.token_dim == 2304


def test_bad_layers_and_missing_checkpoint():
    with pytest.raises(ConfigError, match="hidden_layers"):
        WavLMAudioEncoder(preset="tiny", hidden_layers=(0, 13))
    with pytest.raises(CheckpointNotFoundError, match="microsoft/wavlm-base-plus"):
        WavLMAudioEncoder(pretrained="microsoft/wavlm-base-plus")
