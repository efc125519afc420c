"""Sound2Vision's audio encoder: a ResNet-18 over the log-spectrogram, pooled and projected.

Sound2Vision §3.2: a ResNet-18 reads the spectrogram, adaptive average pooling collapses time and
frequency into one vector, and a linear layer maps it to the image-feature size so that the
audio embedding can be aligned with (and substituted for) the image encoder's output. §4.1: the
input is the 1004×257 log-spectrogram of 10 s at 16 kHz.

The released Sound2Scene audio encoder (``sound2scene.pth``, linked from the README of
``postech-ami/Sound2Scene``; file:line citations below are of its commit 2cc5fff) loads here with
its own input and output (``front_end="sound2scene"``): see
:func:`convert_sound2scene_state_dict`.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from timm.models.resnet import BasicBlock, ResNet
from torch import Tensor, nn

from a2i.audio.features import SPECTROGRAM_PRESETS, LogSpectrogram
from a2i.errors import ConfigError
from a2i.interfaces import AudioEncoder, AudioEncoderOutput
from a2i.pretrained import Weights, resolve_weights

SOUND2SCENE_DOWNLOAD = (
    "for the released Sound2Scene encoder, download sound2scene.pth from the 'Sound2Scene' link "
    "of https://github.com/postech-ami/Sound2Scene#download-models (Google Drive file "
    "1MfQo9Y6cBwSo9sYkwj2gG9kNa_1fuaUJ)"
)
SOUND2SCENE_PREFIX = "audnet."
"""Every key of the released checkpoint: ``AVENet.audnet`` is the ResNet (``model.py:10``)."""

TRUNK_PRESETS: dict[str, dict] = {
    "paper": {"layers": (2, 2, 2, 2), "channels": (64, 128, 256, 512)},
    "tiny": {"layers": (1, 1, 1, 1), "channels": (16, 32, 64, 128)},
}
"""``paper`` is ResNet-18 on one input channel (11,170,240 parameters); ``tiny`` one basic block
per stage, 16–128 channels after timm's 64-wide stem (318,304), which learns the synthetic world
in about a minute on a CPU.
"""


def convert_sound2scene_state_dict(
    state: dict[str, Tensor], expected: dict[str, Tensor], source: str
) -> dict[str, Tensor]:
    """Rename the released Sound2Scene encoder's tensors to :class:`SpectrogramResNet`'s.

    Sound2Scene's ``models/resnet.py`` is torchvision's ResNet-18 on one input channel with
    ``fc`` 512 → 2048, so ``audnet.<name>`` is ``trunk.<name>`` (timm keeps torchvision's
    names) and ``audnet.fc.*`` is ``project.*``. Every tensor must land, with its shape: a
    missing, unexpected or misshapen key is a :class:`ConfigError` naming it.

    Args:
        state: The checkpoint (``torch.save(model.state_dict())``, ``train.py:213``; a
            ``module.`` prefix from DataParallel is accepted).
        expected: This module's state dict (names and shapes to fill).
        source: Named in errors (the ``pretrained`` value and its field).
    """
    converted: dict[str, Tensor] = {}
    for key, value in state.items():
        name = key.removeprefix("module.").removeprefix(SOUND2SCENE_PREFIX)
        name = "project." + name[3:] if name.startswith("fc.") else "trunk." + name
        if name not in expected:
            raise ConfigError(f"{source}: '{key}' has no place in SpectrogramResNet ({name})")
        if value.shape != expected[name].shape:
            raise ConfigError(
                f"{source}: '{key}' is {tuple(value.shape)} but SpectrogramResNet's '{name}' is "
                f"{tuple(expected[name].shape)} (front_end='sound2scene' needs preset='paper', "
                "embed_dim=2048)"
            )
        converted[name] = value
    missing = [
        name
        for name in expected
        if name not in converted and name.startswith(("trunk.", "project."))
    ]
    if missing:
        raise ConfigError(f"{source}: no tensor for {', '.join(missing[:5])}")
    return converted


def is_sound2scene_checkpoint(state: dict[str, Tensor]) -> bool:
    """Whether a state dict is the released Sound2Scene encoder's (``audnet.*`` keys)."""
    return bool(state) and all(
        key.removeprefix("module.").startswith(SOUND2SCENE_PREFIX) for key in state
    )


class SpectrogramResNet(AudioEncoder):
    """Waveform → log-spectrogram → ResNet → average pool → Linear to ``embed_dim``.

    The output is not normalised: the alignment losses normalise when they need to, and the raw
    scale carries loudness, which Sound2Vision §5.1 maps to object size.

    Args:
        preset: ``paper`` = ResNet-18 (Sound2Vision §3.2); ``tiny`` = one block per stage,
            16–128 channels.
        front_end: ``a2i`` (:class:`LogSpectrogram`'s defaults) or ``sound2scene``, the released
            code's input and output: its spectrogram (``SPECTROGRAM_PRESETS["sound2scene"]``:
            tiled clips, Tukey window, per-frame mean removed, power spectral density, per-clip
            standardisation, frequency × time image) and a ReLU after the projection
            (``models/resnet.py:157``; ``model.py:16`` returns it as the embedding). ``None``:
            ``sound2scene`` when ``pretrained`` is the released checkpoint, else ``a2i``.
        embed_dim: Output size; must equal the image encoder's feature size (2048 for the SwAV
            ResNet-50 of Sound2Vision §3.2).
        sample_rate: Input sample rate in Hz (the spectrogram front end assumes 16 kHz hops).
        clip_seconds: Clip duration the encoder is trained on (Sound2Vision §4.1: 10 s).
        n_fft: STFT size (§4.1: 512 → 257 frequency bins).
        hop_length: STFT hop in samples (§4.1: 159 → 1004 frames for 10 s at 16 kHz). Tiny
            configs use coarser spectrograms (e.g. 256 / 320) to train in minutes on a CPU.
        pretrained: An a2i ``.safetensors`` file of this module's state dict (stage-2 output),
            or the released ``sound2scene.pth`` (loaded by :func:`convert_sound2scene_state_dict`
            into ``preset="paper"``, ``embed_dim=2048``).
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
        front_end: Literal["a2i", "sound2scene"] | None = None,
        pretrained: str | None = None,
        freeze: bool = False,
    ) -> None:
        super().__init__()
        field = f"{type(self).__name__}.pretrained"
        weights = resolve_weights(pretrained, field, download=SOUND2SCENE_DOWNLOAD)
        state = None if weights is None else weights.state_dict(download=SOUND2SCENE_DOWNLOAD)
        released = state is not None and is_sound2scene_checkpoint(state)
        self.front_end_name = front_end or ("sound2scene" if released else "a2i")
        self.front_end = LogSpectrogram(
            n_fft=n_fft,
            hop_length=hop_length,
            eps=1e-7,
            normalize=True,
            sample_rate=sample_rate,
            **SPECTROGRAM_PRESETS[self.front_end_name],
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
        # NHWC weights make every conv, batch norm and pool run channels-last (oneDNN, cuDNN):
        # the tiny step costs ~35% less CPU than NCHW; same values.
        self.trunk.to(memory_format=torch.channels_last)
        self.project = nn.Linear(self.trunk.num_features, embed_dim)
        if released:
            self._load_released(state, weights)
        elif state is not None:
            self.load_state_dict(state)
        if freeze:
            self.freeze()

    def _load_released(self, state: dict[str, Tensor], weights: Weights) -> None:
        """Load ``sound2scene.pth``; every tensor of the trunk and projection must come from it."""
        source = f"'{weights.spec}' (field '{weights.field}')"
        own = self.state_dict()
        self.load_state_dict({**own, **convert_sound2scene_state_dict(state, own, source)})

    def forward(self, waveform: Tensor) -> AudioEncoderOutput:
        """Encode ``(B, T)`` waveforms into ``pooled`` ``(B, embed_dim)``."""
        pooled = self.project(self.trunk(self.front_end(waveform)))
        if self.front_end_name == "sound2scene":
            pooled = F.relu(pooled)
        return AudioEncoderOutput(pooled=pooled)
