"""Audio Spectrogram Transformer (transformers ``ASTModel``) as an a2i audio encoder.

Seeing Sound §3.4 encodes audio with AST into a vector time series; AudioToken §2.1 feeds its
embedder a concatenation of an audio classifier's intermediate layers (4, 8 and 12 of 12) rather
than the last one alone, because the classification layer discards information the image needs.
``hidden_layers`` reproduces that concatenation on AST.

AST pads every clip's fbank to one window (10.24 s) and cuts it into a fixed grid of patches, so
it is a :class:`~a2i.interfaces.FixedWindowAudioEncoder`: it reports its token count and which
tokens see audio of a shorter clip (Seeing Sound masks the others).
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor
from transformers import ASTConfig, ASTModel

from a2i.audio.features import KaldiFbank
from a2i.encoders.audio.layers import check_hidden_layers, concat_hidden_states
from a2i.encoders.published import load_a2i_file, published_or_preset
from a2i.interfaces import AudioEncoderOutput, FixedWindowAudioEncoder
from a2i.pretrained import resolve_weights

SAMPLE_RATE = 16000
FRAME_SHIFT_SECONDS = 0.01
"""AST's fbank hop (10 ms): ``max_length`` frames cover ``max_length / 100`` seconds."""
CLASS_TOKENS = 2
"""AST prepends a class and a distillation token to its patch tokens."""

AST_PRESETS: dict[str, dict] = {
    "paper": {},
    "tiny": {
        "hidden_size": 64,
        "num_hidden_layers": 4,
        "num_attention_heads": 4,
        "intermediate_size": 256,
        "num_mel_bins": 64,
        "max_length": 400,
        "frequency_stride": 16,
        "time_stride": 16,
    },
}
"""``paper`` is transformers' default ASTConfig, the AudioSet model (86,187,264 parameters, 1214
tokens of 768); ``tiny`` covers 4 s clips with 100 non-overlapping 16×16 patches of 64 wide."""


class ASTAudioEncoder(FixedWindowAudioEncoder):
    """Waveform → Kaldi fbank → AST → pooled embedding and token sequence.

    Args:
        preset: ``paper`` = the AudioSet AST architecture (10.24 s, 128 mel bins, 12 × 768);
            ``tiny`` = 4 layers × 64 on 4 s, 64 mel bins. Ignored when ``pretrained`` names
            published weights (their config fixes the architecture and the front end).
        pretrained: Hub id or local directory of an AST checkpoint
            (``MIT/ast-finetuned-audioset-10-10-0.4593``), or an a2i ``.safetensors`` file of
            this module's state dict for ``preset``.
        hidden_layers: 1-based transformer layers whose outputs are concatenated along features
            into ``tokens`` (AudioToken §2.1 uses ``(4, 8, 12)``); None: the final,
            layer-normed hidden state.
        freeze: Freeze the encoder (no gradients, eval mode kept), as AudioToken and Seeing Sound
            do with their pretrained audio encoders.
    """

    def __init__(
        self,
        preset: Literal["tiny", "paper"] = "paper",
        pretrained: str | None = None,
        hidden_layers: tuple[int, ...] | None = None,
        freeze: bool = False,
    ) -> None:
        super().__init__()
        weights = resolve_weights(pretrained, f"{type(self).__name__}.pretrained")
        self.model = published_or_preset(
            weights, ASTModel.from_pretrained, lambda: ASTModel(ASTConfig(**AST_PRESETS[preset]))
        )
        config = self.model.config
        self.hidden_layers = check_hidden_layers(
            type(self).__name__, hidden_layers, config.num_hidden_layers
        )
        self.front_end = KaldiFbank(
            sample_rate=SAMPLE_RATE,
            num_mel_bins=config.num_mel_bins,
            target_length=config.max_length,
        )
        self.sample_rate = SAMPLE_RATE
        self.clip_seconds = config.max_length * FRAME_SHIFT_SECONDS
        self.embed_dim = config.hidden_size
        self.token_dim = config.hidden_size * len(self.hidden_layers or (0,))
        self.output = "both"
        frequency, time = self.patch_grid
        self.token_count = CLASS_TOKENS + frequency * time
        load_a2i_file(self, weights, freeze)

    def forward(self, waveform: Tensor) -> AudioEncoderOutput:
        """Encode ``(B, T)`` 16 kHz waveforms.

        Returns ``pooled`` ``(B, hidden)`` (AST's mean of its two class tokens) and ``tokens``
        ``(B, 2 + patches, token_dim)`` (class tokens included).
        """
        outputs = self.model(
            input_values=self.front_end(waveform),
            output_hidden_states=self.hidden_layers is not None,
        )
        if self.hidden_layers is None:
            tokens = outputs.last_hidden_state
        else:  # hidden_states[0] is the embedding output, [i] the output of layer i
            tokens = concat_hidden_states(outputs.hidden_states, self.hidden_layers)
        return AudioEncoderOutput(pooled=outputs.pooler_output, tokens=tokens)

    @property
    def patch_grid(self) -> tuple[int, int]:
        """Frequency × time patches of the padded fbank."""
        config = self.model.config
        frequency = (config.num_mel_bins - config.patch_size) // config.frequency_stride + 1
        time = (config.max_length - config.patch_size) // config.time_stride + 1
        return frequency, time

    def heard_tokens(self, num_samples: int) -> Tensor:
        """``(token_count,)`` bool: True for the tokens that see audio of a ``num_samples`` clip.

        The front end zero-pads the fbank to ``max_length`` frames; a patch token whose frames
        all lie in that padding is False. Patches are ordered frequency-major (``f · T + t``,
        transformers' ``ASTPatchEmbeddings``); the two class tokens are always True.
        """
        frequency, time = self.patch_grid
        frames = self.front_end.frame_count(num_samples)
        heard = torch.arange(time) * self.model.config.time_stride < frames
        return torch.cat([torch.ones(CLASS_TOKENS, dtype=torch.bool), heard.repeat(frequency)])
