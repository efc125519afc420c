"""A tiny audio classifier, the stand-in for AudioToken's BEATs fine-tuned on AudioSet (§2.1)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from a2i.errors import ConfigError
from a2i.interfaces import AUDIO, LABEL, AudioEncoder
from a2i.methods.base import A2IMethod
from a2i.pretrained import ExportDtype, files_in


class AudioClassifierPretraining(A2IMethod):
    """Train an audio encoder as a classifier (a linear head on its pooled output).

    AudioToken's φ is a published audio classifier (BEATs fine-tuned on AudioSet, §2.1); the
    synthetic world's tiny one is trained here on the world's classes. Only the encoder is
    exported: AudioToken reads its hidden states, not the head.

    Args:
        audio_encoder: The encoder to train (pooled output).
        num_classes: Number of classes of the dataset.
        lr: AdamW learning rate.
        export_dir: Where to write ``audio_encoder.safetensors``.
        overwrite_export: Replace an existing exported file.
        export_dtype: Floating-point type of exported weights.
    """

    def __init__(
        self,
        audio_encoder: AudioEncoder,
        num_classes: int,
        lr: float = 1e-3,
        export_dir: str | None = None,
        overwrite_export: bool = False,
        export_dtype: ExportDtype = "float32",
    ) -> None:
        super().__init__()
        self.save_config(locals())
        if audio_encoder.output == "sequence":
            raise ConfigError(
                "AudioClassifierPretraining needs an audio encoder with a pooled output"
            )
        self.audio_encoder = audio_encoder
        self.head = nn.Linear(audio_encoder.embed_dim, num_classes)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        """AdamW over the encoder and the head."""
        return torch.optim.AdamW(self.parameters(), lr=self.hparams.lr)

    def _step(self, batch: dict[str, Any], stage: str) -> Tensor:
        logits = self.head(self.audio_encoder(batch[AUDIO]).pooled)
        loss = F.cross_entropy(logits, batch[LABEL])
        accuracy = (logits.argmax(dim=-1) == batch[LABEL]).float().mean()
        size = len(logits)
        self.log(f"{stage}/loss", loss, prog_bar=True, batch_size=size, sync_dist=stage != "train")
        self.log(f"{stage}/accuracy", accuracy, batch_size=size, sync_dist=stage != "train")
        return loss

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> Tensor:
        """Cross-entropy on the clip's label."""
        return self._step(batch, "train")

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        """Loss and accuracy on held-out clips."""
        self._step(batch, "val")

    def exported_parts(self) -> dict[str | Path, nn.Module | dict[str, Tensor]]:
        """The encoder alone (AudioToken reads its hidden states, not the head)."""
        return files_in(self.hparams.export_dir, {"audio_encoder": self.audio_encoder})
