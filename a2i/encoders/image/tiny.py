"""A small CNN image encoder for the synthetic world (32–64 px), trained by a2i itself.

The papers start from published image encoders (Sound2Vision §3.2: SwAV ResNet-50); in the
synthetic world a2i trains this one jointly with a generator in stage 1 and then freezes it, so
the audio encoder has a target space that encodes what the world varies: shape, colour, object
position and object size (loudness maps to size). Global pooling alone would discard position and
size, so the last feature map is kept spatially (a 4×4 grid by default) and flattened into the
projection.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.transforms import v2

from a2i.errors import ConfigError
from a2i.interfaces import ImageEncoder
from a2i.pretrained import resolve_weights


def _conv_stage(in_channels: int, out_channels: int, groups: int) -> nn.Sequential:
    """Halve the resolution, then refine: two 3×3 convs with group norm and SiLU."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, stride=2, padding=1),
        nn.GroupNorm(groups, out_channels),
        nn.SiLU(),
        nn.Conv2d(out_channels, out_channels, 3, padding=1),
        nn.GroupNorm(groups, out_channels),
        nn.SiLU(),
    )


class TinyImageEncoder(ImageEncoder):
    """Conv stages → a small spatial grid → flatten → Linear → unit-norm embedding.

    With the defaults (32 px, channels (32, 64, 96), 4×4 grid, 64-d) it has 303,136 parameters.
    Group norm rather than batch norm keeps the frozen encoder's output independent of the batch.

    Args:
        embed_dim: Embedding size.
        image_size: Resolution inputs are resized to (the world renders 32 or 64 px).
        channels: Width of each conv stage; every stage halves the resolution.
        grid_size: Side of the spatial grid kept before the projection (adaptive average
            pooling to ``grid_size``×``grid_size``); larger keeps position more precisely.
        pretrained: An a2i ``.safetensors`` file of this module's state dict (stage-1 output).
        freeze: Freeze the encoder (no gradients, eval mode kept).
    """

    def __init__(
        self,
        embed_dim: int = 64,
        image_size: int = 32,
        channels: tuple[int, ...] = (32, 64, 96),
        grid_size: int = 4,
        pretrained: str | None = None,
        freeze: bool = False,
    ) -> None:
        super().__init__()
        if not channels:
            raise ConfigError(f"{type(self).__name__}.channels must list at least one stage width")
        if image_size < grid_size * 2 ** len(channels):
            raise ConfigError(
                f"{type(self).__name__}: image_size {image_size} is too small for "
                f"{len(channels)} stride-2 stages and a {grid_size}×{grid_size} grid "
                f"(needs >= {grid_size * 2 ** len(channels)})"
            )
        groups = 8
        if any(width % groups for width in channels):
            raise ConfigError(
                f"{type(self).__name__}.channels {channels}: each width must be divisible by "
                f"{groups} (group norm groups)"
            )
        self.embed_dim = embed_dim
        self.image_size = image_size
        self.normalized = True
        self.resize = v2.Resize(
            (image_size, image_size), interpolation=v2.InterpolationMode.BILINEAR, antialias=True
        )
        widths = (3, *channels)
        self.stages = nn.Sequential(
            *(_conv_stage(widths[i], widths[i + 1], groups) for i in range(len(channels)))
        )
        self.grid = nn.AdaptiveAvgPool2d(grid_size)
        self.project = nn.Linear(channels[-1] * grid_size * grid_size, embed_dim)
        weights = resolve_weights(pretrained, f"{type(self).__name__}.pretrained")
        if weights is not None:
            self.load_state_dict(weights.state_dict())
        if freeze:
            self.freeze()

    def forward(self, image: Tensor) -> Tensor:
        """Unit-norm embeddings ``(B, embed_dim)`` of images in ``[0, 1]``."""
        features = self.stages(self.resize(image) * 2.0 - 1.0)
        return F.normalize(self.project(self.grid(features).flatten(1)), dim=-1)
