"""A tiny audio classifier, the stand-in for AudioToken's BEATs fine-tuned on AudioSet (§2.1)."""

from __future__ import annotations

from typing import Any

import torch.nn.functional as F
from torch import nn

from a2i.errors import ConfigError
from a2i.interfaces import AUDIO, LABEL, AudioEncoder
from a2i.methods.base import A2IMethod, Logged


class AudioClassifierPretraining(A2IMethod):
    """Train an audio encoder as a classifier (a linear head on its pooled output).

    AudioToken's φ is a published audio classifier (BEATs fine-tuned on AudioSet, §2.1); the
    synthetic world's tiny one is trained here on the world's classes. Only the encoder is
    exported: AudioToken reads its hidden states, not the head.

    Args:
        audio_encoder: The encoder to train (pooled output).
        num_classes: Number of classes of the dataset.
        lr: AdamW learning rate.
        options: :class:`~a2i.methods.base.A2IMethod`'s (``export_dir``, ``overwrite_export``,
            ``export_dtype``, ``save_frozen``, ``pretrained``).
    """

    def __init__(
        self,
        audio_encoder: AudioEncoder,
        num_classes: int,
        lr: float = 1e-3,
        **options: Any,
    ) -> None:
        super().__init__(**options)
        self.save_config(locals())
        if audio_encoder.output == "sequence":
            raise ConfigError(
                "AudioClassifierPretraining needs an audio encoder with a pooled output"
            )
        self.audio_encoder = audio_encoder
        self.head = nn.Linear(audio_encoder.embed_dim, num_classes)

    def step(self, batch: dict[str, Any], stage: str) -> dict[str, Logged]:
        """Cross-entropy on the clip's label, and the accuracy."""
        logits = self.head(self.audio_encoder(batch[AUDIO]).pooled)
        accuracy = (logits.argmax(dim=-1) == batch[LABEL]).float().mean()
        return {"loss": F.cross_entropy(logits, batch[LABEL]), "accuracy": accuracy}

    def trained_parts(self) -> dict[str, nn.Module]:
        """The encoder alone (AudioToken reads its hidden states, not the head)."""
        return {"audio_encoder": self.audio_encoder}
