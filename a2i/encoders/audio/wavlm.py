"""WavLM (transformers ``WavLMModel``) as an a2i audio encoder.

AudioToken's Embedder reads the concatenated hidden states of a frozen audio network's layers 4,
8 and 12 (§2.1, with BEATs); WavLM Base/Base+ has 12 transformer layers of 768 too, so it drops in
behind the same interface (``hidden_layers``). Speech-heavy data (CelebV-HQ's speech → face)
is where a speech model such as WavLM is the natural choice.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor
from transformers import Wav2Vec2FeatureExtractor, WavLMConfig, WavLMModel

from a2i.audio.io import fit_length
from a2i.encoders.audio.layers import check_hidden_layers, concat_hidden_states
from a2i.encoders.published import load_a2i_file, published_or_preset
from a2i.errors import ConfigError
from a2i.interfaces import AudioEncoder, AudioEncoderOutput
from a2i.pretrained import Weights, resolve_weights

SAMPLE_RATE = 16000

WAVLM_PRESETS: dict[str, dict] = {
    "paper": {},
    "tiny": {
        "hidden_size": 64,
        "num_hidden_layers": 12,
        "num_attention_heads": 4,
        "intermediate_size": 128,
        "conv_dim": (32, 32, 32, 32, 32, 32, 32),
        "num_conv_pos_embeddings": 16,
        "num_conv_pos_embedding_groups": 4,
    },
}
"""``paper`` is transformers' default WavLMConfig, the WavLM Base architecture (94.4 M parameters,
12 layers × 768, one frame per 320 samples); ``tiny`` keeps 12 layers (so layers 4, 8, 12 exist)
at 64 wide with a 32-channel feature extractor."""

PRESET_NORMALIZE_WAVEFORM: dict[str, bool] = {"paper": False, "tiny": True}
"""Whether a preset without published weights standardises each clip: ``paper`` as the published
``microsoft/wavlm-base-plus`` preprocessor (``do_normalize: false``); ``tiny`` as a2i's world
towers were trained (so their runs and numbers stay as they were)."""


class WavLMAudioEncoder(AudioEncoder):
    """Waveform → WavLM → mean-pooled embedding and (layer-concatenated) frame sequence.

    Args:
        preset: ``paper`` = WavLM Base shapes; ``tiny`` = 12 layers × 64. Ignored when
            ``pretrained`` names published weights.
        pretrained: Hub id or local directory (``microsoft/wavlm-base-plus``), or an a2i
            ``.safetensors`` file of this module's state dict for ``preset``.
        hidden_layers: 1-based layers whose outputs are concatenated per frame into ``tokens``
            (AudioToken §2.1: ``(4, 8, 12)``); None: the last hidden state.
        clip_seconds: Clips are cropped or zero-padded to this length (AudioToken §3: 5 s).
        freeze: Freeze the encoder (no gradients, eval mode kept).
        normalize_waveform: Standardise each clip to zero mean and unit variance before WavLM.
            None: as the published checkpoint's own preprocessor says (its ``do_normalize``;
            ``wavlm-base-plus``: false, so the tower can hear loudness), or without one as the
            preset states (:data:`PRESET_NORMALIZE_WAVEFORM`).
    """

    def __init__(
        self,
        preset: Literal["tiny", "paper"] = "paper",
        pretrained: str | None = None,
        hidden_layers: tuple[int, ...] | None = (4, 8, 12),
        clip_seconds: float = 5.0,
        freeze: bool = False,
        normalize_waveform: bool | None = None,
    ) -> None:
        super().__init__()
        weights = resolve_weights(pretrained, f"{type(self).__name__}.pretrained")
        self.model = published_or_preset(
            weights,
            WavLMModel.from_pretrained,
            lambda: WavLMModel(WavLMConfig(**WAVLM_PRESETS[preset])),
        )
        if normalize_waveform is None:
            normalize_waveform = (
                PRESET_NORMALIZE_WAVEFORM[preset]
                if weights is None or weights.is_a2i_file
                else preprocessor_normalizes(weights)
            )
        self.normalize_waveform = normalize_waveform
        config = self.model.config
        # Hidden states are indexed by layer: LayerDrop (training mode) would drop entries.
        config.layerdrop = 0.0
        self.hidden_layers = check_hidden_layers(
            type(self).__name__, hidden_layers, config.num_hidden_layers
        )
        if clip_seconds <= 0:
            raise ConfigError(f"{type(self).__name__}.clip_seconds must be > 0 ({clip_seconds})")
        self.sample_rate = SAMPLE_RATE
        self.clip_seconds = clip_seconds
        self.embed_dim = config.hidden_size
        self.token_dim = config.hidden_size * len(self.hidden_layers or (0,))
        self.output = "both"
        load_a2i_file(self, weights, freeze)

    def forward(self, waveform: Tensor) -> AudioEncoderOutput:
        """Encode ``(B, T)`` 16 kHz waveforms (cropped/padded to ``clip_seconds``).

        Returns ``pooled`` ``(B, hidden)`` (mean of the last hidden state over frames) and
        ``tokens`` ``(B, frames, token_dim)``.
        """
        outputs = self.model(
            self.model_input(waveform), output_hidden_states=self.hidden_layers is not None
        )
        last = outputs.last_hidden_state
        if self.hidden_layers is None:
            tokens = last
        else:  # hidden_states[0] is the input to the transformer, [i] the output of layer i
            tokens = concat_hidden_states(outputs.hidden_states, self.hidden_layers)
        return AudioEncoderOutput(pooled=last.mean(dim=1), tokens=tokens)

    def hidden_states(self, waveform: Tensor) -> tuple[Tensor, ...]:
        """Every hidden state ``(B, frames, hidden)`` of ``(B, T)`` waveforms, ``num_layers + 1`` of them.

        ``[0]`` is the transformer's input (the projected CNN features), ``[i]`` layer ``i``'s output
        (WavBriVL §2.3 averages them with learned weights).
        """
        return self.model(self.model_input(waveform), output_hidden_states=True).hidden_states

    def model_input(self, waveform: Tensor) -> Tensor:
        """What WavLM is fed: ``(B, T)`` waveforms cropped/padded to ``clip_seconds``.

        Each clip is standardised only when :attr:`normalize_waveform` (as the checkpoint's
        feature extractor does).
        """
        samples = round(self.clip_seconds * self.sample_rate)
        clips = torch.stack([fit_length(clip, samples, random_crop=False) for clip in waveform])
        if not self.normalize_waveform:
            return clips
        return (clips - clips.mean(dim=1, keepdim=True)) / (clips.std(dim=1, keepdim=True) + 1e-7)


def preprocessor_normalizes(weights: Weights) -> bool:
    """``do_normalize`` of a published checkpoint's ``preprocessor_config.json``."""
    return weights.load(
        lambda where: bool(Wav2Vec2FeatureExtractor.from_pretrained(where).do_normalize),
        library="transformers",
        download=f"hf download {weights.spec} preprocessor_config.json",
        name=f"{weights.spec}/preprocessor_config.json",
    )
