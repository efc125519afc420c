"""FID, KID and IS through torchmetrics, on an explicit feature network.

torchmetrics would fetch torch-fidelity's Inception weights from the internet on first use; a2i
instead takes the network as an argument: :class:`InceptionFeatures` loads the standard FID
Inception from a local file (a clear error names the file and its URL when it is missing), and in
the synthetic world the tiny classifier a2i trains on world images
(:class:`a2i.metrics.backbones.ImageClassifier`) takes its place. World numbers are comparable
between a2i runs, **not** with published Inception FIDs.
"""

from __future__ import annotations

from typing import Protocol

import torch
from torch import Tensor, nn
from torch_fidelity.feature_extractor_inceptionv3 import (
    URL_INCEPTION_V3,
    FeatureExtractorInceptionV3,
)
from torchmetrics.image.fid import FrechetInceptionDistance
from torchmetrics.image.inception import InceptionScore
from torchmetrics.image.kid import KernelInceptionDistance
from torchmetrics.utilities.data import dim_zero_cat

from a2i.errors import CheckpointNotFoundError
from a2i.pretrained import cache_dir, load_state_dict_file, resolve_local

INCEPTION_WEIGHTS = URL_INCEPTION_V3.rsplit("/", 1)[-1]
"""``weights-inception-2015-12-05-6726825d.pth``: the TF FID Inception ported by torch-fidelity."""


class FeatureBackbone(Protocol):
    """What FID/KID/IS need from a network: pooled features and class logits of [0, 1] images."""

    num_features: int

    def features(self, images: Tensor) -> Tensor:
        """``(B, num_features)`` for images ``(B, 3, H, W)`` in ``[0, 1]``."""

    def logits(self, images: Tensor) -> Tensor:
        """``(B, classes)`` for images ``(B, 3, H, W)`` in ``[0, 1]``."""


class InceptionFeatures(nn.Module):
    """The standard FID Inception-v3 (2048-d pool features, 1008 ``logits_unbiased`` for IS).

    Args:
        pretrained: The weights file, as a path or a bare name found in ``$A2I_CACHE`` (default
            ``~/.cache/a2i``). The file is checked to hold tensors only before torch-fidelity
            reads it.
    """

    num_features = 2048

    def __init__(self, pretrained: str = INCEPTION_WEIGHTS) -> None:
        super().__init__()
        field = f"{type(self).__name__}.pretrained"
        download = f"wget {URL_INCEPTION_V3} -O {cache_dir() / INCEPTION_WEIGHTS}"
        local = resolve_local(pretrained)
        if local is None or local.is_dir():
            raise CheckpointNotFoundError(
                pretrained, field, library="torch-fidelity", download=download
            )
        load_state_dict_file(str(local), field=field)  # refuses anything but plain tensors
        self.network = FeatureExtractorInceptionV3(
            "inception-v3-compat",
            ["2048", "logits_unbiased"],
            feature_extractor_weights_path=str(local),
        )

    def _run(self, images: Tensor) -> tuple[Tensor, Tensor]:
        pixels = (images.clamp(0, 1) * 255).round().to(torch.uint8)
        features, logits = self.network(pixels)
        return features, logits

    def features(self, images: Tensor) -> Tensor:
        """2048-d pool features of images in ``[0, 1]`` (resized to 299 px inside)."""
        return self._run(images)[0]

    def logits(self, images: Tensor) -> Tensor:
        """The 1008 ``logits_unbiased`` that IS is defined on."""
        return self._run(images)[1]


class _Features(nn.Module):
    """torchmetrics' view of a backbone for FID/KID: ``forward`` = features, ``num_features``."""

    def __init__(self, backbone: FeatureBackbone) -> None:
        super().__init__()
        self.backbone = backbone
        self.num_features = backbone.num_features

    def forward(self, images: Tensor) -> Tensor:
        return self.backbone.features(images.float())


class _Logits(nn.Module):
    """torchmetrics' view of a backbone for IS: ``forward`` = logits."""

    def __init__(self, backbone: FeatureBackbone) -> None:
        super().__init__()
        self.backbone = backbone

    def forward(self, images: Tensor) -> Tensor:
        return self.backbone.logits(images.float())


class ImageQuality(nn.Module):
    """FID and KID of generated vs. real images and IS of the generated ones, on one backbone.

    The three torchmetrics metrics share the backbone (one copy of Inception) and sync their
    states across DDP ranks when computed. Small evaluation sets are handled: KID's subset size
    and IS's number of splits are clamped to the number of images; FID with fewer than two
    images on either side is NaN.

    Args:
        backbone: Feature network (:class:`InceptionFeatures` or a world classifier).
        kid_subset_size: Images per KID subset (torchmetrics' default 1000).
        kid_subsets: Number of KID subsets.
        is_splits: Number of IS splits (the standard 10).
    """

    def __init__(
        self,
        backbone: FeatureBackbone,
        kid_subset_size: int = 1000,
        kid_subsets: int = 100,
        is_splits: int = 10,
    ) -> None:
        super().__init__()
        features = _Features(backbone)
        self.fid = FrechetInceptionDistance(feature=features, normalize=True)
        self.kid = KernelInceptionDistance(
            feature=features, subsets=kid_subsets, subset_size=kid_subset_size, normalize=True
        )
        self.inception_score = InceptionScore(feature=_Logits(backbone), splits=is_splits)
        self.kid_subset_size = kid_subset_size
        self.is_splits = is_splits

    def update_real(self, images: Tensor) -> None:
        """Add real (reference) images ``(B, 3, H, W)`` in ``[0, 1]``."""
        self.fid.update(images, real=True)
        self.kid.update(images, real=True)

    def update_fake(self, images: Tensor) -> None:
        """Add generated images ``(B, 3, H, W)`` in ``[0, 1]``."""
        self.fid.update(images, real=False)
        self.kid.update(images, real=False)
        self.inception_score.update(images)

    def compute(self) -> dict[str, float]:
        """``fid``, ``kid`` (mean, with ``kid_std``) and ``is`` (mean, with ``is_std``)."""
        with self.kid.sync_context():
            real = len(dim_zero_cat(self.kid.real_features)) if self.kid.real_features else 0
            fake = len(dim_zero_cat(self.kid.fake_features)) if self.kid.fake_features else 0
        with self.inception_score.sync_context():
            scored = self.inception_score.features
            generated = len(dim_zero_cat(scored)) if len(scored) else 0
        nan = float("nan")
        results = {"fid": nan, "kid": nan, "kid_std": nan, "is": nan, "is_std": nan}
        if min(real, fake) >= 2:
            results["fid"] = float(self.fid.compute())
            self.kid.subset_size = min(self.kid_subset_size, real, fake)
            kid_mean, kid_std = self.kid.compute()
            results.update(kid=float(kid_mean), kid_std=float(kid_std))
        if generated >= 1:
            self.inception_score.splits = max(1, min(self.is_splits, generated))
            is_mean, is_std = self.inception_score.compute()
            results.update({"is": float(is_mean), "is_std": float(is_std)})
        return results

    def reset(self) -> None:
        """Clear every state (reference features included)."""
        for metric in (self.fid, self.kid, self.inception_score):
            metric.reset()
