"""WavLM behind the AudioEncoder interface (an alternative audio network for AudioToken)."""

import pytest
import torch
from transformers import Wav2Vec2FeatureExtractor, WavLMConfig, WavLMModel

from a2i.encoders.audio.wavlm import WAVLM_PRESETS, WavLMAudioEncoder
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


def save_checkpoint(folder, do_normalize):
    """A tiny WavLM saved the way the hub holds one: model and preprocessor files."""
    torch.manual_seed(0)
    WavLMModel(WavLMConfig(**WAVLM_PRESETS["tiny"])).save_pretrained(folder)
    Wav2Vec2FeatureExtractor(do_normalize=do_normalize).save_pretrained(folder)
    return str(folder)


@pytest.mark.parametrize("do_normalize", [False, True])
def test_each_checkpoint_is_fed_as_its_own_preprocessor_says(tmp_path, do_normalize):
    """wavlm-base-plus's preprocessor does not normalise (do_normalize false): standardising
    every clip anyway made the tower deaf to loudness (WavBriVL §4.2's louder → more salient)."""
    encoder = WavLMAudioEncoder(pretrained=save_checkpoint(tmp_path, do_normalize), clip_seconds=1)
    clip = 0.1 * torch.randn(1, 16000)
    assert encoder.normalize_waveform is do_normalize
    fed = encoder.model_input(clip)
    assert torch.allclose(fed, (clip - clip.mean()) / clip.std(), atol=1e-5) is do_normalize
    assert torch.equal(fed, clip) is not do_normalize


def test_presets_state_their_waveform_normalisation():
    # paper = wavlm-base-plus's preprocessor; tiny = how a2i's world towers were trained
    assert WavLMAudioEncoder(preset="tiny").normalize_waveform is True
    with torch.device("meta"):
        assert WavLMAudioEncoder(preset="paper").normalize_waveform is False
    chosen = WavLMAudioEncoder(preset="tiny", normalize_waveform=False, clip_seconds=1)
    clip = torch.randn(1, 16000)
    assert torch.equal(chosen.model_input(clip), clip)
