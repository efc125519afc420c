"""FID, KID and IS through torchmetrics, on an explicit feature network.

torchmetrics would fetch torch-fidelity's Inception weights from the internet on first use; a2i
instead takes the network as an argument: :class:`InceptionFeatures` loads the standard FID
Inception from a local file (a clear error names the file and its URL when it is missing), and in
the synthetic world the tiny classifier a2i trains on world images
(:class:`a2i.encoders.image.scorers.ImageClassifier`) takes its place. World numbers are comparable
between a2i runs, **not** with published Inception FIDs.
"""

from __future__ import annotations

import warnings
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

from a2i.interfaces import FreezableMixin
from a2i.pretrained import cache_dir, resolve_weights

INCEPTION_WEIGHTS = URL_INCEPTION_V3.rsplit("/", 1)[-1]
"""``weights-inception-2015-12-05-6726825d.pth``: the TF FID Inception ported by torch-fidelity."""


class FeatureBackbone(Protocol):
    """What FID/KID/IS need from a network: pooled features and class logits of [0, 1] images."""

    num_features: int

    def features(self, images: Tensor) -> Tensor:
        """``(B, num_features)`` for images ``(B, 3, H, W)`` in ``[0, 1]``."""

    def logits(self, images: Tensor) -> Tensor:
        """``(B, classes)`` for images ``(B, 3, H, W)`` in ``[0, 1]``."""


class InceptionFeatures(FreezableMixin):
    """The standard FID Inception-v3 (2048-d pool features, 1008 ``logits_unbiased`` for IS).

    torchmetrics would download these weights itself on first use; here they come from a local
    file only, so an offline run fails early with the download command instead of hanging on
    the network. Frozen: eval mode (fixed batch-norm statistics) survives ``.train()``.

    Args:
        pretrained: The weights file, as a path or a bare name found in ``$A2I_CACHE`` (default
            ``~/.cache/a2i``). The file is checked to hold tensors only before torch-fidelity
            reads it.

    Raises:
        CheckpointNotFoundError: The file is missing; the message gives the ``wget`` command.
    """

    num_features = 2048

    def __init__(self, pretrained: str = INCEPTION_WEIGHTS) -> None:
        super().__init__()
        download = f"wget {URL_INCEPTION_V3} -O {cache_dir() / INCEPTION_WEIGHTS}"
        weights = resolve_weights(
            pretrained, f"{type(self).__name__}.pretrained", download=download
        )
        local = weights.local_file(library="torch-fidelity", download=download)
        weights.state_dict()  # refuses anything but plain tensors before torch-fidelity reads it
        self.network = FeatureExtractorInceptionV3(
            "inception-v3-compat",
            ["2048", "logits_unbiased"],
            feature_extractor_weights_path=str(local),
        )
        self.freeze()

    def _run(self, images: Tensor) -> tuple[Tensor, Tensor]:
        # torch-fidelity's port of the TF graph takes uint8 pixels (and resizes to 299 px itself).
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
    """torchmetrics' view of a backbone for FID/KID: ``forward`` = features, ``num_features``.

    No gradients: metric features are never trained through, and skipping the graph saves the
    memory of a full Inception forward per batch.
    """

    def __init__(self, backbone: FeatureBackbone) -> None:
        super().__init__()
        self.backbone = backbone
        self.num_features = backbone.num_features

    @torch.no_grad()
    def forward(self, images: Tensor) -> Tensor:
        return self.backbone.features(images.float())


class _Logits(nn.Module):
    """torchmetrics' view of a backbone for IS: ``forward`` = logits."""

    def __init__(self, backbone: FeatureBackbone) -> None:
        super().__init__()
        self.backbone = backbone

    @torch.no_grad()
    def forward(self, images: Tensor) -> Tensor:
        return self.backbone.logits(images.float())


class ImageQuality(nn.Module):
    """FID and KID of generated vs. real images and IS of the generated ones, on one backbone.

    Call :meth:`update_real` with reference images and :meth:`update_fake` with generated ones
    (IS scores generated images only), then :meth:`compute`. A wrapper rather than a
    ``MetricCollection`` because the three metrics take different ``update`` arguments. The
    torchmetrics metrics are child modules and sync their states across DDP ranks in
    ``compute``; the size checks below read synced counts, so every rank takes the same branch.

    The numbers are only as comparable as the backbone: with :class:`InceptionFeatures` they are
    the standard FID/KID/IS; with a world classifier they compare a2i runs with each other and
    are **not** comparable with published Inception numbers.

    Small evaluation sets: KID's subset size is clamped to the smaller of the two sets and IS's
    number of splits to the number of generated images (so a 50-image smoke run gives numbers,
    biased ones, instead of torchmetrics' error). With fewer than two images on either side FID
    and KID are undefined (no covariance): they are NaN, with a warning, rather than an error,
    so one small evaluation does not end a training run.

    Args:
        backbone: Feature network (:class:`InceptionFeatures` or a world classifier), shared by
            all three metrics (one copy in memory).
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
        # With a custom network FID/KID pass float images through unchanged under normalize=True.
        self.fid = FrechetInceptionDistance(feature=features, normalize=True)
        self.kid = KernelInceptionDistance(
            feature=features, subsets=kid_subsets, subset_size=kid_subset_size, normalize=True
        )
        # InceptionScore's normalize=True casts to uint8 even for a custom network: leave it off
        # so the backbone gets the [0, 1] floats of the protocol.
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
        with self.fid.sync_context():  # FID's sample counts, summed over ranks
            real = int(self.fid.real_features_num_samples)
            fake = int(self.fid.fake_features_num_samples)
        nan = float("nan")
        results = {"fid": nan, "kid": nan, "kid_std": nan, "is": nan, "is_std": nan}
        if min(real, fake) >= 2:
            results["fid"] = float(self.fid.compute())
            self.kid.subset_size = min(self.kid_subset_size, real, fake)
            kid_mean, kid_std = self.kid.compute()
            results.update(kid=float(kid_mean), kid_std=float(kid_std))
        else:
            warnings.warn(
                f"FID/KID need at least 2 real and 2 generated images, got {real} and {fake}: NaN",
                stacklevel=2,
            )
        if fake >= 1:  # every generated image also went to IS
            self.inception_score.splits = min(self.is_splits, fake)
            is_mean, is_std = self.inception_score.compute()
            results.update({"is": float(is_mean), "is_std": float(is_std)})
        return results

    def reset(self) -> None:
        """Clear every state (reference features included)."""
        for metric in (self.fid, self.kid, self.inception_score):
            metric.reset()
