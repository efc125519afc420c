"""The latent space of a latent diffusion model: a VAE trained on images alone."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from torch.nn import Module

from a2i.generators.autoencoder import KLAutoencoder
from a2i.interfaces import IMAGE
from a2i.methods.base import A2IMethod
from a2i.pretrained import ExportDtype, files_in


class AutoencoderPretraining(A2IMethod):
    """Train the latent space of a latent diffusion model (the VAE) on images only.

    LDMs (Rombach et al. 2022) train the autoencoder first and freeze it; a published LDM ships its
    VAE, the tiny world's LDM gets one from this module.

    Args:
        autoencoder: The VAE to train.
        lr: Adam learning rate.
        export_dir: Where to write ``vae.safetensors`` at the end of ``fit``.
        overwrite_export: Replace an existing exported file.
        export_dtype: Floating-point type of exported weights.
    """

    def __init__(
        self,
        autoencoder: KLAutoencoder,
        lr: float = 1e-3,
        export_dir: str | None = None,
        overwrite_export: bool = False,
        export_dtype: ExportDtype = "float32",
    ) -> None:
        super().__init__()
        self.save_config(locals())
        self.autoencoder = autoencoder

    def configure_optimizers(self) -> torch.optim.Optimizer:
        """Adam over the autoencoder."""
        return torch.optim.Adam(self.autoencoder.parameters(), lr=self.hparams.lr)

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> Tensor:
        """Reconstruction + KL step."""
        losses = self.autoencoder.training_losses(batch[IMAGE])
        for name, value in losses.items():
            self.log(f"train/{name}", value, prog_bar=name == "loss", batch_size=len(batch[IMAGE]))
        return losses["loss"]

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        """Validation reconstruction loss."""
        losses = self.autoencoder.training_losses(batch[IMAGE])
        self.log("val/loss", losses["loss"], batch_size=len(batch[IMAGE]), sync_dist=True)

    def log_images(self, batch: dict[str, Any]) -> dict[str, Tensor]:
        """Real images and their reconstructions."""
        image = batch[IMAGE][:8]
        return {
            "real": image,
            "reconstructed": self.autoencoder.decode(self.autoencoder.encode(image)),
        }

    def exported_parts(self) -> dict[str | Path, Module | dict[str, Tensor]]:
        """The VAE, as ``vae.safetensors`` in ``export_dir``."""
        return files_in(self.hparams.export_dir, {"vae": self.autoencoder})
