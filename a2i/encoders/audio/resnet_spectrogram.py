"""Sound2Vision's audio encoder: a ResNet-18 over the log-spectrogram, pooled and projected.

Sound2Vision §3.2: a ResNet-18 reads the spectrogram, adaptive average pooling collapses time and
frequency into one vector, and a linear layer maps it to the image-feature size so that the
audio embedding can be aligned with (and substituted for) the image encoder's output. §4.1: the
input is the 1004×257 log-spectrogram of 10 s at 16 kHz.
"""

from __future__ import annotations

from typing import Literal

from timm.models.resnet import BasicBlock, ResNet
from torch import Tensor, nn

from a2i.audio.features import LogSpectrogram
from a2i.errors import ConfigError
from a2i.interfaces import AudioEncoder, AudioEncoderOutput
from a2i.pretrained import resolve_weights

TRUNK_PRESETS: dict[str, dict] = {
    "paper": {"layers": (2, 2, 2, 2), "channels": (64, 128, 256, 512)},
    "tiny": {"layers": (1, 1, 1, 1), "channels": (16, 32, 64, 128)},
}
"""``paper`` is ResNet-18 on one input channel (11,170,240 parameters); ``tiny`` one basic block
per stage, 16–128 channels after timm's 64-wide stem (318,304), which learns the synthetic world
in about a minute on a CPU.
"""


class SpectrogramResNet(AudioEncoder):
    """Waveform → log-spectrogram → ResNet → average pool → Linear to ``embed_dim``.

    The output is not normalised: the alignment losses normalise when they need to, and the raw
    scale carries loudness, which Sound2Vision §5.1 maps to object size.

    Args:
        preset: ``paper`` = ResNet-18 (Sound2Vision §3.2); ``tiny`` = one block per stage,
            16–128 channels.
        embed_dim: Output size; must equal the image encoder's feature size (2048 for the SwAV
            ResNet-50 of Sound2Vision §3.2).
        sample_rate: Input sample rate in Hz (the spectrogram front end assumes 16 kHz hops).
        clip_seconds: Clip duration the encoder is trained on (Sound2Vision §4.1: 10 s).
        n_fft: STFT size (§4.1: 512 → 257 frequency bins).
        hop_length: STFT hop in samples (§4.1: 159 → 1004 frames for 10 s at 16 kHz). Tiny
            configs use coarser spectrograms (e.g. 256 / 320) to train in minutes on a CPU.
        pretrained: An a2i ``.safetensors`` file of this module's state dict (stage-2 output).
        freeze: Freeze the encoder (no gradients, eval mode kept).
    """

    def __init__(
        self,
        preset: Literal["tiny", "paper"] = "paper",
        embed_dim: int = 2048,
        sample_rate: int = 16000,
        clip_seconds: float = 10.0,
        n_fft: int = 512,
        hop_length: int = 159,
        pretrained: str | None = None,
        freeze: bool = False,
    ) -> None:
        super().__init__()
        self.front_end = LogSpectrogram(
            n_fft=n_fft, hop_length=hop_length, eps=1e-7, normalize=True
        )
        num_samples = round(sample_rate * clip_seconds)
        if num_samples < self.front_end.n_fft:
            raise ConfigError(
                f"{type(self).__name__}: clip_seconds={clip_seconds} at sample_rate={sample_rate} "
                f"gives {num_samples} samples, fewer than one {self.front_end.n_fft}-point frame"
            )
        self.sample_rate = sample_rate
        self.clip_seconds = clip_seconds
        self.embed_dim = embed_dim
        self.token_dim = 0
        self.output = "pooled"
        self.trunk = ResNet(BasicBlock, in_chans=1, num_classes=0, **TRUNK_PRESETS[preset])
        self.project = nn.Linear(self.trunk.num_features, embed_dim)
        weights = resolve_weights(pretrained, f"{type(self).__name__}.pretrained")
        if weights is not None:
            self.load_state_dict(weights.state_dict())
        if freeze:
            self.freeze()

    def forward(self, waveform: Tensor) -> AudioEncoderOutput:
        """Encode ``(B, T)`` waveforms into ``pooled`` ``(B, embed_dim)``."""
        return AudioEncoderOutput(pooled=self.project(self.trunk(self.front_end(waveform))))
