"""Latent diffusion image generator conditioned on an image embedding (Sound2Vision §6.1).

Sound2Vision's LDM variant denoises in a VAE latent space with a UNet that reads the condition
``c`` (a ViT image feature, later the aligned audio feature) through cross-attention, trained with
the ε-prediction objective of eq. (4). a2i follows the convention of the published image-variation
LDM ``lambdalabs/sd-image-variations-diffusers``: the embedding is ONE cross-attention token,
``encoder_hidden_states = condition[:, None, :]`` (that UNet reads ``(B, 1, 768)`` CLIP ViT-L/14
image embeddings), and an all-zero condition is the unconditional input of classifier-free
guidance (Ho & Salimans 2022). The diffusion itself (loss, sampling, guidance, loading) is
:class:`~a2i.generators.diffusion.DiffusionGenerator`'s; this class builds its UNet.
"""

from __future__ import annotations

from typing import Literal

from diffusers import UNet2DConditionModel
from torch import nn

from a2i.errors import ConfigError
from a2i.generators.diffusion import NOISE_SCHEDULE, DiffusionGenerator, UNetDenoiser

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


class LatentDiffusionGenerator(DiffusionGenerator):
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

    network_class = UNet2DConditionModel
    network_folder = "unet"
    denoiser_class = UNetDenoiser
    default_schedule = NOISE_SCHEDULE
    preset_defaults = PRESET_DEFAULTS

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
        super().__init__(
            preset,
            pretrained,
            unet_pretrained,
            vae_pretrained,
            image_size,
            num_inference_steps,
            guidance_scale,
            condition_dropout,
            prediction_type,
            sampler,
            new_network=lambda channels: UNet2DConditionModel(
                **UNET_PRESETS[preset],
                in_channels=channels,
                out_channels=channels,
                cross_attention_dim=condition_dim or PRESET_DEFAULTS[preset]["condition_dim"],
            ),
        )
        if condition_dim not in (None, self.condition_dim):
            raise ConfigError(
                f"LatentDiffusionGenerator.condition_dim={condition_dim} but the UNet of "
                f"'{pretrained}' cross-attends to {self.condition_dim}-d tokens"
            )
        self.condition_scale = condition_scale
        if freeze:
            self.freeze()

    @property
    def unet(self) -> UNet2DConditionModel:
        """The denoiser's UNet (``unet_pretrained`` files hold its own state dict)."""
        return self.denoiser.unet

    def trained_parts(self) -> dict[str, nn.Module]:
        """Only the UNet trains here; it is exported as ``unet.safetensors`` (``unet_pretrained``)."""
        return {"unet": self.unet}
