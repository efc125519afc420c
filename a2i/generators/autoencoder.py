"""The KL autoencoder that gives the latent-diffusion generator its latent space.

Latent diffusion (Rombach et al. 2022, "High-Resolution Image Synthesis with Latent Diffusion
Models"; Sound2Vision §6.1) denoises in the latent space of a frozen variational autoencoder.
The paper preset is Stable Diffusion's ``AutoencoderKL`` (published weights through diffusers);
the tiny preset is a small ``AutoencoderKL`` that a2i trains on the synthetic world first
(32 px images → 4×8×8 latents), with the objective of :meth:`KLAutoencoder.training_losses`.

The module also owns the per-pixel foreground weighting shared by a2i's reconstruction losses:
on the synthetic world a plain L1 loss is minimised by painting the background and dropping the
object (a tiny VAE trained that way drew empty backgrounds), so object pixels are weighted more.
"""

from __future__ import annotations

from typing import Literal

import torch
from diffusers import AutoencoderKL
from torch import Tensor, nn

from a2i.errors import ConfigError
from a2i.interfaces import FreezableMixin
from a2i.pretrained import Weights, resolve_weights

SD_VAE_SCALING_FACTOR = 0.18215
"""Stable Diffusion's latent scale: 1 / std of its VAE latents (Rombach et al. 2022, App. G)."""

AUTOENCODER_PRESETS: dict[str, dict] = {
    # Stable Diffusion v1.x VAE (f = 8): 83,653,863 parameters.
    "paper": {
        "down_block_types": ("DownEncoderBlock2D",) * 4,
        "up_block_types": ("UpDecoderBlock2D",) * 4,
        "block_out_channels": (128, 256, 512, 512),
        "layers_per_block": 2,
        "latent_channels": 4,
        "norm_num_groups": 32,
        "sample_size": 512,
    },
    # f = 4: 32 px images → 4×8×8 latents, small enough to train on a CPU in minutes.
    "tiny": {
        "down_block_types": ("DownEncoderBlock2D",) * 3,
        "up_block_types": ("UpDecoderBlock2D",) * 3,
        "block_out_channels": (16, 32, 64),
        "layers_per_block": 1,
        "latent_channels": 4,
        "norm_num_groups": 8,
        "sample_size": 32,
    },
}


def load_weights_file(module: nn.Module, weights: Weights) -> None:
    """Load an a2i weights file (a state dict of exactly ``module``) into ``module``.

    A file written for another preset or component fails with one line naming the file, the
    config field and the first mismatch, instead of torch's list of every tensor.
    """
    try:
        module.load_state_dict(weights.state_dict())
    except RuntimeError as error:
        detail = " ".join(str(error).split())[:300]
        raise ConfigError(
            f"'{weights.spec}' (field '{weights.field}') does not hold the weights of this "
            f"{type(module).__name__} (wrong preset or component?): {detail}"
        ) from error


def foreground_weights(
    image: Tensor, foreground_weight: float = 10.0, threshold: float = 0.1
) -> Tensor:
    """Per-pixel loss weights ``(B, 1, H, W)``: 1 on background, ``foreground_weight`` on objects.

    A pixel is background when its colour matches the leftmost or the rightmost pixel of its row
    (every channel within ``threshold``). This covers uniform backgrounds and the horizontal
    bands of the synthetic world (sky over grass, wall over floor) without knowing them. In a row
    where an object touches a side border, that object's pixels match the border and lose the
    extra weight: the loss degrades towards plain L1 there, never the other way round.

    Args:
        image: ``(B, 3, H, W)`` target images in ``[0, 1]``.
        foreground_weight: Weight of foreground pixels (1 disables the weighting).
        threshold: Colour distance (max over channels, ``[0, 1]`` scale) that counts as different.
    """
    differs_left = (image - image[..., :1]).abs().amax(dim=1, keepdim=True) > threshold
    differs_right = (image - image[..., -1:]).abs().amax(dim=1, keepdim=True) > threshold
    is_foreground = differs_left & differs_right
    return 1.0 + (foreground_weight - 1.0) * is_foreground.to(image.dtype)


def foreground_weighted_l1(
    prediction: Tensor, target: Tensor, foreground_weight: float = 10.0, threshold: float = 0.1
) -> Tensor:
    """Mean absolute error with object pixels weighted by ``foreground_weight``.

    Normalised by the total weight, so the value stays on the scale of a plain L1 and the
    weighting only shifts the balance between object and background.
    """
    weights = foreground_weights(target, foreground_weight, threshold).detach()
    error = (prediction - target).abs() * weights
    return error.sum() / (weights.sum() * target.shape[1])


class KLAutoencoder(FreezableMixin):
    """A diffusers ``AutoencoderKL`` with a2i's presets, loading and training objective.

    Images in and out are ``[0, 1]``; latents in and out are scaled to roughly unit variance
    (``latents = posterior / latent_std``), which is what the diffusion noise schedule assumes
    (the LDM code's ``scale_by_std`` rescales by the std of the first batch's latents; Stable
    Diffusion ships the result as ``scaling_factor``).

    ``latent_std`` is a persistent buffer, saved with the weights: for a published VAE it is
    ``1 / scaling_factor`` from its config; while a2i trains the tiny VAE it tracks the std of the
    encoded training batches as a running average (like batch-norm statistics), so the saved
    file carries the scale its diffusion model needs.

    The state dict is this module's: ``autoencoder.*`` (the ``AutoencoderKL``'s own keys) plus
    ``latent_std``. Save it with :func:`a2i.pretrained.save_module`; the latent-diffusion
    generator's ``vae`` is a ``KLAutoencoder`` of the same preset and loads that file.

    Args:
        preset: ``"paper"`` (the Stable Diffusion v1.x VAE shapes, 83,653,863 parameters) or
            ``"tiny"`` (32 px → 4×8×8 latents, 681,911 parameters).
        image_size: Training resolution recorded in the config (``None``: 32 tiny / 512 paper).
        kl_weight: Weight of the KL term. 1e-6 is the LDM default for KL autoencoders
            (``configs/autoencoder/autoencoder_kl_*.yaml``): just enough to keep the latent
            space smooth and bounded, small enough that reconstructions stay sharp, since the
            diffusion model, not the autoencoder, models the latent distribution. LDM sums the
            reconstruction error over each sample's pixels; a2i averages it, so the KL is
            divided by the number of values per image to keep LDM's balance.
        foreground_weight: Weight of object pixels in the L1 reconstruction loss (1 = plain L1).
            LDM trains with L1 + LPIPS + a patch GAN; a2i's tiny world uses weighted L1 only.
        latent_std_momentum: Momentum of the running ``latent_std`` estimate during training.
        pretrained: A diffusers repo id or directory (published VAE, e.g.
            ``stabilityai/sd-vae-ft-mse``), or an a2i ``.safetensors`` file of this module.
        subfolder: Subfolder of ``pretrained`` holding the VAE (``"vae"`` in pipeline repos).
        freeze: Freeze the module after construction.
    """

    def __init__(
        self,
        preset: Literal["tiny", "paper"] = "paper",
        image_size: int | None = None,
        kl_weight: float = 1e-6,
        foreground_weight: float = 10.0,
        latent_std_momentum: float = 0.05,
        pretrained: str | None = None,
        subfolder: str | None = None,
        freeze: bool = False,
    ) -> None:
        super().__init__()
        if preset not in AUTOENCODER_PRESETS:
            raise ConfigError(f"KLAutoencoder.preset must be 'tiny' or 'paper' (got {preset!r})")
        if not 0.0 < latent_std_momentum <= 1.0:
            raise ConfigError(
                f"KLAutoencoder.latent_std_momentum must be in (0, 1] (got {latent_std_momentum})"
            )
        self.preset = preset
        self.kl_weight = kl_weight
        self.foreground_weight = foreground_weight
        self.latent_std_momentum = latent_std_momentum
        weights = resolve_weights(pretrained, "KLAutoencoder.pretrained")
        a2i_file = weights is not None and weights.is_file  # a state dict of this module
        if weights is None or a2i_file:
            self.autoencoder = AutoencoderKL(**AUTOENCODER_PRESETS[preset])
        else:
            self.autoencoder = weights.load(
                lambda where: AutoencoderKL.from_pretrained(where, subfolder=subfolder),
                library="diffusers",
                download=f"hf download {pretrained}",
            )
        scale = float(self.autoencoder.config.scaling_factor)
        initial_std = 1.0 / scale if weights is not None and not a2i_file else 1.0
        self.register_buffer("latent_std", torch.tensor(initial_std))
        self.image_size = image_size or int(self.autoencoder.config.sample_size)
        if self.image_size % self.downsample_factor:
            raise ConfigError(
                f"KLAutoencoder.image_size={self.image_size} is not divisible by the "
                f"autoencoder's downsampling factor {self.downsample_factor}"
            )
        if a2i_file:
            load_weights_file(self, weights)
        if freeze:
            self.freeze()

    @property
    def latent_channels(self) -> int:
        """Channels of the latent tensor."""
        return int(self.autoencoder.config.latent_channels)

    @property
    def downsample_factor(self) -> int:
        """Spatial reduction from image to latent (each encoder block but the last halves)."""
        return 2 ** (len(self.autoencoder.config.block_out_channels) - 1)

    def latent_shape(self, image_size: int) -> tuple[int, int, int]:
        """``(C, H, W)`` of the latents of a square image of side ``image_size``."""
        side = image_size // self.downsample_factor
        return (self.latent_channels, side, side)

    def encode(
        self, image: Tensor, sample: bool = False, generator: torch.Generator | None = None
    ) -> Tensor:
        """Images ``(B, 3, H, W)`` in ``[0, 1]`` → scaled latents.

        Args:
            image: Images in ``[0, 1]``.
            sample: Draw from the posterior (as in training) instead of taking its mean.
            generator: Seeds the posterior draw.
        """
        posterior = self.autoencoder.encode(image * 2.0 - 1.0).latent_dist
        latents = posterior.sample(generator) if sample else posterior.mode()
        return latents / self.latent_std

    def posterior(self, image: Tensor) -> Tensor:
        """Images ``(B, 3, H, W)`` in ``[0, 1]`` → ``(B, 2, C, h, w)``, the scaled latents' posterior.

        Its mean and std are what a cache keeps so that training still draws from it
        (:func:`sample_posterior`) as :meth:`encode` with ``sample`` does.
        """
        posterior = self.autoencoder.encode(image * 2.0 - 1.0).latent_dist
        return torch.stack([posterior.mean, posterior.std], dim=1) / self.latent_std

    def decode(self, latents: Tensor) -> Tensor:
        """Scaled latents → images in ``[0, 1]`` (clamped)."""
        decoded = self.autoencoder.decode(latents * self.latent_std).sample
        return ((decoded + 1.0) / 2.0).clamp(0.0, 1.0)

    def forward(self, image: Tensor) -> Tensor:
        """Reconstruct images through the posterior mean (for logging and evaluation)."""
        return self.decode(self.encode(image))

    def training_losses(self, image: Tensor) -> dict[str, Tensor]:
        """Foreground-weighted L1 + ``kl_weight`` · KL per image value (LDM's balance, see above).

        In training mode this also updates the running ``latent_std``.

        Returns:
            ``loss`` (to minimise), ``reconstruction`` (weighted L1 in ``[0, 1]`` units) and
            ``kl`` (per-sample KL divergence, summed over latent elements).
        """
        posterior = self.autoencoder.encode(image * 2.0 - 1.0).latent_dist
        latents = posterior.sample()
        decoded = self.autoencoder.decode(latents).sample
        reconstruction = foreground_weighted_l1(
            (decoded + 1.0) / 2.0, image, foreground_weight=self.foreground_weight
        )
        kl = posterior.kl().mean()
        if self.training:
            with torch.no_grad():
                batch_std = latents.detach().float().std()
                self.latent_std.lerp_(batch_std, self.latent_std_momentum)
        return {
            "loss": reconstruction + self.kl_weight * kl / image[0].numel(),
            "reconstruction": reconstruction.detach(),
            "kl": kl.detach(),
        }


def sample_posterior(parameters: Tensor) -> Tensor:
    """A draw of latents ``(B, C, h, w)`` from :meth:`KLAutoencoder.posterior`'s ``(B, 2, C, h, w)``.

    Draws from the global RNG in the order diffusers' posterior ``sample()`` does, so a cache and
    encoding on the fly give the same latents for the same seed.
    """
    mean, std = parameters.unbind(dim=1)
    return mean + std * torch.randn(mean.shape, dtype=mean.dtype, device=mean.device)
