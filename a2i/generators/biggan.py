"""BigGAN generator with IC-GAN's instance conditioning (Sound2Vision §3.2).

Sound2Vision's image generator G(z, z^V) is BigGAN (Brock et al. 2019, "Large Scale GAN Training
for High Fidelity Natural Image Synthesis") with the input modification of IC-GAN (Casanova et al.
2021, "Instance-Conditioned GAN"): the class embedding is replaced by a linear projection of a
2048-d self-supervised (SwAV ResNet-50) image feature, which, concatenated with a chunk of the
noise, drives the conditional batch-norm of every residual up-block. The discriminator is
BigGAN's residual down-sampling network with a projection head on the same feature, trained with
the hinge loss.

Module and parameter names follow BigGAN-PyTorch as vendored by IC-GAN
(``facebookresearch/ic_gan``, ``BigGAN_PyTorch/BigGAN.py`` and ``layers.py``), so a published
IC-GAN generator (``G_ema_best0.pth``) converts with a few renames
(:func:`convert_biggan_pytorch_state_dict`): spectral norm comes from
``torch.nn.utils.parametrizations`` and batch-norm statistics from ``nn.BatchNorm2d`` instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.parametrizations import spectral_norm

from a2i.errors import ConfigError
from a2i.generators.autoencoder import foreground_weighted_l1
from a2i.interfaces import AdversarialGenerator, Generators, LatentGuidance
from a2i.modules.noise import randn
from a2i.pretrained import Weights, resolve_weights

ICGAN_DOWNLOAD = (
    "wget https://dl.fbaipublicfiles.com/ic_gan/icgan_biggan_imagenet_res128.tar.gz && tar -xzf "
    "icgan_biggan_imagenet_res128.tar.gz (the generator is "
    "icgan_biggan_imagenet_res128/G_ema_best0.pth)"
)

PRESETS: dict[str, dict] = {
    # IC-GAN ImageNet 128 px (config_files/ImageNet/IC-GAN/icgan_res128.json): G_ch = D_ch = 96,
    # dim_z 120 (hierarchical), shared_dim_feat 512, attention at 64 px; SwAV features.
    "paper": {
        "condition_dim": 2048,
        "image_size": 128,
        "noise_dim": 120,
        "channels": 96,
        "shared_dim": 512,
        "attention_resolution": 64,
        "reconstruction_weight": 0.0,
    },
    # Synthetic world: 32 px, unit-norm 64-d image embeddings, BigGAN's 32 px layout.
    "tiny": {
        "condition_dim": 64,
        "image_size": 32,
        "noise_dim": 32,
        "channels": 8,
        "shared_dim": 64,
        "attention_resolution": 0,
        "reconstruction_weight": 10.0,
    },
}

# Channel multipliers per block (BigGAN-PyTorch G_arch / D_arch).
GENERATOR_ARCH: dict[int, tuple[list[int], list[int]]] = {
    32: ([4, 4, 4], [4, 4, 4]),
    64: ([16, 16, 8, 4], [16, 8, 4, 2]),
    128: ([16, 16, 8, 4, 2], [16, 8, 4, 2, 1]),
    256: ([16, 16, 8, 8, 4, 2], [16, 8, 8, 4, 2, 1]),
}
DISCRIMINATOR_ARCH: dict[int, tuple[list[int], list[bool]]] = {
    32: ([4, 4, 4, 4], [True, True, False, False]),
    64: ([1, 2, 4, 8, 16], [True] * 4 + [False]),
    128: ([1, 2, 4, 8, 16, 16], [True] * 5 + [False]),
    256: ([1, 2, 4, 8, 8, 16, 16], [True] * 6 + [False]),
}
BOTTOM_WIDTH = 4


def _spectral(layer: nn.Conv2d | nn.Linear) -> nn.Module:
    """Orthogonal initialisation (BigGAN's ``G_init = D_init = "ortho"``) + spectral norm."""
    if not layer.weight.is_meta:
        nn.init.orthogonal_(layer.weight)
    return spectral_norm(layer)


def _conv(
    in_channels: int, out_channels: int, kernel_size: int = 3, bias: bool = True
) -> nn.Module:
    return _spectral(
        nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=bias)
    )


def _linear(in_features: int, out_features: int, bias: bool = True) -> nn.Module:
    return _spectral(nn.Linear(in_features, out_features, bias=bias))


class ConditionalBatchNorm(nn.Module):
    """Batch norm whose gain and bias are linear in the condition (BigGAN ``ccbn``)."""

    def __init__(self, num_channels: int, condition_size: int) -> None:
        super().__init__()
        self.gain = _linear(condition_size, num_channels, bias=False)
        self.bias = _linear(condition_size, num_channels, bias=False)
        self.norm = nn.BatchNorm2d(num_channels, affine=False)

    def forward(self, x: Tensor, condition: Tensor) -> Tensor:
        """Normalise ``x`` and apply the condition's per-channel gain ``1 + γ(c)`` and bias."""
        gain = 1.0 + self.gain(condition)[:, :, None, None]
        return self.norm(x) * gain + self.bias(condition)[:, :, None, None]


class GeneratorBlock(nn.Module):
    """BigGAN residual up-block: cBN → ReLU → ×2 nearest → conv → cBN → ReLU → conv, + 1×1 skip."""

    def __init__(self, in_channels: int, out_channels: int, condition_size: int) -> None:
        super().__init__()
        self.conv1 = _conv(in_channels, out_channels)
        self.conv2 = _conv(out_channels, out_channels)
        self.conv_sc = _conv(in_channels, out_channels, kernel_size=1)
        self.bn1 = ConditionalBatchNorm(in_channels, condition_size)
        self.bn2 = ConditionalBatchNorm(out_channels, condition_size)

    def forward(self, x: Tensor, condition: Tensor) -> Tensor:
        """Upsample ``x`` ×2 under the condition's batch-norm modulation."""
        h = F.interpolate(F.relu(self.bn1(x, condition)), scale_factor=2)
        h = self.conv2(F.relu(self.bn2(self.conv1(h), condition)))
        return h + self.conv_sc(F.interpolate(x, scale_factor=2))


class SelfAttention(nn.Module):
    """SA-GAN non-local block as released with BigGAN (keys/values max-pooled ×2, no scaling)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.theta = _conv(channels, channels // 8, kernel_size=1, bias=False)
        self.phi = _conv(channels, channels // 8, kernel_size=1, bias=False)
        self.g = _conv(channels, channels // 2, kernel_size=1, bias=False)
        self.o = _conv(channels // 2, channels, kernel_size=1, bias=False)
        self.gamma = nn.Parameter(torch.tensor(0.0))

    def forward(self, x: Tensor, condition: Tensor | None = None) -> Tensor:
        """Add ``gamma`` × attention output to ``x`` (``condition`` is unused)."""
        batch, _, height, width = x.shape
        query = self.theta(x).flatten(2).transpose(1, 2)
        key = F.max_pool2d(self.phi(x), 2).flatten(2).transpose(1, 2)
        value = F.max_pool2d(self.g(x), 2).flatten(2).transpose(1, 2)
        attended = F.scaled_dot_product_attention(query, key, value, scale=1.0)
        attended = attended.transpose(1, 2).reshape(batch, -1, height, width)
        return x + self.gamma * self.o(attended)


class DiscriminatorBlock(nn.Module):
    """BigGAN residual down-block ("wide": the hidden width is the output width)."""

    def __init__(
        self, in_channels: int, out_channels: int, preactivation: bool, downsample: bool
    ) -> None:
        super().__init__()
        self.preactivation = preactivation
        self.downsample = downsample
        self.conv1 = _conv(in_channels, out_channels)
        self.conv2 = _conv(out_channels, out_channels)
        self.learnable_shortcut = in_channels != out_channels or downsample
        if self.learnable_shortcut:
            self.conv_sc = _conv(in_channels, out_channels, kernel_size=1)

    def _shortcut(self, x: Tensor) -> Tensor:
        if not self.learnable_shortcut:
            return x
        if self.preactivation:  # BigGAN's order: 1×1 conv first, then pool (cheaper in deep blocks)
            x = self.conv_sc(x)
            return F.avg_pool2d(x, 2) if self.downsample else x
        return self.conv_sc(F.avg_pool2d(x, 2) if self.downsample else x)

    def forward(self, x: Tensor) -> Tensor:
        """Residual convs, then 2×2 average pooling when this block downsamples."""
        h = F.relu(x) if self.preactivation else x
        h = self.conv2(F.relu(self.conv1(h)))
        if self.downsample:
            h = F.avg_pool2d(h, 2)
        return h + self._shortcut(x)


class ICGANGeneratorNetwork(nn.Module):
    """BigGAN generator network with IC-GAN's instance conditioning; output in ``[-1, 1]``.

    The noise is split into ``num_blocks + 1`` chunks (BigGAN's hierarchical latent): the first
    feeds the input linear layer, each other one is concatenated after the projected feature
    ``shared_feat(c)`` to condition one up-block.
    """

    def __init__(
        self,
        condition_dim: int,
        image_size: int,
        noise_dim: int,
        channels: int,
        shared_dim: int,
        attention_resolution: int,
    ) -> None:
        super().__init__()
        in_mult, out_mult = GENERATOR_ARCH[image_size]
        num_slots = len(in_mult) + 1
        if noise_dim % num_slots:
            raise ConfigError(
                f"BigGANGenerator.noise_dim={noise_dim} must split evenly into {num_slots} chunks "
                f"(one per block + one input) at image_size={image_size}"
            )
        self.noise_chunk = noise_dim // num_slots
        condition_size = shared_dim + self.noise_chunk
        self.shared_feat = _linear(condition_dim, shared_dim)
        self.linear = _linear(self.noise_chunk, channels * in_mult[0] * BOTTOM_WIDTH**2)
        self.blocks = nn.ModuleList()
        for index, (block_in, block_out) in enumerate(zip(in_mult, out_mult, strict=True)):
            stage: list[nn.Module] = [
                GeneratorBlock(channels * block_in, channels * block_out, condition_size)
            ]
            if BOTTOM_WIDTH * 2 ** (index + 1) == attention_resolution:
                stage.append(SelfAttention(channels * block_out))
            self.blocks.append(nn.ModuleList(stage))
        self.output_layer = nn.Sequential(
            nn.BatchNorm2d(channels * out_mult[-1]), nn.ReLU(), _conv(channels * out_mult[-1], 3)
        )

    def forward(self, noise: Tensor, condition: Tensor) -> Tensor:
        """Images in ``[-1, 1]`` from ``noise`` ``(B, noise_dim)`` and ``condition`` ``(B, D)``."""
        chunks = noise.split(self.noise_chunk, dim=1)
        shared = self.shared_feat(condition)
        h = self.linear(chunks[0]).view(noise.shape[0], -1, BOTTOM_WIDTH, BOTTOM_WIDTH)
        for stage, chunk in zip(self.blocks, chunks[1:], strict=True):
            block_condition = torch.cat([shared, chunk], dim=1)
            for layer in stage:
                h = layer(h, block_condition)
        return torch.tanh(self.output_layer(h))


class ICGANDiscriminator(nn.Module):
    """BigGAN discriminator with IC-GAN's projection on the instance feature.

    ``D(x, c) = w·φ(x) + ⟨linear_feat(c), φ(x)⟩`` with ``φ`` the sum-pooled ReLU features
    (the projection discriminator of Miyato & Koyama 2018, feature instead of class).
    """

    def __init__(
        self, condition_dim: int, image_size: int, channels: int, attention_resolution: int
    ) -> None:
        super().__init__()
        out_mult, downsample = DISCRIMINATOR_ARCH[image_size]
        widths = [3] + [channels * mult for mult in out_mult]
        self.blocks = nn.ModuleList()
        resolution = image_size
        for index, down in enumerate(downsample):
            resolution //= 2 if down else 1
            stage: list[nn.Module] = [
                DiscriminatorBlock(widths[index], widths[index + 1], index > 0, down)
            ]
            if resolution == attention_resolution:
                stage.append(SelfAttention(widths[index + 1]))
            self.blocks.append(nn.ModuleList(stage))
        self.linear = _linear(widths[-1], 1)
        self.linear_feat = _linear(condition_dim, widths[-1])

    def forward(self, image: Tensor, condition: Tensor) -> Tensor:
        """Realism scores ``(B,)`` for images in ``[-1, 1]`` under ``condition``."""
        h = image
        for stage in self.blocks:
            for layer in stage:
                h = layer(h)
        pooled = F.relu(h).sum(dim=(2, 3))
        projection = (self.linear_feat(condition) * pooled).sum(dim=1, keepdim=True)
        return (self.linear(pooled) + projection).squeeze(1)


def convert_biggan_pytorch_state_dict(state: dict[str, Tensor]) -> dict[str, Tensor]:
    """Rename a BigGAN-PyTorch / IC-GAN generator state dict to :class:`ICGANGeneratorNetwork`'s.

    BigGAN-PyTorch stores spectrally normalised layers as ``weight`` + power-iteration vector
    ``u0`` (and the logged singular value ``sv0``); torch's parametrisation stores ``original``,
    ``_u`` and ``_v``. At evaluation BigGAN-PyTorch runs one power step from ``u0``
    (``v = norm(u0 W)``, ``u = norm(v Wᵀ)``, ``σ = ‖W v‖``); setting ``_v = v`` and ``_u = u``
    gives torch the same ``σ``. Batch-norm buffers ``stored_mean``/``stored_var`` become
    ``running_mean``/``running_var``. IC-GAN's unused class embedding ``shared.weight`` (present
    because ``G_shared`` defaults to true) is dropped.
    """
    converted: dict[str, Tensor] = {}
    for key, value in state.items():
        module, _, name = key.rpartition(".")
        if key == "shared.weight" or name.startswith("sv"):
            continue
        if name == "u0":
            weight = state[f"{module}.weight"].float()
            matrix = weight.reshape(weight.shape[0], -1)
            v = F.normalize(value.float() @ matrix, dim=1, eps=1e-12)
            u = F.normalize(v @ matrix.t(), dim=1, eps=1e-12)
            converted[f"{module}.parametrizations.weight.0._u"] = u[0]
            converted[f"{module}.parametrizations.weight.0._v"] = v[0]
        elif name == "weight" and f"{module}.u0" in state:
            converted[f"{module}.parametrizations.weight.original"] = value
        elif name in ("stored_mean", "stored_var"):
            statistic = "running_mean" if name == "stored_mean" else "running_var"
            norm = module if module == "output_layer.0" else f"{module}.norm"
            converted[f"{norm}.{statistic}"] = value
            converted[f"{norm}.num_batches_tracked"] = torch.tensor(0)
        elif key == "output_layer.0.gain":
            converted["output_layer.0.weight"] = value
        else:
            converted[key] = value
    return converted


class BigGANGenerator(AdversarialGenerator):
    """IC-GAN-conditioned BigGAN: ``generate(c)`` draws ``z ~ N(0, I)`` and returns ``G(z, c)``.

    Args:
        preset: ``"paper"`` (IC-GAN ImageNet 128 px: 2048-d SwAV features, G_ch = D_ch = 96,
            dim_z 120, attention at 64 px) or ``"tiny"`` (synthetic world: 32 px, 64-d
            unit-norm embeddings, BigGAN's 32 px layout with 32 channels).
        condition_dim: Feature size (``None``: 2048 paper / 64 tiny).
        image_size: Output resolution, one of 32, 64, 128, 256 (``None``: 128 / 32).
        noise_dim: Size of z, split hierarchically over the blocks (``None``: 120 / 32).
        channels: BigGAN's width multiplier ``G_ch = D_ch`` (``None``: 96 / 8).
        shared_dim: Size of the projected feature (IC-GAN ``shared_dim_feat``; ``None``: 512 / 64).
        attention_resolution: Resolution of the self-attention block in G and D (``None``:
            64 paper / none tiny; 0 disables it).
        reconstruction_weight: Weight of an a2i addition for the tiny world: foreground-weighted
            L1 between ``G(z, f(x))`` and ``x`` in the generator loss, so that a CPU-minutes run
            reproduces the conditioning image (``None``: 0 paper, the pure IC-GAN objective /
            10 tiny).
        adversarial_weight: Weight of the hinge adversarial term in the generator loss.
        foreground_weight: Weight of object pixels in the reconstruction term (plain L1
            collapses to background on the synthetic world).
        condition_scale: Length of the conditions the generator was trained on, which
            :class:`~a2i.methods.sound2vision.Sound2Vision` gives it: ``"unit"`` (IC-GAN
            normalises its SwAV features to unit length, ``facebookresearch/ic_gan``
            ``data_utils/datasets_common.py:426``; the tiny world's encoder is unit-norm) or
            ``"feature"`` (trained here on an encoder's raw features).
        pretrained: An a2i ``.safetensors`` file of this module (generator and discriminator),
            or a published IC-GAN BigGAN generator (``G_ema_best0.pth`` from the IC-GAN release,
            converted by :func:`convert_biggan_pytorch_state_dict`; its discriminator is not
            published there, so ``discriminator`` keeps its initial weights). The conversion
            follows the IC-GAN source code; it was not run against the released file here.
        freeze: Freeze the module after construction.
    """

    def __init__(
        self,
        preset: Literal["paper", "tiny"] = "paper",
        condition_dim: int | None = None,
        image_size: int | None = None,
        noise_dim: int | None = None,
        channels: int | None = None,
        shared_dim: int | None = None,
        attention_resolution: int | None = None,
        reconstruction_weight: float | None = None,
        adversarial_weight: float = 1.0,
        foreground_weight: float = 10.0,
        condition_scale: Literal["unit", "feature"] = "unit",
        pretrained: str | None = None,
        freeze: bool = False,
    ) -> None:
        super().__init__()
        self.condition_scale = condition_scale
        if preset not in PRESETS:
            raise ConfigError(f"BigGANGenerator.preset must be 'paper' or 'tiny' (got {preset!r})")
        defaults = PRESETS[preset]
        self.preset = preset
        self.condition_dim = condition_dim or defaults["condition_dim"]
        self.image_size = image_size or defaults["image_size"]
        self.noise_dim = noise_dim or defaults["noise_dim"]
        width = channels or defaults["channels"]
        attention = (
            defaults["attention_resolution"]
            if attention_resolution is None
            else attention_resolution
        )
        self.reconstruction_weight = (
            defaults["reconstruction_weight"]
            if reconstruction_weight is None
            else reconstruction_weight
        )
        self.adversarial_weight = adversarial_weight
        self.foreground_weight = foreground_weight
        if self.adversarial_weight <= 0 and self.reconstruction_weight <= 0:
            raise ConfigError(
                "BigGANGenerator: adversarial_weight and reconstruction_weight are both 0, "
                "so the generator loss would be empty; make at least one positive"
            )
        if self.image_size not in GENERATOR_ARCH:
            raise ConfigError(
                f"BigGANGenerator.image_size must be one of {sorted(GENERATOR_ARCH)} "
                f"(got {self.image_size})"
            )
        self.network = ICGANGeneratorNetwork(
            self.condition_dim,
            self.image_size,
            self.noise_dim,
            width,
            shared_dim or defaults["shared_dim"],
            attention,
        )
        self.discriminator = ICGANDiscriminator(
            self.condition_dim, self.image_size, width, attention
        )
        weights = resolve_weights(pretrained, "BigGANGenerator.pretrained", download=ICGAN_DOWNLOAD)
        if weights is not None:
            self._load(weights)
        if freeze:
            self.freeze()

    def _load(self, weights: Weights) -> None:
        """Load an a2i file of this module or a converted IC-GAN (BigGAN-PyTorch) generator."""
        state = weights.state_dict(download=ICGAN_DOWNLOAD)
        is_biggan_pytorch = any(key.endswith(".u0") for key in state)
        try:
            if is_biggan_pytorch:
                self.network.load_state_dict(convert_biggan_pytorch_state_dict(state))
            else:
                self.load_state_dict(state)
        except RuntimeError as error:
            kind = (
                "an IC-GAN (BigGAN-PyTorch) generator; only instance-conditioned IC-GAN "
                "generators load here, not class-conditional cc_IC-GAN ones"
                if is_biggan_pytorch
                else "an a2i BigGANGenerator state dict"
            )
            detail = " ".join(str(error).split())[:300]
            raise ConfigError(
                f"'{weights.spec}' (field '{weights.field}') is {kind}, and it does not fit preset "
                f"{self.preset!r} with condition_dim={self.condition_dim}, "
                f"image_size={self.image_size}, noise_dim={self.noise_dim}: {detail}"
            ) from error

    def _check_condition(self, condition: Tensor) -> None:
        if condition.dim() != 2 or condition.shape[1] != self.condition_dim:
            raise ConfigError(
                f"BigGANGenerator expects conditions (B, {self.condition_dim}); "
                f"got {tuple(condition.shape)}"
            )

    def _noise(self, batch: int, device: torch.device, generator: Generators) -> Tensor:
        return randn((batch, self.noise_dim), generator, device)

    def forward(self, noise: Tensor, condition: Tensor) -> Tensor:
        """``G(z, c)`` in ``[0, 1]``, differentiable in both (for GAN inversion, §5.2)."""
        self._check_condition(condition)
        return (self.network(noise, condition) + 1.0) / 2.0

    @torch.no_grad()
    def generate(
        self,
        condition: Tensor,
        generator: Generators = None,
        unconditional: Tensor | None = None,
        *,
        guidance_scale: float | None = None,
        num_inference_steps: int | None = None,
        weights: Sequence[float] | None = None,
        guidance: LatentGuidance | None = None,
    ) -> Tensor:
        """One image per condition row in ``[0, 1]``; ``generator`` seeds the noise.

        Batch norm uses running statistics in eval mode (IC-GAN samples with ``G_eval_mode``)
        and batch statistics in train mode. In eval mode a list of generators, one per row,
        makes a row's image independent of the batch it is drawn in. A GAN draws in one pass
        from one condition: every diffusion sampling control is refused by name.
        """
        self.refuse_sampling(
            condition,
            unconditional=unconditional,
            guidance_scale=guidance_scale,
            num_inference_steps=num_inference_steps,
            weights=weights,
            guidance=guidance,
        )
        noise = self._noise(condition.shape[0], condition.device, generator)
        return self(noise, condition)

    def discriminator_loss(self, image: Tensor, condition: Tensor) -> dict[str, Tensor]:
        """Hinge loss ``E[max(0, 1 - D(x, c))] + E[max(0, 1 + D(G(z, c), c))]``.

        Returns:
            ``loss``, its ``real`` and ``fake`` halves, and the mean raw scores
            ``real_score`` / ``fake_score``.
        """
        self._check_condition(condition)
        with torch.no_grad():
            fake_images = self.network(self._noise(image.shape[0], image.device, None), condition)
        scores = self.discriminator(
            torch.cat([fake_images, image * 2.0 - 1.0]), torch.cat([condition, condition])
        )
        fake_scores, real_scores = scores.split(image.shape[0])
        real = F.relu(1.0 - real_scores).mean()
        fake = F.relu(1.0 + fake_scores).mean()
        return {
            "loss": real + fake,
            "real": real.detach(),
            "fake": fake.detach(),
            "real_score": real_scores.mean().detach(),
            "fake_score": fake_scores.mean().detach(),
        }

    def generator_loss(self, image: Tensor, condition: Tensor) -> dict[str, Tensor]:
        """Hinge generator loss ``-E[D(G(z, c), c)]`` plus the optional reconstruction term.

        Returns:
            ``loss`` = ``adversarial_weight · adversarial + reconstruction_weight ·
            reconstruction``, and each part whose weight is > 0 (a zero-weight part is not
            computed: with ``adversarial_weight=0`` the discriminator is not run).
        """
        self._check_condition(condition)
        fake = self.network(self._noise(image.shape[0], image.device, None), condition)
        parts: dict[str, Tensor] = {}
        loss = fake.new_zeros(())
        if self.adversarial_weight > 0:
            adversarial = -self.discriminator(fake, condition).mean()
            loss = loss + self.adversarial_weight * adversarial
            parts["adversarial"] = adversarial.detach()
        if self.reconstruction_weight > 0:
            reconstruction = foreground_weighted_l1(
                (fake + 1.0) / 2.0, image, foreground_weight=self.foreground_weight
            )
            loss = loss + self.reconstruction_weight * reconstruction
            parts["reconstruction"] = reconstruction.detach()
        return {"loss": loss, **parts}
