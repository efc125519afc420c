"""Diffusion in diffusers' roles: an injected denoiser (weights), schedulers (none) and the loop.

Sound2Vision's LDM (§6.1), AudioToken's frozen Stable Diffusion and a DiT differ in the network
that predicts the noise and in what it reads, not in the rest. :class:`LatentDiffusion` is that
rest — the frozen VAE (or none, for pixel space), the training noise schedule and the denoising
loss of Sound2Vision eq. (4), condition dropout, and sampling with classifier-free guidance
(Ho & Salimans 2022) — around any :class:`Denoiser`. :class:`UNetDenoiser` adapts diffusers'
``UNet2DConditionModel``; a transformer denoiser is one more adapter, with no copied loop.

:class:`DiffusionGenerator` is that model as an :class:`~a2i.interfaces.ImageGenerator`: the
sampling controls, the loss and the loading of published or a2i weights, written once. The UNet
(:mod:`a2i.generators.latent_diffusion`) and PixArt (:mod:`a2i.generators.pixart`) generators only
say how their network is built. :class:`ProjectedConditionGenerator` is the role of one whose
condition projection a method replaces to read another modality (Seeing Sound).
"""

from __future__ import annotations

import inspect
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import Any, Literal

import diffusers
import torch
import torch.nn.functional as F
from diffusers import DDPMScheduler, ModelMixin, SchedulerMixin, UNet2DConditionModel
from torch import Tensor, nn

from a2i.errors import ConfigError
from a2i.generators.autoencoder import KLAutoencoder, load_weights_file
from a2i.interfaces import Condition, Control, Generators, ImageGenerator, LatentGuidance
from a2i.modules.noise import randn
from a2i.pretrained import Weights, resolve_weights

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


class DiffusionGenerator(ImageGenerator):
    """A :class:`LatentDiffusion` model as an image generator, built from a preset or published weights.

    Takes every sampling control of :meth:`~a2i.interfaces.ImageGenerator.generate`. A subclass
    names its network (:attr:`network_class`, :attr:`network_folder`), its default training
    schedule and preset defaults, and builds a network from a preset in ``new_network``; the rest
    (weights files found before anything is built, the VAE, published pipelines) is here.

    Args:
        preset: A key of :attr:`preset_defaults`.
        pretrained: A diffusers pipeline repo id or directory with ``<network_folder>/``,
            ``vae/`` and ``scheduler/``; it defines the architecture, ``preset`` then only
            supplies the sampling defaults.
        network_pretrained: An a2i ``.safetensors`` file of the network's own state dict (the
            subclass's ``<network_folder>_pretrained`` argument); overrides ``pretrained``'s.
        vae_pretrained: An a2i ``.safetensors`` file of a :class:`KLAutoencoder` of the same
            preset; overrides ``pretrained``'s VAE.
        image_size: Output resolution (None: the published network's or the preset's).
        num_inference_steps: Sampling steps (None: the preset's).
        guidance_scale: Classifier-free guidance scale; ≤ 1 disables guidance and its second pass.
        condition_dropout: See :class:`LatentDiffusion`.
        prediction_type: What the network predicts (``noise_scheduler``'s ``prediction_type``).
        sampler: See :class:`LatentDiffusion`.
        new_network: Builds the network of ``preset`` for latents of the given channel count
            (used when ``pretrained`` is None).
    """

    sampling_controls: frozenset[Control] = frozenset({"guidance_scale", "num_inference_steps"})
    composes_conditions = True
    network_class: type[ModelMixin]
    """The diffusers class of the network (loaded from published pipelines)."""
    network_folder: str
    """The network's folder in a published pipeline, and its export name (``trained_parts``)."""
    denoiser_class: Callable[[ModelMixin], Denoiser]
    """Wraps the network as the diffusion's :class:`Denoiser`."""
    default_schedule: dict[str, Any]
    """The training noise schedule without published weights (and the base of a published one)."""
    preset_defaults: dict[str, dict[str, int]]
    """``image_size`` and ``num_inference_steps`` of each preset."""
    download: str | None = None
    """How to fetch published weights, shown when they are missing (None: ``hf download <repo>``)."""

    def __init__(
        self,
        preset: str,
        pretrained: str | None,
        network_pretrained: str | None,
        vae_pretrained: str | None,
        image_size: int | None,
        num_inference_steps: int | None,
        guidance_scale: float,
        condition_dropout: float,
        prediction_type: str,
        sampler: str,
        new_network: Callable[[int], ModelMixin],
    ) -> None:
        super().__init__()
        name = type(self).__name__
        if preset not in self.preset_defaults:
            choices = " or ".join(repr(choice) for choice in self.preset_defaults)
            raise ConfigError(f"{name}.preset must be {choices} (got {preset!r})")
        defaults = self.preset_defaults[preset]
        self.preset = preset
        self.num_inference_steps = num_inference_steps or defaults["num_inference_steps"]
        self.guidance_scale = guidance_scale

        # every file is found before anything is built: a missing one fails at once
        weights = resolve_weights(pretrained, f"{name}.pretrained", download=self.download)
        network_file = resolve_weights(
            network_pretrained, f"{name}.{self.network_folder}_pretrained"
        )
        vae_file = resolve_weights(vae_pretrained, f"{name}.vae_pretrained")
        published = None if weights is None else self._load_published(weights)
        if vae_file is None:
            vae = KLAutoencoder(
                preset=preset, pretrained=pretrained, subfolder="vae" if pretrained else None
            )
        else:
            vae = KLAutoencoder(preset=preset)
            load_weights_file(vae, vae_file)
        if published is None:
            network, schedule = new_network(vae.latent_channels), dict(self.default_schedule)
        else:
            network, schedule = published
            if image_size is None:
                image_size = int(network.config.sample_size) * vae.downsample_factor
        if network_file is not None:
            load_weights_file(network, network_file)
        self.image_size = image_size or defaults["image_size"]
        try:
            self.diffusion = LatentDiffusion(
                self.denoiser_class(network),
                self.image_size,
                vae=vae,
                noise_scheduler=DDPMScheduler(**schedule, prediction_type=prediction_type),
                condition_dropout=condition_dropout,
                sampler=sampler,
            )
        except ConfigError as error:
            raise ConfigError(f"{name}: {error}") from None

    def _load_published(self, weights: Weights) -> tuple[ModelMixin, dict[str, Any]]:
        """Network and training noise schedule of a diffusers pipeline repo or directory."""

        def load(where: str) -> tuple[ModelMixin, dict]:
            network = self.network_class.from_pretrained(where, subfolder=self.network_folder)
            return network, DDPMScheduler.load_config(where, subfolder="scheduler")

        download = self.download or f"hf download {weights.spec}"
        network, config = weights.load(load, library="diffusers", download=download)
        keys = ("num_train_timesteps", "beta_start", "beta_end", "beta_schedule")
        return network, {**self.default_schedule, **{k: config[k] for k in keys if k in config}}

    @property
    def denoiser(self) -> Denoiser:
        """The network as the diffusion's denoiser."""
        return self.diffusion.denoiser

    @property
    def condition_dim(self) -> int:
        """Width of the condition tokens the denoiser reads."""
        return self.denoiser.condition_dim

    @property
    def vae(self) -> KLAutoencoder:
        """The frozen autoencoder."""
        return self.diffusion.vae

    @property
    def noise_scheduler(self) -> DDPMScheduler:
        """The training noise schedule (saved as a diffusers ``scheduler/`` folder)."""
        return self.diffusion.noise_scheduler

    def training_losses(
        self, image: Tensor | None, condition: Tensor | Condition, latents: Tensor | None = None
    ) -> dict[str, Tensor]:
        """The denoising loss on the VAE latents of ``image`` (:meth:`LatentDiffusion.training_losses`).

        ``latents`` pre-computed by this generator's VAE (a shard cache) replace encoding
        ``image``. Draws timesteps, noise and condition dropout from the global RNG.
        """
        return self.diffusion.training_losses(image, condition, latents)

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
        """Images ``(B, 3, H, W)`` in ``[0, 1]`` by :meth:`LatentDiffusion.sample`.

        ``guidance_scale`` and ``num_inference_steps`` default to the configured ones; the
        unconditional input defaults to the all-zero condition of the condition dropout.
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


TrainedPart = Literal["projector", "projector_cross_attention", "all"]
"""What trains of a denoiser whose projection was replaced: the projector only, the projector and
every cross-attention layer (the layers that read the projector's tokens), or everything."""


class ProjectedDenoiser(Denoiser):
    """A denoiser that reads condition tokens through a projection (an MLP) that can be replaced.

    A method conditions the pretrained network on another modality by swapping that projection
    for a new one over its own tokens (Seeing Sound: AST tokens in place of PixArt-α's T5 ones).
    """

    @property
    @abstractmethod
    def projector(self) -> nn.Module:
        """The projection between the condition tokens and the network."""

    @abstractmethod
    def new_projector(self, condition_dim: int, hidden_dim: int | None = None) -> nn.Module:
        """A randomly initialised projection of the same kind for ``condition_dim``-wide tokens."""

    @abstractmethod
    def replace_projector(self, condition_dim: int, hidden_dim: int | None = None) -> nn.Module:
        """Put a :meth:`new_projector` in place (every other weight unchanged) and return it."""

    @abstractmethod
    def trained_parts(self, which: TrainedPart) -> dict[str, nn.Module]:
        """The modules that train for ``which`` (:data:`TrainedPart`), by name."""


class ProjectedConditionGenerator(DiffusionGenerator):
    """A diffusion generator whose denoiser is a :class:`ProjectedDenoiser` (PixArt-α)."""

    @property
    def denoiser(self) -> ProjectedDenoiser:
        """The network as the diffusion's denoiser, with its replaceable projection."""
        return self.diffusion.denoiser
