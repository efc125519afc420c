"""Latent diffusion image generator conditioned on an image embedding (Sound2Vision §6.1).

Sound2Vision's LDM variant denoises in a VAE latent space with a UNet that reads the condition
``c`` (a ViT image feature, later the aligned audio feature) through cross-attention, trained with
the ε-prediction objective of eq. (4). a2i follows the convention of the published image-variation
LDM ``lambdalabs/sd-image-variations-diffusers``: the embedding is ONE cross-attention token,
``encoder_hidden_states = condition[:, None, :]`` (that UNet reads ``(B, 1, 768)`` CLIP ViT-L/14
image embeddings), and an all-zero condition is the unconditional input of classifier-free
guidance (Ho & Salimans 2022). The diffusion itself (loss, sampling, guidance) is
:class:`~a2i.generators.diffusion.LatentDiffusion`; this class builds its UNet and VAE.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
from diffusers import DDPMScheduler, UNet2DConditionModel
from torch import Tensor, nn

from a2i.errors import ConfigError
from a2i.generators.autoencoder import KLAutoencoder, load_weights_file
from a2i.generators.diffusion import (
    NOISE_SCHEDULE,
    LatentDiffusion,
    LatentGuidance,
    UNetDenoiser,
)
from a2i.interfaces import Condition, Control, Generators, ImageGenerator
from a2i.pretrained import Weights, resolve_weights

IMAGE_VARIATIONS_REPO = "lambdalabs/sd-image-variations-diffusers"

UNET_PRESETS: dict[str, dict] = {
    # Stable Diffusion v1.x UNet with 768-d cross-attention: 859,520,964 parameters, the shapes
    # of the sd-image-variations UNet (64×64×4 latents of 512 px images).
    "paper": {
        "sample_size": 64,
        "down_block_types": (
            "CrossAttnDownBlock2D",
            "CrossAttnDownBlock2D",
            "CrossAttnDownBlock2D",
            "DownBlock2D",
        ),
        "up_block_types": (
            "UpBlock2D",
            "CrossAttnUpBlock2D",
            "CrossAttnUpBlock2D",
            "CrossAttnUpBlock2D",
        ),
        "block_out_channels": (320, 640, 1280, 1280),
        "layers_per_block": 2,
        "attention_head_dim": 8,
        "norm_num_groups": 32,
    },
    # 4×8×8 latents: full-resolution block without attention, cross-attention at 4×4 and in
    # the mid block.
    "tiny": {
        "sample_size": 8,
        "down_block_types": ("DownBlock2D", "CrossAttnDownBlock2D"),
        "up_block_types": ("CrossAttnUpBlock2D", "UpBlock2D"),
        "block_out_channels": (32, 64),
        "layers_per_block": 1,
        "attention_head_dim": 4,
        "norm_num_groups": 32,
    },
}

PRESET_DEFAULTS: dict[str, dict] = {
    "paper": {"condition_dim": 768, "image_size": 512, "num_inference_steps": 50},
    "tiny": {"condition_dim": 64, "image_size": 32, "num_inference_steps": 20},
}


class LatentDiffusionGenerator(ImageGenerator):
    """UNet denoiser in a frozen KL autoencoder's latent space, embedding as one token.

    Only the UNet is trained (:meth:`training_losses`); ``vae`` is a frozen
    :class:`~a2i.generators.autoencoder.KLAutoencoder` of the same preset. Both live in
    :attr:`diffusion`, a :class:`~a2i.generators.diffusion.LatentDiffusion` with a
    :class:`~a2i.generators.diffusion.UNetDenoiser`.

    Args:
        preset: ``"paper"`` (SD v1.x UNet with 768-d cross-attention + SD VAE, the
            sd-image-variations shapes) or ``"tiny"`` (32 px, 4×8×8 latents, UNet (32, 64)).
        condition_dim: Size of the condition (``None``: 64 tiny / 768 paper, CLIP ViT-L/14's
            projected image embedding). Becomes the UNet's ``cross_attention_dim``.
        image_size: Output resolution (``None``: 32 tiny / 512 paper); a multiple of the VAE's
            downsampling factor (4 tiny, 8 paper).
        pretrained: A diffusers repo id or local directory with ``unet/``, ``vae/`` and
            ``scheduler/`` subfolders (e.g. ``lambdalabs/sd-image-variations-diffusers``). It
            defines the architecture; ``preset`` then only supplies the sampling defaults.
        unet_pretrained: An a2i ``.safetensors`` file of the UNet's own state dict (as written by
            ``a2i.pretrained.save_module(generator.unet, path)``); overrides ``pretrained``'s UNet.
        vae_pretrained: An a2i ``.safetensors`` file of a :class:`KLAutoencoder` of the same preset;
            overrides ``pretrained``'s VAE.
        num_inference_steps: DDIM sampling steps (``None``: 20 tiny / 50 paper).
        guidance_scale: Classifier-free guidance scale (3.0, the sd-image-variations model
            card's setting); ≤ 1 disables guidance and its second UNet pass.
        condition_dropout: Probability of replacing a training condition by zeros, so that the
            same UNet learns the unconditional model guidance needs (0.1 in Ho & Salimans 2022).
        prediction_type: What the UNet predicts: ``"epsilon"`` (eq. 4), ``"v_prediction"`` or
            ``"sample"``.
        sampler: diffusers scheduler class used for sampling (``DDIMScheduler``; any other, e.g.
            ``EulerDiscreteScheduler`` or ``DPMSolverMultistepScheduler``, is built from the
            training noise schedule).
        condition_scale: Length of the conditions the UNet was trained on, which
            :class:`~a2i.methods.sound2vision.Sound2Vision` gives it: ``"feature"`` (the image
            encoder's raw embeddings: the sd-image-variations pipeline feeds CLIP's
            ``image_embeds`` unnormalised, diffusers 0.42
            ``pipeline_stable_diffusion_image_variation.py:151``) or ``"unit"``.
        freeze: Freeze the module after construction.
    """

    sampling_controls: frozenset[Control] = frozenset({"guidance_scale", "num_inference_steps"})

    def __init__(
        self,
        preset: Literal["tiny", "paper"] = "paper",
        condition_dim: int | None = None,
        image_size: int | None = None,
        pretrained: str | None = None,
        unet_pretrained: str | None = None,
        vae_pretrained: str | None = None,
        num_inference_steps: int | None = None,
        guidance_scale: float = 3.0,
        condition_dropout: float = 0.1,
        prediction_type: Literal["epsilon", "v_prediction", "sample"] = "epsilon",
        sampler: str = "DDIMScheduler",
        condition_scale: Literal["unit", "feature"] = "feature",
        freeze: bool = False,
    ) -> None:
        super().__init__()
        self.condition_scale = condition_scale
        if preset not in PRESET_DEFAULTS:
            raise ConfigError(
                f"LatentDiffusionGenerator.preset must be 'tiny' or 'paper' (got {preset!r})"
            )
        defaults = PRESET_DEFAULTS[preset]
        self.preset = preset
        self.num_inference_steps = num_inference_steps or defaults["num_inference_steps"]
        self.guidance_scale = guidance_scale

        # every file is found before anything is built: a missing one fails at once
        field = type(self).__name__
        weights = resolve_weights(pretrained, f"{field}.pretrained")
        unet_file = resolve_weights(unet_pretrained, f"{field}.unet_pretrained")
        vae_file = resolve_weights(vae_pretrained, f"{field}.vae_pretrained")
        published = None if weights is None else self._load_published(weights)
        if vae_file is None:
            vae = KLAutoencoder(
                preset=preset, pretrained=pretrained, subfolder="vae" if pretrained else None
            )
        else:
            vae = KLAutoencoder(preset=preset)
            load_weights_file(vae, vae_file)
        if published is None:
            self.condition_dim = condition_dim or defaults["condition_dim"]
            unet = UNet2DConditionModel(
                **UNET_PRESETS[preset],
                in_channels=vae.latent_channels,
                out_channels=vae.latent_channels,
                cross_attention_dim=self.condition_dim,
            )
            schedule = dict(NOISE_SCHEDULE)
        else:
            unet, schedule = published
            self.condition_dim = int(unet.config.cross_attention_dim)
            if condition_dim not in (None, self.condition_dim):
                raise ConfigError(
                    f"LatentDiffusionGenerator.condition_dim={condition_dim} but the UNet of "
                    f"'{pretrained}' cross-attends to {self.condition_dim}-d tokens"
                )
            if image_size is None:
                image_size = int(unet.config.sample_size) * vae.downsample_factor
        if unet_file is not None:
            load_weights_file(unet, unet_file)
        self.image_size = image_size or defaults["image_size"]
        try:
            self.diffusion = LatentDiffusion(
                UNetDenoiser(unet),
                self.image_size,
                vae=vae,
                noise_scheduler=DDPMScheduler(**schedule, prediction_type=prediction_type),
                condition_dropout=condition_dropout,
                sampler=sampler,
            )
        except ConfigError as error:
            raise ConfigError(f"LatentDiffusionGenerator: {error}") from None
        if freeze:
            self.freeze()

    @staticmethod
    def _load_published(weights: Weights) -> tuple[UNet2DConditionModel, dict]:
        """UNet and noise-schedule config of a diffusers pipeline repo or directory."""

        def load(where: str) -> tuple[UNet2DConditionModel, dict]:
            unet = UNet2DConditionModel.from_pretrained(where, subfolder="unet")
            config = DDPMScheduler.load_config(where, subfolder="scheduler")
            return unet, config

        unet, config = weights.load(
            load, library="diffusers", download=f"hf download {weights.spec}"
        )
        keys = ("num_train_timesteps", "beta_start", "beta_end", "beta_schedule")
        schedule = {key: config[key] for key in keys if key in config}
        return unet, {**NOISE_SCHEDULE, **schedule}

    @property
    def unet(self) -> UNet2DConditionModel:
        """The denoiser's UNet (``unet_pretrained`` files hold its own state dict)."""
        return self.diffusion.denoiser.unet

    @property
    def vae(self) -> KLAutoencoder:
        """The frozen autoencoder."""
        return self.diffusion.vae

    @property
    def noise_scheduler(self) -> DDPMScheduler:
        """The training noise schedule (saved as a diffusers ``scheduler/`` folder)."""
        return self.diffusion.noise_scheduler

    def trained_parts(self) -> dict[str, nn.Module]:
        """Only the UNet trains here; it is exported as ``unet.safetensors`` (``unet_pretrained``)."""
        return {"unet": self.unet}

    def training_losses(self, image: Tensor, condition: Tensor | Condition) -> dict[str, Tensor]:
        """Denoising loss of Sound2Vision eq. (4) on the VAE latents of ``image``.

        Draws timesteps, noise and condition dropout from the global RNG (seed it for
        reproducible losses).

        Returns:
            ``loss``: MSE between the UNet output and its target (the noise ε by default).
        """
        return self.diffusion.training_losses(image, condition)

    @torch.no_grad()
    def generate(
        self,
        condition: Tensor | Condition | Sequence[Tensor | Condition],
        generator: Generators = None,
        unconditional: Tensor | Condition | None = None,
        *,
        guidance_scale: float | None = None,
        num_inference_steps: int | None = None,
        weights: Sequence[float] | None = None,
        guidance: LatentGuidance | None = None,
    ) -> Tensor:
        """Sampling (DDIM by default) with classifier-free guidance; images ``(B, 3, H, W)`` in ``[0, 1]``.

        The initial latents are the only random draw of DDIM (η = 0), so seeded generators
        give identical images; a list of them seeds each row on its own.

        Args:
            condition: ``(B, D)`` embeddings, ``(B, N, D)`` token sequences or a
                :class:`Condition`; or a list of them, composed by composable diffusion
                (:meth:`~a2i.generators.diffusion.LatentDiffusion.sample`).
            generator: Source of the noise: one generator, one per row, or None (global RNG).
            unconditional: The guidance's unconditional input, one row or one per row (a
                text-to-image model's empty-prompt encoding); default all zeros, the
                condition dropout this generator trains with.
            guidance_scale: Overrides the configured ``guidance_scale`` for this call.
            num_inference_steps: Overrides the configured ``num_inference_steps`` for this call.
            weights: Weight of each composed condition (default 1 each).
            guidance: A correction of every sampling step, e.g. score guidance
                (:class:`~a2i.generators.score_guidance.ScoreGuidance`).
        """
        return self.diffusion.sample(
            condition,
            unconditional,
            generator,
            num_inference_steps=num_inference_steps or self.num_inference_steps,
            guidance_scale=self.guidance_scale if guidance_scale is None else guidance_scale,
            weights=weights,
            guidance=guidance,
        )
