"""Seeing Sound's optional stage 1 (App. A.11): the audio projector aligned with the text projection.

Before the diffusion training, the audio projector can be pre-trained contrastively on audio-text
pairs so that it lands close to the text-to-image model's own projected text tokens, "a
pseudo-shared embedding space" (App. A.11, following SonicDiffusion); the paper found it changed
little beyond a marginally faster convergence (App. A.10). Here the audio side is the frozen AST's
tokens (padding masked) through a new projector, the text side the text-to-image model's frozen
text encoder through PixArt's own frozen caption projection; both are mean-pooled over their
tokens and compared with the symmetric InfoNCE of CLIP. The trained projector is exported for
:class:`~a2i.methods.seeing_sound.SeeingSound`'s ``projector_pretrained``.

The text encoder is a :class:`~a2i.interfaces.TextEncoder` (the world's tiny text-to-image PixArt
reads a CLIP one); PixArt-α reads T5-XXL, which a2i does not wrap, so this stage
runs in the world only.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from a2i.errors import ConfigError
from a2i.generators.diffusion import ProjectedConditionGenerator
from a2i.interfaces import AUDIO, FixedWindowAudioEncoder, TextEncoder, check_embedding_match
from a2i.losses.alignment import similarity_logits, symmetric_infonce
from a2i.methods.base import A2IMethod, Logged


def masked_mean(tokens: Tensor, mask: Tensor) -> Tensor:
    """Mean of ``(B, N, D)`` tokens over the positions where ``mask`` ``(B, N)`` is True."""
    weights = mask.to(tokens.dtype)[..., None]
    return (tokens * weights).sum(dim=1) / weights.sum(dim=1).clamp_min(1.0)


class AudioProjectorPretraining(A2IMethod):
    """Contrastively align a new audio projector with a text-to-image PixArt's text projection.

    Args:
        audio_encoder: The frozen AST Seeing Sound will read.
        text_encoder: The frozen text encoder of the text-to-image PixArt.
        generator: The frozen text-to-image PixArt; its caption projection is the text side.
        projector_hidden_dim: Width after the projector's first layer (None: the DiT's width);
            give Seeing Sound the same.
        caption_key: Batch key of each clip's text (``description`` in the world).
        temperature: Divides the cosine similarities (the paper gives none; CLIP starts at 0.07).
        lr: AdamW learning rate.
        weight_decay: AdamW weight decay.
        options: :class:`~a2i.methods.base.A2IMethod`'s (``export_dir`` writes ``projector.safetensors``, Seeing Sound's
            ``projector_pretrained``; ``overwrite_export``,
            ``export_dtype``, ``save_frozen``, ``pretrained``).
    """

    def __init__(
        self,
        audio_encoder: FixedWindowAudioEncoder,
        text_encoder: TextEncoder,
        generator: ProjectedConditionGenerator,
        projector_hidden_dim: int | None = None,
        caption_key: str = "caption",
        temperature: float = 0.07,
        lr: float = 1e-4,
        weight_decay: float = 3e-2,
        **options: Any,
    ) -> None:
        super().__init__(**options)
        self.save_config(locals())
        check_embedding_match(
            text_encoder.width, generator.condition_dim, "text_encoder", "generator"
        )
        if temperature <= 0:
            raise ConfigError(f"temperature must be > 0 (got {temperature})")
        self.audio_encoder = audio_encoder.freeze()
        self.text_encoder = text_encoder.freeze()
        self.generator = generator.freeze()
        self.projector = generator.denoiser.new_projector(
            audio_encoder.token_dim, projector_hidden_dim
        )

    def step(self, batch: dict[str, Any], stage: str) -> dict[str, Logged]:
        """Symmetric InfoNCE between pooled projected audio and pooled projected text."""
        waveform = batch[AUDIO]
        with torch.no_grad():
            tokens = self.audio_encoder(waveform).tokens
            text = self.generator.denoiser.projector(
                self.text_encoder(list(batch[self.hparams.caption_key]))
            ).mean(dim=1)
        mask = self.audio_encoder.heard_tokens(waveform.shape[-1]).to(tokens.device)
        audio = masked_mean(self.projector(tokens), mask.expand(len(tokens), -1))
        logits = similarity_logits(audio, text, "cosine", self.hparams.temperature)
        return {"loss": symmetric_infonce(logits)}
