"""A retrieval baseline: draw the training image whose features are nearest to the sound's.

No generator: an audio encoder learns a frozen image encoder's feature space with the in-batch
symmetric InfoNCE (as Sound2Vision's stage 2, §3.1, without the L2 term), and the images it
trained on are kept in a bank beside their features. Drawing from a sound returns a bank image
among the ``top_k`` nearest; each seed draws its own choice among them. It bounds from below what
a generative method should beat: it can only show scenes it has seen.

This module is also the documented example of the method contract
(:mod:`a2i.methods.base`): it writes its components, its loss (:meth:`NearestImage.step`) and
how it draws (:meth:`NearestImage.draw`); export, checkpoints, logging, the
optimiser, seeds and controls come from :class:`~a2i.methods.base.AudioToImageMethod`.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from a2i.errors import ConfigError
from a2i.interfaces import (
    AUDIO,
    IMAGE,
    AudioEncoder,
    GenerationRequest,
    ImageEncoder,
    check_embedding_match,
    per_row_generators,
)
from a2i.losses.alignment import similarity_logits, symmetric_infonce
from a2i.methods.base import AudioToImageMethod, Logged


class NearestImage(AudioToImageMethod):
    """Audio → nearest training image in a frozen image encoder's feature space.

    Args:
        audio_encoder: Trainable encoder with a pooled output of the image-feature size.
        image_encoder: Frozen image encoder whose space the audio learns.
        bank_size: Training images kept to draw from (the most recent ones, a ring).
        top_k: A seed draws among the ``top_k`` nearest bank images (1: always the nearest).
        temperature: Divides the cosine similarities of the InfoNCE loss.
        lr: AdamW learning rate.
        weight_decay: AdamW weight decay.
        options: :class:`~a2i.methods.base.A2IMethod`'s (``export_dir`` writes the audio encoder
            and the bank, ``state.safetensors``).
    """

    aligns_spaces = True
    learned_state = ("bank_images", "bank_features", "bank_filled")

    def __init__(
        self,
        audio_encoder: AudioEncoder,
        image_encoder: ImageEncoder,
        bank_size: int = 4096,
        top_k: int = 1,
        temperature: float = 0.1,
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        **options: Any,
    ) -> None:
        super().__init__(**options)
        self.save_config(locals())
        check_embedding_match(
            audio_encoder.embed_dim, image_encoder.embed_dim, "audio_encoder", "image_encoder"
        )
        if bank_size < 1 or not 1 <= top_k <= bank_size:
            raise ConfigError(f"NearestImage needs 1 <= top_k ({top_k}) <= bank_size ({bank_size})")
        self.audio_encoder = audio_encoder
        self.image_encoder = image_encoder.freeze()
        side = image_encoder.image_size
        self.register_buffer("bank_images", torch.zeros(bank_size, 3, side, side))
        self.register_buffer("bank_features", torch.zeros(bank_size, image_encoder.embed_dim))
        self.register_buffer("bank_filled", torch.zeros((), dtype=torch.long))

    @property
    def image_size(self) -> int:
        """Side of the bank's images (the image encoder's input size)."""
        return self.image_encoder.image_size

    def audio_features(self, waveform: Tensor) -> Tensor:
        """Unit-norm ``(B, D)`` audio embeddings."""
        return F.normalize(self.audio_encoder(waveform).pooled, dim=-1)

    @torch.no_grad()
    def image_features(self, image: Tensor) -> Tensor:
        """Unit-norm ``(B, D)`` features of images in ``[0, 1]`` by the frozen encoder."""
        return F.normalize(self.image_encoder(image), dim=-1)

    @torch.no_grad()
    def remember(self, image: Tensor, features: Tensor) -> None:
        """Put a batch of training images and their features into the bank (oldest replaced)."""
        size = len(self.bank_images)
        slots = (self.bank_filled + torch.arange(len(image), device=image.device)) % size
        side = self.image_size
        self.bank_images[slots] = F.interpolate(image, size=(side, side), mode="bilinear")
        self.bank_features[slots] = features
        self.bank_filled += len(image)

    def step(self, batch: dict[str, Any], stage: str) -> dict[str, Logged]:
        """In-batch symmetric InfoNCE; training images also enter the bank."""
        audio = self.audio_features(batch[AUDIO])
        image = self.image_features(batch[IMAGE])
        logits = similarity_logits(audio, image, "cosine", self.hparams.temperature)
        if stage == "train":
            self.remember(batch[IMAGE], image)
        return {"loss": symmetric_infonce(logits)}

    def draw(self, waveform: Tensor, request: GenerationRequest) -> Tensor:
        """``(B, S, 3, H, W)``: per seed, one of the ``top_k`` bank images nearest to the sound."""
        filled = int(min(self.bank_filled, len(self.bank_images)))
        if filled == 0:
            raise ConfigError("NearestImage has an empty bank: train it (or load a checkpoint)")
        scores = self.audio_features(waveform) @ self.bank_features[:filled].T
        nearest = scores.topk(min(self.hparams.top_k, filled), dim=1).indices  # (B, k)

        def pick(seed: int) -> Tensor:  # each row draws with its own generator of this seed
            rows = per_row_generators(seed, len(nearest), "cpu")
            picks = [int(torch.randint(nearest.shape[1], (1,), generator=g)) for g in rows]
            return self.bank_images[nearest[torch.arange(len(nearest)), picks]]

        return self.for_each_seed(request.seeds, pick)
