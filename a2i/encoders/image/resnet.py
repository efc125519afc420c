"""Sound2Vision's image encoder: a self-supervised ResNet-50 whose pooled features are the target.

Sound2Vision §3.2 uses a ResNet-50 trained with SwAV (Caron et al., 2020) on ImageNet without
labels; its 2048-d pooled features (no classifier) are what the audio encoder learns to match and
what the generator is conditioned on. §4.1 feeds it 224×224 frames.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

import torch
import torchvision
from timm.models.resnet import BasicBlock, Bottleneck, ResNet
from torch import Tensor
from torchvision.transforms import v2

from a2i.errors import CheckpointNotFoundError, ConfigError
from a2i.interfaces import ImageEncoder
from a2i.pretrained import Weights, resolve_weights

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

SWAV_URL = "https://dl.fbaipublicfiles.com/deepcluster/swav_800ep_pretrain.pth.tar"
SWAV_HEAD_PREFIXES = ("projection_head.", "prototypes.", "fc.")
"""SwAV's training heads (and a classifier, if any): not part of the feature trunk."""


def build_resnet_trunk(preset: Literal["tiny", "paper"]) -> ResNet:
    """The ResNet trunk without classifier (timm's ResNet uses torchvision's parameter names).

    ``paper`` is ResNet-50 (23,508,032 parameters); ``tiny`` a one-block-per-stage ResNet,
    16 to 128 channels wide after timm's 64-wide stem, for 32–64 px synthetic images.
    """
    if preset == "paper":
        return ResNet(Bottleneck, (3, 4, 6, 3), num_classes=0)
    return ResNet(BasicBlock, (1, 1, 1, 1), channels=(16, 32, 64, 128), num_classes=0)


def swav_backbone(checkpoint: dict) -> dict[str, Tensor]:
    """The ResNet trunk of a SwAV checkpoint: unwrap ``state_dict``, strip ``module.``, drop heads.

    Accepts the published ``swav_800ep_pretrain.pth.tar`` (a plain state dict) and SwAV training
    checkpoints (``{"state_dict": ...}``); both prefix every key with ``module.`` (DDP).
    """
    if isinstance(checkpoint.get("state_dict"), dict):
        checkpoint = checkpoint["state_dict"]
    backbone = {}
    for key, value in checkpoint.items():
        name = key.removeprefix("module.")
        if not name.startswith(SWAV_HEAD_PREFIXES):
            backbone[name] = value
    return backbone


class ResNetImageEncoder(ImageEncoder):
    """ResNet pooled features (2048-d for ResNet-50), ImageNet-normalised 224 px input.

    Args:
        preset: ``paper`` = ResNet-50 (Sound2Vision §3.2); ``tiny`` = a narrow ResNet
            (128-d features, 64 px) for the synthetic world. Ignored when ``pretrained`` names
            published ResNet-50 weights (they fix the architecture).
        pretrained: One of: a SwAV checkpoint file (the published one is
            ``swav_800ep_pretrain.pth.tar``); a torchvision weight name of ResNet-50
            (``IMAGENET1K_V2``, ``ResNet50_Weights.IMAGENET1K_V1``, ``DEFAULT``); or an a2i
            file of this module's state dict (``trunk.*`` keys, from
            :func:`a2i.pretrained.save_module`), loaded into ``preset``.
        image_size: Resolution inputs are resized and centre-cropped to (None: 224 for
            ``paper``, 64 for ``tiny``).
        freeze: Freeze the encoder (no gradients, eval mode kept), as Sound2Vision does.
    """

    def __init__(
        self,
        preset: Literal["tiny", "paper"] = "paper",
        pretrained: str | None = None,
        image_size: int | None = None,
        freeze: bool = False,
    ) -> None:
        super().__init__()
        field = f"{type(self).__name__}.pretrained"
        weights = resolve_weights(pretrained, field, download=f"wget {SWAV_URL}")
        own_state: dict[str, Tensor] | None = None  # an a2i file of this module
        backbone: dict[str, Tensor] | None = None  # published ResNet-50 weights
        if weights is not None:
            if weights.path is None:
                backbone = self._torchvision_weights(pretrained, field)
            else:
                checkpoint = weights.state_dict()
                if all(key.startswith("trunk.") for key in checkpoint):
                    own_state = checkpoint
                else:
                    backbone = swav_backbone(checkpoint)
        if backbone is not None:
            preset = "paper"
        self.trunk = build_resnet_trunk(preset)
        self.embed_dim = self.trunk.num_features
        self.image_size = image_size or (224 if preset == "paper" else 64)
        self.normalized = False
        self.preprocess = v2.Compose(
            [
                v2.Resize(
                    self.image_size, interpolation=v2.InterpolationMode.BICUBIC, antialias=True
                ),
                v2.CenterCrop(self.image_size),
                v2.Normalize(IMAGENET_MEAN, IMAGENET_STD),
            ]
        )
        if own_state is not None:
            self.load_state_dict(own_state)
        elif backbone is not None:
            self._load_backbone(backbone, pretrained, field)
        if freeze:
            self.freeze()

    @staticmethod
    def _torchvision_weights(name: str, field: str) -> dict[str, Tensor]:
        """ResNet-50 weights by torchvision enum name, from its cache only (never downloaded)."""
        short = name.removeprefix("ResNet50_Weights.")
        if short not in torchvision.models.ResNet50_Weights.__members__:
            raise CheckpointNotFoundError(
                name,
                field,
                library="a2i (file) / torchvision",
                download=(
                    f"run `wget {SWAV_URL}` for SwAV and point the field at the file, or use a "
                    "torchvision ResNet50_Weights name "
                    f"({', '.join(torchvision.models.ResNet50_Weights.__members__)})"
                ),
            )
        published = torchvision.models.ResNet50_Weights[short]
        cached = Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(published.url)
        # torchvision would download a missing file; a2i reads its cache only
        state = Weights(name, field, cached if cached.is_file() else None).state_dict(
            library="torchvision (cache)", download=f"wget -P {cached.parent} {published.url}"
        )
        return {k: v for k, v in state.items() if not k.startswith(SWAV_HEAD_PREFIXES)}

    def _load_backbone(self, backbone: dict[str, Tensor], checkpoint: str, field: str) -> None:
        """Load the trunk strictly; name any missing or unexpected backbone key."""
        expected = set(self.trunk.state_dict())
        missing = sorted(expected - set(backbone))
        unexpected = sorted(set(backbone) - expected)
        if missing or unexpected:
            raise ConfigError(
                f"'{checkpoint}' (config field '{field}') is not a ResNet-50 backbone: "
                f"missing keys {missing[:8]}{' …' if len(missing) > 8 else ''}, "
                f"unexpected keys {unexpected[:8]}{' …' if len(unexpected) > 8 else ''}"
            )
        try:
            self.trunk.load_state_dict(backbone, strict=True)
        except RuntimeError as error:  # same names, other shapes (e.g. a wider ResNet)
            raise ConfigError(
                f"'{checkpoint}' (config field '{field}') does not fit ResNet-50: {error}"
            ) from error

    def forward(self, image: Tensor) -> Tensor:
        """Pooled trunk features ``(B, embed_dim)`` of images in ``[0, 1]`` (not normalised)."""
        return self.trunk(self.preprocess(image))
