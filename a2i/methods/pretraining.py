"""Training the parts the methods start from: generators, VAEs, text-to-image models, audio classifiers.

Sound2Vision §3 trains its generator on an image-only dataset, conditioned on the features of a
frozen, self-supervised image encoder (§3.2: SwAV ResNet-50 + IC-GAN; §6.1: ViT + LDM); the audio
encoder comes later (stage 2, :mod:`a2i.methods.sound2vision`). The papers start from published
stage-1 weights. In the synthetic world a2i trains them itself: with ``train_image_encoder=True``
the tiny encoder learns jointly with the generator (an autoencoder whose bottleneck is the
conditioning space), then both are exported as safetensors and frozen for stage 2.

AudioToken starts from a published text-to-image LDM and a published audio classifier; the world's
tiny ones come from :class:`TextToImagePretraining` and :class:`AudioClassifierPretraining`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from a2i.encoders.text.clip_text import CLIPTextEncoder
from a2i.errors import ConfigError
from a2i.generators.autoencoder import KLAutoencoder
from a2i.generators.latent_diffusion import LatentDiffusionGenerator
from a2i.interfaces import (
    AUDIO,
    IMAGE,
    LABEL,
    AdversarialGenerator,
    AudioEncoder,
    ImageEncoder,
    ImageGenerator,
    check_embedding_match,
)
from a2i.methods.base import A2IMethod
from a2i.pretrained import save_state_dict

ExportDtype = Literal["float32", "float16"]


def export_weights(
    parts: dict[str, torch.nn.Module | dict[str, Tensor]],
    export_dir: str,
    overwrite: bool,
    dtype: ExportDtype,
) -> None:
    """Write each module (or state dict) to ``export_dir/<name>.safetensors`` (atomic, no clobbering)."""
    out = Path(export_dir)
    targets = {name: out / f"{name}.safetensors" for name in parts}
    existing = [str(p) for p in targets.values() if p.exists()]
    if existing and not overwrite:
        raise ConfigError(
            f"refusing to overwrite exported weights {existing}; "
            "set model.init_args.overwrite_export=true or choose another export_dir"
        )
    for name, part in parts.items():
        state = part.state_dict() if isinstance(part, torch.nn.Module) else part
        save_state_dict(state, targets[name], getattr(torch, dtype))


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
        export_dir: Where to write ``image_encoder.safetensors`` (if trained) and the generator's
            :meth:`~a2i.interfaces.ImageGenerator.trained_parts` at the end of ``fit`` (the files
            stage 2 loads through ``pretrained``).
        overwrite_export: Replace existing exported files.
        export_dtype: Floating-point type of exported weights (float16 halves shipped files).
        save_frozen: See :class:`A2IMethod`.
    """

    def __init__(
        self,
        image_encoder: ImageEncoder,
        generator: ImageGenerator,
        lr: float = 1e-4,
        discriminator_lr: float = 4e-4,
        betas: tuple[float, float] = (0.0, 0.999),
        train_image_encoder: bool = False,
        export_dir: str | None = None,
        overwrite_export: bool = False,
        export_dtype: ExportDtype = "float32",
        save_frozen: bool = False,
    ) -> None:
        super().__init__(save_frozen=save_frozen)
        self.save_config(locals())
        self.image_encoder = image_encoder
        self.generator = generator
        if not train_image_encoder:
            self.image_encoder.freeze()
        self.adversarial = isinstance(generator, AdversarialGenerator)
        self.automatic_optimization = not self.adversarial

    def condition(self, image: Tensor) -> Tensor:
        """Encoder features of ``image`` (gradients flow only if the encoder trains)."""
        return self.image_encoder(image)

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
            self._log_losses("train", losses, image.shape[0])
            return losses["loss"]
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
        self._log_losses(
            "train", {**g_losses, **{f"d_{k}": v for k, v in d_losses.items()}}, len(image)
        )
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
        self._log_losses("val", losses, image.shape[0])

    def log_images(self, batch: dict[str, Any]) -> dict[str, Tensor]:
        """Real images next to the generator's drawing from their features (seed 0)."""
        image = batch[IMAGE][:8]
        seed = torch.Generator(device=image.device).manual_seed(0)
        return {"real": image, "generated": self.generator.generate(self.condition(image), seed)}

    def on_fit_end(self) -> None:
        """Export the trained parts as safetensors (rank 0 only)."""
        if self.hparams.export_dir is None or self.global_rank != 0:
            return
        parts = dict(self.generator.trained_parts())
        if not self.image_encoder.frozen:
            parts["image_encoder"] = self.image_encoder
        export_weights(
            parts, self.hparams.export_dir, self.hparams.overwrite_export, self.hparams.export_dtype
        )

    def _log_losses(self, stage: str, losses: dict[str, Tensor], batch_size: int) -> None:
        for name, value in losses.items():
            self.log(
                f"{stage}/{name}",
                value,
                prog_bar=name == "loss",
                batch_size=batch_size,
                sync_dist=stage != "train",
            )


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

    def on_fit_end(self) -> None:
        """Export the VAE as safetensors (rank 0 only)."""
        if self.hparams.export_dir is not None and self.global_rank == 0:
            export_weights(
                {"vae": self.autoencoder},
                self.hparams.export_dir,
                self.hparams.overwrite_export,
                self.hparams.export_dtype,
            )


class TextToImagePretraining(A2IMethod):
    """Train a text-to-image latent diffusion model (text encoder + UNet) on captioned images.

    AudioToken (§2.1) starts from a published text-to-image LDM (Stable Diffusion). In the
    synthetic world a2i trains a tiny one itself on scene descriptions ("a photo of a red circle
    on grass"): the CLIP text encoder and the UNet learn jointly with the ε-prediction loss, the
    VAE stays frozen. Captions are replaced by the empty prompt with probability
    ``caption_dropout``, so that the empty prompt is the unconditional input of classifier-free
    guidance, as in Stable Diffusion (give the generator ``condition_dropout: 0.0``).

    Args:
        text_encoder: The text encoder to train (its placeholder token is left unused).
        generator: The LDM whose UNet trains (cross-attention width = the text width).
        caption_key: Batch key holding each image's caption (``description`` in the world).
        caption_dropout: Probability of training on the empty prompt instead (10% in SD).
        lr: Adam learning rate.
        export_dir: Where to write ``text_encoder.safetensors`` and ``unet.safetensors``.
        overwrite_export: Replace existing exported files.
        export_dtype: Floating-point type of exported weights.
    """

    def __init__(
        self,
        text_encoder: CLIPTextEncoder,
        generator: LatentDiffusionGenerator,
        caption_key: str = "caption",
        caption_dropout: float = 0.1,
        lr: float = 1e-4,
        export_dir: str | None = None,
        overwrite_export: bool = False,
        export_dtype: ExportDtype = "float32",
    ) -> None:
        super().__init__()
        self.save_config(locals())
        check_embedding_match(
            text_encoder.width, generator.condition_dim, "text_encoder", "generator"
        )
        self.text_encoder = text_encoder
        self.generator = generator
        # Which token rows training reached: the export keeps only those (a few dozen of
        # CLIP's 49,408 in the world), so the shipped text encoder stays small.
        table = text_encoder.model.get_input_embeddings()
        self.register_buffer("trained_tokens", torch.zeros(table.num_embeddings, dtype=torch.bool))
        table.register_forward_hook(self._mark_trained_tokens)

    def _mark_trained_tokens(self, module: torch.nn.Module, inputs: tuple[Tensor], output: Tensor):
        """Forward hook on the token table: remember the ids of every training step."""
        if self.training:
            self.trained_tokens[inputs[0].unique()] = True

    def configure_optimizers(self) -> torch.optim.Optimizer:
        """Adam over the text encoder and the UNet."""
        params = list(self.text_encoder.parameters()) + list(self.generator.unet.parameters())
        return torch.optim.Adam(params, lr=self.hparams.lr)

    def _captions(self, batch: dict[str, Any], drop: bool) -> list[str]:
        captions = list(batch[self.hparams.caption_key])
        if drop:
            keep = torch.rand(len(captions)) >= self.hparams.caption_dropout
            captions = [c if k else "" for c, k in zip(captions, keep.tolist(), strict=True)]
        return captions

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> Tensor:
        """ε-prediction loss with the captions' text-encoder states as condition."""
        condition = self.text_encoder(self._captions(batch, drop=True))
        loss = self.generator.training_losses(batch[IMAGE], condition)["loss"]
        self.log("train/loss", loss, prog_bar=True, batch_size=len(condition))
        return loss

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        """The same loss on held-out images (no caption dropout)."""
        condition = self.text_encoder(self._captions(batch, drop=False))
        loss = self.generator.training_losses(batch[IMAGE], condition)["loss"]
        self.log("val/loss", loss, batch_size=len(condition), sync_dist=True)

    def log_images(self, batch: dict[str, Any]) -> dict[str, Tensor]:
        """Real images and the images drawn from their captions (seed 0)."""
        condition = self.text_encoder(self._captions(batch, drop=False)[:8])
        seed = torch.Generator(device=condition.device).manual_seed(0)
        drawn = self.generator.generate(condition, seed, self.text_encoder([""]))
        return {"real": batch[IMAGE][:8], "generated": drawn}

    def on_fit_end(self) -> None:
        """Export the text encoder (trained token rows only) and the UNet (rank 0 only)."""
        if self.hparams.export_dir is not None and self.global_rank == 0:
            trained = self.trained_tokens.nonzero().flatten()
            export_weights(
                {
                    "text_encoder": self.text_encoder.compact_state_dict(trained),
                    "unet": self.generator.unet,
                },
                self.hparams.export_dir,
                self.hparams.overwrite_export,
                self.hparams.export_dtype,
            )


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
        self.head = torch.nn.Linear(audio_encoder.embed_dim, num_classes)

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

    def on_fit_end(self) -> None:
        """Export the encoder as safetensors (rank 0 only)."""
        if self.hparams.export_dir is not None and self.global_rank == 0:
            export_weights(
                {"audio_encoder": self.audio_encoder},
                self.hparams.export_dir,
                self.hparams.overwrite_export,
                self.hparams.export_dtype,
            )
