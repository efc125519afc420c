"""WavBriVL's audio tower (§2.3): WavLM, learned layer weights, a self-attention block, an MLP.

"The WavLM embedding is calculated by the weighted average of all transformer layer outputs of
WavLM, where the weights are learned" (§2.3); that sequence then passes "4 Transformer encoder
layers and [an] MLP block ... with two fully connected layers and one ReLU activation layer", and
is pooled into one embedding of the frozen vision-language space. WavBriVL replaces BriVL's text
tower by this one (§2, Fig. 1), so where the paper is silent the head follows BriVL's text tower
(:class:`~a2i.modules.attention_head.SelfAttentionHead`: L2-normalised tokens, 4 heads, average
pooling over frames).
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

from a2i.encoders.audio.wavlm import WavLMAudioEncoder
from a2i.errors import CheckpointNotFoundError, ConfigError
from a2i.interfaces import AudioEncoder, AudioEncoderOutput
from a2i.modules.attention_head import SelfAttentionHead
from a2i.modules.layer_weights import SoftmaxLayerWeights
from a2i.pretrained import resolve_weights


class WavLMTower(AudioEncoder):
    """Waveform → WavLM hidden states → softmax-weighted average → SA block → MLP → ``(B, D)``.

    At paper scale (WavLM Base+, 512-d CLIP ViT-B/32 space, the defaults) it has 117,094,269
    parameters: WavLM's 94,381,936 and 22,712,333 in the 13 layer weights, the SA block (4 × 5.6 M)
    and the MLP.

    Args:
        preset: WavLM shapes when ``wavlm_pretrained`` is not published weights: ``paper`` =
            WavLM Base/Base+ (12 layers × 768), ``tiny`` = 12 layers × 64
            (:data:`~a2i.encoders.audio.wavlm.WAVLM_PRESETS`).
        wavlm_pretrained: The published WavLM (§2.3 uses WavLM; a2i's paper config names
            ``microsoft/wavlm-base-plus``), a hub id or local directory.
        wavlm_layers: Keep only WavLM's first ``n`` transformer layers (None: all 12). The paper
            uses all; fewer make a tower that trains from scratch in minutes on a CPU (the world).
        embed_dim: Size of the output embedding: the vision-language space's (512 for CLIP
            ViT-B/32, 2048 for the released BriVL).
        clip_seconds: Clips are cropped or zero-padded to this length (VGGSound's 10 s clips).
        num_layers: Transformer encoder layers after the layer average (§2.3: 4).
        num_heads: Their attention heads (not stated; BriVL's towers use 4).
        feedforward_dim: Their feed-forward width (not stated; BriVL's towers keep torch's 2048).
        dropout: Their dropout (torch's default 0.1, as BriVL).
        mlp_hidden_dim: Hidden width of the two-layer MLP (None: ``embed_dim``, as BriVL).
        normalize_tokens: L2-normalise the averaged WavLM states before the SA block (as BriVL's
            text tower normalises RoBERTa's).
        normalize_waveform: Standardise each clip before WavLM (None: as the published
            checkpoint's preprocessor says, ``wavlm-base-plus``: no; without one, as the preset
            states: :data:`~a2i.encoders.audio.wavlm.PRESET_NORMALIZE_WAVEFORM`).
        freeze_wavlm: Keep WavLM's own weights fixed (§2.3: "we either update or freeze the
            parameters of WavLM"); the layer weights and the head always train.
        pretrained: An a2i ``.safetensors`` file of this whole tower (written by WavBriVL's
            ``export_dir``), loaded over everything else.
        freeze: Freeze the whole tower (e.g. to use it as a fixed embedder).
    """

    def __init__(
        self,
        preset: Literal["tiny", "paper"] = "paper",
        wavlm_pretrained: str | None = None,
        wavlm_layers: int | None = None,
        embed_dim: int = 512,
        clip_seconds: float = 10.0,
        num_layers: int = 4,
        num_heads: int = 4,
        feedforward_dim: int = 2048,
        dropout: float = 0.1,
        mlp_hidden_dim: int | None = None,
        normalize_tokens: bool = True,
        normalize_waveform: bool | None = None,
        freeze_wavlm: bool = True,
        pretrained: str | None = None,
        freeze: bool = False,
    ) -> None:
        super().__init__()
        weights = resolve_weights(pretrained, f"{type(self).__name__}.pretrained")
        if weights is not None and not weights.is_a2i_file:
            raise ConfigError(
                f"{type(self).__name__}.pretrained '{pretrained}' must be an a2i .safetensors file "
                "of this tower (published WavLM weights go in wavlm_pretrained)"
            )
        try:
            self.wavlm = WavLMAudioEncoder(
                preset,
                wavlm_pretrained,
                hidden_layers=None,
                clip_seconds=clip_seconds,
                normalize_waveform=normalize_waveform,
            )
        except CheckpointNotFoundError as error:  # name this tower's field, not the inner one's
            raise CheckpointNotFoundError(
                error.checkpoint,
                f"{type(self).__name__}.wavlm_pretrained",
                library="transformers",
                download=f"hf download {wavlm_pretrained}",
            ) from None
        config = self.wavlm.model.config
        if wavlm_layers is not None:
            if not 1 <= wavlm_layers <= config.num_hidden_layers:
                raise ConfigError(
                    f"{type(self).__name__}.wavlm_layers must be in 1..{config.num_hidden_layers} "
                    f"(got {wavlm_layers})"
                )
            self.wavlm.model.encoder.layers = self.wavlm.model.encoder.layers[:wavlm_layers]
            config.num_hidden_layers = wavlm_layers
        if freeze_wavlm:
            self.wavlm.freeze()
        if config.hidden_size % num_heads:
            raise ConfigError(
                f"{type(self).__name__}.num_heads {num_heads} does not divide WavLM's width "
                f"{config.hidden_size}"
            )
        self.layer_weights = SoftmaxLayerWeights(config.num_hidden_layers + 1)
        self.head = SelfAttentionHead(
            config.hidden_size,
            embed_dim,
            hidden_dim=mlp_hidden_dim,
            num_layers=num_layers,
            num_heads=num_heads,
            feedforward_dim=feedforward_dim,
            dropout=dropout,
            normalize_tokens=normalize_tokens,
        )
        self.sample_rate = self.wavlm.sample_rate
        self.clip_seconds = self.wavlm.clip_seconds
        self.embed_dim = embed_dim
        self.output = "pooled"
        if weights is not None:
            self.load_state_dict(weights.state_dict())
        if freeze:
            self.freeze()

    def forward(self, waveform: Tensor) -> AudioEncoderOutput:
        """``pooled`` ``(B, embed_dim)`` embeddings of ``(B, T)`` 16 kHz waveforms (not normalised)."""
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.wavlm.frozen):
            states = self.wavlm.hidden_states(waveform)
        return AudioEncoderOutput(pooled=self.head(self.layer_weights(states)))
