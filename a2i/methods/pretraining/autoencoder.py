"""The latent space of a latent diffusion model: a VAE trained on images alone."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from a2i.generators.autoencoder import KLAutoencoder
from a2i.interfaces import IMAGE
from a2i.methods.base import A2IMethod, Logged


class AutoencoderPretraining(A2IMethod):
    """Train the latent space of a latent diffusion model (the VAE) on images only.

    LDMs (Rombach et al. 2022) train the autoencoder first and freeze it; a published LDM ships its
    VAE, the tiny world's LDM gets one from this module.

    Args:
        autoencoder: The VAE to train.
        lr: Adam learning rate.
        options: :class:`~a2i.methods.base.A2IMethod`'s (``export_dir``, ``overwrite_export``,
            ``export_dtype``, ``save_frozen``, ``pretrained``).
    """

    optimizer_class = torch.optim.Adam

    def __init__(
        self,
        autoencoder: KLAutoencoder,
        lr: float = 1e-3,
        **options: Any,
    ) -> None:
        super().__init__(**options)
        self.save_config(locals())
        self.autoencoder = autoencoder

    def step(self, batch: dict[str, Any], stage: str) -> dict[str, Logged]:
        """Reconstruction + KL losses of the batch's images."""
        return self.autoencoder.training_losses(batch[IMAGE])

    def log_images(self, batch: dict[str, Any]) -> dict[str, Tensor]:
        """Real images and their reconstructions."""
        image = batch[IMAGE][:8]
        return {
            "real": image,
            "reconstructed": self.autoencoder.decode(self.autoencoder.encode(image)),
        }

    def trained_parts(self) -> dict[str, Tensor | torch.nn.Module]:
        """The VAE, exported as ``vae.safetensors`` (a latent diffusion model's ``vae_pretrained``)."""
        return {"vae": self.autoencoder}
