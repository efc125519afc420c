"""Diffusion in diffusers' roles: an injected denoiser (weights), schedulers (none) and the loop.

Sound2Vision's LDM (§6.1), AudioToken's frozen Stable Diffusion and a DiT differ in the network
that predicts the noise and in what it reads, not in the rest. :class:`LatentDiffusion` is that
rest — the frozen VAE (or none, for pixel space), the training noise schedule and the denoising
loss of Sound2Vision eq. (4), condition dropout, and sampling with classifier-free guidance
(Ho & Salimans 2022) — around any :class:`Denoiser`. :class:`UNetDenoiser` adapts diffusers'
``UNet2DConditionModel``; a transformer denoiser is one more adapter, with no copied loop.
"""

from __future__ import annotations

import inspect
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence

import diffusers
import torch
import torch.nn.functional as F
from diffusers import DDPMScheduler, SchedulerMixin, UNet2DConditionModel
from torch import Tensor, nn

from a2i.errors import ConfigError
from a2i.generators.autoencoder import KLAutoencoder
from a2i.interfaces import Condition, Generators
from a2i.modules.noise import randn

LatentGuidance = Callable[[Tensor, Tensor, Tensor], Tensor]
"""``(latents, timestep, prediction) → prediction``: a correction of each sampling step."""

NOISE_SCHEDULE = {
    # Stable Diffusion's training schedule (also that of sd-image-variations).
    "num_train_timesteps": 1000,
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "clip_sample": False,
}


def scheduler_class(name: str) -> type[SchedulerMixin]:
    """The diffusers scheduler class called ``name``, or a :class:`ConfigError` naming choices."""
    found = getattr(diffusers, name, None)
    if not (isinstance(found, type) and issubclass(found, SchedulerMixin)):
        raise ConfigError(
            f"sampler '{name}' is not a diffusers scheduler class "
            "(e.g. DDIMScheduler, EulerDiscreteScheduler, DPMSolverMultistepScheduler)"
        )
    return found


class Denoiser(nn.Module, ABC):
    """The network of a diffusion model: noisy samples + condition → the training target.

    What it predicts (ε, v or x₀) is the noise scheduler's ``prediction_type``.

    Attributes:
        in_channels: Channels of the samples it denoises (the VAE's latent channels).
        condition_dim: Width of the condition tokens it reads.
    """

    in_channels: int
    condition_dim: int

    @abstractmethod
    def forward(self, sample: Tensor, timesteps: Tensor, condition: Condition) -> Tensor:
        """Prediction shaped like ``sample`` ``(B, C, H, W)`` at ``timesteps`` ``(B,)``."""


class UNetDenoiser(Denoiser):
    """diffusers' ``UNet2DConditionModel``, cross-attending to the condition tokens.

    Padding tokens (False in ``condition.mask``) get no attention weight.
    """

    def __init__(self, unet: UNet2DConditionModel) -> None:
        super().__init__()
        self.unet = unet
        self.in_channels = int(unet.config.in_channels)
        self.condition_dim = int(unet.config.cross_attention_dim)

    def forward(self, sample: Tensor, timesteps: Tensor, condition: Condition) -> Tensor:
        """The UNet's prediction for ``sample``."""
        return self.unet(
            sample,
            timesteps,
            encoder_hidden_states=condition.tokens,
            encoder_attention_mask=condition.mask,
        ).sample


class LatentDiffusion(nn.Module):
    """A denoiser in a frozen VAE's latent space: training loss and guided sampling.

    Args:
        denoiser: The trained network (the only part with trainable weights here).
        image_size: Output resolution; a multiple of the VAE's downsampling factor.
        vae: The autoencoder whose latents are denoised (frozen here); None denoises pixels
            scaled to ``[-1, 1]``.
        noise_scheduler: The training noise schedule; its ``prediction_type`` (``"epsilon"``,
            eq. 4, ``"v_prediction"`` or ``"sample"``) is what the denoiser learns to predict.
            Default: Stable Diffusion's schedule, ε-prediction.
        condition_dropout: Probability of replacing a training condition by the null one, so
            that the same denoiser learns the unconditional model guidance needs (0.1 in Ho &
            Salimans 2022).
        sampler: diffusers scheduler class used for sampling, built from the training schedule
            (``DDIMScheduler``; e.g. ``EulerDiscreteScheduler``, ``DPMSolverMultistepScheduler``).
    """

    def __init__(
        self,
        denoiser: Denoiser,
        image_size: int,
        vae: KLAutoencoder | None = None,
        noise_scheduler: DDPMScheduler | None = None,
        condition_dropout: float = 0.1,
        sampler: str = "DDIMScheduler",
    ) -> None:
        super().__init__()
        if not 0.0 <= condition_dropout < 1.0:
            raise ConfigError(f"condition_dropout must be in [0, 1) (got {condition_dropout})")
        self.denoiser = denoiser
        self.vae = None if vae is None else vae.freeze()
        self.noise_scheduler = noise_scheduler or DDPMScheduler(**NOISE_SCHEDULE)
        self.condition_dropout = condition_dropout
        self.sampler = scheduler_class(sampler)
        self.image_size = image_size
        if vae is None:
            self.sample_shape = (3, image_size, image_size)
        elif image_size % vae.downsample_factor:
            raise ConfigError(
                f"image_size={image_size} is not a multiple of the VAE's downsampling factor "
                f"{vae.downsample_factor}"
            )
        else:
            self.sample_shape = vae.latent_shape(image_size)
        if denoiser.in_channels != self.sample_shape[0]:
            raise ConfigError(
                f"{type(denoiser).__name__} denoises {denoiser.in_channels}-channel samples but "
                f"the {'VAE latents' if vae else 'images'} have {self.sample_shape[0]} channels"
            )

    @property
    def prediction_type(self) -> str:
        """What the denoiser predicts: ``"epsilon"``, ``"v_prediction"`` or ``"sample"``."""
        return self.noise_scheduler.config.prediction_type

    def encode(self, image: Tensor) -> Tensor:
        """Images in ``[0, 1]`` → the samples diffusion runs on (a posterior draw of latents)."""
        return image * 2.0 - 1.0 if self.vae is None else self.vae.encode(image, sample=True)

    def decode(self, latents: Tensor) -> Tensor:
        """Denoised samples → images in ``[0, 1]``."""
        if self.vae is None:
            return ((latents + 1.0) / 2.0).clamp(0.0, 1.0)
        return self.vae.decode(latents)

    def check_condition(self, condition: Condition) -> None:
        """Refuse conditions whose tokens the denoiser cannot read."""
        tokens = condition.tokens
        if tokens.dim() != 3 or tokens.shape[-1] != self.denoiser.condition_dim:
            dim = self.denoiser.condition_dim
            raise ConfigError(
                f"{type(self.denoiser).__name__} expects conditions of {dim}-d tokens "
                f"(B, N, {dim}), or (B, {dim}) embeddings as one token; got {tuple(tokens.shape)}"
            )

    def target(self, latents: Tensor, noise: Tensor, timesteps: Tensor) -> Tensor:
        """What the denoiser should output for ``latents`` noised with ``noise``."""
        if self.prediction_type == "epsilon":
            return noise
        if self.prediction_type == "v_prediction":
            return self.noise_scheduler.get_velocity(latents, noise, timesteps)
        return latents

    def training_losses(
        self, image: Tensor | None, condition: Tensor | Condition, latents: Tensor | None = None
    ) -> dict[str, Tensor]:
        """Denoising loss of Sound2Vision eq. (4) on the (latent) samples of ``image``.

        Draws the posterior sample, noise, timesteps and condition dropout from the global RNG
        (seed it for reproducible losses). ``latents`` pre-computed by this component's VAE (a
        shard cache, Seeing Sound §4.3) replace the encoding of ``image``.

        Returns:
            ``loss``: MSE between the denoiser's output and :meth:`target`.
        """
        condition = Condition.of(condition)
        self.check_condition(condition)
        if latents is None:
            with torch.no_grad():
                latents = self.encode(image)
        noise = torch.randn_like(latents)
        timesteps = torch.randint(
            0,
            self.noise_scheduler.config.num_train_timesteps,
            (latents.shape[0],),
            device=latents.device,
        )
        noisy = self.noise_scheduler.add_noise(latents, noise, timesteps)
        if self.condition_dropout > 0:
            keep = (
                torch.rand(len(condition), device=condition.tokens.device) >= self.condition_dropout
            )
            condition = condition.select(keep)
        prediction = self.denoiser(noisy, timesteps, condition)
        loss = F.mse_loss(prediction.float(), self.target(latents, noise, timesteps).float())
        return {"loss": loss}

    @torch.no_grad()
    def sample(
        self,
        condition: Tensor | Condition | Sequence[Tensor | Condition],
        unconditional: Tensor | Condition | None = None,
        generator: Generators = None,
        num_inference_steps: int = 50,
        guidance_scale: float = 1.0,
        weights: Sequence[float] | None = None,
        guidance: LatentGuidance | None = None,
    ) -> Tensor:
        """Images ``(B, 3, H, W)`` in ``[0, 1]``, one per condition row.

        ``guidance_scale`` > 1 runs the denoiser on both inputs and extrapolates away from the
        unconditional prediction (classifier-free guidance); ≤ 1 is one conditional pass.
        Several conditions are composed with the conjunction ("AND") of composable diffusion
        (Liu et al. 2022): ``ε = ε(∅) + s · Σ_i w_i (ε(c_i) − ε(∅))``, one denoiser pass per
        condition plus the unconditional one, whatever ``s``.

        Args:
            condition: What to draw, or several conditions of the same rows to compose; a
                tensor (``(B, D)`` embeddings or ``(B, N, D)`` tokens) is :meth:`Condition.of` it.
            unconditional: Guidance's unconditional input (one row or one per row), e.g. a
                text-to-image model's empty-prompt encoding; default ``condition.null()``, the
                dropout this component trains with.
            generator: Seeds the initial noise and any noise the sampler adds; a list seeds
                each row on its own, so a row's image does not depend on its batch.
            num_inference_steps: Sampling steps.
            guidance_scale: Classifier-free guidance scale ``s``.
            weights: Weight ``w_i`` of each condition (default 1 each).
            guidance: Classifier-style guidance (Dhariwal & Nichol 2021): called at every step
                with the latents, the timestep and the (guided) prediction, it returns the
                prediction to step with (:class:`~a2i.generators.score_guidance.ScoreGuidance`).
        """
        composed = isinstance(condition, list | tuple)
        conditions = [Condition.of(part) for part in (condition if composed else [condition])]
        weights = [1.0] * len(conditions) if weights is None else list(weights)
        if not conditions or len(weights) != len(conditions):
            raise ConfigError(
                f"sample() needs one weight per condition (got {len(conditions)} conditions "
                f"and {len(weights)} weights)"
            )
        for part in conditions:
            self.check_condition(part)
        first = conditions[0]
        device, dtype = first.tokens.device, first.tokens.dtype
        scheduler = self.sampler.from_config(
            self.noise_scheduler.config, set_alpha_to_one=False, steps_offset=1
        )
        scheduler.set_timesteps(num_inference_steps, device=device)
        step_kwargs = {}
        if "generator" in inspect.signature(scheduler.step).parameters:
            step_kwargs["generator"] = generator
        shape = (len(first), *self.sample_shape)
        latents = randn(shape, generator, device, dtype) * scheduler.init_noise_sigma
        guided = guidance_scale > 1.0 or len(conditions) > 1
        inputs = first
        if guided:
            inputs = (
                first.null() if unconditional is None else Condition.of(unconditional)
            ).expand(len(first))
            inputs = inputs.to(device, dtype)
            for part in conditions:
                inputs = inputs.cat(part)
        copies = len(inputs) // len(first)
        for timestep in scheduler.timesteps:
            model_input = scheduler.scale_model_input(torch.cat([latents] * copies), timestep)
            prediction = self.denoiser(model_input, timestep.expand(len(model_input)), inputs)
            if guided:
                without, *conditioned = prediction.chunk(copies)
                prediction = without + guidance_scale * sum(
                    weight * (part - without)
                    for weight, part in zip(weights, conditioned, strict=True)
                )
            if guidance is not None:
                prediction = guidance(latents, timestep, prediction)
            latents = scheduler.step(prediction, timestep, latents, **step_kwargs).prev_sample
        return self.decode(latents)
