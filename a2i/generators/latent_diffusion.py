"""Latent diffusion image generator conditioned on an image embedding (Sound2Vision §6.1).

Sound2Vision's LDM variant denoises in a VAE latent space with a UNet that reads the condition
``c`` (a ViT image feature, later the aligned audio feature) through cross-attention, trained with
the ε-prediction objective of eq. (4). a2i follows the convention of the published image-variation
LDM ``lambdalabs/sd-image-variations-diffusers``: the embedding is ONE cross-attention token,
``encoder_hidden_states = condition[:, None, :]`` (that UNet reads ``(B, 1, 768)`` CLIP ViT-L/14
image embeddings), and an all-zero condition is the unconditional input of classifier-free
guidance (Ho & Salimans 2022).
"""

from __future__ import annotations

from typing import Literal

import diffusers
import torch
import torch.nn.functional as F
from diffusers import DDPMScheduler, SchedulerMixin, UNet2DConditionModel
from torch import Tensor, nn

from a2i.errors import ConfigError
from a2i.generators.autoencoder import KLAutoencoder, load_weights_file
from a2i.interfaces import ImageGenerator
from a2i.pretrained import load_pretrained

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

NOISE_SCHEDULE = {
    # Stable Diffusion's training schedule (also that of sd-image-variations).
    "num_train_timesteps": 1000,
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "clip_sample": False,
}


class LatentDiffusionGenerator(ImageGenerator):
    """UNet denoiser in a frozen KL autoencoder's latent space, embedding as one token.

    Only the UNet is trained (:meth:`training_losses`); ``vae`` is a frozen
    :class:`~a2i.generators.autoencoder.KLAutoencoder` of the same preset.

    Args:
        preset: ``"tiny"`` (32 px, 4×8×8 latents, UNet (32, 64)) or ``"paper"`` (SD v1.x UNet
            with 768-d cross-attention + SD VAE, the sd-image-variations shapes).
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
        freeze: Freeze the module after construction.
    """

    def __init__(
        self,
        preset: Literal["tiny", "paper"] = "tiny",
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
        freeze: bool = False,
    ) -> None:
        super().__init__()
        if preset not in PRESET_DEFAULTS:
            raise ConfigError(
                f"LatentDiffusionGenerator.preset must be 'tiny' or 'paper' (got {preset!r})"
            )
        if not 0.0 <= condition_dropout < 1.0:
            raise ConfigError(
                f"LatentDiffusionGenerator.condition_dropout must be in [0, 1) "
                f"(got {condition_dropout})"
            )
        defaults = PRESET_DEFAULTS[preset]
        self.preset = preset
        self.num_inference_steps = num_inference_steps or defaults["num_inference_steps"]
        self.guidance_scale = guidance_scale
        self.condition_dropout = condition_dropout
        self.prediction_type = prediction_type
        sampler_class = getattr(diffusers, sampler, None)
        if not (isinstance(sampler_class, type) and issubclass(sampler_class, SchedulerMixin)):
            raise ConfigError(
                f"LatentDiffusionGenerator.sampler '{sampler}' is not a diffusers scheduler class "
                "(e.g. DDIMScheduler, EulerDiscreteScheduler, DPMSolverMultistepScheduler)"
            )
        self.sampler_class = sampler_class

        if vae_pretrained is None:
            self.vae = KLAutoencoder(
                preset=preset, pretrained=pretrained, subfolder="vae" if pretrained else None
            )
        else:
            self.vae = KLAutoencoder(preset=preset)
            load_weights_file(self.vae, vae_pretrained, field="vae_pretrained")
        self.vae.freeze()
        if pretrained is None:
            self.condition_dim = condition_dim or defaults["condition_dim"]
            self.unet = UNet2DConditionModel(
                **UNET_PRESETS[preset],
                in_channels=self.vae.latent_channels,
                out_channels=self.vae.latent_channels,
                cross_attention_dim=self.condition_dim,
            )
            schedule = dict(NOISE_SCHEDULE)
        else:
            self.unet, schedule = self._load_published(pretrained)
            self.condition_dim = int(self.unet.config.cross_attention_dim)
            if condition_dim not in (None, self.condition_dim):
                raise ConfigError(
                    f"LatentDiffusionGenerator.condition_dim={condition_dim} but the UNet of "
                    f"'{pretrained}' cross-attends to {self.condition_dim}-d tokens"
                )
        if unet_pretrained is not None:
            load_weights_file(self.unet, unet_pretrained, field="unet_pretrained")
        schedule["prediction_type"] = prediction_type
        self.noise_scheduler = DDPMScheduler(**schedule)

        if pretrained is not None and image_size is None:
            image_size = int(self.unet.config.sample_size) * self.vae.downsample_factor
        self.image_size = image_size or defaults["image_size"]
        if self.image_size % self.vae.downsample_factor:
            raise ConfigError(
                f"LatentDiffusionGenerator.image_size={self.image_size} is not a multiple of the "
                f"VAE's downsampling factor {self.vae.downsample_factor}"
            )
        if freeze:
            self.freeze()

    @staticmethod
    def _load_published(pretrained: str) -> tuple[UNet2DConditionModel, dict]:
        """UNet and noise-schedule config of a diffusers pipeline repo or directory."""

        def load() -> tuple[UNet2DConditionModel, dict]:
            unet = UNet2DConditionModel.from_pretrained(pretrained, subfolder="unet")
            config = DDPMScheduler.load_config(pretrained, subfolder="scheduler")
            return unet, config

        unet, config = load_pretrained(
            load,
            checkpoint=pretrained,
            field="pretrained",
            library="diffusers",
            download=f"hf download {pretrained}",
        )
        keys = ("num_train_timesteps", "beta_start", "beta_end", "beta_schedule")
        schedule = {key: config[key] for key in keys if key in config}
        return unet, {**NOISE_SCHEDULE, **schedule}

    @staticmethod
    def _as_tokens(condition: Tensor) -> Tensor:
        """``(B, D)`` embedding → ``(B, 1, D)`` token sequence; token sequences pass through."""
        return condition[:, None, :] if condition.dim() == 2 else condition

    def _check_condition(self, condition: Tensor) -> None:
        if condition.dim() not in (2, 3) or condition.shape[-1] != self.condition_dim:
            raise ConfigError(
                f"LatentDiffusionGenerator expects conditions (B, {self.condition_dim}) or "
                f"(B, N, {self.condition_dim}); got {tuple(condition.shape)}"
            )

    def _target(self, latents: Tensor, noise: Tensor, timesteps: Tensor) -> Tensor:
        if self.prediction_type == "epsilon":
            return noise
        if self.prediction_type == "v_prediction":
            return self.noise_scheduler.get_velocity(latents, noise, timesteps)
        return latents

    def trained_parts(self) -> dict[str, nn.Module]:
        """Only the UNet trains here; it is exported as ``unet.safetensors`` (``unet_pretrained``)."""
        return {"unet": self.unet}

    def training_losses(self, image: Tensor, condition: Tensor) -> dict[str, Tensor]:
        """Denoising loss of Sound2Vision eq. (4) on the VAE latents of ``image``.

        Draws timesteps, noise and condition dropout from the global RNG (seed it for
        reproducible losses).

        Returns:
            ``loss``: MSE between the UNet output and its target (the noise ε by default).
        """
        self._check_condition(condition)
        with torch.no_grad():
            latents = self.vae.encode(image, sample=True)
        noise = torch.randn_like(latents)
        timesteps = torch.randint(
            0,
            self.noise_scheduler.config.num_train_timesteps,
            (latents.shape[0],),
            device=latents.device,
        )
        noisy = self.noise_scheduler.add_noise(latents, noise, timesteps)
        if self.condition_dropout > 0:
            keep = torch.rand(condition.shape[0], device=condition.device) >= self.condition_dropout
            condition = condition * keep.view(-1, *([1] * (condition.dim() - 1))).to(condition)
        prediction = self.unet(noisy, timesteps, self._as_tokens(condition)).sample
        loss = F.mse_loss(prediction.float(), self._target(latents, noise, timesteps).float())
        return {"loss": loss}

    @torch.no_grad()
    def generate(
        self,
        condition: Tensor,
        generator: torch.Generator | None = None,
        unconditional: Tensor | None = None,
    ) -> Tensor:
        """Sampling (DDIM by default) with classifier-free guidance; images ``(B, 3, H, W)`` in ``[0, 1]``.

        The initial latents are the only random draw (DDIM with η = 0 is deterministic), so a
        seeded ``generator`` gives identical images (with ``sampler`` DDIM; ancestral samplers
        draw more noise from the global RNG).

        Args:
            condition: ``(B, D)`` embeddings or ``(B, N, D)`` token sequences.
            generator: Source of the initial noise.
            unconditional: The guidance's unconditional input, shaped like the condition's tokens
                (a text-to-image model's empty-prompt encoding); default all zeros, the
                condition dropout this generator trains with.
        """
        self._check_condition(condition)
        tokens = self._as_tokens(condition)
        scheduler = self.sampler_class.from_config(
            self.noise_scheduler.config, set_alpha_to_one=False, steps_offset=1
        )
        scheduler.set_timesteps(self.num_inference_steps, device=condition.device)
        shape = (condition.shape[0], *self.vae.latent_shape(self.image_size))
        noise_device = generator.device if generator is not None else condition.device
        latents = torch.randn(shape, generator=generator, device=noise_device)
        latents = latents.to(condition.device) * scheduler.init_noise_sigma
        guided = self.guidance_scale > 1.0
        if guided:
            empty = torch.zeros_like(tokens) if unconditional is None else unconditional
            tokens = torch.cat([empty.expand_as(tokens).to(tokens), tokens])
        for timestep in scheduler.timesteps:
            model_input = torch.cat([latents, latents]) if guided else latents
            model_input = scheduler.scale_model_input(model_input, timestep)
            prediction = self.unet(model_input, timestep, tokens).sample
            if guided:
                unconditional, conditional = prediction.chunk(2)
                prediction = unconditional + self.guidance_scale * (conditional - unconditional)
            latents = scheduler.step(prediction, timestep, latents).prev_sample
        return self.vae.decode(latents)
