"""Stage 1 of Sound2Vision: a generator learns to draw images from image-encoder features (§3)."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.nn import Module

from a2i.interfaces import IMAGE, AdversarialGenerator, ImageEncoder, ImageGenerator
from a2i.methods.base import A2IMethod


class GeneratorPretraining(A2IMethod):
    """Train an :class:`ImageGenerator` to draw images from image-encoder features.

    Args:
        image_encoder: Gives the conditioning features (frozen unless ``train_image_encoder``).
        generator: The generator to train; :class:`AdversarialGenerator` s are trained with
            alternating discriminator/generator Adam steps (BigGAN/IC-GAN), others minimise
            their ``training_losses`` (LDM: eq. 4 of Sound2Vision §6.1).
        lr: Generator learning rate (BigGAN/IC-GAN: 1e-4; LDM fine-tuning: 1e-4).
        discriminator_lr: Discriminator learning rate for adversarial generators (BigGAN: 4e-4).
        betas: Adam betas (BigGAN/IC-GAN use (0.0, 0.999)).
        train_image_encoder: Train the encoder jointly (tiny presets in the synthetic world);
            the papers keep a published self-supervised encoder fixed.
        options: :class:`~a2i.methods.base.A2IMethod`'s (``export_dir`` writes ``image_encoder.safetensors`` if it
            trained and the generator's :meth:`~a2i.interfaces.ImageGenerator.trained_parts`,
            the files stage 2 loads through ``pretrained``; ``overwrite_export``,
            ``export_dtype`` (float16 halves shipped files), ``save_frozen``, ``pretrained``).
    """

    def __init__(
        self,
        image_encoder: ImageEncoder,
        generator: ImageGenerator,
        lr: float = 1e-4,
        discriminator_lr: float = 4e-4,
        betas: tuple[float, float] = (0.0, 0.999),
        train_image_encoder: bool = False,
        **options: Any,
    ) -> None:
        super().__init__(**options)
        self.save_config(locals())
        self.image_encoder = image_encoder
        self.generator = generator
        if not train_image_encoder:
            self.image_encoder.freeze()
        self.adversarial = isinstance(generator, AdversarialGenerator)
        self.automatic_optimization = not self.adversarial

    def condition(self, image: Tensor) -> Tensor:
        """Encoder features of ``image`` at the generator's ``condition_scale``.

        Unit length for IC-GAN, as its official training normalises SwAV features; gradients
        flow only if the encoder trains.
        """
        features = self.image_encoder(image)
        if self.generator.condition_scale == "unit":
            return F.normalize(features, dim=-1)
        return features

    def configure_optimizers(self) -> Any:
        """Adam over the generator (and encoder if trained); a second one for a discriminator."""
        betas = tuple(self.hparams.betas)
        encoder = [] if self.image_encoder.frozen else list(self.image_encoder.parameters())
        if not self.adversarial:
            params = encoder + [p for p in self.generator.parameters() if p.requires_grad]
            return torch.optim.Adam(params, lr=self.hparams.lr, betas=betas)
        gen = torch.optim.Adam(
            encoder + self.generator.generator_parameters(), lr=self.hparams.lr, betas=betas
        )
        disc = torch.optim.Adam(
            self.generator.discriminator.parameters(),
            lr=self.hparams.discriminator_lr,
            betas=betas,
        )
        return [gen, disc]

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> Tensor:
        """One stage-1 update; adversarial generators alternate D then G."""
        image = batch[IMAGE]
        if not self.adversarial:
            losses = self.generator.training_losses(image, self.condition(image))
            return self.log_step(losses, "train", batch)["loss"]
        gen_opt, disc_opt = self.optimizers()
        condition = self.condition(image)  # encoded once: D sees it detached, G trains through it
        d_losses = self.generator.discriminator_loss(image, condition.detach())
        disc_opt.zero_grad(set_to_none=True)
        self.manual_backward(d_losses["loss"])
        disc_opt.step()
        g_losses = self.generator.generator_loss(image, condition)
        gen_opt.zero_grad(set_to_none=True)
        self.manual_backward(g_losses["loss"])
        gen_opt.step()
        self.log_step({**g_losses, **{f"d_{k}": v for k, v in d_losses.items()}}, "train", batch)
        return g_losses["loss"]

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        """Validation loss (generator objective, or reconstruction L1 for adversarial ones)."""
        image = batch[IMAGE]
        condition = self.condition(image)
        if self.adversarial:
            seed = torch.Generator(device=image.device).manual_seed(batch_idx)
            recon = self.generator.generate(condition, generator=seed)
            losses = {"loss": (recon - image).abs().mean()}
        else:
            losses = self.generator.training_losses(image, condition)
        self.log_step(losses, "val", batch)

    def log_images(self, batch: dict[str, Any]) -> dict[str, Tensor]:
        """Real images next to the generator's drawing from their features (seed 0)."""
        image = batch[IMAGE][:8]
        seed = torch.Generator(device=image.device).manual_seed(0)
        return {"real": image, "generated": self.generator.generate(self.condition(image), seed)}

    def trained_parts(self) -> dict[str, Module | dict[str, Tensor]]:
        """The generator's trained parts, and the encoder if it trained."""
        parts = dict(self.generator.trained_parts())
        if not self.image_encoder.frozen:
            parts["image_encoder"] = self.image_encoder
        return parts
