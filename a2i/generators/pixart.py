"""PixArt-α (Chen et al., ICLR 2024) as a denoiser of the shared latent diffusion component.

Seeing Sound (§4.3, App. A.10) starts from the published PixArt-α 512×512 DiT and replaces the
projection that feeds its cross-attention (PixArt's caption projection, T5's 4096-d tokens →
1152) by a randomly initialised audio projector over AST's token sequence. Here diffusers'
``PixArtTransformer2DModel`` is a :class:`~a2i.generators.diffusion.Denoiser` injected into
:class:`~a2i.generators.diffusion.LatentDiffusion` (no second sampling loop), and
:meth:`PixArtDenoiser.replace_projector` is that swap.

Objective and schedule. PixArt-α trains with IDDPM's code (``PixArt-alpha/PixArt-alpha``
``diffusion/iddpm.py``): 1000 steps, linear β from 1e-4 to 0.02, ε-prediction with a learned
variance range (8 output channels = ε and the variance interpolation) and the loss
``MSE(ε) + L_vlb`` (``gaussian_diffusion.py``, ``LossType.MSE``), the VLB term training only the
variance channels. Seeing Sound does not say it changed any of this. a2i keeps the schedule, the
ε-prediction and the 8-channel output (published weights load unchanged) and trains the ε half
with the MSE of the shared component; the variance half is neither trained nor read, because
a2i samples with DDIM-type solvers (DPM-Solver++ by default, as diffusers' ``PixArtAlphaPipeline``,
which also drops those channels). The VLB term is therefore not implemented.
"""

from __future__ import annotations

from typing import Literal

from diffusers import PixArtTransformer2DModel
from diffusers.models.embeddings import PixArtAlphaTextProjection
from torch import Tensor, nn

from a2i.errors import ConfigError
from a2i.generators.diffusion import ProjectedConditionGenerator, ProjectedDenoiser, TrainedPart
from a2i.interfaces import Condition

PIXART_REPO = "PixArt-alpha/PixArt-XL-2-512x512"
PIXART_DOWNLOAD = f"hf download {PIXART_REPO} --include 'transformer/*' 'vae/*' 'scheduler/*'"

PIXART_NOISE_SCHEDULE = {
    # PixArt-α's training schedule (IDDPM "linear", 1000 steps), which its published scheduler
    # config repeats.
    "num_train_timesteps": 1000,
    "beta_start": 0.0001,
    "beta_end": 0.02,
    "beta_schedule": "linear",
    "clip_sample": False,
}

TRANSFORMER_PRESETS: dict[str, dict] = {
    # PixArt-α XL/2 at 512 px: 64×64×4 latents, 2×2 patches, 28 blocks of 16 heads × 72, T5-XXL
    # caption tokens (4096-d), ε + learned variance out: 610,856,096 parameters.
    "paper": {
        "sample_size": 64,
        "patch_size": 2,
        "num_layers": 28,
        "num_attention_heads": 16,
        "attention_head_dim": 72,
        "cross_attention_dim": 1152,
        "caption_channels": 4096,
        "out_channels": 8,
    },
    # 4×8×8 latents of the tiny VAE (32 px), 16 patches, 4 blocks of 4 heads × 32, reading the
    # tiny CLIP text encoder's 64-d tokens: ~1 M parameters.
    "tiny": {
        "sample_size": 8,
        "patch_size": 2,
        "num_layers": 4,
        "num_attention_heads": 4,
        "attention_head_dim": 32,
        "cross_attention_dim": 128,
        "caption_channels": 64,
        "out_channels": 8,
    },
}

PRESET_DEFAULTS: dict[str, dict] = {
    "paper": {"image_size": 512, "num_inference_steps": 20},
    "tiny": {"image_size": 32, "num_inference_steps": 20},
}

NO_ADDED_CONDITIONS = {"resolution": None, "aspect_ratio": None}
"""PixArt-α 512 uses no resolution/aspect-ratio conditioning, but the forward needs the keys."""


class PixArtDenoiser(ProjectedDenoiser):
    """diffusers' ``PixArtTransformer2DModel``, cross-attending to projected condition tokens.

    The condition tokens go through the transformer's caption projection (an MLP, PixArt's
    ``PixArtAlphaTextProjection``) before the cross-attention; padding tokens (False in
    ``condition.mask``) get no attention weight. With a learned variance the transformer outputs
    twice the latent channels; only the ε half is returned (see the module docstring).
    """

    def __init__(self, transformer: PixArtTransformer2DModel) -> None:
        super().__init__()
        if transformer.caption_projection is None:
            raise ConfigError("PixArtDenoiser needs a transformer with caption_channels set")
        self.transformer = transformer
        self.in_channels = int(transformer.config.in_channels)
        self.condition_dim = int(transformer.caption_projection.linear_1.in_features)
        self.learned_sigma = transformer.out_channels == 2 * self.in_channels

    @property
    def width(self) -> int:
        """Hidden size of the transformer (1152 for XL/2)."""
        return int(self.transformer.inner_dim)

    @property
    def projector(self) -> PixArtAlphaTextProjection:
        """The MLP between the condition tokens and the cross-attention."""
        return self.transformer.caption_projection

    def new_projector(
        self, condition_dim: int, hidden_dim: int | None = None
    ) -> PixArtAlphaTextProjection:
        """A randomly initialised projector of PixArt's caption-projection kind (see below)."""
        return PixArtAlphaTextProjection(
            in_features=condition_dim,
            hidden_size=hidden_dim or self.width,
            out_features=self.width,
            act_fn="gelu_tanh",
        )

    def replace_projector(
        self, condition_dim: int, hidden_dim: int | None = None
    ) -> PixArtAlphaTextProjection:
        """Put a new, randomly initialised projector for ``condition_dim``-wide tokens in place.

        Seeing Sound App. A.10: the audio projector is an MLP analogous to the caption projection
        it replaces (Linear → GELU(tanh) → Linear to the transformer's width), trained from
        scratch (§4.3 fn. 3). Every other weight of the transformer is left as it was.

        Args:
            condition_dim: Width of the tokens it will read (AST's token width).
            hidden_dim: Width after its first layer (None: the transformer's width, as PixArt's
                caption projection).
        """
        projector = self.new_projector(condition_dim, hidden_dim)
        parameter = next(self.transformer.parameters())
        self.transformer.caption_projection = projector.to(parameter.device, parameter.dtype)
        self.condition_dim = condition_dim
        return projector

    def trained_parts(self, which: TrainedPart) -> dict[str, nn.Module]:
        """The modules that train for ``which``, by name (cross-attention: every ``attn2``)."""
        if which == "all":
            return {"transformer": self.transformer}
        parts: dict[str, nn.Module] = {"projector": self.projector}
        if which == "projector_cross_attention":
            blocks = self.transformer.transformer_blocks
            parts["cross_attention"] = nn.ModuleList(block.attn2 for block in blocks)
        elif which != "projector":
            raise ConfigError(
                f"unknown trained part '{which}' (projector, projector_cross_attention or all)"
            )
        return parts

    def forward(self, sample: Tensor, timesteps: Tensor, condition: Condition) -> Tensor:
        """ε predicted for ``sample`` ``(B, C, H, W)``."""
        output = self.transformer(
            sample,
            encoder_hidden_states=condition.tokens,
            timestep=timesteps,
            added_cond_kwargs=NO_ADDED_CONDITIONS,
            encoder_attention_mask=condition.mask,
        ).sample
        return output[:, : self.in_channels] if self.learned_sigma else output


class PixArtGenerator(ProjectedConditionGenerator):
    """PixArt-α denoising a frozen KL autoencoder's latents, conditioned on token sequences.

    Only the transformer has weights to train (:meth:`trained_parts`); the VAE is a frozen
    :class:`~a2i.generators.autoencoder.KLAutoencoder`. A method that reads another modality
    swaps the caption projection (:meth:`PixArtDenoiser.replace_projector`).

    Args:
        preset: ``"paper"`` (XL/2 at 512 px + the SD VAE shapes) or ``"tiny"`` (32 px, 4×8×8
            latents of the tiny VAE, 4 blocks of width 128 reading 64-d text tokens).
        pretrained: A diffusers PixArt-α repo id or directory with ``transformer/``, ``vae/``
            and ``scheduler/`` (``PixArt-alpha/PixArt-XL-2-512x512``). It defines the
            architecture; ``preset`` then only supplies the sampling defaults.
        transformer_pretrained: An a2i ``.safetensors`` file of the transformer's own state
            dict for ``preset`` (as written by text-to-image pretraining); overrides
            ``pretrained``'s transformer.
        vae_pretrained: An a2i ``.safetensors`` file of a :class:`KLAutoencoder` of the same
            preset; overrides ``pretrained``'s VAE.
        image_size: Output resolution (``None``: 512 paper / 32 tiny, or the checkpoint's).
        num_inference_steps: Sampling steps (``None``: 20, ``PixArtAlphaPipeline``'s default).
        guidance_scale: Classifier-free guidance scale (4.5, ``PixArtAlphaPipeline``'s default);
            ≤ 1 disables guidance and its second pass.
        condition_dropout: Probability of zeroing a training condition. PixArt's null condition
            is an input of its projection (a learned embedding, or an empty prompt's tokens),
            so the methods drop conditions themselves and this stays 0; > 0 uses the shared
            component's all-zero null.
        sampler: diffusers scheduler class used for sampling (``DPMSolverMultistepScheduler``,
            the published pipeline's; any other is built from the training schedule).
        freeze: Freeze the module after construction.
    """

    network_class = PixArtTransformer2DModel
    network_folder = "transformer"
    denoiser_class = PixArtDenoiser
    default_schedule = PIXART_NOISE_SCHEDULE
    preset_defaults = PRESET_DEFAULTS
    download = PIXART_DOWNLOAD

    def __init__(
        self,
        preset: Literal["tiny", "paper"] = "paper",
        pretrained: str | None = None,
        transformer_pretrained: str | None = None,
        vae_pretrained: str | None = None,
        image_size: int | None = None,
        num_inference_steps: int | None = None,
        guidance_scale: float = 4.5,
        condition_dropout: float = 0.0,
        sampler: str = "DPMSolverMultistepScheduler",
        freeze: bool = False,
    ) -> None:
        super().__init__(
            preset,
            pretrained,
            transformer_pretrained,
            vae_pretrained,
            image_size,
            num_inference_steps,
            guidance_scale,
            condition_dropout,
            "epsilon",
            sampler,
            new_network=lambda channels: PixArtTransformer2DModel(
                **TRANSFORMER_PRESETS[preset], in_channels=channels
            ),
        )
        if freeze:
            self.freeze()

    @property
    def transformer(self) -> PixArtTransformer2DModel:
        """The DiT (``transformer_pretrained`` files hold its own state dict)."""
        return self.denoiser.transformer

    def trained_parts(self) -> dict[str, nn.Module]:
        """The transformer, exported as ``transformer.safetensors`` (``transformer_pretrained``)."""
        return {"transformer": self.transformer}
