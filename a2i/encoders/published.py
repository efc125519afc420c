"""Where a transformers-based encoder's weights come from: a published checkpoint or a preset.

``pretrained`` names either a hub id / folder the library reads (its config fixes the
architecture) or an a2i ``.safetensors`` file of the encoder's own state dict, loaded into the
``preset`` architecture once the encoder is built.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from a2i.interfaces import FreezableMixin
from a2i.pretrained import Weights

T = TypeVar("T")


def published_or_preset(
    weights: Weights | None,
    loader: Callable[[str], T],
    preset: Callable[[], T],
    subfolder: str = "",
) -> T:
    """``loader`` on the published checkpoint, or ``preset()`` (no weights, or an a2i file)."""
    if weights is None or weights.is_a2i_file:
        return preset()
    return weights.load(
        loader,
        library="transformers",
        download=f"hf download {weights.spec}",
        name=f"{weights.spec}/{subfolder}" if subfolder else weights.spec,
    )


def load_a2i_file(module: FreezableMixin, weights: Weights | None, freeze: bool) -> None:
    """Load an a2i ``.safetensors`` file of ``module``'s state dict, then freeze if asked."""
    if weights is not None and weights.is_a2i_file:
        module.load_state_dict(weights.state_dict())
    if freeze:
        module.freeze()
